//! `Guarded`, the answer of a layer without a box: a refusal made at once,
//! or the inner service's answer with a `Finish` applied to it. Every layer
//! of the stack answers through it (boxing a future per layer cost 8% of a
//! Get).

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
impl Finish for tokio::sync::OwnedSemaphorePermit {}

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
