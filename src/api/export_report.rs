//! `tradewire.v1.ExportReportService`: thin handlers over the store and hub.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::from_proto::{self as from, Check};
use super::{frames, page_token, request_key, to_proto};
use crate::domain::ExportReport;
use crate::hub::{Event, Hub};
use crate::pb::subscribe_export_reports_request::Start;
use crate::pb::{self, export_report_service_server::ExportReportService};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ExportReportApi {
    store: Store,
    hub: Hub,
}

impl ExportReportApi {
    pub fn new(store: Store, hub: Hub) -> Self {
        ExportReportApi { store, hub }
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
        let mut req = request.into_inner();
        let mut check = Check::default();
        let key = request_key(&mut check, &mut req, |r| std::mem::take(&mut r.request_id));
        let report = from::export_report(&mut check, "export_report", req.export_report.as_ref());
        let report = check.finish(report)?;
        let published = self.store.publish_export_report(report, key).await?;
        Ok(Response::new(pb::PublishExportReportResponse {
            export_report: Some(to_proto::export_report(&published)),
        }))
    }

    async fn get_export_report(
        &self,
        request: Request<pb::GetExportReportRequest>,
    ) -> Result<Response<pb::GetExportReportResponse>, Status> {
        let id = from::id("id", &request.get_ref().id)?;
        let report = self.store.get_export_report(id)?;
        Ok(Response::new(pb::GetExportReportResponse {
            export_report: Some(to_proto::export_report(&report)),
        }))
    }

    async fn list_export_reports(
        &self,
        request: Request<pb::ListExportReportsRequest>,
    ) -> Result<Response<pb::ListExportReportsResponse>, Status> {
        let req = request.into_inner();
        let limit = from::page_size(req.page_size)?;
        let mut check = Check::default();
        let filter = from::trade_filter(&mut check, "filter", req.filter.as_ref());
        let filter = check.finish(Some(filter))?;
        let (cursor, after) =
            page_token::Cursor::read::<u64>(&req.page_token, &req.filter.unwrap_or_default())?;
        let page = self.store.list_export_reports(&filter, after, limit);
        Ok(Response::new(pb::ListExportReportsResponse {
            export_reports: page
                .items
                .iter()
                .map(|r| to_proto::export_report(r))
                .collect(),
            next_page_token: cursor.next_token(page.next),
        }))
    }

    type SubscribeExportReportsStream = SubscribeStream;

    /// The message path of the contract, for callers of the generated
    /// server. `ExportReportRoutes` serves this method with encode-once
    /// frames instead; both take their events from `events`.
    async fn subscribe_export_reports(
        &self,
        request: Request<pb::SubscribeExportReportsRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        let events = self.events(request.into_inner())?;
        let responses = events.map(|event| Ok(frames::report_event(&event?)));
        Ok(Response::new(Box::pin(responses)))
    }
}

impl ExportReportApi {
    /// Validates a subscription request and opens it on the hub.
    pub fn events(
        &self,
        req: pb::SubscribeExportReportsRequest,
    ) -> Result<
        impl Stream<Item = Result<Event<ExportReport>, crate::Error>> + Send + 'static,
        Status,
    > {
        let mut check = Check::default();
        let filter = from::trade_filter(&mut check, "filter", req.filter.as_ref());
        let heartbeat = from::heartbeat(
            &mut check,
            "heartbeat_interval",
            req.heartbeat_interval.as_ref(),
        );
        let filter = check.finish(Some(filter))?;
        let after = match req.start {
            Some(Start::AfterSequence(n)) => Some(n),
            Some(Start::FromNow(_)) | None => None,
        };
        Ok(self.hub.subscribe(
            self.store.report_feed(),
            from::start(after),
            move |r| filter.matches(r),
            heartbeat,
        )?)
    }
}
