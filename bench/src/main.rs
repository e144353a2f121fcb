//! `tradewire-bench`: the load tool. Each mode starts the servers it
//! measures as child processes on loopback, pinned to their own core, and
//! prints one table (optionally also as JSON). A run with errors, losses or
//! duplicates is refused, not reported.

mod clients;
mod durability;
mod fanout;
mod floor;
mod h2load;
mod load;
mod nats;
mod proc;
mod readwrite;
mod replicas;
mod report;
mod sample;
mod scale;
mod servers;
mod snapshot;
mod table;
mod unary;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use servers::BenchError;
use table::Table;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks tradewire against bare-tonic floors on this machine")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Also write the tables as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Also write the whole report (machine, method, targets, tables) as
    /// markdown to this file: `all --markdown BENCHMARKS.md`.
    #[arg(long, global = true)]
    markdown: Option<PathBuf>,
    /// Seconds-long runs with small counts, to prove the tool works (CI).
    #[arg(long, global = true)]
    smoke: bool,
    /// Seconds per measured run.
    #[arg(long, global = true)]
    duration: Option<f64>,
    /// Connections for unary load.
    #[arg(long, global = true, default_value_t = 4)]
    connections: usize,
    /// Calls in flight per connection for unary load.
    #[arg(long, global = true, default_value_t = 16)]
    in_flight: usize,
    /// Subscribers for fanout.
    #[arg(long, global = true)]
    subscribers: Option<usize>,
    /// Connections the fanout subscribers share.
    #[arg(long, global = true)]
    fanout_connections: Option<usize>,
    /// Reports published per second in fanout.
    #[arg(long, global = true)]
    rate: Option<f64>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// GetTradeRecord, filtered List, Create: tradewire against the floor.
    Unary,
    /// Get and List from h2load and sequential Get from Python grpcio:
    /// clients we did not write, tradewire against the floor.
    Clients,
    /// Subscribers and a publisher: tradewire against the broadcast floor.
    Fanout,
    /// Filtered List at 10k and 1M records; memory per record.
    Scale,
    /// Write throughput under each fsync policy at 1, 16 and 64 writers.
    Durability,
    /// Get latency alone and beside 64 writers on a durable server.
    Readwrite,
    /// Write latency while a snapshot of 1,000,000 records is written.
    Snapshot,
    /// The jetstream backend (needs nats-server): writes against the local
    /// log, the delay from one replica to another, fan-out over two.
    Replicas,
    /// Every mode in turn.
    All,
    #[command(hide = true)]
    FloorUnary {
        #[arg(long)]
        listen: SocketAddr,
        /// Answer bytes encoded once at start instead of a message per call.
        #[arg(long)]
        pre_encoded: bool,
    },
    #[command(hide = true)]
    FloorFanout {
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Settings shared by the modes.
#[derive(Debug, Clone)]
pub(crate) struct Opts {
    /// Seconds-long runs, to check that every mode works.
    pub(crate) smoke: bool,
    /// How long each timed load runs.
    pub(crate) duration: Duration,
    /// Client connections of the unary loads.
    pub(crate) connections: usize,
    /// Calls in flight per connection.
    pub(crate) in_flight: usize,
    /// Subscribers of the fan-out scenarios.
    pub(crate) subscribers: usize,
    /// Connections the subscribers share.
    pub(crate) fanout_connections: usize,
    /// Reports published per second in the fan-out runs.
    pub(crate) rate: f64,
    /// The core the server under test is pinned to, if any.
    pub(crate) server_core: Option<usize>,
}

async fn run(cli: Cli) -> Result<(Vec<Table>, Opts), BenchError> {
    let two_cores = proc::cores() >= 2;
    // Server on core 0 (taskset), load generator on core 1.
    let server_core = two_cores.then_some(0);
    if two_cores && !proc::pin_self(1) {
        eprintln!("warning: could not pin the load generator to core 1");
    }
    let opts = Opts {
        smoke: cli.smoke,
        duration: Duration::from_secs_f64(cli.duration.unwrap_or(if cli.smoke {
            1.0
        } else {
            10.0
        })),
        connections: cli.connections,
        in_flight: cli.in_flight,
        subscribers: cli
            .subscribers
            .unwrap_or(if cli.smoke { 50 } else { 10_000 }),
        fanout_connections: cli
            .fanout_connections
            .unwrap_or(if cli.smoke { 2 } else { 100 }),
        rate: cli.rate.unwrap_or(if cli.smoke { 50.0 } else { 100.0 }),
        server_core,
    };
    let mut tables = Vec::new();
    let modes = match cli.mode {
        // `scale` measures this process's own memory, so it runs first,
        // before the other modes have grown the heap it would reuse.
        Mode::All => vec![
            "scale",
            "unary",
            "clients",
            "fanout",
            "durability",
            "readwrite",
            "snapshot",
            "replicas",
        ],
        Mode::Unary => vec!["unary"],
        Mode::Clients => vec!["clients"],
        Mode::Fanout => vec!["fanout"],
        Mode::Scale => vec!["scale"],
        Mode::Durability => vec!["durability"],
        Mode::Readwrite => vec!["readwrite"],
        Mode::Snapshot => vec!["snapshot"],
        Mode::Replicas => vec!["replicas"],
        Mode::FloorUnary { .. } | Mode::FloorFanout { .. } => unreachable!("handled in main"),
    };
    for mode in modes {
        let produced = match mode {
            "unary" => vec![unary::run(&opts).await?],
            "clients" => vec![clients::run(&opts).await?],
            "readwrite" => vec![readwrite::run(&opts).await?],
            "snapshot" => vec![snapshot::run(&opts).await?],
            "fanout" => vec![fanout::run(&opts).await?],
            "scale" => vec![scale::run(&opts).await?],
            "replicas" => replicas::run(&opts).await?,
            _ => vec![durability::run(&opts).await?],
        };
        for table in produced {
            table.print();
            tables.push(table);
        }
    }
    Ok((tables, opts))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let floor = match &cli.mode {
        Mode::FloorUnary {
            listen,
            pre_encoded: false,
        } => Some(("unary", *listen)),
        Mode::FloorUnary {
            listen,
            pre_encoded: true,
        } => Some(("unary-pre-encoded", *listen)),
        Mode::FloorFanout { listen } => Some(("fanout", *listen)),
        _ => None,
    };
    let result = match floor {
        // Floor servers use every core they are given, as tradewire does.
        Some((kind, listen)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(BenchError::from)
            .and_then(|rt| {
                rt.block_on(async move {
                    match kind {
                        "unary" => floor::serve_unary(listen, false).await,
                        "unary-pre-encoded" => floor::serve_unary(listen, true).await,
                        _ => floor::serve_fanout(listen).await,
                    }
                })
            })
            .map(|()| Vec::new()),
        // The load generator runs on one thread, on its own core.
        None => {
            let json = cli.json.clone();
            let markdown = cli.markdown.clone();
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BenchError::from)
                .and_then(|rt| rt.block_on(run(cli)))
                .and_then(|(tables, opts)| {
                    if let Some(path) = json {
                        let all: Vec<_> = tables.iter().map(Table::to_json).collect();
                        std::fs::write(&path, serde_json::to_string_pretty(&all)?)?;
                    }
                    if let Some(path) = markdown {
                        std::fs::write(&path, report::markdown(&tables, &opts, &command))?;
                    }
                    Ok(tables)
                })
        }
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tradewire-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
