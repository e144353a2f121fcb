//! `--otlp-endpoint`: the binary exports a span per call to an OTLP
//! collector (here an in-process one, on the collector's own generated
//! service), and each span joins the caller's trace through its W3C
//! `traceparent`.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::common::binary::ServerProcess;

struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let _ = self.0.send(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn each_call_is_a_span_in_the_callers_trace() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let (spans_tx, mut exports) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(spans_tx)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let endpoint = format!("http://{collector_addr}");
    let server = ServerProcess::start(&[
        std::ffi::OsStr::new("--in-memory"),
        std::ffi::OsStr::new("--otlp-endpoint"),
        std::ffi::OsStr::new(&endpoint),
    ]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut client = TradeServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let mut request = Request::new(pb::ListTradeRecordsRequest::default());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    client.list_trade_records(request).await.unwrap();

    // SIGTERM: the binary flushes its batched spans as it stops.
    server.signal("TERM");
    let span = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let export = exports.recv().await.expect("collector running");
            let found = export
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
                .find(|s| s.name == "/tradewire.v1.TradeService/ListTradeRecords");
            if let Some(span) = found {
                return span;
            }
        }
    })
    .await
    .expect("the call's span reaches the collector");
    assert_eq!(hex(&span.trace_id), trace_id, "the caller's trace");
    assert_eq!(
        hex(&span.parent_span_id),
        parent_id,
        "the caller's span is its parent"
    );
    // SPAN_KIND_SERVER
    assert_eq!(span.kind, 2);
}
