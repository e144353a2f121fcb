//! `tradewire.v1.ExportReportService` with SubscribeExportReports answered
//! from encode-once bytes: a published report is encoded into its stream
//! message on first delivery (`to_proto::encoded_report_event`), and every
//! other subscriber copies those bytes instead of converting and encoding
//! the report again. `ExportReportMethods` answers that one method through
//! `tonic::server::Grpc` with `PreEncodedCodec`; `routes::Routes` hands
//! every other method to the generated server.

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};

use super::compression::{COMPRESSION, accepting_compressed};
use super::delivery_turn::DeliveryTurn;
use super::export_report::ExportReportApi;
use super::pre_encoded::{PreEncoded, PreEncodedCodec};
use super::routes::{Answer, EncodedOnce, Methods, Routes};
use super::to_proto;
use crate::domain::ExportReport;
use crate::hub::SubscriptionEvent;
use crate::pb;
use crate::pb::export_report_service_server::ExportReportServiceServer;
use crate::store::Stored;

type Message = PreEncoded<pb::SubscribeExportReportsResponse>;

/// A subscription event as sent: a report as its shared encoding, the
/// markers as small messages.
fn pre_encoded(event: SubscriptionEvent<Stored<ExportReport>>) -> Message {
    match &event {
        SubscriptionEvent::Item(report) => {
            PreEncoded::Bytes(to_proto::encoded_report_event(report))
        }
        SubscriptionEvent::CaughtUp(_) | SubscriptionEvent::Heartbeat(_) => {
            PreEncoded::Message(to_proto::report_event(&event))
        }
    }
}

type MessageStream = std::pin::Pin<Box<dyn Stream<Item = Result<Message, Status>> + Send>>;

struct SubscribePreEncoded(Arc<ExportReportApi>);

impl ServerStreamingService<pb::SubscribeExportReportsRequest> for SubscribePreEncoded {
    type Response = Message;
    type ResponseStream = MessageStream;
    type Future = BoxFuture<Response<MessageStream>, Status>;

    fn call(&mut self, request: Request<pb::SubscribeExportReportsRequest>) -> Self::Future {
        let api = Arc::clone(&self.0);
        Box::pin(async move {
            let events = api.events(&request)?;
            let messages: MessageStream = Box::pin(DeliveryTurn::new(
                events.map(|event| Ok(pre_encoded(event?))),
            ));
            Ok(Response::new(messages))
        })
    }
}

/// SubscribeExportReports, answered with encode-once messages.
#[derive(Debug, Clone)]
pub(crate) struct ExportReportMethods(Arc<ExportReportApi>);

impl Methods for ExportReportMethods {
    fn answer<B>(&self, method: EncodedOnce, request: http::Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        if method != EncodedOnce::SubscribeExportReports {
            return Box::pin(async move {
                Ok(Status::internal("not an ExportReportService method").into_http())
            });
        }
        let method = SubscribePreEncoded(Arc::clone(&self.0));
        Box::pin(async move {
            // Always plain: see `compression`.
            let mut grpc = accepting_compressed(PreEncodedCodec::default());
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

/// `tradewire.v1.ExportReportService` with encode-once subscriptions.
pub(crate) type ExportReportRoutes =
    Routes<ExportReportMethods, ExportReportServiceServer<ExportReportApi>>;

pub(crate) fn export_report_routes(api: ExportReportApi) -> ExportReportRoutes {
    Routes::new(
        ExportReportMethods(Arc::new(api.clone())),
        COMPRESSION
            .iter()
            .fold(ExportReportServiceServer::new(api), |server, &encoding| {
                server.accept_compressed(encoding).send_compressed(encoding)
            }),
    )
}
