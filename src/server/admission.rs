//! Admission: the one service that decides whether a call is answered,
//! and within what bounds, in this order:
//!
//! 1. **auth** (`auth`): the token must hold the scope the method's
//!    contract declares (`UNAUTHENTICATED`, `PERMISSION_DENIED`);
//! 2. **in flight** (`limits::InFlight`): past `max_in_flight` calls being
//!    answered, a call is shed at once with `RESOURCE_EXHAUSTED`, not
//!    queued; a stream counts until its response starts;
//! 3. **request body** (`limits::RequestBodies`): a request must arrive
//!    whole within `receive_timeout`, as one message of at most
//!    `max_message_bytes` (reflection's requests, a client stream, are
//!    exempt);
//! 4. **deadline** (`deadline`): the call's `grpc-timeout`, or the unary
//!    default; a unary call past it answers `DEADLINE_EXCEEDED`, a stream
//!    past it ends with `DEADLINE_EXCEEDED` in its trailers.
//!
//! What a call needs (its scope, whether it streams) is read from the
//! method table entry the call layer found (`methods::CallMethod`), never
//! from its name. A refused call is answered without calling the routes.
//! A unary call waits on one timer for both its request's arrival and its
//! deadline: a timer per limit is the timer wheel's work twice whenever
//! the body comes after the headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::auth::Auth;
use super::deadline::{self, DeadlineBody, Timeout};
use super::limits::{self, Arrival, InFlight, InFlightPlace, RequestBodies};
use super::methods::{CallMethod, Method};
use super::security_log::{SecurityEvent, SecurityLog};
use super::stack::Inner;
use crate::api::caller::{Caller, Peer};

/// Everything admission decides with.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) auth: Auth,
    pub(crate) in_flight: InFlight,
    pub(crate) bodies: Arc<RequestBodies>,
    /// The deadline of a unary call that sends no `grpc-timeout`.
    pub(crate) unary_deadline: Duration,
    pub(crate) log: SecurityLog,
}

/// Admission as a layer, shared by every connection.
#[derive(Debug, Clone)]
pub(crate) struct AdmissionLayer(Arc<Admission>);

impl AdmissionLayer {
    pub(crate) fn new(admission: Admission) -> Self {
        AdmissionLayer(Arc::new(admission))
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            inner,
            admission: Arc::clone(&self.0),
        }
    }
}

/// Admission around `S`, the routes.
#[derive(Debug, Clone)]
pub(crate) struct Admit<S> {
    inner: S,
    admission: Arc<Admission>,
}

impl<S: Inner> Service<http::Request<Body>> for Admit<S> {
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Admitted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Admitted<S::Future> {
        let admission = &*self.admission;
        let method: Option<&'static Method> = request.extensions().get::<CallMethod>().map(|m| m.0);
        let peer = request.extensions().get::<Peer>().map(|p| p.addr);

        // 1. Who is calling, and may they?
        let caller = match admission.auth.check(&request, method) {
            Ok(caller) => caller,
            Err(status) => {
                admission.log.event(
                    SecurityEvent::AuthRefused,
                    peer,
                    &format!("{} {}", request.uri().path(), status.message()),
                );
                return Admitted::refused(status);
            }
        };
        if let Some(caller) = &caller {
            request.extensions_mut().insert(Caller(Arc::clone(caller)));
        }

        // 2. A place among the calls in flight.
        let place = match admission.in_flight.take() {
            Ok(place) => place,
            Err(status) => {
                admission
                    .log
                    .event(SecurityEvent::Overloaded, peer, status.message());
                return Admitted::refused(status);
            }
        };

        // 3. The request body, bounded in size and time. One clock read
        // serves its arrival limit and the deadline.
        let now = Instant::now();
        let streaming = method.is_some_and(|m| m.server_streaming);
        let client_streaming = method.is_some_and(|m| m.client_streaming);
        let (request, arrival) = if client_streaming {
            (request, None)
        } else {
            admission.bodies.limit(request, !streaming, peer, now)
        };

        // 4. The deadline.
        let timeout = match deadline::grpc_timeout(request.headers()) {
            Timeout::Given(timeout) if timeout.is_zero() => {
                return Admitted::refused(deadline::exceeded(timeout));
            }
            Timeout::Malformed => return Admitted::refused(deadline::malformed(request.headers())),
            Timeout::Given(timeout) => Some(timeout),
            Timeout::Absent if streaming => None,
            Timeout::Absent => Some(admission.unary_deadline),
        };

        Admitted::Running {
            deadline: timeout.map(|timeout| (timeout, now + timeout)),
            inner: self.inner.call(request),
            timer: None,
            arrival,
            streaming,
            place: Some(place),
            caller,
        }
    }
}

