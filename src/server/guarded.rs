//! `Guarded`, the answer of a layer without a box: a refusal made at once,
//! or the inner service's answer with a `Finish` applied to it. Every layer
//! of the stack answers through it: a box per layer per call is an
//! allocation and a free on every call, for nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

pin_project_lite::pin_project! {
    /// A layer's answer without a box: a refusal made at once, or the
    /// inner service's answer with `after` applied to it (and dropped).
    #[project = GuardedProj]
    pub(crate) enum Guarded<F, A> {
        Refused { response: Option<http::Response<Body>> },
        Running { #[pin] inner: F, after: Option<A> },
    }
}

impl<F, A> Guarded<F, A> {
    pub(crate) fn refused(status: Status) -> Self {
        Guarded::Refused {
            response: Some(status.into_http()),
        }
    }

    pub(crate) fn running(inner: F, after: A) -> Self {
        Guarded::Running {
            inner,
            after: Some(after),
        }
    }
}

/// Looked up by name, not by string: a string is parsed on every lookup.
pub(super) static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// What a layer does with the inner answer once it is ready; dropping it
/// is the default (an in-flight permit is returned that way).
pub(crate) trait Finish {
    fn finish(self, _response: &mut http::Response<Body>)
    where
        Self: Sized,
    {
    }
}

impl Finish for () {}

impl<F, A, E> Future for Guarded<F, A>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
    A: Finish,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardedProj::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            GuardedProj::Running { inner, after } => {
                let mut answer = ready!(inner.poll(cx));
                if let (Ok(response), Some(after)) = (&mut answer, after.take()) {
                    after.finish(response);
                }
                Poll::Ready(answer)
            }
        }
    }
}

/// The inner service every layer of the stack wraps: the routes, or the
/// next layer.
pub(crate) trait Inner:
    tonic::codegen::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Send
    + 'static
{
}

impl<T> Inner for T where
    T: tonic::codegen::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Future: Send + 'static,
            Error: Send + 'static,
        > + Send
        + 'static
{
}

/// The `Service` impl every layer shares: ready when its inner service
/// is, and answering through the layer's own `answer`, whose future is
/// `$future` (it may name `S`, the inner service).
macro_rules! answers_with {
    ($service:ident, $future:ty) => {
        impl<S: $crate::server::guarded::Inner>
            tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>>
            for $service<S>
        {
            type Response = tonic::codegen::http::Response<tonic::body::Body>;
            type Error = S::Error;
            type Future = $future;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), S::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(
                &mut self,
                request: tonic::codegen::http::Request<tonic::body::Body>,
            ) -> Self::Future {
                self.answer(request)
            }
        }
    };
}
pub(super) use answers_with;
