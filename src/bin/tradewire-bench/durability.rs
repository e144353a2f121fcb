//! `durability`: CreateTradeRecord throughput under each fsync policy at
//! 1, 16 and 64 concurrent writers, each run on a fresh data directory.

use std::collections::HashMap;

use serde_json::json;
use tradewire::pb;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::Opts;
use crate::load;
use crate::sample;
use crate::servers::{self, BenchError};
use crate::table::Table;

pub async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let mut table = Table::new(
        format!("durability: CreateTradeRecord, {:?} per run", opts.duration),
        &[
            "fsync", "writers", "writes/s", "p50 ms", "p99 ms", "vs never",
        ],
    );
    let mut rates: HashMap<(&str, usize), f64> = HashMap::new();
    let root = std::env::temp_dir().join(format!("tradewire-bench-{}", std::process::id()));
    for policy in ["never", "interval", "always"] {
        for writers in [1usize, 16, 64] {
            let dir = root.join(format!("{policy}-{writers}"));
            let server = servers::tradewire(opts.server_core, Some((&dir, policy)), &[])?;
            let connections = writers.min(4);
            let mut channels = Vec::new();
            for _ in 0..connections {
                channels.push(server.connect().await?);
            }
            let result = load::run(
                &channels,
                writers / connections,
                opts.duration,
                None,
                |channel, n| async move {
                    let request = pb::CreateTradeRecordRequest {
                        trade_record: Some(sample::record(n)),
                        request_id: String::new(),
                    };
                    TradeServiceClient::new(channel)
                        .create_trade_record(request)
                        .await
                        .map(drop)
                },
            )
            .await;
            drop(server);
            let _ = std::fs::remove_dir_all(&dir);
            if result.errors > 0 {
                return Err(format!(
                    "fsync {policy} with {writers} writers: {} errors (first: {}); refusing to report",
                    result.errors,
                    result.first_error.unwrap_or_default()
                )
                .into());
            }
            rates.insert((policy, writers), result.rate());
            let versus = rates
                .get(&("never", writers))
                .map_or(json!(""), |never| json!(result.rate() / never));
            table.row(vec![
                json!(policy),
                json!(writers),
                json!(result.rate()),
                json!(result.quantile_ms(0.5)),
                json!(result.quantile_ms(0.99)),
                versus,
            ]);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    table.note("vs never: throughput divided by fsync=never's at the same number of writers, in this run (target at 64 writers with always: at least 0.5).");
    Ok(table)
}
