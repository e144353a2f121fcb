//! The one mapping from `Error` to `tonic::Status`.

use std::collections::HashMap;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::error::Error;

/// The error domain in google.rpc.ErrorInfo details.
pub(crate) const ERROR_DOMAIN: &str = "tradewire.v1";
/// Trailer with the sequence a client should resume after.
pub(crate) const RESUME_AFTER_METADATA: &str = "tradewire-resume-after";
/// Trailer with the oldest sequence still retained.
pub(crate) const OLDEST_RETAINED_METADATA: &str = "tradewire-oldest-retained";

fn with_metadata(key: &'static str, value: u64) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert(key, MetadataValue::from(value));
    metadata
}

fn error_info(reason: &str, key: &str, value: u64) -> ErrorDetails {
    ErrorDetails::with_error_info(
        reason,
        ERROR_DOMAIN,
        HashMap::from([(key.to_owned(), value.to_string())]),
    )
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(violations) => {
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .map(|v| FieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::NotFound { .. } => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::OutOfRange {
                oldest_retained, ..
            } => Status::with_error_details_and_metadata(
                Code::OutOfRange,
                message,
                error_info(
                    "SEQUENCE_NOT_RETAINED",
                    "oldest_retained_sequence",
                    oldest_retained,
                ),
                with_metadata(OLDEST_RETAINED_METADATA, oldest_retained),
            ),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::Unavailable {
                resume_after: Some(after),
                ..
            } => Status::with_error_details_and_metadata(
                Code::Unavailable,
                message,
                error_info("SHUTTING_DOWN", "resume_after_sequence", after),
                with_metadata(RESUME_AFTER_METADATA, after),
            ),
            Error::Unavailable { .. } => Status::unavailable(message),
            Error::Internal(_) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}
