//! What the services of the stack between hyper and the routes share. The
//! stack, outermost first (built by `App::serve`'s `router` step):
//!
//! 1. the call layer (`calls`): looks the method up in the table once,
//!    and observes every call, refused ones too (metrics, the log line);
//! 2. admission (`admission`): auth, in-flight, request body, deadline.
//!
//! Both are plain tower services, written out, with unboxed futures.

use tonic::body::Body;
use tonic::codegen::http;

/// Looked up by name, not by string: a string is parsed on every lookup.
pub(super) static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The inner service every layer of the stack wraps: the routes, or the
/// next layer.
pub(crate) trait Inner:
    tower::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Send
    + 'static
{
}

impl<T> Inner for T where
    T: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Future: Send + 'static,
            Error: Send + 'static,
        > + Send
        + 'static
{
}
