//! The `serve` flags, their `TRADEWIRE_*` environment mirrors, and the one
//! mapping from them to the library's [`Config`]. Every default is read
//! from the library's own defaults (`Config`, `Limits`, `HubConfig`,
//! `StoreConfig`, `DurableConfig`, `JetStreamConfig`), so `--help` shows
//! what the library does and no default is written twice.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use tradewire::{
    Config, DurableConfig, FsyncPolicy, HubConfig, JetStreamConfig, Limits, StoreConfig, TlsFiles,
};

/// How the log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line each.
    Text,
    /// One JSON object each.
    Json,
}

/// Where the log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// This machine's write-ahead log, in --data-dir.
    Local,
    /// A NATS JetStream stream that several replicas share.
    Jetstream,
}

/// When the log reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Fsync {
    /// fsync before every acknowledgement (shared by concurrent writes).
    Always,
    /// fsync at most --fsync-interval after a write.
    Interval,
    /// Leave flushing to the OS.
    Never,
}

impl From<FsyncPolicy> for Fsync {
    fn from(policy: FsyncPolicy) -> Fsync {
        match policy {
            FsyncPolicy::Always => Fsync::Always,
            FsyncPolicy::Interval(_) => Fsync::Interval,
            FsyncPolicy::Never => Fsync::Never,
        }
    }
}

/// A duration flag: "250ms", "15s", "2m" or a bare number of seconds. It
/// prints as it parses, so `--help` can show the library's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span(pub(crate) Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
            (n, 0.001)
        } else if let Some(n) = text.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = text.strip_suffix('m') {
            (n, 60.0)
        } else {
            (text, 1.0)
        };
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 500ms, 15s or 2m"))?;
        Duration::try_from_secs_f64(value * scale)
            .map(Span)
            .map_err(|e| format!("{text:?}: {e}"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if !millis.is_multiple_of(1000) {
            write!(f, "{millis}ms")
        } else if millis != 0 && millis.is_multiple_of(60_000) {
            write!(f, "{}m", millis / 60_000)
        } else {
            write!(f, "{}s", millis / 1000)
        }
    }
}

fn limits() -> Limits {
    Limits::default()
}

fn hub() -> HubConfig {
    HubConfig::default()
}

fn store() -> StoreConfig {
    StoreConfig::default()
}

fn durable() -> DurableConfig {
    DurableConfig::new(DurableConfig::DEFAULT_DIR)
}

fn jetstream() -> JetStreamConfig {
    JetStreamConfig::new(Vec::new())
}

