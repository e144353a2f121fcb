//! Crash safety of the real binary: concurrent writers, SIGKILL at a random
//! moment, restart; every acknowledged write is back and nothing is
//! half-present. Several rounds, each bounded in time and count.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::binary::ServerProcess;
use crate::common::*;
use rand::Rng;
use tonic::transport::{Channel, Endpoint};
use tradewire::pb;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;

const ROUND_LIMIT: Duration = Duration::from_secs(60);
const WRITERS: usize = 8;
const BATCH: usize = 4;

/// Starts the binary on `dir` with `fsync`.
fn start(dir: &Path, fsync: &str) -> (ServerProcess, SocketAddr) {
    let server = ServerProcess::start(&[
        "--fsync".as_ref(),
        fsync.as_ref(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
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

#[derive(Default)]
struct Acked {
    reports: Vec<pb::ExportReport>,
    batches: Vec<Vec<String>>,
}

async fn write_until_killed(
    channel: Channel,
    round: usize,
    writer: usize,
    acked: Arc<Mutex<Acked>>,
) {
    let mut reports = ExportReportServiceClient::new(channel.clone());
    let mut trade = TradeServiceClient::new(channel);
    for n in 0..2_000 {
        let year_ = 1000 + ((writer * 2_000 + n) % 8_000) as i32;
        if n % 2 == 0 {
            let report = pb::ExportReport {
                period: Some(year(pb::Calendar::Gregorian, year_ + 1)),
                value: Some(usd(66_000_000, pb::Bound::AtLeast)),
                baseline_period: Some(year(pb::Calendar::Gregorian, year_)),
                baseline_value: Some(usd(13_000_000, pb::Bound::Exact)),
                ..report("IRN", "RUS", "8708", &format!("w{writer} #{n}"))
            };
            match reports.publish_export_report(publish(report)).await {
                Ok(r) => acked
                    .lock()
                    .unwrap()
                    .reports
                    .push(r.into_inner().export_report.unwrap()),
                Err(_) => return,
            }
        } else {
            let tag = format!("batch-{round}-{writer}-{n}");
            let requests = (0..BATCH as i32)
                .map(|i| {
                    let mut r = record("IRN", "TUR", "2709", year_ + i, 1);
                    r.commodity = tag.clone();
                    create(r)
                })
                .collect();
            let batch = pb::BatchCreateTradeRecordsRequest {
                requests,
                request_id: String::new(),
            };
            match trade.batch_create_trade_records(batch).await {
                Ok(r) => {
                    let ids = r
                        .into_inner()
                        .trade_records
                        .into_iter()
                        .map(|r| r.id)
                        .collect();
                    acked.lock().unwrap().batches.push(ids);
                }
                Err(_) => return,
            }
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

async fn verify(addr: SocketAddr, acked: &Acked) {
    let channel = connect(addr).await;
    let mut reports = ExportReportServiceClient::new(channel.clone());
    let mut trade = TradeServiceClient::new(channel);
    let records = all_records(&mut trade).await;
    let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();

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
        assert_eq!(&got, report);
    }
    for batch in &acked.batches {
        assert!(
            batch.iter().all(|id| ids.contains(id.as_str())),
            "acknowledged batch lost"
        );
    }
    // Nothing half-present: batches whole or absent, reports with their records.
    let mut per_batch: std::collections::HashMap<&str, usize> = Default::default();
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
                !acked.reports.is_empty() || !acked.batches.is_empty(),
                "round {round} acknowledged nothing"
            );
            acked
        };
        let acked = tokio::time::timeout(ROUND_LIMIT, round_work)
            .await
            .expect("round bounded in time");
        all_acked.reports.extend(acked.reports);
        all_acked.batches.extend(acked.batches);
    }
    let (mut child, addr) = start(dir.path(), "always");
    verify(addr, &all_acked).await;
    child.kill();
}
