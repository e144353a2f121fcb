//! Spans for trace export (`Config::trace_calls`, `--otlp-endpoint`): one
//! INFO span per call, named by its method, whose parent is the caller's
//! W3C `traceparent` (and `tracestate`), so that a call to tradewire joins
//! the caller's trace. Exporting the spans is the subscriber's work (the
//! binary installs an OTLP exporter); without one they cost a span each.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::codegen::http;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of one call.
pub(super) fn call_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.call",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // A span that is not recorded (filtered out) has no context to set.
    let _ = span.set_parent(parent);
    span
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