/// The flags of `tradewire serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TRADEWIRE_LISTEN", default_value = "127.0.0.1:50051")]
    pub(crate) listen: SocketAddr,
    /// Load every fact of the seed article at start.
    #[arg(long, env = "TRADEWIRE_DEMO")]
    pub(crate) demo: bool,
    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, env = "TRADEWIRE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Export reports, and announcements, kept for replay (each stream).
    #[arg(long, alias = "report-retention", env = "TRADEWIRE_RETENTION", default_value_t = store().retention)]
    pub(crate) retention: usize,
    /// Most open subscriptions at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TRADEWIRE_MAX_SUBSCRIBERS", default_value_t = hub().max_subscribers)]
    pub(crate) max_subscribers: usize,
    /// Idle time before a stream gets a heartbeat, e.g. "15s", "500ms".
    #[arg(long, env = "TRADEWIRE_HEARTBEAT_INTERVAL", default_value_t = Span(hub().heartbeat))]
    pub(crate) heartbeat_interval: Span,
    /// How long shutdown waits for calls and streams before dropping them.
    #[arg(long, env = "TRADEWIRE_SHUTDOWN_GRACE", default_value_t = Span(Config::default().shutdown_grace))]
    pub(crate) shutdown_grace: Span,
    /// Live broadcast buffer per stream type; laggards catch up from the store.
    #[arg(long, env = "TRADEWIRE_BROADCAST_CAPACITY", default_value_t = store().broadcast_capacity)]
    pub(crate) broadcast_capacity: usize,
    /// Directory holding the write-ahead log and snapshots.
    #[arg(long, env = "TRADEWIRE_DATA_DIR", default_value = DurableConfig::DEFAULT_DIR)]
    pub(crate) data_dir: PathBuf,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long, env = "TRADEWIRE_IN_MEMORY", conflicts_with = "repair")]
    pub(crate) in_memory: bool,
    /// Where the log lives: "local" (this machine's write-ahead log in
    /// --data-dir) or "jetstream" (a NATS JetStream stream shared by
    /// several replicas; needs --nats-url).
    #[arg(
        long,
        env = "TRADEWIRE_BACKEND",
        value_enum,
        default_value_t = Backend::Local,
        conflicts_with = "in_memory"
    )]
    pub(crate) backend: Backend,
    /// With --backend jetstream: a NATS server, as nats://host:port;
    /// repeat it (or separate with commas) for a cluster.
    #[arg(
        long = "nats-url",
        env = "TRADEWIRE_NATS_URL",
        value_delimiter = ',',
        required_if_eq("backend", "jetstream")
    )]
    pub(crate) nats_urls: Vec<String>,
    /// With --backend jetstream: the stream that is the log (created if
    /// missing; snapshots go to {stream}_SNAPSHOTS).
    #[arg(long, env = "TRADEWIRE_NATS_STREAM", default_value_t = jetstream().stream)]
    pub(crate) nats_stream: String,
    /// With --backend jetstream: copies of the streams in the NATS cluster
    /// when this replica creates them (3 for a cluster of three).
    #[arg(long, env = "TRADEWIRE_NATS_REPLICAS", default_value_t = jetstream().replicas)]
    pub(crate) nats_replicas: usize,
    /// With --backend jetstream: a snapshot after this many log messages;
    /// the log below the snapshot before it is then purged. 0: never.
    #[arg(long, env = "TRADEWIRE_NATS_SNAPSHOT_EVERY", default_value_t = jetstream().snapshot_every)]
    pub(crate) nats_snapshot_every: u64,
    /// When the log reaches stable storage before a write is acknowledged.
    #[arg(long, env = "TRADEWIRE_FSYNC", value_enum, default_value_t = Fsync::from(durable().fsync))]
    pub(crate) fsync: Fsync,
    /// With --fsync interval: the longest a write waits for its fsync.
    #[arg(long, env = "TRADEWIRE_FSYNC_INTERVAL", default_value_t = Span(FsyncPolicy::DEFAULT_INTERVAL))]
    pub(crate) fsync_interval: Span,
    /// Start despite a damaged log: keep a copy of the damaged file and cut
    /// it at the first bad entry.
    #[arg(long, env = "TRADEWIRE_REPAIR")]
    pub(crate) repair: bool,
    /// Idle time before the kernel probes a connection (TCP keepalive);
    /// "0s" turns it off.
    #[arg(
        long,
        env = "TRADEWIRE_TCP_KEEPALIVE",
        default_value_t = Span(Config::default().tcp_keepalive.unwrap_or_default())
    )]
    pub(crate) tcp_keepalive: Span,
    /// Write a snapshot and start a new log segment past this many bytes.
    #[arg(long, env = "TRADEWIRE_SNAPSHOT_AFTER_BYTES", default_value_t = durable().snapshot_after_bytes)]
    pub(crate) snapshot_after_bytes: u64,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TRADEWIRE_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM). SIGHUP reloads both.
    #[arg(long, env = "TRADEWIRE_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM): mTLS.
    #[arg(long, env = "TRADEWIRE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Tokens file (`name scopes sha256` a line); without it, no
    /// authentication.
    #[arg(long, env = "TRADEWIRE_AUTH_TOKENS")]
    pub(crate) auth_tokens: Option<PathBuf>,
    /// With --auth-tokens, let calls without a token read.
    #[arg(long, env = "TRADEWIRE_ALLOW_ANONYMOUS_READ", requires = "auth_tokens")]
    pub(crate) allow_anonymous_read: bool,
    /// Most connections at once; more are closed at once.
    #[arg(long, env = "TRADEWIRE_MAX_CONNECTIONS", default_value_t = limits().max_connections)]
    pub(crate) max_connections: usize,
    /// Time a new connection has for its TLS handshake and HTTP/2 preface.
    #[arg(long, env = "TRADEWIRE_HANDSHAKE_TIMEOUT", default_value_t = Span(limits().handshake_timeout))]
    pub(crate) handshake_timeout: Span,
    /// Most concurrent calls per connection (HTTP/2 MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "TRADEWIRE_MAX_CONCURRENT_STREAMS", default_value_t = limits().max_concurrent_streams)]
    pub(crate) max_concurrent_streams: u32,
    /// Time a request has to arrive whole.
    #[arg(long, env = "TRADEWIRE_RECEIVE_TIMEOUT", default_value_t = Span(limits().receive_timeout))]
    pub(crate) receive_timeout: Span,
    /// Largest request message in bytes (at most 4 MiB).
    #[arg(long, env = "TRADEWIRE_MAX_MESSAGE_BYTES", default_value_t = limits().max_message_bytes)]
    pub(crate) max_message_bytes: usize,
    /// Most calls answered at once; more are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TRADEWIRE_MAX_IN_FLIGHT", default_value_t = limits().max_in_flight)]
    pub(crate) max_in_flight: usize,
    /// Deadline of unary calls that send no grpc-timeout.
    #[arg(long, env = "TRADEWIRE_UNARY_DEADLINE", default_value_t = Span(limits().unary_deadline))]
    pub(crate) unary_deadline: Span,
    /// Most open subscriptions of one connection.
    #[arg(
        long,
        env = "TRADEWIRE_MAX_SUBSCRIBERS_PER_CONNECTION",
        default_value_t = hub().max_subscribers_per_connection
    )]
    pub(crate) max_subscribers_per_connection: usize,
    /// Most open subscriptions of one token.
    #[arg(
        long,
        env = "TRADEWIRE_MAX_SUBSCRIBERS_PER_TOKEN",
        default_value_t = hub().max_subscribers_per_token
    )]
    pub(crate) max_subscribers_per_token: usize,
    /// Serve Prometheus metrics on this address (`/metrics`); off without it.
    #[arg(long, env = "TRADEWIRE_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Worker threads: 0 is one per core; 1 runs everything on one thread
    /// (tokio's current-thread runtime, which has no LIFO slot, so the
    /// frames that many streams of a connection make ready together leave
    /// together; BENCHMARKS.md compares the two).
    #[arg(long, env = "TRADEWIRE_WORKER_THREADS", default_value_t = 0)]
    pub(crate) worker_threads: usize,
    /// Export a span per call to this OTLP/gRPC collector
    /// (http://127.0.0.1:4317); each call's span joins the caller's trace
    /// through its W3C traceparent. Off by default.
    #[arg(long, env = "TRADEWIRE_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
    /// Print the configuration these flags and the environment resolve
    /// to, and exit without serving.
    #[arg(long)]
    pub(crate) print_config: bool,
}

