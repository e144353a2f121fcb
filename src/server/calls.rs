//! Every call observed once, as a tower layer (outside every layer that
//! can refuse, so that refused calls are seen too):
//!
//! - one log line when the call ends, at INFO under the target
//!   `tradewire::calls`: method, gRPC code, latency, peer, caller and, for
//!   streams, how many messages were sent;
//! - the grpc-ecosystem metrics that dashboards know:
//!   `grpc_server_started_total`, `grpc_server_handled_total` (with
//!   `grpc_code`), `grpc_server_handling_seconds`,
//!   `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`,
//!   labelled `grpc_type`, `grpc_service`, `grpc_method`.
//!
//! A stream's status arrives in its trailers, so the layer wraps the
//! response body: it counts the gRPC messages in the data frames, reads the
//! status from the trailers (or from the headers of a trailers-only
//! answer), and ends the call when the body ends or is dropped (a client
//! that goes away is `CANCELLED`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};
use tower::{Layer, Service};

use super::methods::{CallMethod, Method, lookup};
use super::stack::{GRPC_STATUS, Inner};
use crate::api::caller::{Caller, Peer};

/// The call layer; `metrics` turns the metrics on (the log line is always
/// there).
#[derive(Debug, Clone)]
pub(crate) struct CallLayer {
    metrics: bool,
}

impl CallLayer {
    pub(crate) fn new(metrics: bool) -> Self {
        CallLayer { metrics }
    }
}

impl<S> Layer<S> for CallLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Calls<S> {
        Calls {
            inner,
            metrics: self.metrics,
        }
    }
}

/// The call layer's service around `S`.
#[derive(Debug, Clone)]
pub(crate) struct Calls<S> {
    inner: S,
    metrics: bool,
}

/// The method a call named: one of ours, or any other path (answered
/// `UNIMPLEMENTED`), kept as it came.
enum Called {
    Known(&'static Method),
    Other(Box<str>),
}

/// What is known of a call while it runs.
struct Call {
    called: Called,
    streaming: bool,
    started: Instant,
    peer: Option<std::net::SocketAddr>,
    metrics: bool,
}

impl Call {
    fn path(&self) -> &str {
        match &self.called {
            Called::Known(method) => &method.path,
            Called::Other(path) => path,
        }
    }

