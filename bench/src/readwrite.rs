//! `readwrite`: does a read wait for the writers' fsyncs? Gets paced at a
//! fixed rate on one connection, first alone, then beside 64 writers
//! (4 connections x 16) creating records, on a durable server: once as
//! fast as the writers can go (which saturates the server's core, so the
//! reads wait for CPU), once paced at a rate that leaves the core room, so
//! that what remains is waiting for the store. The target: Get p99 beside
//! the writers under `--fsync always` at most 1.5x Get p99 alone. `--fsync
//! never` is the reference: its writers cost the same CPU without any
//! fsync to wait for.

use std::sync::Arc;

use serde_json::json;
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::Opts;
use crate::load::{self, LoadResult};
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::{Table, Target};
use crate::unary;

const WRITERS: usize = 64;

/// Gets paced at `rate` on one connection, from a thread and runtime of
/// their own: on the load generator's runtime they would queue behind the
/// writers' client work, and their p99 would measure the generator.
async fn reads(
    server: &ServerProcess,
    ids: &Arc<Vec<String>>,
    opts: &Opts,
    rate: f64,
) -> Result<LoadResult, BenchError> {
    let addr = server.addr;
    let ids = Arc::clone(ids);
    let duration = opts.duration;
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-reads".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BenchError::from)
                .and_then(|runtime| runtime.block_on(paced_gets(addr, ids, duration, rate)));
            let _ = done.send(outcome);
        })?;
    result.await?
}

async fn paced_gets(
    addr: std::net::SocketAddr,
    ids: Arc<Vec<String>>,
    duration: std::time::Duration,
    rate: f64,
) -> Result<LoadResult, BenchError> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(
        load::run(&[channel], 8, duration, Some(rate), move |channel, n| {
            let id = ids[(n as usize * 7919) % ids.len()].clone();
            async move {
                TradeServiceClient::new(channel)
                    .get_trade_record(pb::GetTradeRecordRequest { id })
                    .await
                    .map(drop)
            }
        })
        .await,
    )
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let rate = if opts.smoke { 200.0 } else { 1000.0 };
    let write_pace = if opts.smoke { 500.0 } else { 5000.0 };
    let mut table = Table::new(
        format!(
            "readwrite: Get paced at {rate}/s, alone and beside {WRITERS} writers, {:?} per run, durable server",
            opts.duration
        ),
        &[
            "fsync",
            "writers",
            "writers' pace",
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
        load::refuse_errors("reads alone", &alone)?;
        let alone_p99 = alone.quantile_ms(0.99);
        let mut rows = vec![(0, "none".to_string(), alone, None)];
        for pace in [None, Some(write_pace)] {
            let (beside, written) = tokio::join!(
                reads(&server, &ids, opts, rate),
                load::creates(&server, 4, WRITERS / 4, opts.duration, pace, 1_000_000)
            );
            let (beside, written) = (beside?, written?);
            load::refuse_errors("reads beside writers", &beside)?;
            load::refuse_errors("writers", &written)?;
            let label = pace.map_or("as fast as they can".to_string(), |p| format!("{p}/s"));
            rows.push((WRITERS, label, beside, Some(written)));
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        if policy == "always"
            && let Some((_, _, paced, _)) = rows.last()
        {
            let ratio = paced.quantile_ms(0.99) / alone_p99;
            table.target(Target::at_most(
                format!("Get p99 beside {WRITERS} writers paced at {write_pace}/s, fsync always, over Get p99 alone"),
                ratio,
                1.5,
                format!(
                    "{ratio:.2}: {:.3} ms beside, {alone_p99:.3} ms alone",
                    paced.quantile_ms(0.99)
                ),
            ));
        }
        for (writers, pace, result, written) in &rows {
            table.row(vec![
                json!(policy),
                json!(writers),
                json!(pace),
                json!(result.rate()),
                json!(result.quantile_ms(0.5)),
                json!(result.quantile_ms(0.99)),
                json!(result.quantile_ms(0.999)),
                written.as_ref().map_or(json!(""), |w| json!(w.rate())),
                json!(result.quantile_ms(0.99) / alone_p99),
            ]);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    table.note("p99 vs alone: Get p99 beside the writers / Get p99 alone, same server, same run (target with fsync always: at most 1.5).");
    table.note("as fast as they can: the server's one core is saturated by the writes, so reads queue for CPU under either policy; paced: the core has room.");
    Ok(table)
}
