//! The store's metrics, registered at zero before the store opens.
//!
//! Why at zero: a Prometheus alert on `absent()` or on a rate needs the
//! series from the first scrape, not from the first event. The values are
//! emitted where things happen (the item gauges after each write, the log
//! bytes and fsync times in the journal, group sizes in the committer and
//! the follower, summaries in `summaries.rs`); this module only names
//! every series the store has, with its help text.

use super::StoreConfig;

/// The item kinds of `tradewire_items`.
pub(super) const ITEM_KINDS: [&str; 3] = ["trade_records", "announcements", "export_reports"];

/// Registers and describes every series of the store configured by
/// `config`: the local log's only with a data directory, the replica's
/// only with JetStream.
pub(crate) fn register(config: &StoreConfig) {
    metrics::describe_gauge!("tradewire_items", "Items stored, by kind.");
    for kind in ITEM_KINDS {
        metrics::gauge!("tradewire_items", "kind" => kind).set(0.0);
    }
    metrics::describe_histogram!(
        "tradewire_commit_group_size",
        "Writes made durable together by one group commit."
    );
    registered(metrics::histogram!("tradewire_commit_group_size"));
    metrics::describe_counter!(
        "tradewire_summaries_total",
        "SummarizeTrade (summary) and BreakdownTrade (breakdown) calls answered."
    );
    for kind in ["summary", "breakdown"] {
        metrics::counter!("tradewire_summaries_total", "kind" => kind).increment(0);
    }
    metrics::describe_histogram!(
        "tradewire_summary_examined_records",
        "Trade records a summary or breakdown read."
    );
    registered(metrics::histogram!("tradewire_summary_examined_records"));
    if config.durable.is_some() {
        metrics::describe_counter!(
            "tradewire_log_bytes_total",
            "Bytes written to the write-ahead log."
        );
        metrics::counter!("tradewire_log_bytes_total").increment(0);
        metrics::describe_histogram!(
            "tradewire_fsync_seconds",
            "Time of each fsync of the write-ahead log."
        );
        registered(metrics::histogram!("tradewire_fsync_seconds"));
        metrics::describe_histogram!(
            "tradewire_snapshot_seconds",
            "Time to write a snapshot of the local log."
        );
        registered(metrics::histogram!("tradewire_snapshot_seconds"));
    }
    if config.jetstream.is_some() {
        metrics::describe_gauge!(
            "tradewire_replica_connected",
            "1 while this replica is connected to NATS, else 0."
        );
        metrics::gauge!("tradewire_replica_connected").set(0.0);
        metrics::describe_gauge!(
            "tradewire_replica_applied_position",
            "The log position (stream sequence) this replica has applied."
        );
        metrics::gauge!("tradewire_replica_applied_position").set(0.0);
        metrics::describe_gauge!(
            "tradewire_replica_behind_messages",
            "Log messages after the last applied one, as NATS last said."
        );
        metrics::gauge!("tradewire_replica_behind_messages").set(0.0);
        metrics::describe_counter!(
            "tradewire_replica_write_conflicts_total",
            "Writes retried because another replica wrote first."
        );
        metrics::counter!("tradewire_replica_write_conflicts_total").increment(0);
    }
}

/// A histogram's handle, taken only for the registration: a histogram has
/// no value to set, and its series show `_count 0` until the first sample.
fn registered(_histogram: metrics::Histogram) {}
