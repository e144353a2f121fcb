//! The `tradewire` binary: flags, tracing, signals. Everything else is in
//! the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

mod cli;
mod flags;
mod log_time;
mod log_writer;

use flags::{LogFormat, ServeArgs};

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

/// What logging holds until exit: the log writer's guard (dropping it
/// writes the lines still queued) and the span exporter, to flush.
struct Tracing {
    _log: log_writer::Guard,
    provider: Option<SdkTracerProvider>,
}

/// Logs to standard output in `format`, and, with `otlp_endpoint`, spans to
/// that collector. Lines are formatted where they happen and written out
/// in batches by a thread of their own (`log_writer`), so a call's log
/// line costs its worker no syscall and no wake-up.
fn init_tracing(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Tracing, String> {
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
    let (writer, guard) = log_writer::log_writer(std::io::stdout())
        .map_err(|e| format!("cannot start the log's writer thread: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    // Colours only for a person at a terminal: escape codes in a file or a
    // pipe are noise to every log reader.
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_timer(log_time::LineTime)
        .with_writer(writer);
    match format {
        LogFormat::Text => registry.with(lines).init(),
        LogFormat::Json => registry.with(lines.json()).init(),
    }
    Ok(Tracing {
        _log: guard,
        provider,
    })
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

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.config();
    raise_open_file_limit();
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tradewire::serve(listener, config, shutdown_signal())
        .await
        .map_err(|error| with_remedy(&error))
}

/// The error as a user of the binary reads it: with the flag that gets
/// past it, where there is one.
fn with_remedy(error: &tradewire::ServeError) -> String {
    match error {
        tradewire::ServeError::Open(tradewire::OpenError::Corrupt { .. }) => format!(
            "{error}; start with --repair to keep the intact prefix (a copy of the file is kept)"
        ),
        tradewire::ServeError::Open(tradewire::OpenError::Locked { .. }) => {
            format!("{error}; stop it, or give this one another --data-dir")
        }
        other => other.to_string(),
    }
}

/// What `serve --print-config` shows: the settings outside `Config`, then
/// the `Config` the flags and the environment resolve to.
fn print_config(args: &ServeArgs) {
    println!("listen: {}", args.listen);
    println!("log_format: {:?}", args.log_format);
    println!("worker_threads: {}", args.worker_threads);
    println!("otlp_endpoint: {:?}", args.otlp_endpoint);
    println!("{:#?}", args.config());
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
        Command::Serve(args) if args.print_config => {
            print_config(&args);
            ExitCode::SUCCESS
        }
        Command::Serve(args) => {
            let mut logging = match init_tracing(args.log_format, args.otlp_endpoint.as_deref()) {
                Ok(logging) => logging,
                Err(error) => {
                    eprintln!("tradewire: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let outcome = serve(*args).await;
            if let Some(provider) = logging.provider.take() {
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
