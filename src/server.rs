//! Assembles the gRPC server: the three tradewire services, health,
//! reflection (v1 and v1alpha), a tracing span per RPC, HTTP/2 keepalive,
//! the accept path (TCP_NODELAY and TCP keepalive on every connection), and
//! a shutdown that ends open streams instead of waiting on them.
//!
//! Shutdown, step by step:
//! 1. the caller's shutdown future resolves (SIGINT/SIGTERM in the binary);
//! 2. health turns NOT_SERVING for every service (as it also does at once
//!    when a failed fsync fences the store);
//! 3. the hub's token is cancelled: every open subscription ends with
//!    UNAVAILABLE naming the sequence to resume after, and tonic stops
//!    accepting connections and drains in-flight calls;
//! 4. whatever has not finished within `shutdown_grace` is dropped.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::announcement::AnnouncementApi;
use crate::api::export_report::ExportReportApi;
use crate::api::export_report_routes::export_report_routes;
use crate::api::trade::TradeApi;
use crate::api::trade_routes::trade_routes;
use crate::error::ServeError;
use crate::hub::{Hub, HubConfig};
use crate::pb::announcement_service_server::AnnouncementServiceServer;
use crate::pb::export_report_service_server::ExportReportServiceServer;
use crate::pb::trade_service_server::TradeServiceServer;
use crate::store::{Counts, Recovery, Store, StoreConfig};

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store: retention, buffers, and whether and how it is durable.
    pub store: StoreConfig,
    /// Subscription limits and defaults.
    pub hub: HubConfig,
    /// Load the demo data set of the seed article at start.
    pub demo: bool,
    /// How long shutdown waits for calls and streams before dropping them.
    pub shutdown_grace: Duration,
    /// HTTP/2 ping interval, so half-open peers are found and reaped.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Idle time before the kernel probes a connection (TCP keepalive);
    /// `None` leaves it off.
    pub tcp_keepalive: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: StoreConfig::default(),
            hub: HubConfig::default(),
            demo: false,
            shutdown_grace: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(60)),
        }
    }
}

/// A tradewire instance: its store and subscription hub, ready to serve.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    recovery: Option<Recovery>,
    hub: Hub,
    stopping: CancellationToken,
    config: Config,
}

impl App {
    /// Opens the store (recovering it from its data directory when durable)
    /// and the hub, and loads the demo data if configured and not loaded
    /// before.
    pub async fn open(config: Config) -> Result<App, ServeError> {
        let (store, recovery) = Store::open(config.store.clone())?;
        if let Some(recovery) = &recovery {
            tracing::info!(
                snapshot_lsn = ?recovery.snapshot_lsn,
                replayed = recovery.replayed,
                torn_bytes = recovery.torn_bytes,
                repaired = ?recovery.repaired,
                counts = ?store.counts(),
                "store recovered"
            );
        }
        let stopping = CancellationToken::new();
        let app = App {
            store,
            recovery,
            hub: Hub::new(config.hub.clone(), stopping.clone()),
            stopping,
            config,
        };
        if app.config.demo && !app.store.demo_loaded() {
            let loaded = app.load_demo().await?;
            app.store.mark_demo_loaded().await?;
            tracing::info!(?loaded, "demo data loaded");
        }
        Ok(app)
    }

    /// Loads the demo data set through the RPC handlers. Idempotent: every
    /// demo request carries a request_id.
    pub async fn load_demo(&self) -> Result<crate::demo::Loaded, ServeError> {
        crate::demo::load(
            &self.trade_api(),
            &self.announcement_api(),
            &self.export_report_api(),
        )
        .await
    }

    /// How many items of each kind are stored.
    pub fn counts(&self) -> Counts {
        self.store.counts()
    }

    /// What opening a durable store found and did; `None` in memory.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Open subscriptions, watchable for changes.
    pub fn subscriber_count(&self) -> watch::Receiver<usize> {
        self.hub.subscriber_count()
    }

    /// How many times a subscription lagged and caught up from the store.
    pub fn catch_ups(&self) -> u64 {
        self.hub.catch_ups()
    }

    fn trade_api(&self) -> TradeApi {
        TradeApi::new(self.store.clone())
    }

