//! Crash safety of the real binary: concurrent writers of every kind of
//! write (Create, BatchCreate, Update with etags, Delete, Publish,
//! CreateAnnouncement, DeleteAnnouncement), SIGKILL at a random moment,
//! restart, with snapshots forced often by a small
//! `--snapshot-after-bytes`. After each restart every acknowledged effect
//! holds, a retried request id answers its acknowledged result, and
//! nothing is half-present. A write sent but not acknowledged may have
//! happened or not: the one record or announcement it touched is left
//! unchecked. Several rounds, each bounded in time and count, on the
//! local log (a data directory, under each fsync policy) and on the
//! JetStream log (a replica killed, its NATS node kept).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::binary::ServerProcess;
use crate::common::nats::NatsServer;
use crate::common::*;
use rand::Rng;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tradewire::pb;
use tradewire::pb::announcement_service_client::AnnouncementServiceClient;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;

mod writers;

use writers::{Acked, Retry, write_until_killed};

const ROUND_LIMIT: Duration = Duration::from_secs(60);
const WRITERS: usize = 8;
const BATCH: usize = 4;

/// Where the server under test keeps its log.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// This data directory, with this fsync policy, snapshotting every
    /// 16 KiB of log so that restarts load snapshots as well as replay
    /// segments.
    Local(&'a Path, &'a str),
    /// A JetStream stream on this NATS server, snapshotting every 20
    /// messages (and compacting the log below the snapshot before).
    JetStream(&'a NatsServer),
}

/// Starts the binary on `backend`, and waits until it serves everything
/// its log holds (a replica is NOT_SERVING until it has applied it).
async fn start(backend: Backend<'_>) -> (ServerProcess, SocketAddr) {
    let url;
    let args: Vec<&std::ffi::OsStr> = match backend {
        Backend::Local(dir, fsync) => vec![
            "--fsync".as_ref(),
            fsync.as_ref(),
            "--data-dir".as_ref(),
            dir.as_os_str(),
            "--snapshot-after-bytes".as_ref(),
            "16384".as_ref(),
        ],
        Backend::JetStream(nats) => {
            url = nats.url();
            vec![
                "--backend".as_ref(),
                "jetstream".as_ref(),
                "--nats-url".as_ref(),
                url.as_ref(),
                "--nats-snapshot-every".as_ref(),
                "20".as_ref(),
            ]
        }
    };
    let server = ServerProcess::start(&args);
    let addr = server.addr;
    let mut health = HealthClient::new(connect(addr).await);
    let mut statuses = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    loop {
        let status = tokio::time::timeout(ROUND_LIMIT, statuses.message())
            .await
            .expect("SERVING in time")
            .unwrap()
            .expect("a health status");
        if status.status == ServingStatus::Serving as i32 {
            break;
        }
    }
    (server, addr)
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn all_records(trade: &mut TradeServiceClient<Channel>) -> Vec<pb::TradeRecord> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = trade
            .list_trade_records(pb::ListTradeRecordsRequest {
                page_size: 1000,
                page_token: token,
                filter: None,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.trade_records);
        token = page.next_page_token;
        if token.is_empty() {
            return out;
        }
    }
}

async fn get_record(
    trade: &mut TradeServiceClient<Channel>,
    id: &str,
) -> Result<pb::TradeRecord, Code> {
    trade
        .get_trade_record(pb::GetTradeRecordRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().trade_record.unwrap())
        .map_err(|s| s.code())
}

async fn get_announcement(
    announcements: &mut AnnouncementServiceClient<Channel>,
    id: &str,
) -> Result<pb::Announcement, Code> {
    announcements
        .get_announcement(pb::GetAnnouncementRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().announcement.unwrap())
        .map_err(|s| s.code())
}

