//! The `tradewire` binary: flags, tracing, signals. Everything else is in
//! the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use tradewire::Config;
use tradewire::{DurableConfig, FsyncPolicy};

#[derive(Debug, Parser)]
#[command(version, about = "gRPC service for bilateral trade intelligence")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the tradewire.v1 gRPC API.
    Serve(ServeArgs),
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

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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
    if !args.in_memory {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_tracing(args.log_format);
            match serve(args).await {
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
