//! The one error type of tradewire's requests. Every layer returns it;
//! `api::status` maps it to a `tonic::Status` in one place. (Starting and
//! serving fail with `server::ServeError`.)

use std::fmt;

/// One invalid field of a request, named by its path in the request
/// ("trade_record.period.calendar_period.quarter").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; each violation names its field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named resource does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    /// The resource (or the request id) is already taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A resume point outside the retained window of a stream.
    #[error("{message}")]
    OutOfRange {
        message: String,
        oldest_retained: u64,
    },
    /// The request was made against a state that has changed since (a
    /// stale etag).
    #[error("{0}")]
    Aborted(String),
    /// A server limit is reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The server cannot serve now; retry, resuming after `resume_after`
    /// where it is set.
    #[error("{message}")]
    Unavailable {
        message: String,
        resume_after: Option<u64>,
    },
    /// A summary or breakdown would examine more than `budget` records.
    #[error("a summary examines at most {budget} records")]
    ScanBudget { budget: usize },
    /// The matching records are in several currencies, which a summary
    /// never adds.
    #[error("the matching records are in {}; a summary never adds two currencies", .0.join(" and "))]
    MixedCurrencies(Vec<&'static str>),
    /// A revision of a record made against revision `read`, when it is at
    /// `current`.
    #[error("trade record {id} is at revision {current}, not {read}")]
    StaleRevision { id: String, read: u32, current: u32 },
    /// The record at `position` of an announcement's related records does
    /// not exist.
    #[error("no trade record with id {id}")]
    UnknownRelatedRecord { position: usize, id: String },
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// `NotFound` for the `kind` with `id`.
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// A single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }
}

/// Most violations the message names; the details list them all.
const MAX_DESCRIBED: usize = 3;

fn describe(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .take(MAX_DESCRIBED)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    match violations.len() {
        n if n > MAX_DESCRIBED => format!("{}; and {} more", parts.join("; "), n - MAX_DESCRIBED),
        _ => parts.join("; "),
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// The result of anything that serves a request.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