    /// grpc_type, grpc_service and grpc_method.
    fn labels(&self) -> [(&'static str, String); 3] {
        let (grpc_type, service, method) = match &self.called {
            Called::Known(m) => return m.labels(),
            Called::Other(path) => {
                let (service, method) = path
                    .trim_start_matches('/')
                    .split_once('/')
                    .unwrap_or((path, ""));
                let grpc_type = if self.streaming {
                    "server_stream"
                } else {
                    "unary"
                };
                (grpc_type, service, method)
            }
        };
        [
            ("grpc_type", grpc_type.to_owned()),
            ("grpc_service", service.to_owned()),
            ("grpc_method", method.to_owned()),
        ]
    }

    fn start(&self) {
        if !self.metrics {
            return;
        }
        let labels = self.labels();
        metrics::counter!("grpc_server_started_total", &labels).increment(1);
        metrics::counter!("grpc_server_msg_received_total", &labels).increment(1);
    }

    fn end(self, code: Code, sent: u64, caller: Option<&str>) {
        let latency = self.started.elapsed();
        tracing::info!(
            target: "tradewire::calls",
            method = self.path(),
            code = ?code,
            latency_ms = latency.as_secs_f64() * 1e3,
            peer = %PeerAddr(self.peer),
            caller = caller.unwrap_or("anonymous"),
            sent,
            "call"
        );
        if !self.metrics {
            return;
        }
        let labels = self.labels();
        metrics::counter!("grpc_server_msg_sent_total", &labels).increment(sent);
        metrics::histogram!("grpc_server_handling_seconds", &labels).record(latency.as_secs_f64());
        let [a, b, c] = labels;
        let with_code = [a, b, c, ("grpc_code", format!("{code:?}"))];
        metrics::counter!("grpc_server_handled_total", &with_code).increment(1);
    }
}

/// A call's peer address in its log line, `-` when it has none (a Unix
/// socket, an in-process test); written where it is logged, with no
/// string made per call.
struct PeerAddr(Option<std::net::SocketAddr>);

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl Call {
    /// Ends a unary call, or hands a stream's call to its response body,
    /// once the answer is ready.
    fn answered(self, response: &mut http::Response<Body>) {
        let in_headers = status_code(response.headers());
        // Admission, inside this layer, names the caller on the answer.
        let caller = response
            .extensions()
            .get::<Caller>()
            .map(|c| Arc::clone(&c.0));
        if !self.streaming {
            // A unary answer is whole now: an error in its headers
            // (trailers-only), or one message and an OK in its trailers.
            let (code, sent) = match in_headers {
                Some(code) => (code, 0),
                None => (Code::Ok, 1),
            };
            self.end(code, sent, caller.as_deref());
            return;
        }
        let body = std::mem::take(response.body_mut());
        *response.body_mut() = Body::new(ObservedBody {
            inner: body,
            call: Some(self),
            caller,
            status: in_headers,
            messages: MessageCounter::default(),
        });
    }
}

impl<S: Inner> Service<http::Request<Body>> for Calls<S> {
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Observed<S::Future> {
        let path = request.uri().path();
        let method = lookup(path);
        let call = Call {
            streaming: method.is_some_and(|m| m.server_streaming),
            called: method.map_or_else(|| Called::Other(path.into()), Called::Known),
            started: Instant::now(),
            peer: request.extensions().get::<Peer>().map(|p| p.addr),
            metrics: self.metrics,
        };
        call.start();
        if let Some(method) = method {
            request.extensions_mut().insert(CallMethod(method));
            if let Some(route) = method.encoded_once {
                request.extensions_mut().insert(route);
            }
        }
        Observed {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's answer, observed when it is ready.
    pub(crate) struct Observed<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, E> Future for Observed<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(call)) = (&mut answer, this.call.take()) {
            call.answered(response);
        }
        Poll::Ready(answer)
    }
}

fn status_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// Counts the gRPC messages in a body's data: each is a 5-byte prefix
/// (flag, big-endian length) and its bytes, split across frames anyhow.
#[derive(Debug, Default)]
struct MessageCounter {
    prefix: [u8; 5],
    have: usize,
    skip: u64,
    count: u64,
}

impl MessageCounter {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let take = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 5 {
                self.count += 1;
                let [_, a, b, c, d] = self.prefix;
                self.skip = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.have = 0;
            }
        }
    }
}

/// A response body that ends its call when it ends, or is dropped.
struct ObservedBody {
    inner: Body,
    call: Option<Call>,
    caller: Option<Arc<str>>,
    status: Option<Code>,
    messages: MessageCounter,
}

impl ObservedBody {
    fn end(&mut self, code: Code) {
        if let Some(call) = self.call.take() {
            call.end(code, self.messages.count, self.caller.as_deref());
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.messages.feed(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = status_code(trailers).unwrap_or(Code::Unknown);
                    self.end(code);
                }
            }
            Some(Err(status)) => {
                let code = status.code();
                self.end(code);
            }
            None => {
                let code = self.status.unwrap_or(Code::Ok);
                self.end(code);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // A trailers-only answer is never polled; a stream whose client
        // went away is dropped before its trailers.
        let code = match (self.status, http_body::Body::is_end_stream(&self.inner)) {
            (Some(code), true) => code,
            _ => Code::Cancelled,
        };
        self.end(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn messages_are_counted_however_the_frames_split_them() {
        let stream: Vec<u8> = [framed(3), framed(0), framed(300), framed(1)].concat();
        for chunk in [1, 2, 4, 5, 6, 64, stream.len()] {
            let mut counter = MessageCounter::default();
            for piece in stream.chunks(chunk) {
                counter.feed(piece);
            }
            assert_eq!(counter.count, 4, "in chunks of {chunk}");
        }
    }
}
