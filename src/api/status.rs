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

/// A status that carries a sequence twice: in a `google.rpc.ErrorInfo`
/// (`reason`, with the sequence under `detail_key`) for clients that read
/// details, and in the trailer `metadata_key` for those that do not.
fn with_sequence(
    code: Code,
    message: String,
    reason: &str,
    detail_key: &str,
    metadata_key: &'static str,
    sequence: u64,
) -> Status {
    let details = ErrorDetails::with_error_info(
        reason,
        ERROR_DOMAIN,
        HashMap::from([(detail_key.to_owned(), sequence.to_string())]),
    );
    let mut metadata = MetadataMap::new();
    metadata.insert(metadata_key, MetadataValue::from(sequence));
    Status::with_error_details_and_metadata(code, message, details, metadata)
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
            } => with_sequence(
                Code::OutOfRange,
                message,
                "SEQUENCE_NOT_RETAINED",
                "oldest_retained_sequence",
                OLDEST_RETAINED_METADATA,
                oldest_retained,
            ),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            // The store says what went wrong; the wire's words (the
            // request's fields, the etag's form) are added here.
            Error::ScanBudget { .. } => Status::resource_exhausted(format!(
                "{message}; narrow the filter (exporter, importer, hs_prefix)"
            )),
            Error::MixedCurrencies(_) => {
                Status::failed_precondition(format!("{message}: name one in currency_code"))
            }
            Error::StaleRevision { id, read, current } => Status::aborted(format!(
                "etag \"r{read}\" is stale: trade record {id} is at revision {current} (etag \"r{current}\"); read it again and retry"
            )),
            Error::UnknownRelatedRecord { position, .. } => {
                let field = format!("announcement.related_trade_record_ids[{position}]");
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid argument: {field}: {message}"),
                    ErrorDetails::with_bad_request(vec![FieldViolation::new(field, message)]),
                )
            }
            Error::Aborted(_) => Status::aborted(message),
            Error::Unavailable {
                resume_after: Some(after),
                ..
            } => with_sequence(
                Code::Unavailable,
                message,
                "SHUTTING_DOWN",
                "resume_after_sequence",
                RESUME_AFTER_METADATA,
                after,
            ),
            Error::Unavailable { .. } => Status::unavailable(message),
            Error::Internal(_) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}
