//! The `tradewire` binary: flags, tracing, signals. Everything else is in
//! the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use tradewire::{Config, DurableConfig, FsyncPolicy, JetStreamConfig, Limits, TlsFiles};

mod cli;

#[derive(Debug, Parser)]
#[command(version, about = "gRPC service for bilateral trade intelligence")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the tradewire.v1 gRPC API.
    Serve(Box<ServeArgs>),
    /// Manage the bearer tokens of --auth-tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Trade records: list, get, create.
    Records {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        action: cli::RecordsAction,
    },
    /// Export reports: publish, list, watch.
    Reports {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        action: cli::ReportsAction,
    },
    /// Announcements: list, watch.
    Announcements {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        action: cli::AnnouncementsAction,
    },
    /// Trade summarized by year, quarter or month, Gregorian or Solar
    /// Hijri, with growth.
    Summary {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(flatten)]
        args: cli::SummaryArgs,
    },
    /// The top partners or HS codes of a year, with their shares.
    Breakdown {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(flatten)]
        args: cli::BreakdownArgs,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  tradewire completions bash > /etc/bash_completion.d/tradewire"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new token: prints it once, and the line to add to the tokens
    /// file (which holds only its SHA-256).
    Create {
        /// The name logs show for calls made with the token.
        #[arg(long)]
        name: String,
        /// Comma-separated: read, write, publish, admin.
        #[arg(long)]
        scopes: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TRADEWIRE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Load every fact of the seed article at start.
    #[arg(long, env = "TRADEWIRE_DEMO")]
    demo: bool,
    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, env = "TRADEWIRE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Export reports, and announcements, kept for replay (each stream).
    #[arg(
        long,
        alias = "report-retention",
        env = "TRADEWIRE_RETENTION",
        default_value_t = 1_000_000
    )]
    retention: usize,
    /// Most open subscriptions at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TRADEWIRE_MAX_SUBSCRIBERS", default_value_t = 10_000)]
    max_subscribers: usize,
    /// Idle time before a stream gets a heartbeat, e.g. "15s", "500ms".
    #[arg(long, env = "TRADEWIRE_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// How long shutdown waits for calls and streams before dropping them.
    #[arg(long, env = "TRADEWIRE_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Live broadcast buffer per stream type; laggards catch up from the store.
    #[arg(long, env = "TRADEWIRE_BROADCAST_CAPACITY", default_value_t = 1024)]
    broadcast_capacity: usize,
    /// Directory holding the write-ahead log and snapshots.
    #[arg(long, env = "TRADEWIRE_DATA_DIR", default_value = "./tradewire-data")]
    data_dir: PathBuf,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long, env = "TRADEWIRE_IN_MEMORY", conflicts_with = "repair")]
    in_memory: bool,
    /// Where the log lives: "local" (this machine's write-ahead log in
    /// --data-dir) or "jetstream" (a NATS JetStream stream shared by
    /// several replicas; needs --nats-url).
    #[arg(
        long,
        env = "TRADEWIRE_BACKEND",
        value_enum,
        default_value = "local",
        conflicts_with = "in_memory"
    )]
    backend: Backend,
    /// With --backend jetstream: a NATS server, as nats://host:port;
    /// repeat it (or separate with commas) for a cluster.
    #[arg(
        long = "nats-url",
        env = "TRADEWIRE_NATS_URL",
        value_delimiter = ',',
        required_if_eq("backend", "jetstream")
    )]
    nats_urls: Vec<String>,
    /// With --backend jetstream: the stream that is the log (created if
    /// missing; snapshots go to {stream}_SNAPSHOTS).
    #[arg(long, env = "TRADEWIRE_NATS_STREAM", default_value = "TRADEWIRE_LOG")]
    nats_stream: String,
    /// With --backend jetstream: copies of the streams in the NATS cluster
    /// when this replica creates them (3 for a cluster of three).
    #[arg(long, env = "TRADEWIRE_NATS_REPLICAS", default_value_t = 1)]
    nats_replicas: usize,
    /// With --backend jetstream: a snapshot after this many log messages;
    /// the log below the snapshot before it is then purged. 0: never.
    #[arg(long, env = "TRADEWIRE_NATS_SNAPSHOT_EVERY", default_value_t = 10_000)]
    nats_snapshot_every: u64,
    /// When the log reaches stable storage before a write is acknowledged.
    #[arg(long, env = "TRADEWIRE_FSYNC", value_enum, default_value = "always")]
    fsync: Fsync,
    /// With --fsync interval: the longest a write waits for its fsync.
    #[arg(long, env = "TRADEWIRE_FSYNC_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    fsync_interval: Duration,
    /// Start despite a damaged log: keep a copy of the damaged file and cut
    /// it at the first bad entry.
    #[arg(long, env = "TRADEWIRE_REPAIR")]
    repair: bool,
    /// Idle time before the kernel probes a connection (TCP keepalive);
    /// "0s" turns it off.
    #[arg(long, env = "TRADEWIRE_TCP_KEEPALIVE", default_value = "60s", value_parser = parse_duration)]
    tcp_keepalive: Duration,
    /// Write a snapshot and start a new log segment past this many bytes.
    #[arg(long, env = "TRADEWIRE_SNAPSHOT_AFTER_BYTES", default_value_t = 64 * 1024 * 1024)]
    snapshot_after_bytes: u64,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TRADEWIRE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM). SIGHUP reloads both.
    #[arg(long, env = "TRADEWIRE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM): mTLS.
    #[arg(long, env = "TRADEWIRE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Tokens file (`name scopes sha256` a line); without it, no
    /// authentication.
    #[arg(long, env = "TRADEWIRE_AUTH_TOKENS")]
    auth_tokens: Option<PathBuf>,
    /// With --auth-tokens, let calls without a token read.
    #[arg(long, env = "TRADEWIRE_ALLOW_ANONYMOUS_READ", requires = "auth_tokens")]
    allow_anonymous_read: bool,
    /// Most connections at once; more are closed at once.
    #[arg(long, env = "TRADEWIRE_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Time a new connection has for its TLS handshake and HTTP/2 preface.
    #[arg(long, env = "TRADEWIRE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Most concurrent calls per connection (HTTP/2 MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "TRADEWIRE_MAX_CONCURRENT_STREAMS", default_value_t = Limits::default().max_concurrent_streams)]
    max_concurrent_streams: u32,
    /// Time a request has to arrive whole.
    #[arg(long, env = "TRADEWIRE_RECEIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    receive_timeout: Duration,
    /// Largest request message in bytes (at most 4 MiB).
    #[arg(long, env = "TRADEWIRE_MAX_MESSAGE_BYTES", default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Most calls answered at once; more are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TRADEWIRE_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Deadline of unary calls that send no grpc-timeout.
    #[arg(long, env = "TRADEWIRE_UNARY_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    unary_deadline: Duration,
    /// Most open subscriptions of one connection.
    #[arg(
        long,
        env = "TRADEWIRE_MAX_SUBSCRIBERS_PER_CONNECTION",
        default_value_t = 1_000
    )]
    max_subscribers_per_connection: usize,
    /// Most open subscriptions of one token.
    #[arg(
        long,
        env = "TRADEWIRE_MAX_SUBSCRIBERS_PER_TOKEN",
        default_value_t = 5_000
    )]
    max_subscribers_per_token: usize,
    /// Serve Prometheus metrics on this address (`/metrics`); off without it.
    #[arg(long, env = "TRADEWIRE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Worker threads: 0 is one per core; 1 runs everything on one thread
    /// (tokio's current-thread runtime), which writes each connection's
    /// ready stream frames together: on one core, less than half the CPU
    /// per delivery at low report rates, but a quarter of the deliveries a
    /// second at saturation.
    #[arg(long, env = "TRADEWIRE_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    /// Export a span per call to this OTLP/gRPC collector
    /// (http://127.0.0.1:4317); each call's span joins the caller's trace
    /// through its W3C traceparent. Off by default.
    #[arg(long, env = "TRADEWIRE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// This machine's write-ahead log, in --data-dir.
    Local,
    /// A NATS JetStream stream that several replicas share.
    Jetstream,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Fsync {
    /// fsync before every acknowledgement (shared by concurrent writes).
    Always,
    /// fsync at most --fsync-interval after a write.
    Interval,
    /// Leave flushing to the OS.
    Never,
}