/// Every acknowledged effect, after a restart.
async fn verify(addr: SocketAddr, acked: &Acked) {
    let channel = connect(addr).await;
    let mut reports = ExportReportServiceClient::new(channel.clone());
    let mut announcements = AnnouncementServiceClient::new(channel.clone());
    let mut trade = TradeServiceClient::new(channel);
    let records = all_records(&mut trade).await;
    let ids: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();

    for report in &acked.reports {
        let got = reports
            .get_export_report(pb::GetExportReportRequest {
                id: report.id.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("acknowledged report {} lost: {s}", report.sequence))
            .into_inner()
            .export_report
            .unwrap();
        assert_eq!(&got, report, "the report and its sequence");
    }
    for batch in &acked.batches {
        assert!(
            batch.iter().all(|id| ids.contains(id.as_str())),
            "acknowledged batch lost"
        );
    }
    for (id, record) in acked
        .records
        .iter()
        .filter(|(id, _)| !acked.uncertain.contains(*id))
    {
        let got = get_record(&mut trade, id).await;
        assert_eq!(
            got.as_ref(),
            Ok(record),
            "the last acknowledged revision of {id}"
        );
        let history = trade
            .list_trade_record_revisions(pb::ListTradeRecordRevisionsRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner()
            .revisions;
        let numbers: Vec<i64> = history.iter().map(|r| r.revision).collect();
        assert_eq!(
            numbers,
            (1..=record.revision).collect::<Vec<_>>(),
            "{id}'s history"
        );
    }
    for id in acked.deleted_records.difference(&acked.uncertain) {
        assert_eq!(
            get_record(&mut trade, id).await,
            Err(Code::NotFound),
            "deleted {id}"
        );
    }
    for (id, announcement) in acked
        .announcements
        .iter()
        .filter(|(id, _)| !acked.uncertain.contains(*id))
    {
        let got = get_announcement(&mut announcements, id).await;
        assert_eq!(
            got.as_ref(),
            Ok(announcement),
            "announcement {id} and its sequence"
        );
    }
    for id in acked.deleted_announcements.difference(&acked.uncertain) {
        assert_eq!(
            get_announcement(&mut announcements, id).await,
            Err(Code::NotFound),
            "deleted announcement {id}"
        );
    }
    // A client that retries after the crash gets what was acknowledged.
    for retry in &acked.retries {
        match retry {
            Retry::Create(request, answer) => {
                let again = trade.create_trade_record(request.clone()).await.unwrap();
                assert_eq!(again.into_inner().trade_record.as_ref(), Some(answer));
            }
            Retry::Batch(request, answer) => {
                let again = trade
                    .batch_create_trade_records(request.clone())
                    .await
                    .unwrap();
                assert_eq!(&again.into_inner().trade_records, answer);
            }
            Retry::Publish(request, answer) => {
                let again = reports
                    .publish_export_report(request.clone())
                    .await
                    .unwrap();
                assert_eq!(again.into_inner().export_report.as_ref(), Some(answer));
            }
            Retry::Announce(request, answer) => {
                let again = announcements
                    .create_announcement(request.clone())
                    .await
                    .unwrap();
                assert_eq!(again.into_inner().announcement.as_ref(), Some(answer));
            }
        }
    }
    // Nothing half-present: batches whole or absent, reports with their records.
    let mut per_batch: HashMap<&str, usize> = Default::default();
    for r in records.iter().filter(|r| r.commodity.starts_with("batch-")) {
        *per_batch.entry(r.commodity.as_str()).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|n| *n == BATCH),
        "a partial batch: {per_batch:?}"
    );
    let mut token = String::new();
    loop {
        let page = reports
            .list_export_reports(pb::ListExportReportsRequest {
                page_size: 1000,
                page_token: token,
                filter: None,
            })
            .await
            .unwrap()
            .into_inner();
        for r in &page.export_reports {
            assert!(
                ids.contains(r.trade_record_id.as_str()),
                "report {} without its record",
                r.sequence
            );
            assert!(
                ids.contains(r.baseline_trade_record_id.as_str()),
                "report {} without its baseline",
                r.sequence
            );
        }
        let sequences: Vec<u64> = page.export_reports.iter().map(|r| r.sequence).collect();
        assert!(
            sequences.windows(2).all(|w| w[1] == w[0] + 1),
            "a gap in sequences"
        );
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
}

/// Rounds of writers killed with the server at a random moment, each
/// round started on `rounds[i]` after checking every earlier round, and a
/// last check on `last`.
async fn crash_rounds(rounds: &[Backend<'_>], last: Backend<'_>) {
    let mut all_acked = Acked::default();
    for (round, backend) in rounds.iter().enumerate() {
        let round_work = async {
            let (mut child, addr) = start(*backend).await;
            if round > 0 {
                verify(addr, &all_acked).await;
            }
            let channel = connect(addr).await;
            let acked = Arc::new(Mutex::new(Acked::default()));
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    tokio::spawn(write_until_killed(
                        channel.clone(),
                        round,
                        w,
                        Arc::clone(&acked),
                    ))
                })
                .collect();
            let delay = rand::rng().random_range(100..400);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            child.kill();
            for w in writers {
                w.await.unwrap();
            }
            let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
            assert!(
                !acked.retries.is_empty(),
                "round {round} acknowledged nothing"
            );
            acked
        };
        let acked = tokio::time::timeout(ROUND_LIMIT, round_work)
            .await
            .expect("round bounded in time");
        all_acked.extend(acked);
    }
    let (mut child, addr) = start(last).await;
    verify(addr, &all_acked).await;
    child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_and_leaves_nothing_half_present() {
    let dir = TempDir::new("crash");
    let rounds =
        ["always", "interval", "never", "always"].map(|fsync| Backend::Local(dir.path(), fsync));
    crash_rounds(&rounds, Backend::Local(dir.path(), "always")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_no_acknowledged_write_and_leaves_nothing_half_present() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let rounds = [Backend::JetStream(&nats); 3];
    crash_rounds(&rounds, Backend::JetStream(&nats)).await;
}
