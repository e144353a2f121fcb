//! The live stream contract of SubscribeExportReports (issue 3): order, no
//! gap, no duplicate under concurrency and lag; retention; cleanup. The
//! helpers here are shared with `stream_lifecycle`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use rand::Rng;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use tradewire::Config;
use tradewire::StoreConfig;
use tradewire::pb;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::subscribe_export_reports_request::Start;
use tradewire::pb::subscribe_export_reports_response::Event;

pub(crate) const LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn config(capacity: usize, retention: usize) -> Config {
    Config {
        store: StoreConfig {
            broadcast_capacity: capacity,
            retention,
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

pub(crate) fn subscribe_after(
    after: u64,
    filter: Option<pb::TradeFilter>,
    heartbeat_ms: Option<u64>,
) -> pb::SubscribeExportReportsRequest {
    pb::SubscribeExportReportsRequest {
        filter,
        start: Some(Start::AfterSequence(after)),
        heartbeat_interval: heartbeat_ms.map(|ms| prost_types::Duration {
            seconds: 0,
            nanos: (ms * 1_000_000) as i32,
        }),
    }
}

pub(crate) async fn publish_n(
    client: &mut ExportReportServiceClient<Channel>,
    n: usize,
) -> Vec<pb::ExportReport> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = client
            .publish_export_report(publish(report(
                "IRN",
                "RUS",
                "8708",
                &format!("report {i}"),
            )))
            .await
            .unwrap()
            .into_inner()
            .export_report
            .unwrap();
        out.push(r);
    }
    out
}

const SHAPES: [(&str, &str, &str); 4] = [
    ("IRN", "RUS", "8708"),
    ("RUS", "IRN", "8703"),
    ("IRN", "TUR", "2709"),
    ("CHN", "RUS", "870899"),
];

/// 4 publishers, 50 subscribers that start after random sequences while
/// publishing runs, some filtered, 20 reading slowly enough to lag past a
/// broadcast buffer of 8. Each must receive exactly the expected sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_and_lagging_subscribers_see_every_report_once_in_order() {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 150;
    const TOTAL: u64 = (PUBLISHERS * PER_PUBLISHER) as u64;
    const SUBSCRIBERS: usize = 50;
    let server = TestServer::with_config(config(8, 1_000_000)).await;
    let channel = server.channel().await;
    // Slow readers share a connection with 16 KiB windows, so their
    // server-side cursors stall and lag past the 8-report broadcast buffer.
    let narrow = server.narrow_channel(16 * 1024).await;
    let (published_tx, published_rx) = watch::channel(0u64);
    let published_tx = Arc::new(published_tx);
    let shapes: Arc<std::sync::Mutex<HashMap<u64, usize>>> = Arc::default();

    let test = async {
        let mut publishers = Vec::new();
        for p in 0..PUBLISHERS {
            let mut client = ExportReportServiceClient::new(channel.clone());
            let published_tx = Arc::clone(&published_tx);
            let shapes = Arc::clone(&shapes);
            publishers.push(tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    let shape = (p + i) % SHAPES.len();
                    let (e, imp, hs) = SHAPES[shape];
                    let r = client
                        .publish_export_report(publish(report(e, imp, hs, &format!("p{p} #{i}"))))
                        .await
                        .unwrap()
                        .into_inner()
                        .export_report
                        .unwrap();
                    shapes.lock().unwrap().insert(r.sequence, shape);
                    published_tx.send_modify(|n| *n += 1);
                }
            }));
        }

        let mut subscribers = Vec::new();
        for s in 0..SUBSCRIBERS {
            // Start once publishing has progressed to a random point.
            let threshold = rand::rng().random_range(0..TOTAL * 3 / 4);
            let mut progress = published_rx.clone();
            progress.wait_for(|n| *n >= threshold).await.unwrap();
            let after = rand::rng().random_range(0..=*progress.borrow());
            let filter = match s % 3 {
                0 => None,
                1 => Some(pb::TradeFilter {
                    exporter: "IRN".into(),
                    ..Default::default()
                }),
                _ => Some(pb::TradeFilter {
                    hs_prefix: "87".into(),
                    ..Default::default()
                }),
            };
            let slow = s < 20;
            let mut client = if slow {
                ExportReportServiceClient::new(narrow.clone())
            } else {
                ExportReportServiceClient::new(channel.clone())
            };
            let request = subscribe_after(after, filter.clone(), Some(100));
            subscribers.push(tokio::spawn(async move {
                let mut stream = client
                    .subscribe_export_reports(request)
                    .await
                    .unwrap()
                    .into_inner();
                let mut received = Vec::new();
                let mut caught_up = 0;
                let mut reached_end = false;
                // Replay may run past the head seen at registration, so the
                // marker can come after the last report.
                while !(reached_end && caught_up > 0) {
                    match stream.next().await.unwrap().unwrap().event.unwrap() {
                        Event::ExportReport(r) => {
                            received.push(r.sequence);
                            if slow {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            reached_end |= r.sequence == TOTAL;
                        }
                        Event::CaughtUp(_) => caught_up += 1,
                        Event::Heartbeat(h) => reached_end |= h.head_sequence == TOTAL,
                    }
                }
                assert_eq!(caught_up, 1, "caught_up is sent exactly once");
                (after, filter, received)
            }));
        }
        for p in publishers {
            p.await.unwrap();
        }
        let mut results = Vec::new();
        for s in subscribers {
            results.push(s.await.unwrap());
        }
        results
    };
    let results = tokio::time::timeout(LIMIT, test)
        .await
        .expect("stress test bounded in time");

    let shapes = shapes.lock().unwrap();
    assert_eq!(shapes.len(), TOTAL as usize);
    for (after, filter, received) in results {
        let expected: Vec<u64> = (after + 1..=TOTAL)
            .filter(|seq| {
                let (e, _, hs) = SHAPES[shapes[seq]];
                match &filter {
                    None => true,
                    Some(f) if !f.exporter.is_empty() => e == f.exporter,
                    Some(f) => hs.starts_with(&f.hs_prefix),
                }
            })
            .collect();
        assert_eq!(
            received, expected,
            "subscriber after {after} with {filter:?}"
        );
    }
    assert_eq!(server.app.counts().export_reports as u64, TOTAL);
    assert!(
        server.app.catch_ups() > 0,
        "slow subscribers lagged and caught up from the store"
    );
}

