//! A generated tonic service with some of its methods answered by hand.
//!
//! tonic's generated servers take and return generated messages only; the
//! methods that answer from pre-encoded bytes (`frames::Frame`) are served
//! through `tonic::server::Grpc` with `FrameCodec` instead. `Routes` puts
//! the two together under the service's name: `Methods` answers the paths
//! it serves, and every other request goes to the generated server.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body as TonicBody;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::NamedService;

/// An answer to one HTTP/2 request.
pub(crate) type Answer = BoxFuture<http::Response<TonicBody>, Infallible>;

/// The methods a service answers itself.
pub(crate) trait Methods: Clone + Send + 'static {
    /// Whether `path` (`/package.Service/Method`) is one of them.
    fn serves(&self, path: &str) -> bool;

    /// Answers a request for one of them.
    fn answer<B>(&self, request: http::Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static;
}

/// The generated server `G` with the methods of `M` answered by `M`.
#[derive(Debug, Clone)]
pub(crate) struct Routes<M, G> {
    methods: M,
    generated: G,
}

impl<M, G> Routes<M, G> {
    pub(crate) fn new(methods: M, generated: G) -> Self {
        Routes { methods, generated }
    }
}

impl<M, G: NamedService> NamedService for Routes<M, G> {
    const NAME: &'static str = G::NAME;
}

impl<M, G, B> Service<http::Request<B>> for Routes<M, G>
where
    M: Methods,
    G: Service<
            http::Request<B>,
            Response = http::Response<TonicBody>,
            Error = Infallible,
            Future = Answer,
        >,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Answer {
        if self.methods.serves(request.uri().path()) {
            self.methods.answer(request)
        } else {
            self.generated.call(request)
        }
    }
}

/// Asserts that each hand-typed `paths` names a method of the service `R`
/// serves, as the generated descriptor has it, so a rename in the proto
/// cannot silently send a routed method to the slower generated path.
#[cfg(test)]
pub(crate) fn assert_routed_paths_are_methods<R: NamedService>(paths: &[&str]) {
    let pool = prost_reflect::DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let service = pool
        .get_service_by_name(R::NAME)
        .unwrap_or_else(|| panic!("{} is not in the descriptor set", R::NAME));
    for path in paths {
        let (service_name, method) = path[1..].split_once('/').expect("/Service/Method");
        assert_eq!(service_name, service.full_name(), "{path}");
        assert!(
            service.methods().any(|m| m.name() == method),
            "{path} is not a method of {}",
            service.full_name()
        );
    }
}
