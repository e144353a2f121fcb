//! Crash safety of the real binary: concurrent writers of every kind of
//! write (Create, BatchCreate, Update with etags, Delete, Publish,
//! CreateAnnouncement, DeleteAnnouncement), SIGKILL at a random moment,
//! restart, with snapshots forced often by a small
//! `--snapshot-after-bytes`. After each restart every acknowledged effect
//! holds, a retried request id answers its acknowledged result, and
//! nothing is half-present. A write sent but not acknowledged may have
//! happened or not: the one record or announcement it touched is left
//! unchecked. Several rounds, each bounded in time and count.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::binary::ServerProcess;
use crate::common::*;
use rand::Rng;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tradewire::pb;
use tradewire::pb::announcement_service_client::AnnouncementServiceClient;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;

const ROUND_LIMIT: Duration = Duration::from_secs(60);
const WRITERS: usize = 8;
const BATCH: usize = 4;

/// Starts the binary on `dir` with `fsync`, snapshotting every 16 KiB of
/// log so that restarts load snapshots as well as replay segments.
fn start(dir: &Path, fsync: &str) -> (ServerProcess, SocketAddr) {
    let server = ServerProcess::start(&[
        "--fsync".as_ref(),
        fsync.as_ref(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
        "--snapshot-after-bytes".as_ref(),
        "16384".as_ref(),
    ]);
    let addr = server.addr;
    (server, addr)
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A write with a request id and its acknowledged answer.
enum Retry {
    Create(pb::CreateTradeRecordRequest, pb::TradeRecord),
    Batch(pb::BatchCreateTradeRecordsRequest, Vec<pb::TradeRecord>),
    Publish(pb::PublishExportReportRequest, pb::ExportReport),
    Announce(pb::CreateAnnouncementRequest, pb::Announcement),
}

#[derive(Default)]
struct Acked {
    retries: Vec<Retry>,
    /// The last acknowledged revision of each record made by Create.
    records: HashMap<String, pb::TradeRecord>,
    deleted_records: HashSet<String>,
    batches: Vec<Vec<String>>,
    reports: Vec<pb::ExportReport>,
    announcements: HashMap<String, pb::Announcement>,
    deleted_announcements: HashSet<String>,
    /// Ids an update or delete that was not acknowledged may have changed.
    uncertain: HashSet<String>,
}

impl Acked {
    fn extend(&mut self, other: Acked) {
        self.retries.extend(other.retries);
        self.records.extend(other.records);
        self.deleted_records.extend(other.deleted_records);
        self.batches.extend(other.batches);
        self.reports.extend(other.reports);
        self.announcements.extend(other.announcements);
        self.deleted_announcements
            .extend(other.deleted_announcements);
        self.uncertain.extend(other.uncertain);
    }
}

struct Writer {
    trade: TradeServiceClient<Channel>,
    reports: ExportReportServiceClient<Channel>,
    announcements: AnnouncementServiceClient<Channel>,
    acked: Arc<Mutex<Acked>>,
    /// This writer's live records (their latest revision) and announcements.
    records: Vec<pb::TradeRecord>,
    announced: Vec<String>,
}

impl Writer {
    fn ack(&self, record: impl FnOnce(&mut Acked)) {
        record(&mut self.acked.lock().unwrap());
    }

    /// One write of kind `n % 7`; false once a write is not acknowledged.
    async fn write(&mut self, round: usize, writer: usize, n: usize) -> bool {
        let year_ = 1000 + ((writer * 2_000 + n) % 8_000) as i32;
        let request_id = format!("{round}-{writer}-{n}");
        match n % 7 {
            0 => {
                let request = pb::PublishExportReportRequest {
                    export_report: Some(pb::ExportReport {
                        period: Some(year(pb::Calendar::Gregorian, year_ + 1)),
                        value: Some(usd(66_000_000, pb::Bound::AtLeast)),
                        baseline_period: Some(year(pb::Calendar::Gregorian, year_)),
                        baseline_value: Some(usd(13_000_000, pb::Bound::Exact)),
                        ..report("IRN", "RUS", "8708", &format!("w{writer} #{n}"))
                    }),
                    request_id,
                };
                let Ok(answer) = self.reports.publish_export_report(request.clone()).await else {
                    return false;
                };
                let report = answer.into_inner().export_report.unwrap();
                self.ack(|a| {
                    a.reports.push(report.clone());
                    a.retries.push(Retry::Publish(request, report));
                });
            }
            1 => {
                let tag = format!("batch-{round}-{writer}-{n}");
                let requests = (0..BATCH as i32)
                    .map(|i| {
                        let mut r = record("IRN", "TUR", "2709", year_ + i, 1);
                        r.commodity = tag.clone();
                        create(r)
                    })
                    .collect();
                let request = pb::BatchCreateTradeRecordsRequest {
                    requests,
                    request_id,
                };
                let Ok(answer) = self.trade.batch_create_trade_records(request.clone()).await
                else {
                    return false;
                };
                let created = answer.into_inner().trade_records;
                self.ack(|a| {
                    a.batches
                        .push(created.iter().map(|r| r.id.clone()).collect());
                    a.retries.push(Retry::Batch(request, created));
                });
            }
            2 => {
                let request = pb::CreateTradeRecordRequest {
                    trade_record: Some(record("IRN", "ARM", "8703", year_, 5)),
                    request_id,
                };
                let Ok(answer) = self.trade.create_trade_record(request.clone()).await else {
                    return false;
                };
                let created = answer.into_inner().trade_record.unwrap();
                self.records.push(created.clone());
                self.ack(|a| {
                    a.records.insert(created.id.clone(), created.clone());
                    a.retries.push(Retry::Create(request, created));
                });
            }
            3 => {
                let Some(current) = self.records.last_mut() else {
                    return true;
                };
                let mut next = current.clone();
                next.value = Some(usd(5 + current.revision, pb::Bound::Exact));
                let request = pb::UpdateTradeRecordRequest {
                    trade_record: Some(next),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["value".into()],
                    }),
                    etag: current.etag.clone(),
                    revision_source: None,
                };
                let id = current.id.clone();
                let Ok(answer) = self.trade.update_trade_record(request).await else {
                    self.ack(|a| {
                        a.uncertain.insert(id);
                    });
                    return false;
                };
                let revised = answer.into_inner().trade_record.unwrap();
                *current = revised.clone();
                self.ack(|a| {
                    a.records.insert(id, revised);
                });
            }
            4 => {
                if self.records.len() < 2 {
                    return true;
                }
                let id = self.records.remove(0).id;
                let request = pb::DeleteTradeRecordRequest { id: id.clone() };
                if self.trade.delete_trade_record(request).await.is_err() {
                    self.ack(|a| {
                        a.uncertain.insert(id);
                    });
                    return false;
                }
                self.ack(|a| {
                    a.records.remove(&id);
                    a.deleted_records.insert(id);
                });
            }
            5 => {
                let request = pb::CreateAnnouncementRequest {
                    announcement: Some(pb::Announcement {
                        kind: pb::AnnouncementKind::Statement.into(),
                        headline: format!("w{writer} #{n}"),
                        source: Some(source("IRNA")),
                        ..Default::default()
                    }),
                    request_id,
                };
                let Ok(answer) = self
                    .announcements
                    .create_announcement(request.clone())
                    .await
                else {
                    return false;
                };
                let created = answer.into_inner().announcement.unwrap();
                self.announced.push(created.id.clone());
                self.ack(|a| {
                    a.announcements.insert(created.id.clone(), created.clone());
                    a.retries.push(Retry::Announce(request, created));
                });
            }
            _ => {
                if self.announced.len() < 2 {
                    return true;
                }
                let id = self.announced.remove(0);
                let request = pb::DeleteAnnouncementRequest { id: id.clone() };
                if self
                    .announcements
                    .delete_announcement(request)
                    .await
                    .is_err()
                {
                    self.ack(|a| {
                        a.uncertain.insert(id);
                    });
                    return false;
                }
                self.ack(|a| {
                    a.announcements.remove(&id);
                    a.deleted_announcements.insert(id);
                });
            }
        }
        true
    }
}

async fn write_until_killed(
    channel: Channel,
    round: usize,
    writer: usize,
    acked: Arc<Mutex<Acked>>,
) {
    let mut w = Writer {
        trade: TradeServiceClient::new(channel.clone()),
        reports: ExportReportServiceClient::new(channel.clone()),
        announcements: AnnouncementServiceClient::new(channel),
        acked,
        records: Vec::new(),
        announced: Vec::new(),
    };
    for n in 0..2_000 {
        if !w.write(round, writer, n).await {
            return;
        }
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_and_leaves_nothing_half_present() {
    let dir = TempDir::new("crash");
    let mut all_acked = Acked::default();
    for (round, fsync) in ["always", "interval", "never", "always"]
        .into_iter()
        .enumerate()
    {
        let round_work = async {
            let (mut child, addr) = start(dir.path(), fsync);
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
    let (mut child, addr) = start(dir.path(), "always");
    verify(addr, &all_acked).await;
    child.kill();
}