#[tokio::test]
async fn a_resume_point_below_retention_is_out_of_range_with_the_oldest_sequence() {
    let server = TestServer::with_config(config(1024, 5)).await;
    let mut client = server.reports().await;
    publish_n(&mut client, 10).await;

    for after in [0, 2, 4] {
        let status = client
            .subscribe_export_reports(subscribe_after(after, None, None))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "after {after}");
        let info = status.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(
            info.metadata
                .get("oldest_retained_sequence")
                .map(String::as_str),
            Some("6")
        );
        assert_eq!(
            status.metadata().get("tradewire-oldest-retained").unwrap(),
            "6"
        );
    }
    let mut stream = client
        .subscribe_export_reports(subscribe_after(5, None, None))
        .await
        .unwrap()
        .into_inner();
    match stream.next().await.unwrap().unwrap().event {
        Some(Event::ExportReport(r)) => assert_eq!(r.sequence, 6),
        other => panic!("expected report 6, got {other:?}"),
    }
    let beyond = client
        .subscribe_export_reports(subscribe_after(11, None, None))
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), Code::OutOfRange);
    assert_eq!(
        beyond.metadata().get("tradewire-oldest-retained").unwrap(),
        "6"
    );
}

/// A subscriber that stops reading while more than the retained window is
/// published gets OUT_OF_RANGE when catch-up falls off, never a silent skip.
#[tokio::test]
async fn catch_up_that_falls_off_retention_ends_with_out_of_range() {
    let server = TestServer::with_config(config(4, 20)).await;
    let mut client = ExportReportServiceClient::new(server.narrow_channel(8 * 1024).await);
    let mut stream = client
        .subscribe_export_reports(subscribe_after(0, None, None))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        stream.next().await.unwrap().unwrap().event,
        Some(Event::CaughtUp(_))
    ));
    // Far more than the 8 KiB window holds, so the server-side cursor stalls.
    let mut publisher = server.reports().await;
    tokio::time::timeout(LIMIT, publish_n(&mut publisher, 2_000))
        .await
        .unwrap();

    let mut last = 0;
    let status = tokio::time::timeout(LIMIT, async {
        loop {
            match stream.next().await {
                Some(Ok(pb::SubscribeExportReportsResponse {
                    event: Some(Event::ExportReport(r)),
                })) => {
                    assert_eq!(r.sequence, last + 1, "no gap before the error");
                    last = r.sequence;
                }
                Some(Ok(_)) => {}
                Some(Err(status)) => return status,
                None => panic!("stream ended without an error after {last}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(last < 2_000 - 20, "the subscriber fell behind the window");
    assert!(server.app.catch_ups() >= 1);
}

#[tokio::test]
async fn a_dropped_client_stream_frees_its_subscription() {
    let server = TestServer::start().await;
    let mut client = server.reports().await;
    let mut count = server.subscribers();
    assert_eq!(*count.borrow(), 0);
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut s = client
            .subscribe_export_reports(subscribe_after(0, None, None))
            .await
            .unwrap()
            .into_inner();
        assert!(matches!(
            s.next().await.unwrap().unwrap().event,
            Some(Event::CaughtUp(_))
        ));
        streams.push(s);
    }
    assert_eq!(*count.borrow(), 5);
    streams.truncate(2);
    wait_for(&mut count, Duration::from_secs(1), |n| *n == 2).await;
    drop(streams);
    wait_for(&mut count, Duration::from_secs(1), |n| *n == 0).await;

    // A whole connection going away frees its streams too.
    let channel = server.channel().await;
    let mut other = ExportReportServiceClient::new(channel);
    let mut s = other
        .subscribe_export_reports(subscribe_after(0, None, None))
        .await
        .unwrap()
        .into_inner();
    assert!(s.next().await.is_some());
    assert_eq!(*count.borrow(), 1);
    drop(s);
    drop(other);
    wait_for(&mut count, Duration::from_secs(1), |n| *n == 0).await;
}
