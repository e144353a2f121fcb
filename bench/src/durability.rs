//! `durability`: CreateTradeRecord throughput under each fsync policy at
//! 1, 16 and 64 concurrent writers, each run on a fresh data directory.

use std::collections::HashMap;

use serde_json::json;

use crate::Opts;
use crate::load;
use crate::servers::{self, BenchError};
use crate::table::{Table, Target};

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
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
            let result = load::creates(
                &server,
                connections,
                writers / connections,
                opts.duration,
                None,
                0,
            )
            .await?;
            drop(server);
            let _ = std::fs::remove_dir_all(&dir);
            load::refuse_errors(&format!("fsync {policy} with {writers} writers"), &result)?;
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
    if let (Some(always), Some(never)) = (rates.get(&("always", 64)), rates.get(&("never", 64))) {
        let ratio = always / never;
        table.target(Target::at_least(
            "writes/s with fsync always over fsync never, 64 writers",
            ratio,
            0.5,
            format!("{ratio:.2}: {always:.0} and {never:.0} writes/s"),
        ));
    }
    table.note("vs never: throughput divided by fsync=never's at the same number of writers, in this run (target at 64 writers with always: at least 0.5).");
    Ok(table)
}
