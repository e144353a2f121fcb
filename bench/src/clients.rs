//! `clients`: unary calls from load generators we did not write, at every
//! client shape, against tradewire and two tonic floors. A tonic-only
//! bench once hid a 40 ms stall per call that every other client saw, and
//! a win at 16 calls in flight says nothing about one.
//! - `h2load` (nghttp2, C) at 1×1, 4×1, 10×10 and 4×16 (connections × calls
//!   in flight each), Get at every shape and a filtered List page at 4×16,
//!   every answer checked (see `h2load.rs`);
//! - Python `grpcio` (the C-core client): sequential Gets on one channel
//!   (`bench/clients/grpcio_sequential.py`).
//!
//! Three servers answer each: tradewire, stock tonic (`floor-unary`: a
//! generated service that builds and encodes its answer per call) and
//! pre-encoded tonic (`floor-unary --pre-encoded`: bytes encoded once, the
//! least a tonic service can spend). Every server sees the same shape and
//! the same concurrency. Rounds alternate the servers' order, and a ratio
//! is quoted as the median of its rounds' ratios, with their range.

use std::process::Command;

use prost::Message;
use serde_json::{Value, json};
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::Opts;
use crate::h2load::{self, H2loadRun};
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::{Table, Target};
use crate::unary;

const GET: &str = "/tradewire.v1.TradeService/GetTradeRecord";
const LIST: &str = "/tradewire.v1.TradeService/ListTradeRecords";
const GRPCIO_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/grpcio_sequential.py");

/// Connections × calls in flight on each: the shapes callers have.
pub(crate) const SHAPES: [(usize, usize); 4] = [(1, 1), (4, 1), (10, 10), (4, 16)];

/// The servers, in the order of the first round.
const STOCK: usize = 0;
const PRE_ENCODED: usize = 1;
const TRADEWIRE: usize = 2;
const NAMES: [&str; 3] = ["stock tonic", "pre-encoded tonic", "tradewire"];

fn list_request() -> pb::ListTradeRecordsRequest {
    pb::ListTradeRecordsRequest {
        page_size: 100,
        page_token: String::new(),
        filter: Some(pb::TradeFilter {
            exporter: "IRN".into(),
            importer: "RUS".into(),
            ..Default::default()
        }),
    }
}

/// The encoded sizes of a server's Get and List answers.
async fn answer_sizes(server: &ServerProcess, id: &str) -> Result<(usize, usize), BenchError> {
    let mut client = TradeServiceClient::new(server.connect().await?);
    let get = client
        .get_trade_record(pb::GetTradeRecordRequest { id: id.into() })
        .await?
        .into_inner();
    let list = client
        .list_trade_records(list_request())
        .await?
        .into_inner();
    Ok((get.encoded_len(), list.encoded_len()))
}

fn grpcio_available() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One server's figures in one round.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
}

