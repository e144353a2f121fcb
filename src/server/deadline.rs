//! Deadlines, as admission (`admission`) applies them: a call's
//! `grpc-timeout` read as the gRPC spec writes it, and the body that ends
//! a stream with `DEADLINE_EXCEEDED` in its trailers when its deadline
//! passes. A unary call without a `grpc-timeout` gets the server's
//! default; a stream without one has none.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

/// What a request's `grpc-timeout` says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// No header: the server's default for a unary call, none for a stream.
    Absent,
    /// This long; zero has already passed.
    Given(Duration),
    /// Not a timeout as the gRPC spec writes one; the call is refused.
    Malformed,
}

/// `grpc-timeout` as the spec writes it: at most 8 ASCII digits, then a
/// unit (H, M, S, m, u, n).
pub(crate) fn grpc_timeout(headers: &http::HeaderMap) -> Timeout {
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
pub(crate) fn malformed(headers: &http::HeaderMap) -> Status {
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

/// The answer of a call whose deadline passed.
pub(crate) fn exceeded(after: Duration) -> Status {
    Status::deadline_exceeded(format!("the call's deadline of {after:?} passed"))
}

/// A response body that ends with `DEADLINE_EXCEEDED` trailers at its
/// deadline, unless it ends first.
pub(crate) struct DeadlineBody {
    inner: Body,
    expires: Pin<Box<Sleep>>,
    timeout: Duration,
    ended: bool,
}

impl DeadlineBody {
    /// `inner`, ended at `at`, which is `timeout` after the call began.
    pub(crate) fn new(inner: Body, timeout: Duration, at: Instant) -> Self {
        DeadlineBody {
            inner,
            expires: Box::pin(tokio::time::sleep_until(at)),
            timeout,
            ended: false,
        }
    }
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
        let _ = exceeded(self.timeout).add_header(&mut trailers);
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
