//! The Prometheus endpoint: `metrics-exporter-prometheus` as the global
//! recorder of the `metrics` facade, serving its text format over HTTP on
//! `--metrics-listen`, and a task that samples the process (memory, CPU,
//! open files) into gauges every few seconds.
//!
//! The metrics themselves are emitted where things happen: the call layer
//! (`grpc_server_*`), the hub (subscribers, deliveries, catch-ups,
//! heartbeats), the store (items, log bytes, group size, fsync and snapshot
//! times) and the security log (refusals by limit). The recorder is
//! installed before the store opens, and every series is registered at
//! zero then (each layer names its own), so that the first scrape shows
//! them all, and the demo's writes and a recovery are counted.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::methods;
use super::security_log::SecurityEvent;
use crate::store::StoreConfig;

/// Bucket bounds, in seconds, of the latency histograms.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Bucket bounds of the group-size histogram (writes per commit group).
const GROUP_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0];

/// Installs the recorder and its HTTP listener, and registers every series
/// of a server with this store at zero; false (with a log line) when that
/// fails, for example when a recorder is already installed in this
/// process.
pub(super) fn install(addr: SocketAddr, store: &StoreConfig) -> bool {
    let builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("tradewire_commit_group_size".into()),
                &GROUP_BUCKETS,
            )
        });
    match builder.and_then(PrometheusBuilder::install) {
        Ok(()) => {
            tracing::info!(%addr, "serving Prometheus metrics on /metrics");
            register_calls();
            crate::hub::register_metrics();
            crate::store::register_metrics(store);
            tokio::spawn(sample_process());
            true
        }
        Err(error) => {
            tracing::error!(%error, %addr, "metrics are off");
            false
        }
    }
}

/// The call layer's series for every method of the table (each code but
/// OK appears with its first call), and the security log's for every
/// kind of event.
fn register_calls() {
    metrics::describe_counter!("grpc_server_started_total", "Calls started, by method.");
    metrics::describe_counter!(
        "grpc_server_msg_received_total",
        "Request messages received."
    );
    metrics::describe_counter!("grpc_server_msg_sent_total", "Response messages sent.");
    metrics::describe_counter!(
        "grpc_server_handled_total",
        "Calls ended, by method and code."
    );
    metrics::describe_histogram!(
        "grpc_server_handling_seconds",
        "Time from a call's start to its answer (a stream's end)."
    );
    for method in methods::table()
        .into_iter()
        .flat_map(methods::Methods::iter)
    {
        let labels = method.labels();
        for counter in [
            "grpc_server_started_total",
            "grpc_server_msg_received_total",
            "grpc_server_msg_sent_total",
        ] {
            metrics::counter!(counter, &labels).increment(0);
        }
        let [a, b, c] = labels.clone();
        let ok = [a, b, c, ("grpc_code", "Ok".to_owned())];
        metrics::counter!("grpc_server_handled_total", &ok).increment(0);
        let _registered = metrics::histogram!("grpc_server_handling_seconds", &labels);
    }
    metrics::describe_counter!(
        "tradewire_refused_total",
        "Connections and calls refused (and accept failures), by limit."
    );
    for event in SecurityEvent::ALL {
        metrics::counter!("tradewire_refused_total", "limit" => event.name()).increment(0);
    }
}

/// Process gauges, read from /proc every 5 s.
async fn sample_process() {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let rss_kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
            if let Some(kib) = rss_kib {
                metrics::gauge!("process_resident_memory_bytes").set(kib * 1024.0);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 2..])
        {
            let fields: Vec<&str> = after_name.split(' ').collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                // USER_HZ is 100 on Linux.
                metrics::gauge!("process_cpu_seconds_total").set((user + system) / 100.0);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            metrics::gauge!("process_open_fds").set(fds.count() as f64);
        }
    }
}
