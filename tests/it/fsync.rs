//! The log's fsync and snapshots against readers, writers and failures,
//! through a real server and real clients, with fault-injection hooks that
//! hold or fail a sync or a snapshot:
//! - reads never wait for an fsync, and a write is invisible until durable;
//! - a failed fsync fences the store (writes UNAVAILABLE, never retried,
//!   health NOT_SERVING, reads go on) under `always` and `interval`, and a
//!   restart recovers from disk;
//! - writes go on while a snapshot is being written;
//! - concurrent writes that share commit groups keep every invariant: one
//!   record per request id, no reference to a deleted record, and a restart
//!   that replays to the same state.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tradewire::Config;
use tradewire::pb;
use tradewire::{Faults, FsyncPolicy, SyncHook};

/// How long any single step may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(10);

/// Steers the log's fsync (or the snapshot): while armed, each one
/// announces itself on `entered` and then waits for the test's verdict
/// (`Ok` to go on, `Err` to fail as the disk would).
pub(crate) struct SyncGate {
    armed: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    entered: mpsc::Receiver<()>,
    verdict: mpsc::Sender<Result<(), String>>,
}

impl SyncGate {
    pub(crate) fn install(config: &mut Config) -> SyncGate {
        let (gate, hook) = SyncGate::new();
        let durable = config.store.durable.take().unwrap();
        config.store.durable = Some(durable.with_faults(Faults {
            sync_hook: Some(hook),
            ..Faults::default()
        }));
        gate
    }

    fn install_on_snapshots(config: &mut Config) -> SyncGate {
        let (gate, hook) = SyncGate::new();
        let durable = config.store.durable.take().unwrap();
        config.store.durable = Some(durable.with_faults(Faults {
            snapshot_hook: Some(hook),
            ..Faults::default()
        }));
        gate
    }

    fn new() -> (SyncGate, SyncHook) {
        let armed = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = mpsc::channel();
        let (verdict, verdict_rx) = mpsc::channel::<Result<(), String>>();
        let verdict_rx = Mutex::new(verdict_rx);
        let hook = {
            let armed = Arc::clone(&armed);
            let calls = Arc::clone(&calls);
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                if !armed.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let _ = entered_tx.send(());
                let verdict = verdict_rx
                    .lock()
                    .map_err(|_| std::io::Error::other("poisoned"))?
                    .recv_timeout(PATIENCE)
                    .unwrap_or(Ok(()));
                verdict.map_err(std::io::Error::other)
            }
        };
        let gate = SyncGate {
            armed,
            calls,
            entered,
            verdict,
        };
        (gate, SyncHook(Arc::new(hook)))
    }

    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Blocks until an armed sync has started (and is waiting).
    pub(crate) fn wait_entered(&self) {
        self.entered
            .recv_timeout(PATIENCE)
            .expect("an fsync started");
    }

    /// Lets the waiting sync go on.
    pub(crate) fn release(&self) {
        self.verdict.send(Ok(())).unwrap();
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn wait_not_serving(server: &TestServer) {
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "tradewire.v1.TradeService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(PATIENCE, async {
        while let Some(status) = watch.next().await {
            if status.unwrap().status == ServingStatus::NotServing as i32 {
                return;
            }
        }
        panic!("health stream ended");
    })
    .await
    .expect("health turned NOT_SERVING");
}