/// Parses "250ms", "15s", "2m" or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
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
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// Logs to standard output in `format`, and, with `otlp_endpoint`, spans to
/// that collector (the provider is returned, to flush at exit).
fn init_tracing(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Option<SdkTracerProvider>, String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (provider, traces) = match otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry::trace::TracerProvider as _;
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("tradewire")
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("tradewire"));
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .init(),
    }
    Ok(provider)
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown signal received");
}

async fn serve(args: ServeArgs) -> Result<(), tradewire::ServeError> {
    let mut config = Config {
        demo: args.demo,
        shutdown_grace: args.shutdown_grace,
        tcp_keepalive: (!args.tcp_keepalive.is_zero()).then_some(args.tcp_keepalive),
        ..Config::default()
    };
    config.store.retention = args.retention;
    config.store.broadcast_capacity = args.broadcast_capacity;
    config.hub.max_subscribers = args.max_subscribers;
    config.hub.heartbeat = args.heartbeat_interval;
    config.hub.max_subscribers_per_connection = args.max_subscribers_per_connection;
    config.hub.max_subscribers_per_token = args.max_subscribers_per_token;
    config.limits = Limits {
        max_connections: args.max_connections,
        handshake_timeout: args.handshake_timeout,
        max_concurrent_streams: args.max_concurrent_streams,
        receive_timeout: args.receive_timeout,
        max_message_bytes: args.max_message_bytes,
        max_in_flight: args.max_in_flight,
        unary_deadline: args.unary_deadline,
    };
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        _ => None,
    };
    config.auth_tokens = args.auth_tokens;
    config.allow_anonymous_read = args.allow_anonymous_read;
    config.metrics_listen = args.metrics_listen;
    config.trace_calls = args.otlp_endpoint.is_some();
    raise_open_file_limit();
    if args.backend == Backend::Jetstream {
        let mut replica = JetStreamConfig::new(args.nats_urls);
        replica.stream = args.nats_stream;
        replica.replicas = args.nats_replicas;
        replica.snapshot_every = args.nats_snapshot_every;
        config.store.jetstream = Some(replica);
    } else if !args.in_memory {
        let mut durable = DurableConfig::new(args.data_dir);
        durable.fsync = match args.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Interval => FsyncPolicy::Interval(args.fsync_interval),
            Fsync::Never => FsyncPolicy::Never,
        };
        durable.repair = args.repair;
        durable.snapshot_after_bytes = args.snapshot_after_bytes;
        config.store.durable = Some(durable);
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tradewire::serve(listener, config, shutdown_signal()).await
}

