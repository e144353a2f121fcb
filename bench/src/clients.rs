//! `clients`: unary calls from load generators we did not write, against
//! tradewire and the size-matched floor. A tonic-only bench once hid a
//! 40 ms stall per call that every other client saw.
//! - `h2load` (nghttp2, C): throughput and server CPU per call for Get and
//!   a filtered List page, every answer checked (see `h2load.rs`);
//! - Python `grpcio` (the C-core client): sequential Get latency, one call
//!   at a time on one channel (`bench/clients/grpcio_sequential.py`).

use std::process::Command;

use prost::Message;
use serde_json::{Value, json};
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::Opts;
use crate::h2load::{self, H2loadResult, H2loadRun};
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::Table;
use crate::unary;

const GET: &str = "/tradewire.v1.TradeService/GetTradeRecord";
const LIST: &str = "/tradewire.v1.TradeService/ListTradeRecords";
const GRPCIO_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/grpcio_sequential.py");

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

/// One h2load run against `server` and its CPU per call.
async fn h2load_on(
    server: &ServerProcess,
    path: &'static str,
    request: &[u8],
    response_len: usize,
    opts: &Opts,
    streams: usize,
) -> Result<(H2loadResult, f64), BenchError> {
    let spec = H2loadRun {
        addr: server.addr,
        path,
        request: request.to_vec(),
        response_len,
        connections: opts.connections,
        streams,
        duration: opts.duration,
    };
    let cpu_before = server.cpu_micros();
    let result = tokio::task::spawn_blocking(move || h2load::run(&spec)).await??;
    let cpu = server.cpu_micros().saturating_sub(cpu_before) as f64 / result.done as f64;
    Ok((result, cpu))
}

fn grpcio_available() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sequential grpcio Gets: (calls, p50 ms, p99 ms, mean ms).
fn grpcio_sequential(
    server: &ServerProcess,
    request: &[u8],
    calls: usize,
    seconds: f64,
) -> Result<Value, BenchError> {
    let hex: String = request.iter().map(|b| format!("{b:02x}")).collect();
    let output = Command::new("python3")
        .arg(GRPCIO_SCRIPT)
        .arg(server.addr.to_string())
        .arg(GET)
        .arg(hex)
        .arg(calls.to_string())
        .arg(seconds.to_string())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "grpcio client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let result: Value = serde_json::from_slice(&output.stdout)?;
    if result["errors"] != 0 || result["calls"].as_u64().unwrap_or(0) == 0 {
        return Err(format!(
            "grpcio run against {}: {result}; refusing to report",
            server.addr
        )
        .into());
    }
    Ok(result)
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    if !h2load::available() {
        return Err("h2load not found: apt-get install nghttp2-client".into());
    }
    if !grpcio_available() {
        return Err("Python grpcio not found: python3 -m pip install grpcio".into());
    }
    let ours = servers::tradewire(opts.server_core, None, &[])?;
    let floor = servers::floor("floor-unary", opts.server_core)?;
    let ids = unary::seed(&ours, 10_000).await?;
    let id = ids.first().ok_or("no records seeded")?.clone();
    let get_request = pb::GetTradeRecordRequest { id: id.clone() }.encode_to_vec();
    let list_request = list_request().encode_to_vec();
    let floor_sizes = answer_sizes(&floor, &id).await?;
    let our_sizes = answer_sizes(&ours, &id).await?;

    let mut table = Table::new(
        format!(
            "clients: h2load ({} connections x {} streams, {:?} per run) and sequential Python grpcio, 10,000 records stored",
            opts.connections, opts.in_flight, opts.duration
        ),
        &[
            "server",
            "client",
            "rpc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "server cpu us/req",
            "answer bytes",
            "efficiency",
        ],
    );
    let mut floor_peak = 0.0;
    for (rpc, path, request, floor_len, our_len) in [
        (
            "GetTradeRecord",
            GET,
            &get_request,
            floor_sizes.0,
            our_sizes.0,
        ),
        (
            "ListTradeRecords (filtered, 100)",
            LIST,
            &list_request,
            floor_sizes.1,
            our_sizes.1,
        ),
    ] {
        let mut floor_cpu = 0.0;
        for (name, server, response_len) in
            [("floor", &floor, floor_len), ("tradewire", &ours, our_len)]
        {
            let (result, cpu) =
                h2load_on(server, path, request, response_len, opts, opts.in_flight).await?;
            let efficiency = if name == "floor" {
                floor_cpu = cpu;
                if path == GET {
                    floor_peak = result.rate();
                }
                json!("")
            } else {
                json!(floor_cpu / cpu)
            };
            table.row(vec![
                json!(name),
                json!("h2load"),
                json!(rpc),
                json!(result.rate()),
                json!(result.quantile_ms(0.5)),
                json!(result.quantile_ms(0.99)),
                json!(cpu),
                json!(response_len),
                efficiency,
            ]);
        }
    }
    // Latency at 70% of the floor's peak Get rate: h2load cannot pace
    // calls, so (as the tonic table's closed-loop row) the fewest calls in
    // flight that reach the rate, the same for both servers.
    for streams in [1, 2, 4] {
        let mut rows = Vec::new();
        let mut reached = true;
        for (name, server, response_len) in [
            ("floor", &floor, floor_sizes.0),
            ("tradewire", &ours, our_sizes.0),
        ] {
            let (result, cpu) =
                h2load_on(server, GET, &get_request, response_len, opts, streams).await?;
            reached &= result.rate() >= 0.7 * floor_peak;
            rows.push(vec![
                json!(name),
                json!("h2load"),
                json!(format!(
                    "GetTradeRecord, {} in flight, >= 70% of floor peak",
                    streams * opts.connections
                )),
                json!(result.rate()),
                json!(result.quantile_ms(0.5)),
                json!(result.quantile_ms(0.99)),
                json!(cpu),
                json!(response_len),
                json!(""),
            ]);
        }
        if reached {
            for row in rows {
                table.row(row);
            }
            break;
        }
    }
    let calls = if opts.smoke { 200 } else { 5_000 };
    for (name, server, len) in [
        ("floor", &floor, floor_sizes.0),
        ("tradewire", &ours, our_sizes.0),
    ] {
        let cpu_before = server.cpu_micros();
        let seconds = opts.duration.as_secs_f64().max(1.0);
        let result = grpcio_sequential(server, &get_request, calls, seconds)?;
        let done = result["calls"].as_f64().unwrap_or(1.0);
        let cpu = server.cpu_micros().saturating_sub(cpu_before) as f64 / done;
        let mean = result["mean_ms"].as_f64().unwrap_or(0.0);
        table.row(vec![
            json!(name),
            json!(result["client"].as_str().unwrap_or("python grpcio")),
            json!("GetTradeRecord, sequential"),
            json!(if mean > 0.0 { 1000.0 / mean } else { 0.0 }),
            result["p50_ms"].clone(),
            result["p99_ms"].clone(),
            json!(cpu),
            json!(len),
            json!(""),
        ]);
    }
    table.note("efficiency = floor server CPU-us per call / tradewire server CPU-us per call, same generator, same run; the floor answers a prebuilt message of the size in 'answer bytes'.");
    table.note("h2load answers are checked: HTTP 200 and exactly one whole gRPC message each (data bytes = calls x (5 + answer bytes)); grpcio counts gRPC errors itself.");
    Ok(table)
}
