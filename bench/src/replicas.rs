//! `replicas`: the `jetstream` backend. Write throughput on one NATS node
//! and on a cluster of three against the local write-ahead log (fsync
//! always), at 1 and 64 writers; the delay from a write on replica A until
//! a subscriber of replica B receives it; fan-out from one replica against
//! two.

use serde_json::json;
use std::collections::HashMap;

use crate::fanout::measure_across;
use crate::servers::{self, BenchError};
use crate::table::Table;
use crate::{Opts, load, nats};

pub(crate) async fn run(opts: &Opts) -> Result<Vec<Table>, BenchError> {
    Ok(vec![writes(opts).await?, spread(opts).await?])
}

async fn writes(opts: &Opts) -> Result<Table, BenchError> {
    let mut table = Table::new(
        format!(
            "replicas: CreateTradeRecord on one replica, {:?} per run",
            opts.duration
        ),
        &["log", "writers", "writes/s", "p50 ms", "p99 ms", "vs local"],
    );
    let mut local_rates = HashMap::new();
    let root =
        std::env::temp_dir().join(format!("tradewire-bench-replicas-{}", std::process::id()));
    for log in [
        "local, fsync always",
        "jetstream, 1 node",
        "jetstream, 3 nodes",
    ] {
        for writers in [1usize, 64] {
            let dir = root.join(format!("{writers}"));
            // Kept alive until the server under test is gone.
            let (_nats, server) = match log {
                "local, fsync always" => (
                    Vec::new(),
                    servers::tradewire(opts.server_core, Some((&dir, "always")), &[])?,
                ),
                "jetstream, 1 node" => {
                    let node = nats::single()?;
                    let server =
                        servers::replica(opts.server_core, std::slice::from_ref(&node.url), &[])?;
                    (vec![node], server)
                }
                _ => {
                    let nodes = nats::cluster()?;
                    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
                    // It waits for the new cluster to elect its JetStream leader.
                    let server =
                        servers::replica(opts.server_core, &urls, &["--nats-replicas", "3"])?;
                    (nodes, server)
                }
            };
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
            load::refuse_errors(&format!("{log} with {writers} writers"), &result)?;
            if log.starts_with("local") {
                local_rates.insert(writers, result.rate());
            }
            table.row(vec![
                json!(log),
                json!(writers),
                json!(result.rate()),
                json!(result.quantile_ms(0.5)),
                json!(result.quantile_ms(0.99)),
                local_rates
                    .get(&writers)
                    .map_or(json!(""), |local| json!(result.rate() / local)),
            ]);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    table.note("jetstream: the replica publishes each group commit to the TRADEWIRE_LOG stream (file storage, 1 or 3 copies) and answers once JetStream acknowledged it and it applied it; nats-server runs on the same machine, unpinned.");
    table.note("vs local: throughput divided by the local log's (fsync always) at the same number of writers, in this run.");
    Ok(table)
}

async fn spread(opts: &Opts) -> Result<Table, BenchError> {
    let mut table = Table::new(
        format!(
            "replicas: delivery across replicas (jetstream, 1 node), {:?} per run",
            opts.duration
        ),
        &[
            "scenario",
            "subscribers",
            "published",
            "deliveries/s",
            "lost",
            "p50 ms",
            "p99 ms",
            "replicas' cpu us/delivery",
            "replicas busy",
        ],
    );
    let node = nats::single()?;
    let urls = [node.url.clone()];
    let limits = ["--max-subscribers", "1000000", "--max-in-flight", "1000000"];
    let a = servers::replica(opts.server_core, &urls, &limits)?;
    // B on the other core, where the load generator also runs.
    let b = servers::replica(opts.server_core.map(|c| c + 1), &urls, &limits)?;
    let quiet = Opts {
        subscribers: 1,
        fanout_connections: 1,
        rate: 50.0,
        ..opts.clone()
    };
    let mut rows = vec![
        ("write on A, subscriber on A", &a, vec![&a], quiet.clone()),
        ("write on A, subscriber on B", &a, vec![&b], quiet),
    ];
    for rate in [10.0, opts.rate] {
        let load = Opts {
            rate,
            ..opts.clone()
        };
        rows.push(("fan-out from one replica", &a, vec![&a], load.clone()));
        rows.push(("fan-out from two replicas", &a, vec![&a, &b], load));
    }
    for (scenario, publisher, subscribed, run_opts) in rows {
        let r = measure_across(publisher, &subscribed, &run_opts).await?;
        let lost = r.expected.saturating_sub(r.deliveries);
        if lost > 0 || r.duplicated > 0 {
            return Err(format!(
                "{scenario}: lost {lost}, duplicated {}; refusing to report",
                r.duplicated
            )
            .into());
        }
        table.row(vec![
            json!(format!("{scenario}, {} reports/s", run_opts.rate)),
            json!(run_opts.subscribers),
            json!(r.published),
            json!(r.deliveries_per_sec),
            json!(lost),
            json!(r.latency.value_at_quantile(0.5) as f64 / 1000.0),
            json!(r.latency.value_at_quantile(0.99) as f64 / 1000.0),
            json!(r.cpu_per_delivery),
            json!(r.server_busy),
        ]);
    }
    table.note("latency: from the report's publish time (A's clock, when A drafted it) to its receipt by a subscriber; same machine, so one clock.");
    table.note("A subscriber on B receives a write once JetStream stored it and B's consumer pulled and applied it: the difference between the first two rows is the replication delay.");
    table.note("fan-out from two replicas: the subscribers and their connections split evenly over A and B; replicas busy is the two processes' CPU together, in cores.");
    Ok(table)
}
