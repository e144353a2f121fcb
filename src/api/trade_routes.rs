//! `tradewire.v1.TradeService` with GetTradeRecord and ListTradeRecords
//! answered from each record's cached encoding: a stored record never
//! changes, so it is encoded once and its bytes are copied into every
//! answer that carries it. tonic's generated server takes only generated
//! messages, so `TradeRoutes` answers those two methods itself through
//! `tonic::server::Grpc` with `FrameCodec`, and hands every other method
//! to the generated server.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::frames::{Frame, FrameCodec};
use super::trade::TradeApi;
use crate::pb;
use crate::pb::trade_service_server::TradeServiceServer;

const GET_PATH: &str = "/tradewire.v1.TradeService/GetTradeRecord";
const LIST_PATH: &str = "/tradewire.v1.TradeService/ListTradeRecords";

type Answer<M> = Ready<Result<Response<Frame<M>>, Status>>;

struct GetEncoded(Arc<TradeApi>);

impl UnaryService<pb::GetTradeRecordRequest> for GetEncoded {
    type Response = Frame<pb::GetTradeRecordResponse>;
    type Future = Answer<pb::GetTradeRecordResponse>;

    fn call(&mut self, request: Request<pb::GetTradeRecordRequest>) -> Self::Future {
        ready(self.0.get_encoded(request.get_ref()).map(Response::new))
    }
}

struct ListEncoded(Arc<TradeApi>);

impl UnaryService<pb::ListTradeRecordsRequest> for ListEncoded {
    type Response = Frame<pb::ListTradeRecordsResponse>;
    type Future = Answer<pb::ListTradeRecordsResponse>;

    fn call(&mut self, request: Request<pb::ListTradeRecordsRequest>) -> Self::Future {
        ready(self.0.list_encoded(request.into_inner()).map(Response::new))
    }
}

/// `tradewire.v1.TradeService` with Get and List from cached encodings.
#[derive(Debug, Clone)]
pub struct TradeRoutes {
    api: Arc<TradeApi>,
    generated: TradeServiceServer<TradeApi>,
}

impl TradeRoutes {
    pub fn new(api: TradeApi) -> Self {
        TradeRoutes {
            generated: TradeServiceServer::new(api.clone()),
            api: Arc::new(api),
        }
    }
}

impl NamedService for TradeRoutes {
    const NAME: &'static str = "tradewire.v1.TradeService";
}

impl<B> Service<http::Request<B>> for TradeRoutes
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
        let api = Arc::clone(&self.api);
        match request.uri().path() {
            GET_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(FrameCodec::default());
                Ok(grpc.unary(GetEncoded(api), request).await)
            }),
            LIST_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(FrameCodec::default());
                Ok(grpc.unary(ListEncoded(api), request).await)
            }),
            _ => Box::pin(self.generated.call(request)),
        }
    }
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
            .get_service_by_name(<TradeServiceServer<TradeApi> as NamedService>::NAME)
            .unwrap();
        assert_eq!(TradeRoutes::NAME, service.full_name());
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
