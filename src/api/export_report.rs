//! `tradewire.v1.ExportReportService`: thin handlers over the store and hub.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{caller, compression, from_proto, to_proto};
use crate::domain::ExportReport;
use crate::hub::{Hub, SubscriptionEvent};
use crate::pb::{self, export_report_service_server::ExportReportService};
use crate::store::{Store, Stored};

/// The handlers of `ExportReportService`.
#[derive(Debug, Clone)]
pub(crate) struct ExportReportApi {
    store: Store,
    hub: Hub,
}

impl ExportReportApi {
    pub(crate) fn new(store: Store, hub: Hub) -> Self {
        ExportReportApi { store, hub }
    }

    /// Validates a subscription request and opens it on the hub; both the
    /// generated path and the encode-once route take their events here.
    pub(crate) fn events(
        &self,
        request: &Request<pb::SubscribeExportReportsRequest>,
    ) -> Result<
        impl Stream<Item = crate::error::Result<SubscriptionEvent<Stored<ExportReport>>>>
        + Send
        + 'static,
        Status,
    > {
        let subscription = from_proto::subscription(request.get_ref(), from_proto::trade_filter)?;
        let filter = subscription.filter;
        Ok(self.hub.subscribe(
            self.store.report_feed(),
            subscription.start,
            (move |r| filter.matches(r), caller::owner(request)),
            subscription.heartbeat,
        )?)
    }
}

type SubscribeStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeExportReportsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExportReportService for ExportReportApi {
    async fn publish_export_report(
        &self,
        request: Request<pb::PublishExportReportRequest>,
    ) -> Result<Response<pb::PublishExportReportResponse>, Status> {
        let accepted = compression::accepted(&request);
        let caller = caller::name(&request);
        let write = from_proto::publish_export_report(request.into_inner())?;
        let published = self
            .store
            .publish_export_report(write.value, write.request)
            .await?;
        caller::log_write(
            &caller,
            "PublishExportReport",
            &published.value.id,
            published.repeated,
        );
        Ok(compression::answer(
            accepted,
            pb::PublishExportReportResponse {
                export_report: Some(to_proto::export_report(&published.value)),
                replayed: published.repeated,
            },
        ))
    }

    async fn get_export_report(
        &self,
        request: Request<pb::GetExportReportRequest>,
    ) -> Result<Response<pb::GetExportReportResponse>, Status> {
        let accepted = compression::accepted(&request);
        let report = self
            .store
            .get_export_report(from_proto::id_of(request.get_ref())?)?;
        Ok(compression::answer(
            accepted,
            pb::GetExportReportResponse {
                export_report: Some(to_proto::export_report(&report)),
            },
        ))
    }

    async fn list_export_reports(
        &self,
        request: Request<pb::ListExportReportsRequest>,
    ) -> Result<Response<pb::ListExportReportsResponse>, Status> {
        let accepted = compression::accepted(&request);
        let query = from_proto::list(request.into_inner(), from_proto::trade_filter)?;
        let page = self
            .store
            .list_export_reports(&query.filter, query.after, query.limit);
        Ok(compression::answer(
            accepted,
            pb::ListExportReportsResponse {
                export_reports: page
                    .items
                    .iter()
                    .map(|r| to_proto::export_report(r))
                    .collect(),
                next_page_token: query.cursor.next_token(page.next),
            },
        ))
    }

    type SubscribeExportReportsStream = SubscribeStream;

    /// The message path of the contract, for callers of the generated
    /// server; `export_report_routes` serves this method from encode-once
    /// bytes instead.
    async fn subscribe_export_reports(
        &self,
        request: Request<pb::SubscribeExportReportsRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        let events = self.events(&request)?;
        let responses = events.map(|event| Ok(to_proto::report_event(&event?)));
        Ok(Response::new(Box::pin(responses)))
    }
}
