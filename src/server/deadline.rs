//! `DeadlineLayer`: a call's `grpc-timeout` is honoured. A unary call
//! without one gets the server's default. A unary call past its deadline
//! answers `DEADLINE_EXCEEDED`; a stream past its deadline ends with
//! `DEADLINE_EXCEEDED` in its trailers. A unary call waits on one timer for
//! its deadline and its request's arrival (`limits::Arrival`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::Layer;

use super::guarded::{Inner, answers_with};
use super::limits::{Arrival, is_streaming, layer};

/// Deadline settings.
#[derive(Debug)]
pub(crate) struct Deadlines {
    /// For unary calls that carry no `grpc-timeout`.
    pub(crate) unary_default: Duration,
}

layer!(
    /// Ends calls at their deadline.
    DeadlineLayer,
    Deadline,
    Deadlines
);

/// `grpc-timeout`: digits, then a unit (H, M, S, m, u, n).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
    let value = headers.get(&GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn deadline_exceeded(after: Duration) -> Status {
    Status::deadline_exceeded(format!("the call's deadline of {after:?} passed"))
}

answers_with!(Deadline, DeadlineAnswer<S::Future>);

impl<S: Inner> Deadline<S> {
    fn answer(&mut self, request: http::Request<Body>) -> DeadlineAnswer<S::Future> {
        let streaming = is_streaming(request.uri().path());
        let timeout = match grpc_timeout(request.headers()) {
            Some(timeout) => Some(timeout),
            None if streaming => None,
            None => Some(self.config.unary_default),
        };
        let arrival = request.extensions().get::<Arc<Arrival>>().cloned();
        let answer = self.inner.call(request);
        match timeout {
            None => DeadlineAnswer::Unbounded { inner: answer },
            Some(timeout) => {
                let deadline = Instant::now() + timeout;
                DeadlineAnswer::Bounded {
                    inner: answer,
                    timer: None,
                    timeout,
                    deadline,
                    streaming,
                    arrival,
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a call with or without a deadline.
    #[project = DeadlineProj]
    pub(crate) enum DeadlineAnswer<F> {
        Unbounded { #[pin] inner: F },
        Bounded {
            #[pin] inner: F,
            // Made on the first wait: most unary answers are ready on their
            // first poll, and a timer they never wait on is work (and
            // bytes moved with the future) for nothing.
            timer: Option<Pin<Box<Sleep>>>,
            timeout: Duration,
            deadline: Instant,
            streaming: bool,
            arrival: Option<Arc<Arrival>>,
        },
    }
}

impl<F, E> Future for DeadlineAnswer<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DeadlineProj::Unbounded { inner } => inner.poll(cx),
            DeadlineProj::Bounded {
                mut inner,
                timer,
                timeout,
                deadline,
                streaming,
                arrival,
            } => loop {
                if let Poll::Ready(answer) = inner.as_mut().poll(cx) {
                    return Poll::Ready(match answer {
                        Err(error) => Err(error),
                        // A unary answer is whole once its future resolves;
                        // only a stream goes on past it, and needs its body
                        // cut off.
                        Ok(response) if !*streaming => Ok(response),
                        Ok(response) => Ok(response.map(|body| {
                            Body::new(DeadlineBody {
                                inner: body,
                                expires: Box::pin(tokio::time::sleep_until(*deadline)),
                                timeout: *timeout,
                                ended: false,
                            })
                        })),
                    });
                }
                // One timer: first at the arrival limit, if that is sooner.
                let timer = timer.get_or_insert_with(|| {
                    let first = arrival.as_ref().map_or(*deadline, |a| a.by.min(*deadline));
                    Box::pin(tokio::time::sleep_until(first))
                });
                ready!(timer.as_mut().poll(cx));
                if let Some(arrival) = arrival.as_ref().filter(|a| !a.is_whole()) {
                    return Poll::Ready(Ok(arrival.late().into_http()));
                }
                if Instant::now() >= *deadline {
                    return Poll::Ready(Ok(deadline_exceeded(*timeout).into_http()));
                }
                // The request arrived in time: wait on for the deadline.
                timer.as_mut().reset(*deadline);
            },
        }
    }
}

/// A response body that ends with `DEADLINE_EXCEEDED` trailers at its
/// deadline, unless it ends first.
struct DeadlineBody {
    inner: Body,
    expires: Pin<Box<Sleep>>,
    timeout: Duration,
    ended: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() {
                self.ended = true;
            }
            return Poll::Ready(frame);
        }
        // Unconstrained: a stream that spent its task's budget
        // (`api::delivery_turn`) must not be woken again just to look at
        // its deadline.
        ready!(Pin::new(&mut tokio::task::coop::unconstrained(self.expires.as_mut())).poll(cx));
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        // Status::add_header writes grpc-status and grpc-message.
        let _ = deadline_exceeded(self.timeout).add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    /// An empty body must say so before it is polled: hyper then ends the
    /// stream on the HEADERS frame, which is what makes a gRPC
    /// "trailers-only" answer (an error) readable to grpc-go and grpcio.
    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", value.parse().unwrap());
        h
    }

    #[test]
    fn grpc_timeout_reads_every_unit_and_refuses_the_rest() {
        assert_eq!(grpc_timeout(&headers("2S")), Some(Duration::from_secs(2)));
        assert_eq!(
            grpc_timeout(&headers("1H")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(grpc_timeout(&headers("3M")), Some(Duration::from_secs(180)));
        assert_eq!(
            grpc_timeout(&headers("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(grpc_timeout(&headers("7u")), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout(&headers("9n")), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "1x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(&headers(bad)), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }
}
