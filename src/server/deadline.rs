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

/// What a request's `grpc-timeout` says.
#[derive(Debug, PartialEq, Eq)]
enum Timeout {
    /// No header: the server's default for a unary call, none for a stream.
    Absent,
    /// This long; zero has already passed.
    Given(Duration),
    /// Not a timeout as the gRPC spec writes one; the call is refused.
    Malformed,
}

/// `grpc-timeout` as the spec writes it: at most 8 ASCII digits, then a
/// unit (H, M, S, m, u, n).
fn grpc_timeout(headers: &http::HeaderMap) -> Timeout {
    static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
    let Some(value) = headers.get(&GRPC_TIMEOUT) else {
        return Timeout::Absent;
    };
    let Some((&unit, digits)) = value.as_bytes().split_last() else {
        return Timeout::Malformed;
    };
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Timeout::Malformed;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Timeout::Given(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Timeout::Malformed,
    })
}

/// The refusal of a call whose `grpc-timeout` is malformed, quoting a
/// short prefix of it.
fn malformed(headers: &http::HeaderMap) -> Status {
    let value = headers
        .get("grpc-timeout")
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(16)
                .collect::<String>()
        })
        .unwrap_or_default();
    Status::invalid_argument(format!(
        "grpc-timeout {value:?} is malformed: it is at most 8 digits and a unit (H, M, S, m, u or n)"
    ))
}

fn deadline_exceeded(after: Duration) -> Status {
    Status::deadline_exceeded(format!("the call's deadline of {after:?} passed"))
}

answers_with!(Deadline, DeadlineAnswer<S::Future>);

impl<S: Inner> Deadline<S> {
    fn answer(&mut self, request: http::Request<Body>) -> DeadlineAnswer<S::Future> {
        let streaming = is_streaming(request.uri().path());
        let timeout = match grpc_timeout(request.headers()) {
            Timeout::Given(timeout) if timeout.is_zero() => {
                return DeadlineAnswer::Refused {
                    status: Some(deadline_exceeded(timeout)),
                };
            }
            Timeout::Malformed => {
                return DeadlineAnswer::Refused {
                    status: Some(malformed(request.headers())),
                };
            }
            Timeout::Given(timeout) => Some(timeout),
            Timeout::Absent if streaming => None,
            Timeout::Absent => Some(self.config.unary_default),
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
        // Answered without calling the handler: a deadline that has
        // already passed, or a malformed one.
        Refused { status: Option<Status> },
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
            DeadlineProj::Refused { status } => Poll::Ready(Ok(status
                .take()
                .unwrap_or_else(|| Status::internal("a refusal polled twice"))
                .into_http())),
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
        let given = |value: &str| grpc_timeout(&headers(value));
        assert_eq!(given("2S"), Timeout::Given(Duration::from_secs(2)));
        assert_eq!(given("1H"), Timeout::Given(Duration::from_secs(3600)));
        assert_eq!(given("3M"), Timeout::Given(Duration::from_secs(180)));
        assert_eq!(given("250m"), Timeout::Given(Duration::from_millis(250)));
        assert_eq!(given("7u"), Timeout::Given(Duration::from_micros(7)));
        assert_eq!(given("9n"), Timeout::Given(Duration::from_nanos(9)));
        assert_eq!(given("0n"), Timeout::Given(Duration::ZERO));
        assert_eq!(
            given("99999999H"),
            Timeout::Given(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in [
            "",
            "S",
            "1x",
            "123456789S",
            "-1S",
            "+1S",
            "1.5S",
            " 1S",
            "1 S",
        ] {
            assert_eq!(given(bad), Timeout::Malformed, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), Timeout::Absent);
    }
}
