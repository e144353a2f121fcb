//! Per-call limits, as tower layers (the stack's order is in `server`):
//!
//! - `InFlightLayer`: at most `max_in_flight` calls are being answered at
//!   once across all connections; past it a call gets `RESOURCE_EXHAUSTED`
//!   at once instead of queueing (load shedding). A stream counts until
//!   its response starts.
//! - `DeadlineLayer`: a call's `grpc-timeout` is honoured. A unary call
//!   without one gets the server's default. A unary call past its deadline
//!   answers `DEADLINE_EXCEEDED`; a stream past its deadline ends with
//!   `DEADLINE_EXCEEDED` in its trailers.
//! - `RequestBodyLayer`: every tradewire request is one message, so its body
//!   must arrive whole within `receive_timeout` and be at most one message
//!   of `max_message_bytes`; a body that trickles or floods is cut off
//!   (`DEADLINE_EXCEEDED` / `RESOURCE_EXHAUSTED`). Reflection, whose
//!   requests are a client stream, is exempt. tonic's own "decoded message
//!   length too large" (`OUT_OF_RANGE`) is answered as
//!   `RESOURCE_EXHAUSTED`, the code the gRPC spec gives it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tower::Layer;

use super::security_log::SecurityLog;
use crate::api::caller::Peer;

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

/// Whether the method at `path` answers with a stream.
pub(super) fn is_streaming(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or("");
    method.starts_with("Subscribe")
        || method.starts_with("Watch")
        || path.starts_with("/grpc.reflection.")
}

fn peer<B>(request: &http::Request<B>) -> Option<std::net::SocketAddr> {
    request.extensions().get::<Peer>().map(|c| c.addr)
}

/// Declares a layer `$layer` holding `$config`, and its service `$service`.
macro_rules! layer {
    ($(#[$doc:meta])* $layer:ident, $service:ident, $config:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub(crate) struct $layer(Arc<$config>);

        impl $layer {
            pub(crate) fn new(config: $config) -> Self {
                $layer(Arc::new(config))
            }
        }

        impl<S> Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> $service<S> {
                $service {
                    inner,
                    config: Arc::clone(&self.0),
                }
            }
        }

        /// The layer's service around `S`.
        #[derive(Debug, Clone)]
        pub(crate) struct $service<S> {
            inner: S,
            config: Arc<$config>,
        }
    };
}

// ---- in-flight calls ----

/// The shared count of calls in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) max: usize,
    pub(crate) log: SecurityLog,
}

layer!(
    /// Sheds calls past the in-flight limit.
    InFlightLayer,
    InFlightLimit,
    InFlight
);

impl<S> Service<http::Request<Body>> for InFlightLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Guarded<S::Future, tokio::sync::OwnedSemaphorePermit>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.config.permits).try_acquire_owned() else {
            let message = format!(
                "the server is answering its maximum of {} calls; retry with backoff",
                self.config.max
            );
            self.config
                .log
                .event("overloaded", peer(&request), &message);
            return Guarded::refused(Status::resource_exhausted(message));
        };
        Guarded::running(self.inner.call(request), permit)
    }
}

// ---- deadlines ----

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
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
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