/// Raises the soft limit on open files to the hard limit: each connection
/// is a descriptor, and the default soft limit (often 1024) is below what
/// --max-connections allows.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open file limit"),
    }
}

fn create_token(name: &str, scopes: &str) -> ExitCode {
    let made =
        tradewire::parse_scopes(scopes).and_then(|scopes| tradewire::create_token(name, &scopes));
    match made {
        Ok((token, line)) => {
            println!("token (shown once; give it to the client): {token}");
            println!("line for the --auth-tokens file:\n{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tradewire token create: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A client subcommand's outcome as the exit code, its error on stderr.
fn finished(command: &str, outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tradewire {command}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let workers = match &cli.command {
        Command::Serve(args) => args.worker_threads,
        _ => 0,
    };
    // One worker: tokio's single-threaded runtime, which has no LIFO slot,
    // so the frames that many streams of a connection make ready together
    // leave together (BENCHMARKS.md, fan-out).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if workers > 1 {
            builder.worker_threads(workers);
        }
        builder
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("tradewire: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Records { connection, action } => {
            finished("records", cli::records(&connection, action).await)
        }
        Command::Reports { connection, action } => {
            finished("reports", cli::reports(&connection, action).await)
        }
        Command::Announcements { connection, action } => finished(
            "announcements",
            cli::announcements(&connection, action).await,
        ),
        Command::Summary { connection, args } => {
            finished("summary", cli::summary(&connection, args).await)
        }
        Command::Breakdown { connection, args } => {
            finished("breakdown", cli::breakdown(&connection, args).await)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tradewire",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Token(TokenCommand::Create { name, scopes }) => create_token(&name, &scopes),
        Command::Serve(args) => {
            let provider = match init_tracing(args.log_format, args.otlp_endpoint.as_deref()) {
                Ok(provider) => provider,
                Err(error) => {
                    eprintln!("tradewire: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let outcome = serve(*args).await;
            if let Some(provider) = provider {
                // Sends the spans still batched; it blocks, so off the
                // runtime's workers, which drive the exporter's channel.
                let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
                if let Ok(Err(error)) = flushed {
                    eprintln!("tradewire: exporting the last spans: {error}");
                }
            }
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "tradewire stopped");
                    eprintln!("tradewire: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
