//! Encode-once delivery for `SubscribeExportReports`.
//!
//! A published report is encoded into its `SubscribeExportReportsResponse`
//! frame once, on first delivery, and the bytes are cached on the report;
//! every other subscriber copies those bytes into its HTTP/2 stream instead
//! of converting and encoding the report again. `ExportReportMethods`
//! answers that one method through `tonic::server::Grpc` with
//! `FrameCodec`; `routes::Routes` hands every other method to the
//! generated server. `Frame` and `FrameCodec` also carry the Get and List
//! answers written from cached record encodings (`trade_routes`).

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};

use super::export_report::ExportReportApi;
use super::routes::{Answer, Methods, Routes};
use super::to_proto;
use crate::domain::ExportReport;
use crate::hub::Event;
use crate::pb;
use crate::pb::export_report_service_server::ExportReportServiceServer;
use crate::pb::subscribe_export_reports_response::Event as WireEvent;

const SUBSCRIBE_PATH: &str = "/tradewire.v1.ExportReportService/SubscribeExportReports";

/// A response to send: a message to encode, the bytes of one, or a
/// message written as its length-delimited fields, each already encoded
/// (a Get or List answer around cached record encodings).
#[derive(Debug)]
pub enum Frame<M> {
    Message(M),
    Encoded(Bytes),
    Fields(Vec<EncodedField>),
}

/// A length-delimited field (a message, string or bytes) whose value is
/// already encoded.
#[derive(Debug, Clone)]
pub struct EncodedField {
    pub number: u32,
    pub value: Bytes,
}

impl<M: Message> Frame<M> {
    /// Writes the response's encoding into `dst`.
    pub fn write(&self, dst: &mut impl BufMut) -> Result<(), Status> {
        match self {
            Frame::Message(message) => message
                .encode(dst)
                .map_err(|e| Status::internal(format!("encoding a response: {e}"))),
            Frame::Encoded(bytes) => {
                dst.put_slice(bytes);
                Ok(())
            }
            Frame::Fields(fields) => {
                for field in fields {
                    prost::encoding::encode_key(
                        field.number,
                        prost::encoding::WireType::LengthDelimited,
                        dst,
                    );
                    prost::encoding::encode_varint(field.value.len() as u64, dst);
                    dst.put_slice(&field.value);
                }
                Ok(())
            }
        }
    }

    /// The encoded length of the whole response.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Message(message) => message.encoded_len(),
            Frame::Encoded(bytes) => bytes.len(),
            Frame::Fields(fields) => fields
                .iter()
                .map(|f| {
                    prost::encoding::key_len(f.number)
                        + prost::encoding::encoded_len_varint(f.value.len() as u64)
                        + f.value.len()
                })
                .sum(),
        }
    }
}

/// A subscription event as a message, encoded by whoever sends it.
pub fn report_event(event: &Event<ExportReport>) -> pb::SubscribeExportReportsResponse {
    let event = match event {
        Event::Item(report) => WireEvent::ExportReport(to_proto::export_report(report)),
        Event::CaughtUp(head) => WireEvent::CaughtUp(pb::CaughtUp {
            head_sequence: *head,
        }),
        Event::Heartbeat(head) => WireEvent::Heartbeat(pb::Heartbeat {
            head_sequence: *head,
        }),
    };
    pb::SubscribeExportReportsResponse { event: Some(event) }
}

/// The frames of a subscription: a report's encoding is made on its first
/// delivery, cached on the report and shared; markers and heartbeats are
/// small messages.
pub fn frame(event: Event<ExportReport>) -> Frame<pb::SubscribeExportReportsResponse> {
    match &event {
        Event::Item(report) => Frame::Encoded(
            report
                .encoded
                .get_or_init(|| report_event(&event).encode_to_vec().into())
                .clone(),
        ),
        Event::CaughtUp(_) | Event::Heartbeat(_) => Frame::Message(report_event(&event)),
    }
}

/// Decodes requests with prost; encodes `Frame`s, copying cached bytes.
#[derive(Debug)]
pub struct FrameCodec<Req, Resp>(PhantomData<(Req, Resp)>);

impl<Req, Resp> Default for FrameCodec<Req, Resp> {
    fn default() -> Self {
        FrameCodec(PhantomData)
    }
}

#[derive(Debug)]
pub struct FrameEncoder<M>(PhantomData<M>);

impl<M: Message> Encoder for FrameEncoder<M> {
    type Item = Frame<M>;
    type Error = Status;

    fn encode(&mut self, item: Frame<M>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write(dst)
    }
}

#[derive(Debug)]
pub struct FrameDecoder<M>(PhantomData<M>);

impl<M: Message + Default> Decoder for FrameDecoder<M> {
    type Item = M;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<M>, Status> {
        M::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
    }
}

impl<Req, Resp> Codec for FrameCodec<Req, Resp>
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Send + 'static,
{
    type Encode = Frame<Resp>;
    type Decode = Req;
    type Encoder = FrameEncoder<Resp>;
    type Decoder = FrameDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        FrameEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        FrameDecoder(PhantomData)
    }
}

type FrameStream = std::pin::Pin<
    Box<dyn Stream<Item = Result<Frame<pb::SubscribeExportReportsResponse>, Status>> + Send>,
>;

struct SubscribeFrames(Arc<ExportReportApi>);

impl ServerStreamingService<pb::SubscribeExportReportsRequest> for SubscribeFrames {
    type Response = Frame<pb::SubscribeExportReportsResponse>;
    type ResponseStream = FrameStream;
    type Future = BoxFuture<Response<FrameStream>, Status>;

    fn call(&mut self, request: Request<pb::SubscribeExportReportsRequest>) -> Self::Future {
        let api = Arc::clone(&self.0);
        Box::pin(async move {
            let events = api.events(request.into_inner())?;
            let frames: FrameStream = Box::pin(events.map(|event| Ok(frame(event?))));
            Ok(Response::new(frames))
        })
    }
}

/// SubscribeExportReports, answered with encode-once frames.
#[derive(Debug, Clone)]
pub struct ExportReportMethods(Arc<ExportReportApi>);

impl Methods for ExportReportMethods {
    fn serves(&self, path: &str) -> bool {
        path == SUBSCRIBE_PATH
    }

    fn answer<B>(&self, request: http::Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let method = SubscribeFrames(Arc::clone(&self.0));
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(FrameCodec::default());
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

/// `tradewire.v1.ExportReportService` with encode-once subscriptions.
pub type ExportReportRoutes =
    Routes<ExportReportMethods, ExportReportServiceServer<ExportReportApi>>;

pub fn export_report_routes(api: ExportReportApi) -> ExportReportRoutes {
    Routes::new(
        ExportReportMethods(Arc::new(api.clone())),
        ExportReportServiceServer::new(api),
    )
}
