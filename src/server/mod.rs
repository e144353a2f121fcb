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
//! 4. whatever has not finished within `shutdown_grace` is dropped;
//! 5. `serve` waits up to `RELEASE_WAIT` for the store's last handles
//!    (held by the tasks of the last calls) to go, so that the data
//!    directory's lock is free when it returns.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

mod accept;
mod admission;
mod auth;
mod calls;
mod config;
mod deadline;
mod health;
mod limits;
mod methods;
mod metrics;
mod opened_streams;
mod otel;
mod security_log;
mod serve_error;
mod stack;
mod tls;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tonic::transport::server::Router;
use tonic_health::pb::health_server::HealthServer;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

use crate::api::announcement::AnnouncementApi;
use crate::api::compression::COMPRESSION;
use crate::api::export_report::ExportReportApi;
use crate::api::export_report_routes::export_report_routes;
use crate::api::trade::TradeApi;
use crate::api::trade_routes::trade_routes;
use crate::hub::Hub;
use crate::pb::announcement_service_server::AnnouncementServiceServer;
use crate::store::{Counts, Recovery, Store};
use accept::{AcceptConfig, accepted_connections};
use admission::{Admission, AdmissionLayer};
use auth::{Auth, Tokens};
pub use auth::{TokenError, create_token, parse_scopes};
use calls::CallLayer;
pub use config::{Config, Limits};
use limits::{InFlight, RequestBodies};
pub use methods::Scope;
use security_log::SecurityLog;
pub use serve_error::ServeError;
use tls::TlsAcceptorHandle;
pub use tls::TlsFiles;

/// A tradewire instance: its store and subscription hub, ready to serve.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    recovery: Option<Recovery>,
    hub: Hub,
    stopping: CancellationToken,
    /// Whether `open` installed the Prometheus recorder.
    metrics_on: bool,
    config: Config,
}

impl App {
    /// Opens the store (recovering it from its data directory when durable)
    /// and the hub, and loads the demo data if configured and not loaded
    /// before.
    pub async fn open(config: Config) -> Result<App, ServeError> {
        // Before the store opens: its recovery and the demo's writes are
        // counted, and a long recovery can be watched.
        let metrics_on = config
            .metrics_listen
            .is_some_and(|addr| metrics::install(addr, &config.store));
        let (store, recovery) = Store::open(config.store.clone()).await?;
        if metrics_on {
            store.gauge_items();
        }
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
            metrics_on,
            config,
        };
        // The demo seeds a store that never held anything: loaded once,
        // however many request ids the store has forgotten since.
        if app.config.demo {
            // A replica knows whether its log is empty only once it has
            // applied the log as it was at its start.
            let mut ready = app.store.ready();
            if !*ready.borrow() {
                tracing::info!("demo: waiting for the replica to apply its log first");
            }
            if ready.wait_for(|ready| *ready).await.is_err() {
                return Err(ServeError::Demo(
                    "the store closed before it caught up with its log".into(),
                ));
            }
            if app.store.never_written() {
                let loaded = app.load_demo().await?;
                tracing::info!(?loaded, "demo data loaded");
            } else {
                tracing::info!("demo data not loaded: the store has held data before");
            }
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
        .map_err(ServeError::Demo)
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

    /// How many times a subscription lagged and caught up from the store
    /// (feature `testing`; the metric `tradewire_catch_ups_total` is the
    /// supported way to watch it).
    #[cfg(feature = "testing")]
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
        let local_addr = listener.local_addr()?;
        self.validate()?;
        let (tokens, tls) = self.load_security(local_addr)?;
        let metrics_on = self.metrics_on;
        let log = SecurityLog::default();
        let (health, health_service) = tonic_health::server::health_reporter();
        let router = self.router(health_service, tokens, metrics_on, &log)?;
        let health_follower = health::follow_store(&health, &self.store).await;
        let reloader = tls.clone().map(reload_on_sighup);
        let accept = AcceptConfig {
            max_connections: self.config.limits.max_connections,
            handshake_timeout: self.config.limits.handshake_timeout,
            tcp_keepalive: self.config.tcp_keepalive,
            tls,
        };
        tracing::info!(%local_addr, tls = accept.tls.is_some(), "serving tradewire.v1");
        // Boxed, so it can be dropped (with every handle of the store its
        // services hold) before `release` waits for the store.
        let mut server = Box::pin(router.serve_with_incoming_shutdown(
            accepted_connections(listener, accept, log),
            self.stopping.clone().cancelled_owned(),
        ));
        let ended = tokio::select! {
            result = &mut server => Some(result.map_err(Into::into)),
            () = shutdown => None,
        };
        health_follower.abort();
        if let Some(reloader) = &reloader {
            reloader.abort();
        }
        let result = match ended {
            Some(result) => {
                drop(server);
                result
            }
            None => self.shut_down(&health, server).await,
        };
        self.release().await;
        result
    }

    /// Drops this handle and gives the store a moment to go: the tasks of
    /// the last calls hold handles of their own and end just after the
    /// server does, and a store opened again on the same directory (an
    /// embedding program, a test) must find its lock free. Bounded by
    /// [`RELEASE_WAIT`]: another `App` clone still held keeps the store as
    /// long as it likes.
    async fn release(self) {
        let mut released = self.store.released();
        drop(self);
        // `changed` fails once the store's last handle is gone.
        let gone = async { while released.changed().await.is_ok() {} };
        if tokio::time::timeout(RELEASE_WAIT, gone).await.is_err() {
            tracing::debug!("the store is still held after shutdown, by another App");
        }
    }