impl ServeArgs {
    /// The library's configuration these flags ask for: the one place a
    /// flag reaches `Config`. Destructured without `..`, so a new flag that
    /// is not mapped fails to compile.
    pub(crate) fn config(&self) -> Config {
        let ServeArgs {
            listen: _,
            demo,
            log_format: _,
            retention,
            max_subscribers,
            heartbeat_interval,
            shutdown_grace,
            broadcast_capacity,
            data_dir,
            in_memory,
            backend,
            nats_urls,
            nats_stream,
            nats_replicas,
            nats_snapshot_every,
            fsync,
            fsync_interval,
            repair,
            tcp_keepalive,
            snapshot_after_bytes,
            tls_cert,
            tls_key,
            tls_client_ca,
            auth_tokens,
            allow_anonymous_read,
            max_connections,
            handshake_timeout,
            max_concurrent_streams,
            receive_timeout,
            max_message_bytes,
            max_in_flight,
            unary_deadline,
            max_subscribers_per_connection,
            max_subscribers_per_token,
            metrics_listen,
            worker_threads: _,
            otlp_endpoint,
            print_config: _,
        } = self;
        let mut config = Config {
            demo: *demo,
            shutdown_grace: shutdown_grace.0,
            tcp_keepalive: (!tcp_keepalive.0.is_zero()).then_some(tcp_keepalive.0),
            ..Config::default()
        };
        config.store.retention = *retention;
        config.store.broadcast_capacity = *broadcast_capacity;
        config.hub = HubConfig {
            max_subscribers: *max_subscribers,
            max_subscribers_per_connection: *max_subscribers_per_connection,
            max_subscribers_per_token: *max_subscribers_per_token,
            heartbeat: heartbeat_interval.0,
        };
        config.limits = Limits {
            max_connections: *max_connections,
            handshake_timeout: handshake_timeout.0,
            max_concurrent_streams: *max_concurrent_streams,
            receive_timeout: receive_timeout.0,
            max_message_bytes: *max_message_bytes,
            max_in_flight: *max_in_flight,
            unary_deadline: unary_deadline.0,
        };
        config.tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: tls_client_ca.clone(),
            }),
            _ => None,
        };
        config.auth_tokens = auth_tokens.clone();
        config.allow_anonymous_read = *allow_anonymous_read;
        config.metrics_listen = *metrics_listen;
        config.trace_calls = otlp_endpoint.is_some();
        if *backend == Backend::Jetstream {
            let mut replica = JetStreamConfig::new(nats_urls.clone());
            replica.stream = nats_stream.clone();
            replica.replicas = *nats_replicas;
            replica.snapshot_every = *nats_snapshot_every;
            config.store.jetstream = Some(replica);
        } else if !in_memory {
            let mut durable = DurableConfig::new(data_dir);
            durable.fsync = match fsync {
                Fsync::Always => FsyncPolicy::Always,
                Fsync::Interval => FsyncPolicy::Interval(fsync_interval.0),
                Fsync::Never => FsyncPolicy::Never,
            };
            durable.repair = *repair;
            durable.snapshot_after_bytes = *snapshot_after_bytes;
            config.store.durable = Some(durable);
        }
        config
    }
}

#[cfg(test)]
mod tests;