impl<S> Service<http::Request<Body>> for Deadline<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = DeadlineAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
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
                // One timer: first at the arrival limit, if that is sooner.
                let first = arrival.as_ref().map_or(deadline, |a| a.by.min(deadline));
                DeadlineAnswer::Bounded {
                    inner: answer,
                    timer: tokio::time::sleep_until(first),
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
            #[pin] timer: Sleep,
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
                mut timer,
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
        ready!(self.expires.as_mut().poll(cx));
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

// ---- request bodies ----

/// Whether a unary request's body has arrived whole, shared by its body
/// and the deadline layer: the call then waits on one timer for both its
/// receive timeout and its deadline (a timer per limit cost a Get about
/// 1 µs of the timer wheel's work whenever the body came after the
/// headers).
#[derive(Debug)]
pub(crate) struct Arrival {
    whole: AtomicBool,
    by: Instant,
    config: Arc<RequestBodies>,
    peer: Option<std::net::SocketAddr>,
}

impl Arrival {
    fn is_whole(&self) -> bool {
        self.whole.load(Ordering::Acquire)
    }

    /// The answer to a request that did not arrive whole in time.
    fn late(&self) -> Status {
        let message = format!(
            "the request did not arrive whole within {:?}",
            self.config.receive_timeout
        );
        self.config
            .log
            .event("request_timeout", self.peer, &message);
        Status::deadline_exceeded(message)
    }
}

/// Request body settings.
#[derive(Debug)]
pub(crate) struct RequestBodies {
    pub(crate) receive_timeout: Duration,
    pub(crate) max_message_bytes: usize,
    pub(crate) log: SecurityLog,
}

layer!(
    /// Bounds each request body in time and size.
    RequestBodyLayer,
    RequestBodyLimit,
    RequestBodies
);

/// tonic's status for a message over the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

impl<S> Service<http::Request<Body>> for RequestBodyLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Guarded<S::Future, TooLargeIsResourceExhausted>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let request = if path.starts_with("/grpc.reflection.") {
            request
        } else {
            let config = Arc::clone(&self.config);
            let peer = peer(&request);
            let deadline = Instant::now() + config.receive_timeout;
            // A unary call's deadline layer watches its arrival; a stream
            // (no deadline by default) keeps a timer of its own.
            let arrival = (!is_streaming(path)).then(|| {
                Arc::new(Arrival {
                    whole: AtomicBool::new(false),
                    by: deadline,
                    config: Arc::clone(&config),
                    peer,
                })
            });
            let mut request = request.map(|body| {
                Body::new(LimitedBody {
                    inner: body,
                    // One message: its 5-byte gRPC prefix and the message.
                    remaining: config.max_message_bytes + 5,
                    deadline,
                    expires: None,
                    arrival: arrival.clone(),
                    config,
                    peer,
                })
            });
            if let Some(arrival) = arrival {
                request.extensions_mut().insert(arrival);
            }
            request
        };
        Guarded::running(self.inner.call(request), TooLargeIsResourceExhausted)
    }
}

/// Rewrites tonic's `OUT_OF_RANGE` for an oversized message to
/// `RESOURCE_EXHAUSTED`.
pub(crate) struct TooLargeIsResourceExhausted;

impl Finish for TooLargeIsResourceExhausted {
    fn finish(self, response: &mut http::Response<Body>) {
        let headers = response.headers_mut();
        let too_large = headers.get("grpc-status").is_some_and(|s| s == "11")
            && headers
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .is_some_and(|m| m.starts_with(TONIC_TOO_LARGE));
        if too_large {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        }
    }
}

/// A request body cut off when it is late or larger than one message.
struct LimitedBody {
    inner: Body,
    remaining: usize,
    deadline: Instant,
    /// Made on the first wait: most bodies arrive with their headers.
    expires: Option<Pin<Box<Sleep>>>,
    /// For a unary call: where its arrival is told, and timed.
    arrival: Option<Arc<Arrival>>,
    config: Arc<RequestBodies>,
    peer: Option<std::net::SocketAddr>,
}

impl LimitedBody {
    fn mark_whole(&self) {
        if let Some(arrival) = &self.arrival {
            arrival.whole.store(true, Ordering::Release);
        }
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len());
                if len > self.remaining {
                    let message = format!(
                        "the request is larger than one message of at most {} bytes",
                        self.config.max_message_bytes
                    );
                    self.config
                        .log
                        .event("request_too_large", self.peer, &message);
                    return Poll::Ready(Some(Err(Status::resource_exhausted(message))));
                }
                self.remaining -= len;
                if self.inner.is_end_stream() {
                    self.mark_whole();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                self.mark_whole();
                Poll::Ready(other)
            }
            // The deadline layer times a unary call's arrival.
            Poll::Pending if self.arrival.is_some() => Poll::Pending,
            Poll::Pending => {
                let deadline = self.deadline;
                let expires = self
                    .expires
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(expires.as_mut().poll(cx));
                let message = format!(
                    "the request did not arrive whole within {:?}",
                    self.config.receive_timeout
                );
                self.config
                    .log
                    .event("request_timeout", self.peer, &message);
                Poll::Ready(Some(Err(Status::deadline_exceeded(message))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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

    #[test]
    fn streams_are_told_from_unary_calls_by_path() {
        assert!(is_streaming(
            "/tradewire.v1.ExportReportService/SubscribeExportReports"
        ));
        assert!(is_streaming(
            "/tradewire.v1.AnnouncementService/WatchAnnouncements"
        ));
        assert!(is_streaming("/grpc.health.v1.Health/Watch"));
        assert!(is_streaming(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_streaming("/tradewire.v1.TradeService/GetTradeRecord"));
        assert!(!is_streaming("/grpc.health.v1.Health/Check"));
    }
}