async fn list_ids(server: &TestServer) -> Vec<String> {
    let mut client = server.trade().await;
    let page = tokio::time::timeout(
        PATIENCE,
        client.list_trade_records(pb::ListTradeRecordsRequest {
            page_size: 1000,
            ..Default::default()
        }),
    )
    .await
    .expect("List answered while the sync is held")
    .unwrap()
    .into_inner();
    page.trade_records.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn reads_never_wait_for_an_fsync_and_a_write_is_invisible_until_durable() {
    let dir = TempDir::new("slow-sync");
    let mut config = durable(dir.path());
    let gate = SyncGate::install(&mut config);
    let server = TestServer::with_config(config).await;
    let mut client = server.trade().await;
    let first = stored(&mut client, record("IRN", "RUS", "8708", 2022, 13_000_000)).await;

    gate.arm();
    let mut writer = server.trade().await;
    let write = tokio::spawn(async move {
        writer
            .create_trade_record(create(record("IRN", "RUS", "8708", 2023, 66_000_000)))
            .await
    });
    let gate = tokio::task::spawn_blocking(move || {
        gate.wait_entered();
        gate
    })
    .await
    .unwrap();

    // The committer is inside the fsync, and stays there until released.
    let got = tokio::time::timeout(
        PATIENCE,
        client.get_trade_record(pb::GetTradeRecordRequest {
            id: first.id.clone(),
        }),
    )
    .await
    .expect("Get answered while the sync is held")
    .unwrap()
    .into_inner();
    assert_eq!(got.trade_record, Some(first.clone()));
    assert_eq!(list_ids(&server).await, vec![first.id.clone()]);
    assert_eq!(server.app.counts().trade_records, 1);
    assert!(!write.is_finished(), "not acknowledged before its fsync");

    gate.verdict.send(Ok(())).unwrap();
    let second = tokio::time::timeout(PATIENCE, write)
        .await
        .expect("the write is acknowledged after its sync")
        .unwrap()
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    assert_eq!(list_ids(&server).await, vec![first.id, second.id]);
}

/// Fails the sync of one write (or of the interval sync after it, with
/// `interval`), then checks the fence: the write's answer, no retried
/// fsync, refused writes, NOT_SERVING health, reads that go on, and a
/// restart that recovers what the disk holds.
async fn a_failed_fsync_fences_the_store(fsync: FsyncPolicy) {
    let dir = TempDir::new("fsync-fails");
    let mut config = durable(dir.path());
    config.store.durable.as_mut().unwrap().fsync = fsync;
    let gate = SyncGate::install(&mut config);
    let server = TestServer::with_config(config).await;
    let mut client = server.trade().await;
    let kept = stored(&mut client, record("IRN", "RUS", "8708", 2022, 13_000_000)).await;

    gate.arm();
    gate.verdict.send(Err("injected EIO".into())).unwrap();
    let failed = client
        .create_trade_record(create(record("IRN", "RUS", "8708", 2023, 66_000_000)))
        .await;
    match fsync {
        FsyncPolicy::Always => {
            let status = failed.unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(status.message().contains("injected EIO"), "{status:?}");
        }
        // Acknowledged before its sync, as the policy says.
        _ => assert!(failed.is_ok()),
    }
    let gate = tokio::task::spawn_blocking(move || {
        gate.wait_entered();
        gate
    })
    .await
    .unwrap();
    wait_not_serving(&server).await;
    let syncs = gate.calls();

    let refused = client
        .create_trade_record(create(record("IRN", "RUS", "8708", 2024, 1)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("restart"), "{refused:?}");
    let mut reports = server.reports().await;
    let refused = reports
        .publish_export_report(publish(report("IRN", "RUS", "87", "refused")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(gate.calls(), syncs, "a failed fsync is never retried");

    let got = client
        .get_trade_record(pb::GetTradeRecordRequest {
            id: kept.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.trade_record, Some(kept.clone()), "reads go on");
    let visible = server.app.counts().trade_records;
    server.shutdown().await.unwrap();

    let server = TestServer::with_config(durable(dir.path())).await;
    let ids = list_ids(&server).await;
    assert_eq!(ids[0], kept.id);
    match fsync {
        // The refused write was cut off the log: it does not come back.
        FsyncPolicy::Always => assert_eq!(ids.len(), 1),
        // It was acknowledged; here the page cache still had it.
        _ => assert_eq!(ids.len(), visible),
    }
    let mut client = server.trade().await;
    client
        .create_trade_record(create(record("IRN", "RUS", "8708", 2024, 1)))
        .await
        .expect("a restarted server takes writes again");
}

#[tokio::test]
async fn a_failed_fsync_fences_the_store_under_always() {
    a_failed_fsync_fences_the_store(FsyncPolicy::Always).await;
}

#[tokio::test]
async fn a_failed_interval_fsync_fences_the_store() {
    a_failed_fsync_fences_the_store(FsyncPolicy::Interval(Duration::from_millis(20))).await;
}

#[tokio::test]
async fn writes_go_on_while_a_snapshot_is_written() {
    let dir = TempDir::new("snapshot-held");
    let mut config = durable(dir.path());
    config.store.durable.as_mut().unwrap().snapshot_after_bytes = 4 * 1024;
    let gate = SyncGate::install_on_snapshots(&mut config);
    gate.arm();
    let server = TestServer::with_config(config).await;
    let mut reports = server.reports().await;
    let mut published = 0;
    // Past 4 KiB of log, the committer starts a snapshot and its thread
    // holds in the hook.
    let gate = loop {
        reports
            .publish_export_report(publish(report("IRN", "RUS", "8708", "before")))
            .await
            .unwrap();
        published += 1;
        if let Ok(()) = gate.entered.try_recv() {
            break gate;
        }
        assert!(published < 1_000, "no snapshot started");
    };
    for _ in 0..50 {
        tokio::time::timeout(
            PATIENCE,
            reports.publish_export_report(publish(report("IRN", "RUS", "8708", "during"))),
        )
        .await
        .expect("a write is acknowledged while the snapshot is held")
        .unwrap();
        published += 1;
    }
    assert!(gate.calls() >= 1);
    gate.verdict.send(Ok(())).unwrap();
    server.shutdown().await.unwrap();

    let server = TestServer::with_config(durable(dir.path())).await;
    let recovery = server.app.recovery().unwrap().clone();
    assert!(recovery.snapshot_lsn.is_some(), "{recovery:?}");
    assert_eq!(server.app.counts().export_reports, published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_in_shared_groups_keep_every_invariant() {
    use tradewire::pb::export_report_service_client::ExportReportServiceClient;
    use tradewire::pb::trade_service_client::TradeServiceClient;

    let dir = TempDir::new("groups");
    let server = TestServer::with_config(durable(dir.path())).await;
    let mut client = server.trade().await;
    let mut baselines = Vec::new();
    for i in 0..20 {
        baselines.push(
            stored(
                &mut client,
                record("IRN", "RUS", "8708", 1950 + i, 13_000_000),
            )
            .await,
        );
    }

    // All at once on one connection, so that the committer groups them: a
    // delete and a publication that refers to the same record race for
    // each of 20 records, and 6 request ids are each sent 10 times.
    let channel = server.channel().await;
    let mut deletes = Vec::new();
    let mut publications = Vec::new();
    let mut creates = Vec::new();
    for (i, baseline) in baselines.iter().enumerate() {
        let mut trade = TradeServiceClient::new(channel.clone());
        let id = baseline.id.clone();
        deletes.push(tokio::spawn(async move {
            trade
                .delete_trade_record(pb::DeleteTradeRecordRequest { id })
                .await
                .map(drop)
        }));
        let mut reports = ExportReportServiceClient::new(channel.clone());
        publications.push(tokio::spawn(async move {
            reports
                .publish_export_report(publish(growth(1951 + i as i32)))
                .await
                .map(|r| r.into_inner().export_report.unwrap())
        }));
    }
    for k in 0..60 {
        let mut trade = TradeServiceClient::new(channel.clone());
        creates.push(tokio::spawn(async move {
            let request = pb::CreateTradeRecordRequest {
                trade_record: Some(record("IRN", "RUS", "8708", 1800 + k % 6, 1)),
                request_id: format!("same-{}", k % 6),
            };
            let created = trade.create_trade_record(request).await;
            (
                k % 6,
                created.map(|r| r.into_inner().trade_record.unwrap().id),
            )
        }));
    }

    let mut deleted = Vec::new();
    for task in deletes {
        match task.await.unwrap() {
            Ok(()) => deleted.push(true),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                deleted.push(false);
            }
        }
    }
    let mut reports = Vec::new();
    for task in publications {
        reports.push(task.await.unwrap().expect("every publication succeeds"));
    }
    let mut per_request: std::collections::HashMap<i32, std::collections::HashSet<String>> =
        Default::default();
    for task in creates {
        let (key, id) = task.await.unwrap();
        per_request
            .entry(key)
            .or_default()
            .insert(id.expect("create"));
    }
    assert_eq!(per_request.len(), 6);
    for (key, ids) in &per_request {
        assert_eq!(ids.len(), 1, "request id same-{key} stored once: {ids:?}");
    }

    let mut trade = server.trade().await;
    for (i, report) in reports.iter().enumerate() {
        let baseline_id = report.baseline_trade_record_id.clone();
        for id in [report.trade_record_id.clone(), baseline_id.clone()] {
            trade
                .get_trade_record(pb::GetTradeRecordRequest { id: id.clone() })
                .await
                .unwrap_or_else(|s| panic!("report {i} refers to {id}, which is gone: {s:?}"));
        }
        let gone = trade
            .get_trade_record(pb::GetTradeRecordRequest {
                id: baselines[i].id.clone(),
            })
            .await;
        if deleted[i] {
            assert_eq!(gone.unwrap_err().code(), Code::NotFound);
            assert_ne!(
                baseline_id, baselines[i].id,
                "a new record holds the figure"
            );
        } else {
            assert!(gone.is_ok());
            assert_eq!(baseline_id, baselines[i].id, "the report links the record");
        }
    }
    let sequences: std::collections::BTreeSet<u64> = reports.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, (1..=20).collect(), "dense, unique sequences");

    let before = list_ids(&server).await;
    let counts = server.app.counts();
    server.shutdown().await.unwrap();
    let server = TestServer::with_config(durable(dir.path())).await;
    assert_eq!(
        list_ids(&server).await,
        before,
        "a restart replays the same state"
    );
    assert_eq!(server.app.counts(), counts);
}
