//! `unary`: GetTradeRecord, a filtered ListTradeRecords page of 100 and
//! CreateTradeRecord against tradewire and against the floor server.

use std::sync::Arc;

use serde_json::json;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::Opts;
use crate::load::{self, LoadResult};
use crate::sample;
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::{Table, Target};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rpc {
    /// Get, striding over every stored record.
    Get,
    /// Get of one record every call, as h2load asks (one request body).
    GetOne,
    List,
    /// The List page, compressed both ways.
    ListCompressed(CompressionEncoding),
    Create,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Get => "GetTradeRecord",
            Rpc::GetOne => "GetTradeRecord, one record (as h2load asks)",
            Rpc::List => "ListTradeRecords (filtered, 100)",
            Rpc::ListCompressed(CompressionEncoding::Gzip) => {
                "ListTradeRecords (filtered, 100), gzip"
            }
            Rpc::ListCompressed(_) => "ListTradeRecords (filtered, 100), zstd",
            Rpc::Create => "CreateTradeRecord",
        }
    }
}

pub(crate) async fn seed(server: &ServerProcess, count: u64) -> Result<Vec<String>, BenchError> {
    let mut client = TradeServiceClient::new(server.connect().await?);
    let mut ids = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let requests = chunk
            .iter()
            .map(|i| pb::CreateTradeRecordRequest {
                trade_record: Some(sample::record(*i)),
                request_id: String::new(),
            })
            .collect();
        let response = client
            .batch_create_trade_records(pb::BatchCreateTradeRecordsRequest {
                requests,
                request_id: String::new(),
            })
            .await?;
        ids.extend(
            response
                .into_inner()
                .trade_records
                .into_iter()
                .map(|r| r.id),
        );
    }
    Ok(ids)
}

async fn drive(
    server: &ServerProcess,
    channels: &[Channel],
    opts: &Opts,
    rpc: Rpc,
    ids: Arc<Vec<String>>,
    rate: Option<f64>,
) -> Result<(LoadResult, f64), BenchError> {
    let cpu_before = server.cpu_micros();
    let result = load::run(
        channels,
        opts.in_flight,
        opts.duration,
        rate,
        move |channel, n| {
            let ids = Arc::clone(&ids);
            async move {
                let mut client = match rpc {
                    Rpc::ListCompressed(encoding) => TradeServiceClient::new(channel)
                        .send_compressed(encoding)
                        .accept_compressed(encoding),
                    _ => TradeServiceClient::new(channel),
                };
                match rpc {
                    Rpc::Get | Rpc::GetOne => {
                        let id = if rpc == Rpc::GetOne {
                            ids[0].clone()
                        } else {
                            ids[(n as usize * 7919) % ids.len()].clone()
                        };
                        client
                            .get_trade_record(pb::GetTradeRecordRequest { id })
                            .await
                            .map(drop)
                    }
                    Rpc::List | Rpc::ListCompressed(_) => {
                        let filter = pb::TradeFilter {
                            exporter: "IRN".into(),
                            importer: "RUS".into(),
                            ..Default::default()
                        };
                        let request = pb::ListTradeRecordsRequest {
                            page_size: 100,
                            page_token: String::new(),
                            filter: Some(filter),
                        };
                        let page = client.list_trade_records(request).await?.into_inner();
                        if page.trade_records.len() == 100 {
                            Ok(())
                        } else {
                            Err(tonic::Status::internal(format!(
                                "page of {}",
                                page.trade_records.len()
                            )))
                        }
                    }
                    Rpc::Create => {
                        let request = pb::CreateTradeRecordRequest {
                            trade_record: Some(sample::record(n)),
                            request_id: String::new(),
                        };
                        client.create_trade_record(request).await.map(drop)
                    }
                }
            }
        },
    )
    .await;
    let cpu = server.cpu_micros().saturating_sub(cpu_before);
    if result.errors > 0 {
        return Err(format!(
            "{} against {}: {} errors (first: {}); refusing to report this run",
            rpc.name(),
            server.addr,
            result.errors,
            result.first_error.as_deref().unwrap_or("?")
        )
        .into());
    }
    let cpu_per_request = cpu as f64 / result.requests.max(1) as f64;
    Ok((result, cpu_per_request))
}

