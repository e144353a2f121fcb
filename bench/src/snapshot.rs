//! `snapshot`: do writes stall while a snapshot of the whole store is
//! written? A durable server (`--fsync always`) is seeded with 1,000,000
//! records with snapshots off and restarted twice: once with snapshots off
//! (the baseline), once with the snapshot threshold just above the log's
//! size, so that the run's first writes start a snapshot of every record.
//! Both runs: 16 writers creating records for the run's duration. Target:
//! write p99.9 during the snapshot at most 50 ms, over the writes sent
//! while it was written (from the run's start, when the first writes
//! trigger it, for as long as the server says it took), not over the whole
//! run. The run is refused if the server's log shows no snapshot written
//! within it.

use std::path::Path;

use serde_json::json;

use crate::Opts;
use crate::load;
use crate::servers::{self, BenchError, ServerProcess};
use crate::table::{Table, Target};
use crate::unary;

const NEVER: &str = "1000000000000000";

fn log_bytes(dir: &Path) -> Result<u64, BenchError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".log") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// The "snapshot written" line's fields, if the server logged one.
fn snapshot_written(server: &ServerProcess) -> Option<serde_json::Value> {
    server.log_lines().iter().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = &entry["fields"];
        (fields["message"] == "snapshot written; older log segments dropped")
            .then(|| fields.clone())
    })
}

pub(crate) async fn run(opts: &Opts) -> Result<Table, BenchError> {
    let records: u64 = if opts.smoke { 20_000 } else { 1_000_000 };
    let dir = std::env::temp_dir().join(format!("tradewire-bench-snap-{}", std::process::id()));
    let durable = Some((dir.as_path(), "always"));
    let seeding = servers::tradewire(
        opts.server_core,
        durable,
        &["--snapshot-after-bytes", NEVER],
    )?;
    unary::seed(&seeding, records).await?;
    // Killed: every write was fsynced before it was acknowledged.
    drop(seeding);

    let mut table = Table::new(
        format!(
            "snapshot: CreateTradeRecord, 16 writers, {:?} per run, fsync always, {records} records stored",
            opts.duration
        ),
        &[
            "run",
            "writes/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "p99.9 ms while snapshotting",
            "writes while snapshotting",
            "snapshot ms",
            "snapshot MiB",
        ],
    );
    let baseline = servers::tradewire(
        opts.server_core,
        durable,
        &["--snapshot-after-bytes", NEVER],
    )?;
    let base = load::creates(&baseline, 4, 4, opts.duration, None, records).await?;
    load::refuse_errors("writes without a snapshot", &base)?;
    drop(baseline);

    let threshold = (log_bytes(&dir)? + 1).to_string();
    let snapshotting = servers::tradewire(
        opts.server_core,
        durable,
        &["--snapshot-after-bytes", &threshold],
    )?;
    let during = load::creates(&snapshotting, 4, 4, opts.duration, None, 2 * records).await?;
    load::refuse_errors("writes during the snapshot", &during)?;
    let written = snapshot_written(&snapshotting)
        .ok_or("no snapshot was written during the run; refusing to report")?;
    drop(snapshotting);
    let _ = std::fs::remove_dir_all(&dir);

    let window_ms = written["millis"].as_f64().unwrap_or(0.0).ceil() as u32;
    let (stalled, stalled_writes) = during.quantile_ms_within(window_ms, 0.999);
    for (name, result, snapshot) in [
        ("no snapshot", &base, None),
        ("snapshot of every record", &during, Some(&written)),
    ] {
        let (window_p999, window_writes) = match snapshot {
            Some(_) => (json!(stalled), json!(stalled_writes)),
            None => (json!(""), json!("")),
        };
        table.row(vec![
            json!(name),
            json!(result.rate()),
            json!(result.quantile_ms(0.5)),
            json!(result.quantile_ms(0.99)),
            json!(result.quantile_ms(0.999)),
            json!(result.quantile_ms(1.0)),
            window_p999,
            window_writes,
            snapshot.map_or(json!(""), |s| s["millis"].clone()),
            snapshot.map_or(json!(""), |s| {
                json!(s["bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0)
            }),
        ]);
    }
    table.note("snapshot ms: how long the snapshot thread took to serialize, write, fsync and rename it, from the server's log; 'while snapshotting': the writes sent in the run's first that many ms.");
    table.target(Target::at_most(
        format!("write p99.9 ms while a snapshot of {records} records is written"),
        stalled,
        50.0,
        format!(
            "{stalled:.1} ms over {stalled_writes} writes in {window_ms} ms; {:.1} ms without a snapshot",
            base.quantile_ms(0.999)
        ),
    ));
    Ok(table)
}
