//! Floor servers: bare tonic answering what tradewire would, with no store
//! behind them. tradewire's cost per call is quoted as a ratio to theirs:
//! - `floor-unary`, stock tonic: a generated `TradeService` that builds
//!   its answer per call (a clone of a message of tradewire's shape and
//!   size) and has prost encode it, as a plain tonic service does;
//! - `floor-unary --pre-encoded`: Get and List answered with bytes encoded
//!   once at start, no message built or encoded per call: the least a
//!   tonic service can spend on a call;
//! - `floor-fanout`: the broadcast floor of the fan-out mode.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tradewire::bench_hooks::{PreEncoded, PreEncodedCodec};
use tradewire::pb::subscribe_export_reports_response::Event as WireEvent;
use tradewire::pb::trade_service_server::{TradeService, TradeServiceServer};
use tradewire::pb::{self};

use crate::sample;
use crate::servers::{BenchError, announce};

/// A tonic server with tradewire's transport settings (`Config::default`):
/// TCP_NODELAY and TCP keepalive on every connection, HTTP/2 keepalive
/// pings. The floors then differ from tradewire only in the work behind
/// each call, which is what an efficiency ratio compares.
/// (`Server::tcp_nodelay` is ignored with an incoming stream, which once
/// left the floors with Nagle's algorithm on.)
fn floor_server(listener: TcpListener) -> (Server, TcpIncoming) {
    let config = tradewire::Config::default();
    let server = Server::builder()
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout));
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(config.tcp_keepalive);
    (server, incoming)
}

/// TradeService answering prebuilt responses of tradewire's shape.
struct FloorTrade {
    get: pb::GetTradeRecordResponse,
    list: pb::ListTradeRecordsResponse,
    create: pb::CreateTradeRecordResponse,
}

#[tonic::async_trait]
impl TradeService for FloorTrade {
    async fn create_trade_record(
        &self,
        _: Request<pb::CreateTradeRecordRequest>,
    ) -> Result<Response<pb::CreateTradeRecordResponse>, Status> {
        Ok(Response::new(self.create.clone()))
    }

    async fn batch_create_trade_records(
        &self,
        _: Request<pb::BatchCreateTradeRecordsRequest>,
    ) -> Result<Response<pb::BatchCreateTradeRecordsResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn get_trade_record(
        &self,
        _: Request<pb::GetTradeRecordRequest>,
    ) -> Result<Response<pb::GetTradeRecordResponse>, Status> {
        Ok(Response::new(self.get.clone()))
    }

    async fn list_trade_records(
        &self,
        _: Request<pb::ListTradeRecordsRequest>,
    ) -> Result<Response<pb::ListTradeRecordsResponse>, Status> {
        Ok(Response::new(self.list.clone()))
    }

    async fn delete_trade_record(
        &self,
        _: Request<pb::DeleteTradeRecordRequest>,
    ) -> Result<Response<pb::DeleteTradeRecordResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn summarize_trade(
        &self,
        _: Request<pb::SummarizeTradeRequest>,
    ) -> Result<Response<pb::SummarizeTradeResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn update_trade_record(
        &self,
        _: Request<pb::UpdateTradeRecordRequest>,
    ) -> Result<Response<pb::UpdateTradeRecordResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn list_trade_record_revisions(
        &self,
        _: Request<pb::ListTradeRecordRevisionsRequest>,
    ) -> Result<Response<pb::ListTradeRecordRevisionsResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }

    async fn breakdown_trade(
        &self,
        _: Request<pb::BreakdownTradeRequest>,
    ) -> Result<Response<pb::BreakdownTradeResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }
}

pub(crate) async fn serve_unary(listen: SocketAddr, pre_encoded: bool) -> Result<(), BenchError> {
    let listener = TcpListener::bind(listen).await?;
    announce(listener.local_addr()?);
    let record = sample::stored_record(0);
    let service = FloorTrade {
        get: pb::GetTradeRecordResponse {
            trade_record: Some(record.clone()),
        },
        list: pb::ListTradeRecordsResponse {
            trade_records: (0..100).map(sample::stored_record).collect(),
            next_page_token: "MXwwMU04RFFGNzVXWjlKVDMzM1FNU0dQVlNKNnw4M2ZkODgxYTBjY2ZhNDZk".into(),
        },
        create: pb::CreateTradeRecordResponse {
            trade_record: Some(record),
            replayed: false,
        },
    };
    let (mut server, incoming) = floor_server(listener);
    if pre_encoded {
        let service = FloorPreEncoded {
            get: service.get.encode_to_vec().into(),
            list: service.list.encode_to_vec().into(),
        };
        server
            .add_service(service)
            .serve_with_incoming(incoming)
            .await?;
    } else {
        server
            .add_service(TradeServiceServer::new(service))
            .serve_with_incoming(incoming)
            .await?;
    }
    Ok(())
}

/// The pre-encoded floor's TradeService: Get and List only.
#[derive(Clone)]
struct FloorPreEncoded {
    get: Bytes,
    list: Bytes,
}