/// One case (a generator at a shape, for one RPC): each server's samples,
/// one per round.
struct Case {
    client: &'static str,
    shape: String,
    rpc: &'static str,
    samples: [Vec<Sample>; 3],
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Case {
    fn median(&self, server: usize, field: fn(&Sample) -> f64) -> f64 {
        median(self.samples[server].iter().map(field).collect())
    }

    /// `floor`'s CPU per call over `server`'s, round by round: the median
    /// and the range.
    fn ratio(&self, floor: usize, server: usize) -> (f64, f64, f64) {
        let ratios: Vec<f64> = self.samples[floor]
            .iter()
            .zip(&self.samples[server])
            .map(|(f, s)| f.cpu_us / s.cpu_us.max(1e-9))
            .collect();
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        (median(ratios), low, high)
    }
}

/// Sequential grpcio Gets against `server`, checked: every call answered
/// with a message of `response_len` bytes.
fn grpcio_sequential(
    server: &ServerProcess,
    request: &[u8],
    response_len: usize,
    calls: usize,
    seconds: f64,
) -> Result<Sample, BenchError> {
    let hex: String = request.iter().map(|b| format!("{b:02x}")).collect();
    let cpu_before = server.cpu_micros();
    let output = Command::new("python3")
        .arg(GRPCIO_SCRIPT)
        .arg(server.addr.to_string())
        .arg(GET)
        .arg(hex)
        .arg(calls.to_string())
        .arg(seconds.to_string())
        .output()?;
    let cpu = server.cpu_micros().saturating_sub(cpu_before);
    if !output.status.success() {
        return Err(format!(
            "grpcio client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let result: Value = serde_json::from_slice(&output.stdout)?;
    let done = result["calls"].as_u64().unwrap_or(0);
    if result["errors"] != 0 || done == 0 || result["response_bytes"] != response_len {
        return Err(format!(
            "grpcio run against {}: {result}, expected {response_len}-byte answers; refusing to report",
            server.addr
        )
        .into());
    }
    let mean = result["mean_ms"].as_f64().unwrap_or(0.0);
    Ok(Sample {
        rate: if mean > 0.0 { 1000.0 / mean } else { 0.0 },
        p50_ms: result["p50_ms"].as_f64().unwrap_or(0.0),
        p99_ms: result["p99_ms"].as_f64().unwrap_or(0.0),
        // The script's one warm-up call is served too.
        cpu_us: cpu as f64 / (done + 1) as f64,
    })
}

/// One h2load run of `path` against `server` at a shape.
async fn h2load_sample(
    server: &ServerProcess,
    path: &'static str,
    request: &[u8],
    response_len: usize,
    (connections, streams): (usize, usize),
    opts: &Opts,
) -> Result<Sample, BenchError> {
    let spec = H2loadRun {
        addr: server.addr,
        path,
        request: request.to_vec(),
        response_len,
        connections,
        streams,
        duration: opts.duration,
        server_pid: Some(server.pid()),
    };
    let result = tokio::task::spawn_blocking(move || h2load::run(&spec)).await??;
    Ok(Sample {
        rate: result.rate(),
        p50_ms: result.quantile_ms(0.5),
        p99_ms: result.quantile_ms(0.99),
        cpu_us: result.server_cpu_per_call(),
    })
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    if !h2load::available() {
        return Err("h2load not found: apt-get install nghttp2-client".into());
    }
    if !grpcio_available() {
        return Err("Python grpcio not found: python3 -m pip install grpcio".into());
    }
    let ours = servers::tradewire(opts.server_core, None, &[])?;
    let stock = servers::floor("floor-unary", opts.server_core)?;
    let pre_encoded = servers::floor_with("floor-unary", opts.server_core, &["--pre-encoded"])?;
    let ids = unary::seed(&ours, 10_000).await?;
    let id = ids.first().ok_or("no records seeded")?.clone();
    let get_request = pb::GetTradeRecordRequest { id: id.clone() }.encode_to_vec();
    let list_request = list_request().encode_to_vec();
    let processes = [&stock, &pre_encoded, &ours];
    let mut sizes = Vec::new();
    for server in processes {
        sizes.push(answer_sizes(server, &id).await?);
    }

    let mut cases: Vec<Case> = SHAPES
        .iter()
        .map(|(c, m)| Case {
            client: "h2load",
            shape: format!("{c}x{m}"),
            rpc: "GetTradeRecord",
            samples: Default::default(),
        })
        .collect();
    cases.push(Case {
        client: "h2load",
        shape: "4x16".into(),
        rpc: "ListTradeRecords (filtered, 100)",
        samples: Default::default(),
    });
    cases.push(Case {
        client: "python grpcio",
        shape: "1x1, sequential".into(),
        rpc: "GetTradeRecord",
        samples: Default::default(),
    });
    let rounds = if opts.smoke { 1 } else { 3 };
    let calls = if opts.smoke { 200 } else { 20_000 };
    for round in 0..rounds {
        for (index, case) in cases.iter_mut().enumerate() {
            for turn in 0..3 {
                let server = (round + turn) % 3;
                let process = processes[server];
                let sample = if index < SHAPES.len() {
                    let (get_len, _) = sizes[server];
                    let shape = SHAPES[index];
                    h2load_sample(process, GET, &get_request, get_len, shape, opts).await?
                } else if index == SHAPES.len() {
                    let (_, list_len) = sizes[server];
                    let shape = (4, 16);
                    h2load_sample(process, LIST, &list_request, list_len, shape, opts).await?
                } else {
                    let seconds = opts.duration.as_secs_f64().max(1.0);
                    grpcio_sequential(process, &get_request, sizes[server].0, calls, seconds)?
                };
                case.samples[server].push(sample);
            }
        }
    }

    let mut table = Table::new(
        format!(
            "clients: h2load at every shape and sequential Python grpcio; tradewire, stock tonic and pre-encoded tonic; {rounds} rounds alternating, {:?} per run, 10,000 records stored",
            opts.duration
        ),
        &[
            "server",
            "client",
            "conns x in flight",
            "rpc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "server cpu us/call",
            "answer bytes",
            "vs stock tonic",
            "range",
            "vs pre-encoded",
        ],
    );
    for case in &cases {
        for server in [STOCK, PRE_ENCODED, TRADEWIRE] {
            let (vs_stock, vs_pre, range) = if server == STOCK {
                (json!(""), json!(""), json!(""))
            } else {
                let (ratio, low, high) = case.ratio(STOCK, server);
                let vs_pre = if server == TRADEWIRE {
                    json!(case.ratio(PRE_ENCODED, server).0)
                } else {
                    json!("")
                };
                (json!(ratio), vs_pre, json!(format!("{low:.2}-{high:.2}")))
            };
            let bytes = if case.rpc.starts_with("List") {
                sizes[server].1
            } else {
                sizes[server].0
            };
            table.row(vec![
                json!(NAMES[server]),
                json!(case.client),
                json!(case.shape),
                json!(case.rpc),
                json!(case.median(server, |s| s.rate)),
                json!(case.median(server, |s| s.p50_ms)),
                json!(case.median(server, |s| s.p99_ms)),
                json!(case.median(server, |s| s.cpu_us)),
                json!(bytes),
                vs_stock,
                range,
                vs_pre,
            ]);
        }
        if case.rpc == "GetTradeRecord" {
            let (ratio, low, high) = case.ratio(STOCK, TRADEWIRE);
            table.target(Target::at_least(
                format!(
                    "Get server CPU at most stock tonic's, {} {}",
                    case.client, case.shape
                ),
                ratio,
                1.0,
                format!(
                    "efficiency {ratio:.3} (rounds {low:.3}-{high:.3}); tradewire {:.1} us, stock {:.1} us, pre-encoded {:.1} us a call",
                    case.median(TRADEWIRE, |s| s.cpu_us),
                    case.median(STOCK, |s| s.cpu_us),
                    case.median(PRE_ENCODED, |s| s.cpu_us)
                ),
            ));
        }
    }
    table.note("vs stock tonic, vs pre-encoded: the floor's server CPU per call over this server's, in each round; the median of the rounds, and (range) the lowest and highest round. Above 1: cheaper than the floor.");
    table.note("req/s, p50, p99 and CPU: the median of the rounds. Server CPU is read from /proc around the measured run alone (h2load's one-second warm-up, which finds the call count, is not charged).");
    table.note("h2load answers are checked: HTTP 200 and exactly one whole gRPC message each (data bytes = calls x (5 + answer bytes)); grpcio's answers are counted and their size checked by the script.");
    Ok(table)
}