async fn channels(server: &ServerProcess, n: usize) -> Result<Vec<Channel>, BenchError> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(server.connect().await?);
    }
    Ok(out)
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let ours = servers::tradewire(opts.server_core, None, &[])?;
    let floor = servers::floor("floor-unary", opts.server_core)?;
    // 10,000 records hold 200 of the hot pair, so a filtered page is full.
    let seeded = 10_000;
    let ids = Arc::new(seed(&ours, seeded).await?);
    let ours_channels = channels(&ours, opts.connections).await?;
    let floor_channels = channels(&floor, opts.connections).await?;

    let mut table = Table::new(
        format!(
            "unary: {} connections x {} in flight, {:?} per run, {seeded} records stored",
            opts.connections, opts.in_flight, opts.duration
        ),
        &[
            "server",
            "rpc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "server cpu us/req",
            "server rss MiB",
            "efficiency",
        ],
    );
    let mut floor_get_rate = 0.0;
    // Create last: it grows the store the other runs read.
    for rpc in [Rpc::Get, Rpc::GetOne, Rpc::List, Rpc::Create] {
        if rpc == Rpc::Create {
            let target = 0.7 * floor_get_rate;
            let servers = [
                ("floor", &floor, &floor_channels[..]),
                ("tradewire", &ours, &ours_channels[..]),
            ];
            paced_rows(&mut table, servers, opts, &ids, target).await?;
        }
        // The floor first, then tradewire, back to back on the same core.
        let (floor_result, floor_cpu) =
            drive(&floor, &floor_channels, opts, rpc, Arc::clone(&ids), None).await?;
        let (result, cpu) = drive(&ours, &ours_channels, opts, rpc, Arc::clone(&ids), None).await?;
        if rpc == Rpc::Get {
            floor_get_rate = floor_result.rate();
        }
        for (name, r, c, server) in [
            ("floor", &floor_result, floor_cpu, &floor),
            ("tradewire", &result, cpu, &ours),
        ] {
            let efficiency = if name == "tradewire" {
                json!(floor_cpu / cpu)
            } else {
                json!("")
            };
            table.row(vec![
                json!(name),
                json!(rpc.name()),
                json!(r.rate()),
                json!(r.quantile_ms(0.5)),
                json!(r.quantile_ms(0.99)),
                json!(r.quantile_ms(0.999)),
                json!(c),
                json!(server.rss_bytes() as f64 / 1_048_576.0),
                efficiency,
            ]);
        }
    }
    // Compression is the client's choice; the floor serves none, so these
    // rows compare with tradewire's own plain List above.
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let rpc = Rpc::ListCompressed(encoding);
        let (result, cpu) = drive(&ours, &ours_channels, opts, rpc, Arc::clone(&ids), None).await?;
        table.row(vec![
            json!("tradewire"),
            json!(rpc.name()),
            json!(result.rate()),
            json!(result.quantile_ms(0.5)),
            json!(result.quantile_ms(0.99)),
            json!(result.quantile_ms(0.999)),
            json!(cpu),
            json!(ours.rss_bytes() as f64 / 1_048_576.0),
            json!(""),
        ]);
    }
    table.note("efficiency = floor server CPU-us per request / tradewire server CPU-us per request, measured in this run.");
    table.note("GetTradeRecord strides over all stored records; the one-record row asks for the same record every call, as h2load does (it sends one request body), so the two generators can be compared on the same question.");
    table.note("the gzip and zstd rows: the same List page with the client sending and accepting that encoding; compare with the plain List row of tradewire.");
    Ok(table)
}

/// Latency at 70% of the floor's peak Get rate, two ways: on an even
/// schedule (open loop, where a single-core load generator adds its own
/// queueing), and closed loop at the fewest calls in flight at which the
/// floor reaches the rate, the same concurrency for both servers. Both
/// rows stay in whether or not they meet the target.
async fn paced_rows(
    table: &mut Table,
    servers: [(&str, &ServerProcess, &[Channel]); 2],
    opts: &Opts,
    ids: &Arc<Vec<String>>,
    target: f64,
) -> Result<(), BenchError> {
    let paced_opts = Opts {
        in_flight: opts.in_flight * 4,
        ..opts.clone()
    };
    let (floor_server, floor_channels) = (servers[0].1, servers[0].2);
    let mut closed_in_flight = 16;
    for in_flight in [1, 2, 4, 8, 16] {
        let closed_opts = Opts {
            in_flight,
            ..opts.clone()
        };
        let (closed, _) = drive(
            floor_server,
            floor_channels,
            &closed_opts,
            Rpc::Get,
            Arc::clone(ids),
            None,
        )
        .await?;
        if closed.rate() >= target {
            closed_in_flight = in_flight;
            break;
        }
    }
    let closed_opts = Opts {
        in_flight: closed_in_flight,
        ..opts.clone()
    };
    for (name, server, channels) in servers {
        let row = |label: String, r: &LoadResult, cpu: f64| {
            vec![
                json!(name),
                json!(label),
                json!(r.rate()),
                json!(r.quantile_ms(0.5)),
                json!(r.quantile_ms(0.99)),
                json!(r.quantile_ms(0.999)),
                json!(cpu),
                json!(server.rss_bytes() as f64 / 1_048_576.0),
                json!(""),
            ]
        };
        let (paced, cpu) = drive(
            server,
            channels,
            &paced_opts,
            Rpc::Get,
            Arc::clone(ids),
            Some(target),
        )
        .await?;
        table.row(row(
            format!("GetTradeRecord paced at 70% of floor peak ({target:.0}/s)"),
            &paced,
            cpu,
        ));
        let (closed, cpu) = drive(
            server,
            channels,
            &closed_opts,
            Rpc::Get,
            Arc::clone(ids),
            None,
        )
        .await?;
        let in_flight = closed_in_flight * channels.len();
        table.row(row(
            format!("GetTradeRecord closed loop, {in_flight} in flight (where the floor reaches 70% of its peak)"),
            &closed,
            cpu,
        ));
        if name == "tradewire" {
            for (how, r) in [("paced", &paced), ("closed loop", &closed)] {
                let p99 = r.quantile_ms(0.99);
                table.target(Target::at_most(
                    format!("Get p99 ms at 70% of the floor's peak, {how}, tonic generator"),
                    p99,
                    2.0,
                    format!("{p99:.3} ms at {:.0} calls/s ({target:.0} asked)", r.rate()),
                ));
            }
        }
    }
    Ok(())
}
