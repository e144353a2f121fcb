//! `tradewire.v1.TradeService` with GetTradeRecord and ListTradeRecords
//! answered from each record's cached encoding: a stored record never
//! changes, so it is encoded once and its bytes are copied into every
//! answer that carries it. `TradeMethods` answers those two methods
//! through `tonic::server::Grpc` with `PreEncodedCodec`; `routes::Routes` hands
//! every other method to the generated server.

use std::future::{Ready, ready};
use std::sync::Arc;

use tonic::codegen::{Body, StdError, http};
use tonic::server::UnaryService;
use tonic::{Request, Response, Status};

use super::compression::{self, COMPRESSION, compressing};
use super::pre_encoded::{PreEncoded, PreEncodedCodec};
use super::routes::{Answer, EncodedOnce, Methods, Routes};
use super::trade::TradeApi;
use crate::pb;
use crate::pb::trade_service_server::TradeServiceServer;

/// A unary answer that is ready at once: the lookup is synchronous.
type ReadyPreEncoded<M> = Ready<Result<Response<PreEncoded<M>>, Status>>;

struct GetEncoded(Arc<TradeApi>);

impl UnaryService<pb::GetTradeRecordRequest> for GetEncoded {
    type Response = PreEncoded<pb::GetTradeRecordResponse>;
    type Future = ReadyPreEncoded<pb::GetTradeRecordResponse>;

    fn call(&mut self, request: Request<pb::GetTradeRecordRequest>) -> Self::Future {
        let accepted = compression::accepted(&request);
        ready(
            self.0
                .get_encoded(request.get_ref())
                .map(|answer| compression::answer(accepted, answer)),
        )
    }
}

struct ListEncoded(Arc<TradeApi>);

impl UnaryService<pb::ListTradeRecordsRequest> for ListEncoded {
    type Response = PreEncoded<pb::ListTradeRecordsResponse>;
    type Future = ReadyPreEncoded<pb::ListTradeRecordsResponse>;

    fn call(&mut self, request: Request<pb::ListTradeRecordsRequest>) -> Self::Future {
        let accepted = compression::accepted(&request);
        ready(
            self.0
                .list_encoded(request.into_inner())
                .map(|answer| compression::answer(accepted, answer)),
        )
    }
}

/// GetTradeRecord and ListTradeRecords, answered from cached encodings.
#[derive(Debug, Clone)]
pub(crate) struct TradeMethods(Arc<TradeApi>);

impl Methods for TradeMethods {
    fn answer<B>(&self, method: EncodedOnce, request: http::Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let api = Arc::clone(&self.0);
        match method {
            EncodedOnce::GetTradeRecord => {
                let mut grpc = compressing(PreEncodedCodec::default());
                Box::pin(async move { Ok(grpc.unary(GetEncoded(api), request).await) })
            }
            EncodedOnce::ListTradeRecords => {
                let mut grpc = compressing(PreEncodedCodec::default());
                Box::pin(async move { Ok(grpc.unary(ListEncoded(api), request).await) })
            }
            EncodedOnce::SubscribeExportReports => {
                Box::pin(
                    async move { Ok(Status::internal("not a TradeService method").into_http()) },
                )
            }
        }
    }
}

/// `tradewire.v1.TradeService` with Get and List from cached encodings.
pub(crate) type TradeRoutes = Routes<TradeMethods, TradeServiceServer<TradeApi>>;

pub(crate) fn trade_routes(api: TradeApi) -> TradeRoutes {
    Routes::new(
        TradeMethods(Arc::new(api.clone())),
        COMPRESSION
            .iter()
            .fold(TradeServiceServer::new(api), |server, &encoding| {
                server.accept_compressed(encoding).send_compressed(encoding)
            }),
    )
}