impl NamedService for FloorPreEncoded {
    const NAME: &'static str = "tradewire.v1.TradeService";
}

/// A unary method that answers its bytes whatever it is asked.
struct Answer<Req, Resp>(Bytes, PhantomData<fn(Req) -> Resp>);

impl<Req: Send + 'static, Resp: Send + 'static> UnaryService<Req> for Answer<Req, Resp> {
    type Response = PreEncoded<Resp>;
    type Future = std::future::Ready<Result<Response<PreEncoded<Resp>>, Status>>;

    fn call(&mut self, _: Request<Req>) -> Self::Future {
        std::future::ready(Ok(Response::new(PreEncoded::Bytes(self.0.clone()))))
    }
}

impl<B> Service<http::Request<B>> for FloorPreEncoded
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let floor = self.clone();
        Box::pin(async move {
            let response = match request.uri().path() {
                "/tradewire.v1.TradeService/GetTradeRecord" => {
                    let answer = Answer::<pb::GetTradeRecordRequest, pb::GetTradeRecordResponse>(
                        floor.get,
                        PhantomData,
                    );
                    tonic::server::Grpc::new(PreEncodedCodec::default())
                        .unary(answer, request)
                        .await
                }
                "/tradewire.v1.TradeService/ListTradeRecords" => {
                    let answer = Answer::<pb::ListTradeRecordsRequest, pb::ListTradeRecordsResponse>(
                        floor.list,
                        PhantomData,
                    );
                    tonic::server::Grpc::new(PreEncodedCodec::default())
                        .unary(answer, request)
                        .await
                }
                _ => Status::unimplemented("floor").into_http(),
            };
            Ok(response)
        })
    }
}

/// The fan-out floor: publish encodes once and broadcasts bytes; no store,
/// no filter, no catch-up.
#[derive(Clone)]
struct FloorFanout {
    frames: broadcast::Sender<Bytes>,
    sequence: Arc<AtomicU64>,
}

impl NamedService for FloorFanout {
    const NAME: &'static str = "tradewire.v1.ExportReportService";
}

struct Publish(FloorFanout);

impl UnaryService<pb::PublishExportReportRequest> for Publish {
    type Response = pb::PublishExportReportResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<pb::PublishExportReportRequest>) -> Self::Future {
        let floor = self.0.clone();
        Box::pin(async move {
            let mut report = request.into_inner().export_report.unwrap_or_default();
            report.sequence = floor.sequence.fetch_add(1, Ordering::Relaxed) + 1;
            report.publish_time = Some(SystemTime::now().into());
            let frame = pb::SubscribeExportReportsResponse {
                event: Some(WireEvent::ExportReport(report.clone())),
            };
            let _ = floor.frames.send(frame.encode_to_vec().into());
            Ok(Response::new(pb::PublishExportReportResponse {
                export_report: Some(report),
                replayed: false,
            }))
        })
    }
}

type FrameStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<PreEncoded<pb::SubscribeExportReportsResponse>, Status>,
            > + Send,
    >,
>;

struct Subscribe(FloorFanout);

impl ServerStreamingService<pb::SubscribeExportReportsRequest> for Subscribe {
    type Response = PreEncoded<pb::SubscribeExportReportsResponse>;
    type ResponseStream = FrameStream;
    type Future = BoxFuture<Response<FrameStream>, Status>;

    fn call(&mut self, _: Request<pb::SubscribeExportReportsRequest>) -> Self::Future {
        let receiver = self.0.frames.subscribe();
        let head = self.0.sequence.load(Ordering::Relaxed);
        Box::pin(async move {
            let caught_up = PreEncoded::Message(pb::SubscribeExportReportsResponse {
                event: Some(WireEvent::CaughtUp(pb::CaughtUp {
                    head_sequence: head,
                })),
            });
            let live = BroadcastStream::new(receiver)
                .filter_map(|f| async move { f.ok().map(|b| Ok(PreEncoded::Bytes(b))) });
            let stream: FrameStream =
                Box::pin(futures_util::stream::once(async { Ok(caught_up) }).chain(live));
            Ok(Response::new(stream))
        })
    }
}

impl<B> Service<http::Request<B>> for FloorFanout
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let floor = self.clone();
        Box::pin(async move {
            let response = match request.uri().path() {
                "/tradewire.v1.ExportReportService/SubscribeExportReports" => {
                    tonic::server::Grpc::new(PreEncodedCodec::default())
                        .server_streaming(Subscribe(floor), request)
                        .await
                }
                "/tradewire.v1.ExportReportService/PublishExportReport" => {
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .unary(Publish(floor), request)
                        .await
                }
                _ => Status::unimplemented("floor").into_http(),
            };
            Ok(response)
        })
    }
}

pub(crate) async fn serve_fanout(listen: SocketAddr) -> Result<(), BenchError> {
    let listener = TcpListener::bind(listen).await?;
    announce(listener.local_addr()?);
    let floor = FloorFanout {
        frames: broadcast::channel(4096).0,
        sequence: Arc::new(AtomicU64::new(0)),
    };
    let (mut server, incoming) = floor_server(listener);
    server
        .add_service(floor)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
