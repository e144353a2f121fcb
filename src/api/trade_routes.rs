//! `tradewire.v1.TradeService` with GetTradeRecord and ListTradeRecords
//! answered from each record's cached encoding: a stored record never
//! changes, so it is encoded once and its bytes are copied into every
//! answer that carries it. `TradeMethods` answers those two methods
//! through `tonic::server::Grpc` with `FrameCodec`; `routes::Routes` hands
//! every other method to the generated server.

use std::future::{Ready, ready};
use std::sync::Arc;

use tonic::codegen::{Body, StdError, http};
use tonic::server::{Grpc, UnaryService};
use tonic::{Request, Response, Status};

use super::frames::{Frame, FrameCodec};
use super::routes::{Answer, Methods, Routes};
use super::trade::TradeApi;
use crate::pb;
use crate::pb::trade_service_server::TradeServiceServer;

const GET_PATH: &str = "/tradewire.v1.TradeService/GetTradeRecord";
const LIST_PATH: &str = "/tradewire.v1.TradeService/ListTradeRecords";

/// A unary answer that is ready at once: the lookup is synchronous.
type ReadyFrame<M> = Ready<Result<Response<Frame<M>>, Status>>;

struct GetEncoded(Arc<TradeApi>);

impl UnaryService<pb::GetTradeRecordRequest> for GetEncoded {
    type Response = Frame<pb::GetTradeRecordResponse>;
    type Future = ReadyFrame<pb::GetTradeRecordResponse>;

    fn call(&mut self, request: Request<pb::GetTradeRecordRequest>) -> Self::Future {
        ready(self.0.get_encoded(request.get_ref()).map(Response::new))
    }
}

struct ListEncoded(Arc<TradeApi>);

impl UnaryService<pb::ListTradeRecordsRequest> for ListEncoded {
    type Response = Frame<pb::ListTradeRecordsResponse>;
    type Future = ReadyFrame<pb::ListTradeRecordsResponse>;

    fn call(&mut self, request: Request<pb::ListTradeRecordsRequest>) -> Self::Future {
        ready(self.0.list_encoded(request.into_inner()).map(Response::new))
    }
}

/// GetTradeRecord and ListTradeRecords, answered from cached encodings.
#[derive(Debug, Clone)]
pub struct TradeMethods(Arc<TradeApi>);

impl Methods for TradeMethods {
    fn serves(&self, path: &str) -> bool {
        path == GET_PATH || path == LIST_PATH
    }

    fn answer<B>(&self, request: http::Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let api = Arc::clone(&self.0);
        if request.uri().path() == GET_PATH {
            let mut grpc = Grpc::new(FrameCodec::default());
            Box::pin(async move { Ok(grpc.unary(GetEncoded(api), request).await) })
        } else {
            let mut grpc = Grpc::new(FrameCodec::default());
            Box::pin(async move { Ok(grpc.unary(ListEncoded(api), request).await) })
        }
    }
}

/// `tradewire.v1.TradeService` with Get and List from cached encodings.
pub type TradeRoutes = Routes<TradeMethods, TradeServiceServer<TradeApi>>;

pub fn trade_routes(api: TradeApi) -> TradeRoutes {
    Routes::new(
        TradeMethods(Arc::new(api.clone())),
        TradeServiceServer::new(api),
    )
}

#[cfg(test)]
mod tests {
    use prost_reflect::DescriptorPool;

    use super::*;

    /// The hand-typed paths must name real methods of the generated
    /// service, or a rename would silently send them to the slow path.
    #[test]
    fn routed_paths_are_methods_of_the_generated_service() {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let service = pool
            .get_service_by_name(
                <TradeServiceServer<TradeApi> as tonic::server::NamedService>::NAME,
            )
            .unwrap();
        assert_eq!(
            <TradeRoutes as tonic::server::NamedService>::NAME,
            service.full_name()
        );
        for path in [GET_PATH, LIST_PATH] {
            let (service_name, method) = path[1..].split_once('/').unwrap();
            assert_eq!(service_name, service.full_name());
            assert!(
                service.methods().any(|m| m.name() == method),
                "{path} is not a method of {}",
                service.full_name()
            );
        }
    }
}
