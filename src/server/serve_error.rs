//! `ServeError`: why a server could not start or stopped serving, one
//! variant per cause a caller may want to tell apart.

use crate::store::OpenError;

/// Why the server could not start or stopped serving. Requests never see
/// it; they get a `tonic::Status`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration cannot be served; the message says which setting.
    #[error("{0}")]
    Config(String),
    /// The store would not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The tokens file (`auth_tokens`) could not be read or parsed.
    #[error("{0}")]
    Tokens(String),
    /// The TLS certificate or key could not be loaded.
    #[error("{0}")]
    Tls(String),
    /// The demo data set did not load.
    #[error("the demo data set did not load: {0}")]
    Demo(String),
    /// The compiled-in contract cannot be served: a method without a
    /// declared scope, or descriptors reflection cannot read.
    #[error("the contract: {0}")]
    Contract(String),
    /// The listener could not be read or set up.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The HTTP/2 server failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}
