//! The health service's writer, apart from the service (as tonic-health
//! has it): SERVING once the server serves and its store is ready,
//! NOT_SERVING while a replica catches up with its log, for good once a
//! failed log fences the store, and at shutdown.

use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::announcement::AnnouncementApi;
use crate::api::export_report::ExportReportApi;
use crate::api::trade::TradeApi;
use crate::pb::announcement_service_server::AnnouncementServiceServer;
use crate::pb::export_report_service_server::ExportReportServiceServer;
use crate::pb::trade_service_server::TradeServiceServer;
use crate::store::Store;

/// The tradewire services, as health names them.
const SERVICES: [&str; 3] = [
    <TradeServiceServer<TradeApi> as NamedService>::NAME,
    <AnnouncementServiceServer<AnnouncementApi> as NamedService>::NAME,
    <ExportReportServiceServer<ExportReportApi> as NamedService>::NAME,
];

/// Sets the health of the server as a whole and of each service.
async fn set_all(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for service in SERVICES {
        health.set_service_status(service, status).await;
    }
}

/// Turns health NOT_SERVING everywhere.
pub(super) async fn set_not_serving(health: &HealthReporter) {
    set_all(health, ServingStatus::NotServing).await;
}

/// Sets health from the store now, then follows it on a task of its own
/// until the store is fenced (or the task is aborted at shutdown).
pub(super) async fn follow_store(health: &HealthReporter, store: &Store) -> JoinHandle<()> {
    let mut fenced = store.fenced();
    let mut ready = store.ready();
    let serving = *ready.borrow_and_update() && fenced.borrow_and_update().is_none();
    set_all(health, status(serving)).await;
    let health = health.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = fenced.changed() => if changed.is_err() { return },
                changed = ready.changed() => if changed.is_err() { return },
            }
            let is_fenced = fenced.borrow_and_update().is_some();
            let serving = !is_fenced && *ready.borrow_and_update();
            set_all(&health, status(serving)).await;
            if is_fenced {
                return;
            }
        }
    })
}

fn status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