pin_project_lite::pin_project! {
    /// An admitted call's answer, or a refusal made without calling the
    /// routes.
    #[project = AdmittedProj]
    pub(crate) enum Admitted<F> {
        Refused { status: Option<Status> },
        Running {
            #[pin]
            inner: F,
            // The timeout and the instant it passes; none for a stream
            // that sent no grpc-timeout.
            deadline: Option<(Duration, Instant)>,
            // Made on the first wait: most unary answers are ready on
            // their first poll, and a timer never waited on is work for
            // nothing.
            timer: Option<Pin<Box<Sleep>>>,
            // A unary call's request arrival, timed by the same timer.
            arrival: Option<Arc<Arrival>>,
            streaming: bool,
            // Given back when the answer starts.
            place: Option<InFlightPlace>,
            // Named on the answer too, for the call layer's log line.
            caller: Option<Arc<str>>,
        },
    }
}

impl<F> Admitted<F> {
    fn refused(status: Status) -> Self {
        Admitted::Refused {
            status: Some(status),
        }
    }
}

impl<F, E> Future for Admitted<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut inner, deadline, timer, arrival, streaming, place, caller) = match self.project() {
            AdmittedProj::Refused { status } => {
                let status = status
                    .take()
                    .unwrap_or_else(|| Status::internal("a refusal polled twice"));
                return Poll::Ready(Ok(status.into_http()));
            }
            AdmittedProj::Running {
                inner,
                deadline,
                timer,
                arrival,
                streaming,
                place,
                caller,
            } => (inner, deadline, timer, arrival, streaming, place, caller),
        };
        loop {
            if let Poll::Ready(answer) = inner.as_mut().poll(cx) {
                drop(place.take());
                let mut response = match answer {
                    Ok(response) => response,
                    Err(error) => return Poll::Ready(Err(error)),
                };
                limits::too_large_is_resource_exhausted(&mut response);
                if let Some(caller) = caller.take() {
                    response.extensions_mut().insert(Caller(caller));
                }
                // A unary answer is whole once its future resolves; only
                // a stream goes on past it, and needs its body cut off.
                if let (true, Some((timeout, at))) = (*streaming, *deadline) {
                    response = response.map(|body| Body::new(DeadlineBody::new(body, timeout, at)));
                }
                return Poll::Ready(Ok(response));
            }
            let Some((timeout, at)) = *deadline else {
                return Poll::Pending;
            };
            // One timer: first at the arrival limit, if that is sooner.
            let timer = timer.get_or_insert_with(|| {
                let first = arrival.as_ref().map_or(at, |a| a.by.min(at));
                Box::pin(tokio::time::sleep_until(first))
            });
            ready!(timer.as_mut().poll(cx));
            if let Some(arrival) = arrival.as_ref().filter(|a| !a.is_whole()) {
                return Poll::Ready(Ok(arrival.late().into_http()));
            }
            if Instant::now() >= at {
                return Poll::Ready(Ok(deadline::exceeded(timeout).into_http()));
            }
            // The request arrived in time: wait on for the deadline.
            timer.as_mut().reset(at);
        }
    }
}
