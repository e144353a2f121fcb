//! `readwrite`: does a read wait for the writers' fsyncs? Gets paced at a
//! fixed rate on one connection, first alone, then while 64 writers
//! (4 connections x 16) create records as fast as they can, on a durable
//! server. The target: Get p99 with the writers under `--fsync always` at
//! most 1.5x Get p99 without them. `--fsync never` is the reference: its
//! writers cost the same CPU without any fsync to wait for.

use std::sync::Arc;

use serde_json::json;
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::Opts;
use crate::load::{self, LoadResult};
use crate::sample;
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::Table;
use crate::unary;

const WRITERS: usize = 64;

async fn reads(
    server: &ServerProcess,
    ids: &Arc<Vec<String>>,
    opts: &Opts,
    rate: f64,
) -> Result<LoadResult, BenchError> {
    let channels = vec![server.connect().await?];
    let ids = Arc::clone(ids);
    Ok(load::run(
        &channels,
        8,
        opts.duration,
        Some(rate),
        move |channel, n| {
            let id = ids[(n as usize * 7919) % ids.len()].clone();
            async move {
                TradeServiceClient::new(channel)
                    .get_trade_record(pb::GetTradeRecordRequest { id })
                    .await
                    .map(drop)
            }
        },
    )
    .await)
}

async fn writes(server: &ServerProcess, opts: &Opts) -> Result<LoadResult, BenchError> {
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(server.connect().await?);
    }
    Ok(load::run(
        &channels,
        WRITERS / 4,
        opts.duration,
        None,
        |channel, n| async move {
            let request = pb::CreateTradeRecordRequest {
                trade_record: Some(sample::record(1_000_000 + n)),
                request_id: String::new(),
            };
            TradeServiceClient::new(channel)
                .create_trade_record(request)
                .await
                .map(drop)
        },
    )
    .await)
}

fn refuse_errors(what: &str, result: &LoadResult) -> Result<(), BenchError> {
    if result.errors > 0 {
        return Err(format!(
            "{what}: {} errors (first: {}); refusing to report",
            result.errors,
            result.first_error.as_deref().unwrap_or("?")
        )
        .into());
    }
    Ok(())
}

pub async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let rate = if opts.smoke { 200.0 } else { 1000.0 };
    let mut table = Table::new(
        format!(
            "readwrite: Get paced at {rate}/s, alone and beside {WRITERS} writers, {:?} per run, durable server",
            opts.duration
        ),
        &[
            "fsync",
            "writers",
            "gets/s",
            "get p50 ms",
            "get p99 ms",
            "get p99.9 ms",
            "writes/s",
            "p99 vs alone",
        ],
    );
    let root = std::env::temp_dir().join(format!("tradewire-bench-rw-{}", std::process::id()));
    for policy in ["always", "never"] {
        let dir = root.join(policy);
        let server = servers::tradewire(opts.server_core, Some((&dir, policy)), &[])?;
        let ids = Arc::new(unary::seed(&server, if opts.smoke { 1_000 } else { 10_000 }).await?);
        let alone = reads(&server, &ids, opts, rate).await?;
        refuse_errors("reads alone", &alone)?;
        let (beside, written) =
            tokio::join!(reads(&server, &ids, opts, rate), writes(&server, opts));
        let (beside, written) = (beside?, written?);
        refuse_errors("reads beside writers", &beside)?;
        refuse_errors("writers", &written)?;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        let alone_p99 = alone.quantile_ms(0.99);
        for (writers, result, writes) in [(0, &alone, None), (WRITERS, &beside, Some(&written))] {
            table.row(vec![
                json!(policy),
                json!(writers),
                json!(result.rate()),
                json!(result.quantile_ms(0.5)),
                json!(result.quantile_ms(0.99)),
                json!(result.quantile_ms(0.999)),
                writes.map_or(json!(""), |w| json!(w.rate())),
                json!(result.quantile_ms(0.99) / alone_p99),
            ]);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    table.note("p99 vs alone: Get p99 beside the writers / Get p99 alone, same server, same run (target with fsync always: at most 1.5).");
    Ok(table)
}
