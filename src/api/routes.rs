//! A generated tonic service with some of its methods answered by hand.
//!
//! tonic's generated servers take and return generated messages only; the
//! methods that answer from pre-encoded bytes (`pre_encoded::PreEncoded`)
//! are served through `tonic::server::Grpc` with `PreEncodedCodec`
//! instead. Which methods those are is declared once, in [`EncodedOnce`];
//! the server's method table checks each against the contract at start
//! and marks its entry, and the call layer puts the mark into the request
//! (an `EncodedOnce` extension). `Routes` reads the mark: a marked call goes
//! to `Methods`, every other to the generated server. No path is compared.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body as TonicBody;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::NamedService;

use super::export_report::ExportReportApi;
use super::trade::TradeApi;
use crate::pb::export_report_service_server::ExportReportServiceServer;
use crate::pb::trade_service_server::TradeServiceServer;

/// An answer to one HTTP/2 request.
pub(crate) type Answer = BoxFuture<http::Response<TonicBody>, Infallible>;

/// The methods answered from encoded bytes, by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncodedOnce {
    GetTradeRecord,
    ListTradeRecords,
    SubscribeExportReports,
}

impl EncodedOnce {
    /// Every one of them.
    pub(crate) const ALL: [EncodedOnce; 3] = [
        EncodedOnce::GetTradeRecord,
        EncodedOnce::ListTradeRecords,
        EncodedOnce::SubscribeExportReports,
    ];

    /// Its service's full name and its name, as the contract has them.
    pub(crate) fn method(self) -> (&'static str, &'static str) {
        const TRADE: &str = <TradeServiceServer<TradeApi> as NamedService>::NAME;
        const EXPORT_REPORT: &str =
            <ExportReportServiceServer<ExportReportApi> as NamedService>::NAME;
        match self {
            EncodedOnce::GetTradeRecord => (TRADE, "GetTradeRecord"),
            EncodedOnce::ListTradeRecords => (TRADE, "ListTradeRecords"),
            EncodedOnce::SubscribeExportReports => (EXPORT_REPORT, "SubscribeExportReports"),
        }
    }
}

/// The methods a service answers itself.
pub(crate) trait Methods: Clone + Send + 'static {
    /// Answers a request for one of them, `method`.
    fn answer<B>(&self, method: EncodedOnce, request: http::Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static;
}

/// The generated server `G` with the methods of `M` answered by `M`.
#[derive(Debug, Clone)]
pub(crate) struct Routes<M, G> {
    methods: M,
    generated: G,
}

impl<M, G> Routes<M, G> {
    pub(crate) fn new(methods: M, generated: G) -> Self {
        Routes { methods, generated }
    }
}

impl<M, G: NamedService> NamedService for Routes<M, G> {
    const NAME: &'static str = G::NAME;
}

impl<M, G, B> Service<http::Request<B>> for Routes<M, G>
where
    M: Methods,
    G: Service<
            http::Request<B>,
            Response = http::Response<TonicBody>,
            Error = Infallible,
            Future = Answer,
        >,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Answer {
        match request.extensions().get::<EncodedOnce>().copied() {
            Some(method) => self.methods.answer(method, request),
            None => self.generated.call(request),
        }
    }
}