    fn announcement_api(&self) -> AnnouncementApi {
        AnnouncementApi::new(self.store.clone(), self.hub.clone())
    }

    fn export_report_api(&self) -> ExportReportApi {
        ExportReportApi::new(self.store.clone(), self.hub.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down as
    /// the module doc describes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        set_services(&health, tonic_health::ServingStatus::Serving).await;

        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let local_addr = listener.local_addr()?;
        let router = Server::builder()
            .http2_keepalive_interval(Some(self.config.keepalive_interval))
            .http2_keepalive_timeout(Some(self.config.keepalive_timeout))
            // DEBUG: at INFO, formatting a span per call cost ~5% of a Get.
            .trace_fn(|request| tracing::debug_span!("rpc", method = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(trade_routes(self.trade_api()))
            .add_service(AnnouncementServiceServer::new(self.announcement_api()))
            .add_service(export_report_routes(self.export_report_api()));

        // A failed fsync fences the store: health says so at once.
        let fence_watch = {
            let health = health.clone();
            let mut fenced = self.store.fenced();
            tokio::spawn(async move {
                if fenced.wait_for(Option::is_some).await.is_ok() {
                    set_not_serving(&health).await;
                }
            })
        };

        tracing::info!(%local_addr, "serving tradewire.v1");
        let server = router.serve_with_incoming_shutdown(
            accepted_connections(listener, &self.config),
            self.stopping.clone().cancelled_owned(),
        );
        tokio::pin!(server);

        tokio::select! {
            result = &mut server => {
                fence_watch.abort();
                return result.map_err(Into::into);
            }
            () = shutdown => {}
        }
        tracing::info!("shutting down");
        fence_watch.abort();
        set_not_serving(&health).await;
        self.stopping.cancel();
        match tokio::time::timeout(self.config.shutdown_grace, server).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => {
                tracing::warn!(grace = ?self.config.shutdown_grace, "grace period over; dropping what remains");
                Ok(())
            }
        }
    }
}

/// The tradewire services, as health names them.
const SERVICES: [&str; 3] = [
    <TradeServiceServer<TradeApi> as NamedService>::NAME,
    <AnnouncementServiceServer<AnnouncementApi> as NamedService>::NAME,
    <ExportReportServiceServer<ExportReportApi> as NamedService>::NAME,
];

/// Sets the health of every tradewire service.
async fn set_services(
    health: &tonic_health::server::HealthReporter,
    status: tonic_health::ServingStatus,
) {
    for service in SERVICES {
        health.set_service_status(service, status).await;
    }
}

/// Turns health NOT_SERVING for the server as a whole and each service.
async fn set_not_serving(health: &tonic_health::server::HealthReporter) {
    let status = tonic_health::ServingStatus::NotServing;
    health.set_service_status("", status).await;
    set_services(health, status).await;
}

/// The connections `listener` accepts, each with TCP_NODELAY and TCP
/// keepalive set. `Server::tcp_nodelay` applies only to addresses tonic
/// binds itself, not to an incoming stream; without NODELAY a unary reply's
/// trailers wait for the client's delayed ACK, about 40 ms a call for every
/// client that does not pipeline as tonic does.
pub(crate) fn accepted_connections(listener: TcpListener, config: &Config) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(config.tcp_keepalive)
}

/// A reflection builder that knows every served service, both reflection
/// versions included, so either version lists all of them, and the error
/// detail types the services send.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc error details, so grpcurl can decode BadRequest.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

/// Opens an `App` from `config` and serves it on `listener` until
/// `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    App::open(config).await?.serve(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = accepted_connections(listener, &Config::default());
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY on the accepted socket"
        );
        assert!(
            socket2::SockRef::from(&accepted).keepalive().unwrap(),
            "SO_KEEPALIVE on the accepted socket"
        );
    }

    #[tokio::test]
    async fn tcp_keepalive_can_be_turned_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            tcp_keepalive: None,
            ..Config::default()
        };
        let mut incoming = accepted_connections(listener, &config);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
        assert!(!socket2::SockRef::from(&accepted).keepalive().unwrap());
    }
}
