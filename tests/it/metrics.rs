//! The Prometheus endpoint of the real binary, scraped after real calls:
//! the grpc-ecosystem call metrics and tradewire's own, with exact counts.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Endpoint;
use tradewire::pb;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;

use crate::common::binary::ServerProcess;
use crate::common::*;

/// A free loopback port: bound, then let go for the server to take.
async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn connect(addr: SocketAddr) -> tonic::transport::Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn scrape(addr: SocketAddr) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The value of the one sample of `name` carrying every label in `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

const GET: [(&str, &str); 3] = [
    ("grpc_type", "unary"),
    ("grpc_service", "tradewire.v1.TradeService"),
    ("grpc_method", "GetTradeRecord"),
];

#[tokio::test]
async fn a_scrape_after_real_calls_shows_exact_counts() {
    let metrics = free_port().await;
    let server = ServerProcess::start(&[
        "--in-memory".as_ref(),
        "--metrics-listen".as_ref(),
        metrics.to_string().as_ref(),
    ]);
    let channel = connect(server.addr).await;
    let mut trade = TradeServiceClient::new(channel.clone());
    let created = trade
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(record("IRN", "RUS", "8708", 2022, 13)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    for _ in 0..3 {
        trade
            .get_trade_record(pb::GetTradeRecordRequest {
                id: created.id.clone(),
            })
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let missing = trade
            .get_trade_record(pb::GetTradeRecordRequest {
                id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
    }
    // A stream that delivers one report, then is dropped by its client.
    let mut reports = ExportReportServiceClient::new(channel);
    let mut stream = reports
        .subscribe_export_reports(pb::SubscribeExportReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    stream.next().await.unwrap().unwrap(); // caught up
    reports
        .publish_export_report(pb::PublishExportReportRequest {
            export_report: Some(report("IRN", "RUS", "8708", "exports grew")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    stream.next().await.unwrap().unwrap(); // the report
    drop(stream);

    // The stream's end is recorded when the server sees the client go.
    let stream_labels = [
        ("grpc_type", "server_stream"),
        ("grpc_method", "SubscribeExportReports"),
        ("grpc_code", "Cancelled"),
    ];
    let mut text = scrape(metrics).await;
    for _ in 0..100 {
        if sample(&text, "grpc_server_handled_total", &stream_labels).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape(metrics).await;
    }
    let get = |name: &str, extra: &[(&str, &str)]| {
        let labels: Vec<(&str, &str)> = GET.iter().chain(extra).copied().collect();
        sample(&text, name, &labels)
    };
    assert_eq!(get("grpc_server_started_total", &[]), Some(5.0));
    assert_eq!(get("grpc_server_msg_received_total", &[]), Some(5.0));
    assert_eq!(get("grpc_server_msg_sent_total", &[]), Some(3.0));
    assert_eq!(
        get("grpc_server_handled_total", &[("grpc_code", "Ok")]),
        Some(3.0)
    );
    assert_eq!(
        get("grpc_server_handled_total", &[("grpc_code", "NotFound")]),
        Some(2.0)
    );
    assert_eq!(get("grpc_server_handling_seconds_count", &[]), Some(5.0));
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &stream_labels),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "grpc_server_msg_sent_total",
            &[("grpc_method", "SubscribeExportReports")]
        ),
        Some(2.0),
        "the caught-up marker and the report"
    );
    assert_eq!(
        sample(
            &text,
            "tradewire_deliveries_total",
            &[("stream", "export_reports")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "tradewire_subscribers",
            &[("stream", "export_reports")]
        ),
        Some(0.0)
    );
    // The publish stored a record for its figure only if it had one; the
    // created record is there either way.
    assert!(sample(&text, "tradewire_items", &[("kind", "trade_records")]) >= Some(1.0));
    assert_eq!(
        sample(&text, "tradewire_items", &[("kind", "export_reports")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn refusals_are_counted_by_limit() {
    let metrics = free_port().await;
    let mut server = ServerProcess::start(&[
        "--in-memory".as_ref(),
        "--metrics-listen".as_ref(),
        metrics.to_string().as_ref(),
        "--max-connections".as_ref(),
        "1".as_ref(),
    ]);
    let _held = crate::common::raw_h2::RawGrpc::connect(server.addr).await;
    for _ in 0..3 {
        let mut refused = TcpStream::connect(server.addr).await.unwrap();
        let _ = refused.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut buf)).await;
    }
    server.wait_for_event("connection_refused");
    let text = scrape(metrics).await;
    assert_eq!(
        sample(
            &text,
            "tradewire_refused_total",
            &[("limit", "connection_refused")]
        ),
        Some(3.0),
        "{text}"
    );
}

/// Group commit is the reason concurrent writers under `--fsync always`
/// share an fsync; the committer counts each group's size. Writers that
/// keep 64 writes in flight must make at least one group larger than one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_under_fsync_always_share_commit_groups() {
    let metrics = free_port().await;
    let dir = TempDir::new("group-metrics");
    let server = ServerProcess::start(&[
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--fsync".as_ref(),
        "always".as_ref(),
        "--metrics-listen".as_ref(),
        metrics.to_string().as_ref(),
    ]);
    let channel = connect(server.addr).await;
    const WRITES: i32 = 256;
    let mut writers = tokio::task::JoinSet::new();
    for k in 0..64 {
        let mut trade = TradeServiceClient::new(channel.clone());
        writers.spawn(async move {
            for i in (k..WRITES).step_by(64) {
                trade
                    .create_trade_record(pb::CreateTradeRecordRequest {
                        trade_record: Some(record("IRN", "RUS", "8708", 1740 + i, 13)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let text = scrape(metrics).await;
    let groups = sample(&text, "tradewire_commit_group_size_count", &[]).unwrap();
    let writes = sample(&text, "tradewire_commit_group_size_sum", &[]).unwrap();
    assert_eq!(writes, f64::from(WRITES), "{text}");
    assert!(
        groups < writes,
        "{writes} writes in {groups} groups: no group held more than one"
    );
}

/// Every series of a durable server, scraped before any call: at zero, but
/// the demo's writes at start are counted (Prometheus alerts on `absent()`
/// and on rates need the series from the first scrape).
#[tokio::test]
async fn a_fresh_server_shows_every_series_and_counts_the_demo() {
    let metrics = free_port().await;
    let dir = TempDir::new("fresh-metrics");
    let _server = ServerProcess::start(&[
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--fsync".as_ref(),
        "always".as_ref(),
        "--demo".as_ref(),
        "--metrics-listen".as_ref(),
        metrics.to_string().as_ref(),
    ]);
    let text = scrape(metrics).await;
    let at = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };

    // The demo data set's writes: two records, two reports (whose
    // figures are those records) and six announcements.
    assert_eq!(at("tradewire_items", &[("kind", "trade_records")]), 2.0);
    assert_eq!(at("tradewire_items", &[("kind", "export_reports")]), 2.0);
    assert_eq!(at("tradewire_items", &[("kind", "announcements")]), 6.0);
    assert!(at("tradewire_log_bytes_total", &[]) > 0.0);
    assert!(at("tradewire_fsync_seconds_count", &[]) >= 1.0);
    assert!(at("tradewire_commit_group_size_count", &[]) >= 1.0);

    // Nothing else has happened yet.
    for stream in ["export_reports", "announcements"] {
        for name in [
            "tradewire_subscribers",
            "tradewire_deliveries_total",
            "tradewire_heartbeats_total",
            "tradewire_catch_ups_total",
            "tradewire_catch_up_items_total",
        ] {
            assert_eq!(at(name, &[("stream", stream)]), 0.0, "{name} {stream}");
        }
    }
    for limit in [
        "accept_failed",
        "out_of_file_descriptors",
        "connection_refused",
        "handshake_failed",
        "handshake_timeout",
        "request_timeout",
        "request_too_large",
        "auth_refused",
        "overloaded",
        "subscriber_share",
        "max_subscribers",
    ] {
        assert_eq!(
            at("tradewire_refused_total", &[("limit", limit)]),
            0.0,
            "{limit}"
        );
    }
    for kind in ["summary", "breakdown"] {
        assert_eq!(at("tradewire_summaries_total", &[("kind", kind)]), 0.0);
    }
    assert_eq!(at("tradewire_summary_examined_records_count", &[]), 0.0);
    assert_eq!(at("tradewire_snapshot_seconds_count", &[]), 0.0);
    for name in [
        "grpc_server_started_total",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "grpc_server_handling_seconds_count",
    ] {
        assert_eq!(at(name, &GET), 0.0, "{name}");
    }
    let ok: Vec<(&str, &str)> = GET.iter().copied().chain([("grpc_code", "Ok")]).collect();
    assert_eq!(at("grpc_server_handled_total", &ok), 0.0);
    let stream = [
        ("grpc_type", "server_stream"),
        ("grpc_method", "SubscribeExportReports"),
    ];
    assert_eq!(at("grpc_server_started_total", &stream), 0.0);
    assert!(
        text.contains("# HELP tradewire_items "),
        "series carry their help text"
    );
    // The replica's series belong to the jetstream backend only.
    assert!(!text.contains("tradewire_replica_connected"), "{text}");
}
