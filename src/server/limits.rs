//! The per-call limits that admission (`admission`) applies, apart from
//! the deadline (`deadline`):
//!
//! - [`InFlight`]: at most `max_in_flight` calls are being answered at
//!   once across all connections; past it a call gets `RESOURCE_EXHAUSTED`
//!   at once instead of queueing (load shedding).
//! - [`RequestBodies`]: every tradewire request is one message, so its
//!   body must arrive whole within `receive_timeout` and be at most one
//!   message of `max_message_bytes`; a body that trickles or floods is cut
//!   off (`DEADLINE_EXCEEDED` / `RESOURCE_EXHAUSTED`). tonic's own
//!   "decoded message length too large" (`OUT_OF_RANGE`) is answered as
//!   `RESOURCE_EXHAUSTED`, the code the gRPC spec gives it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

use super::security_log::{SecurityEvent, SecurityLog};
use super::stack::GRPC_STATUS;

// ---- in-flight calls ----

/// The shared count of calls in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) count: Arc<AtomicUsize>,
    pub(crate) max: usize,
}

/// One call's place in the in-flight count, given back when dropped. A
/// plain counter, not a semaphore: no call ever waits for a place (one
/// over the limit is refused), and a semaphore's release takes its
/// waiters' lock on every call.
#[derive(Debug)]
pub(crate) struct InFlightPlace(Arc<AtomicUsize>);

impl Drop for InFlightPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// A place among the calls in flight, or the refusal of a call past
    /// the limit.
    pub(crate) fn take(&self) -> Result<InFlightPlace, Status> {
        let taken = self.count.fetch_add(1, Ordering::AcqRel);
        let place = InFlightPlace(Arc::clone(&self.count));
        if taken >= self.max {
            drop(place);
            return Err(Status::resource_exhausted(format!(
                "the server is answering its maximum of {} calls; retry with backoff",
                self.max
            )));
        }
        Ok(place)
    }
}

// ---- request bodies ----

/// Whether a unary request's body has arrived whole, shared by its body
/// and the deadline layer: the call then waits on one timer for both its
/// receive timeout and its deadline (a timer per limit is the timer
/// wheel's work twice whenever the body comes after the headers).
#[derive(Debug)]
pub(crate) struct Arrival {
    whole: AtomicBool,
    /// When the request must have arrived.
    pub(super) by: Instant,
    config: Arc<RequestBodies>,
    peer: Option<std::net::SocketAddr>,
}

impl Arrival {
    pub(super) fn is_whole(&self) -> bool {
        self.whole.load(Ordering::Acquire)
    }

    /// The answer to a request that did not arrive whole in time.
    pub(super) fn late(&self) -> Status {
        late(&self.config, self.peer)
    }
}

/// The answer to a request (unary or streaming) that did not arrive whole
/// within the receive timeout, logged as a security event.
fn late(config: &RequestBodies, peer: Option<std::net::SocketAddr>) -> Status {
    let message = format!(
        "the request did not arrive whole within {:?}",
        config.receive_timeout
    );
    config
        .log
        .event(SecurityEvent::RequestTimeout, peer, &message);
    Status::deadline_exceeded(message)
}

/// Request body settings.
#[derive(Debug)]
pub(crate) struct RequestBodies {
    pub(crate) receive_timeout: Duration,
    pub(crate) max_message_bytes: usize,
    pub(crate) log: SecurityLog,
}

/// tonic's status for a message over the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

impl RequestBodies {
    /// `request`, which arrived at `now`, with its body bounded in size and
    /// time. A unary call's
    /// arrival is returned for its deadline to time (one timer for both);
    /// a stream's body keeps a timer of its own.
    pub(crate) fn limit(
        self: &Arc<Self>,
        request: http::Request<Body>,
        unary: bool,
        peer: Option<std::net::SocketAddr>,
        now: Instant,
    ) -> (http::Request<Body>, Option<Arc<Arrival>>) {
        let deadline = now + self.receive_timeout;
        let arrival = unary.then(|| {
            Arc::new(Arrival {
                whole: AtomicBool::new(false),
                by: deadline,
                config: Arc::clone(self),
                peer,
            })
        });
        let request = request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                // One message: its 5-byte gRPC prefix and the message.
                remaining: self.max_message_bytes + 5,
                deadline,
                expires: None,
                arrival: arrival.clone(),
                config: Arc::clone(self),
                peer,
            })
        });
        (request, arrival)
    }
}

/// Rewrites tonic's `OUT_OF_RANGE` for an oversized message to
/// `RESOURCE_EXHAUSTED`.
pub(crate) fn too_large_is_resource_exhausted(response: &mut http::Response<Body>) {
    let headers = response.headers_mut();
    let too_large = headers.get(&GRPC_STATUS).is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.starts_with(TONIC_TOO_LARGE));
    if too_large {
        headers.insert(&GRPC_STATUS, http::HeaderValue::from_static("8"));
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
                        .event(SecurityEvent::RequestTooLarge, self.peer, &message);
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
                Poll::Ready(Some(Err(late(&self.config, self.peer))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}