    /// Refuses a configuration that cannot serve, before anything does:
    /// a method whose contract declares no scope, or limits out of range.
    fn validate(&self) -> Result<(), ServeError> {
        methods::table().map_err(|e| ServeError::Contract(e.to_owned()))?;
        let limits = &self.config.limits;
        if limits.max_message_bytes > MAX_MESSAGE_BYTES {
            return Err(ServeError::Config(format!(
                "max_message_bytes {} is above tonic's decoding limit of {MAX_MESSAGE_BYTES}",
                limits.max_message_bytes
            )));
        }
        Ok(())
    }

    /// The tokens file and the TLS files, read once at start (TLS reloads
    /// on SIGHUP).
    fn load_security(
        &self,
        local_addr: std::net::SocketAddr,
    ) -> Result<(Option<Tokens>, Option<TlsAcceptorHandle>), ServeError> {
        let tokens = match &self.config.auth_tokens {
            Some(path) => Some(Tokens::load(path).map_err(ServeError::Tokens)?),
            None => {
                if !local_addr.ip().is_loopback() {
                    tracing::warn!(%local_addr, "no --auth-tokens: any peer that reaches this address may write and publish");
                }
                None
            }
        };
        let tls = match &self.config.tls {
            Some(files) => Some(TlsAcceptorHandle::load(files).map_err(ServeError::Tls)?),
            None => None,
        };
        Ok((tokens, tls))
    }

    /// The services behind the stack (`stack`), with tradewire's transport
    /// settings.
    fn router(
        &self,
        health_service: HealthServer<impl tonic_health::pb::health_server::Health>,
        tokens: Option<Tokens>,
        metrics_on: bool,
        log: &SecurityLog,
    ) -> Result<Router<Stack<Layers, Identity>>, ServeError> {
        let limits = &self.config.limits;
        let admission = AdmissionLayer::new(Admission {
            auth: Auth::new(tokens, self.config.allow_anonymous_read),
            in_flight: InFlight {
                count: Arc::new(AtomicUsize::new(0)),
                max: limits.max_in_flight,
            },
            bodies: Arc::new(RequestBodies {
                receive_timeout: limits.receive_timeout,
                max_message_bytes: limits.max_message_bytes,
                log: log.clone(),
            }),
            unary_deadline: limits.unary_deadline,
            log: log.clone(),
        });
        // Outermost first: every call observed, refused ones too, then
        // admitted (`stack`).
        let layers = ServiceBuilder::new()
            .layer(CallLayer::new(metrics_on))
            .layer(admission)
            .into_inner();
        let trace_calls = self.config.trace_calls;
        Ok(Server::builder()
            .http2_keepalive_interval(Some(self.config.keepalive_interval))
            .http2_keepalive_timeout(Some(self.config.keepalive_timeout))
            .max_concurrent_streams(limits.max_concurrent_streams)
            .layer(layers)
            .trace_fn(move |request| {
                if trace_calls {
                    otel::call_span(request)
                } else {
                    // DEBUG, which costs nothing at the default level: a
                    // span per call formatted at INFO is a cost on every
                    // call (BENCHMARKS.md).
                    tracing::debug_span!("rpc", method = %request.uri().path())
                }
            })
            .add_service(health_service)
            .add_service(reflection().build_v1().map_err(contract)?)
            .add_service(reflection().build_v1alpha().map_err(contract)?)
            .add_service(trade_routes(self.trade_api()))
            .add_service(COMPRESSION.iter().fold(
                AnnouncementServiceServer::new(self.announcement_api()),
                |server, &encoding| server.accept_compressed(encoding).send_compressed(encoding),
            ))
            .add_service(export_report_routes(self.export_report_api())))
    }

    /// Health NOT_SERVING, every subscription ended with the sequence to
    /// resume after, in-flight calls drained for `shutdown_grace`, then
    /// whatever remains dropped.
    async fn shut_down(
        &self,
        health: &tonic_health::server::HealthReporter,
        server: impl Future<Output = Result<(), tonic::transport::Error>>,
    ) -> Result<(), ServeError> {
        tracing::info!("shutting down");
        health::set_not_serving(health).await;
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

/// The stack's layers, in their order (`stack`).
type Layers = Stack<AdmissionLayer, Stack<CallLayer, Identity>>;

/// How long `serve` waits, after it has shut down, for the store to be
/// released by the tasks that served its last calls.
const RELEASE_WAIT: Duration = Duration::from_millis(100);

/// tonic's default limit on a decoded message.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Reloads the TLS files on every SIGHUP; a reload that fails keeps the
/// certificate in use and says why.
fn reload_on_sighup(tls: TlsAcceptorHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; TLS certificates will not reload");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: TLS reload failed; the old certificate stays")
                }
            }
        }
    })
}

/// Reflection could not read the compiled-in descriptors.
fn contract(error: tonic_reflection::server::Error) -> ServeError {
    ServeError::Contract(error.to_string())
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
