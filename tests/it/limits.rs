//! Limits through a real server: message size, request bodies that never
//! end, deadlines of calls and streams, load shedding, subscriber shares,
//! small errors and input hygiene. Each refusal sits next to its positive
//! twin.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use tradewire::pb;
use tradewire::pb::announcement_service_client::AnnouncementServiceClient;
use tradewire::pb::export_report_service_client::ExportReportServiceClient;
use tradewire::pb::trade_service_client::TradeServiceClient;
use tradewire::{Config, HubConfig, Limits};

use crate::common::raw_h2::RawGrpc;
use crate::common::*;
use crate::fsync::SyncGate;

const LIMIT: Duration = Duration::from_secs(30);

fn limits(change: impl FnOnce(&mut Limits)) -> Config {
    let mut config = Config::default();
    change(&mut config.limits);
    config
}

fn batch(n: usize, exporter: &str) -> pb::BatchCreateTradeRecordsRequest {
    pb::BatchCreateTradeRecordsRequest {
        requests: (0..n)
            .map(|i| pb::CreateTradeRecordRequest {
                trade_record: Some(record(exporter, "RUS", "8708", 1900 + i as i32, 1)),
                request_id: String::new(),
            })
            .collect(),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn a_message_over_the_limit_is_resource_exhausted_and_one_under_is_served() {
    let server = TestServer::with_config(limits(|l| l.max_message_bytes = 16 * 1024)).await;
    let mut trade = server.trade().await;
    let small = batch(10, "IRN");
    let large = batch(500, "IRN");
    assert!(prost::Message::encoded_len(&small) < 16 * 1024);
    assert!(prost::Message::encoded_len(&large) > 16 * 1024);
    trade.batch_create_trade_records(small).await.unwrap();
    let status = trade.batch_create_trade_records(large).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(server.app.counts().trade_records, 10);
}

#[tokio::test]
async fn a_request_that_never_ends_is_cut_off_after_the_receive_timeout() {
    let server =
        TestServer::with_config(limits(|l| l.receive_timeout = Duration::from_millis(300))).await;
    let mut raw = RawGrpc::connect(server.addr).await;
    let open = raw
        .half_open("/tradewire.v1.TradeService/GetTradeRecord")
        .await;
    let status = tokio::time::timeout(LIMIT, open)
        .await
        .expect("answered once the receive timeout passed");
    assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    // The same connection still serves a whole request.
    let reply = raw
        .unary(
            "/tradewire.v1.TradeService/GetTradeRecord",
            &pb::GetTradeRecordRequest {
                id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
            },
        )
        .await;
    assert_eq!(reply.grpc_status, "5", "NOT_FOUND");
}

#[tokio::test]
async fn a_unary_request_of_many_small_messages_is_cut_off_past_one_message() {
    let server = TestServer::with_config(limits(|l| l.max_message_bytes = 16 * 1024)).await;
    let mut raw = RawGrpc::connect(server.addr).await;
    // 1,000 framed 1 KiB messages: 1 MB that a unary call must not read on.
    let message = pb::GetTradeRecordRequest {
        id: "x".repeat(1019),
    };
    let framed = {
        let payload = prost::Message::encode_to_vec(&message);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        framed.extend_from_slice(&payload);
        bytes::Bytes::from(framed)
    };
    let status = tokio::time::timeout(
        LIMIT,
        raw.send_chunks(
            "/tradewire.v1.TradeService/GetTradeRecord",
            vec![framed.clone(); 1000],
        ),
    )
    .await
    .expect("answered without reading the whole body");
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED");
    // One such message alone is a well-formed call (an invalid id).
    let status = raw
        .send_chunks("/tradewire.v1.TradeService/GetTradeRecord", vec![framed])
        .await;
    assert_eq!(status, "3", "INVALID_ARGUMENT");
}

#[tokio::test]
async fn the_server_advertises_its_stream_limit() {
    let server = TestServer::with_config(limits(|l| l.max_concurrent_streams = 7)).await;
    assert_eq!(RawGrpc::advertised_max_streams(server.addr).await, 7);
}

fn subscribe_with_timeout(
    timeout: Option<&str>,
) -> tonic::Request<pb::SubscribeExportReportsRequest> {
    let mut request = tonic::Request::new(pb::SubscribeExportReportsRequest {
        filter: None,
        start: Some(pb::subscribe_export_reports_request::Start::FromNow(
            pb::FromNow {},
        )),
        heartbeat_interval: None,
    });
    if let Some(timeout) = timeout {
        request
            .metadata_mut()
            .insert("grpc-timeout", timeout.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn a_stream_ends_with_deadline_exceeded_at_its_deadline() {
    let server = TestServer::start().await;
    let mut client = ExportReportServiceClient::new(server.channel().await);
    let mut timed = client
        .subscribe_export_reports(subscribe_with_timeout(Some("300m")))
        .await
        .unwrap()
        .into_inner();
    let mut untimed = client
        .subscribe_export_reports(subscribe_with_timeout(None))
        .await
        .unwrap()
        .into_inner();
    for stream in [&mut timed, &mut untimed] {
        let first = stream.next().await.unwrap().unwrap();
        assert!(matches!(
            first.event,
            Some(pb::subscribe_export_reports_response::Event::CaughtUp(_))
        ));
    }
    let ended = tokio::time::timeout(LIMIT, timed.next())
        .await
        .expect("the stream ends at its deadline")
        .expect("a status");
    assert_eq!(ended.unwrap_err().code(), Code::DeadlineExceeded);

    // The stream without a deadline lives on and still delivers.
    client
        .publish_export_report(pb::PublishExportReportRequest {
            export_report: Some(report("IRN", "RUS", "8708", "after the deadline")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let delivered = tokio::time::timeout(LIMIT, untimed.next()).await.unwrap();
    assert!(matches!(
        delivered.unwrap().unwrap().event,
        Some(pb::subscribe_export_reports_response::Event::ExportReport(
            _
        ))
    ));
}

#[tokio::test]
async fn unary_calls_get_the_default_deadline_and_load_is_shed_past_the_in_flight_limit() {
    let dir = TempDir::new("limits-deadline");
    let mut config = durable(dir.path());
    config.limits.unary_deadline = Duration::from_millis(300);
    config.limits.max_in_flight = 1;
    let gate = SyncGate::install(&mut config);
    let server = TestServer::with_config(config).await;
    let channel = server.channel().await;

    let (held, gate) = hold_a_write(channel.clone(), gate).await;
    // The write's fsync is held: the only in-flight slot is taken.
    assert_eq!(
        get_missing(channel.clone()).await,
        Code::ResourceExhausted,
        "shed at once, not queued"
    );
    let status = held.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // Past its deadline the call gave its slot back, though the write is
    // still waiting for its fsync.
    assert_eq!(get_missing(channel.clone()).await, Code::NotFound);
    tokio::task::spawn_blocking(move || gate.release())
        .await
        .unwrap();
}

/// A CreateTradeRecord whose fsync the gate holds: returns once the write
/// is waiting in the fsync, with the call's handle and the gate.
async fn hold_a_write(
    channel: Channel,
    gate: SyncGate,
) -> (
    tokio::task::JoinHandle<Result<tonic::Response<pb::CreateTradeRecordResponse>, tonic::Status>>,
    SyncGate,
) {
    gate.arm();
    let mut trade = TradeServiceClient::new(channel);
    let held = tokio::spawn(async move {
        trade
            .create_trade_record(pb::CreateTradeRecordRequest {
                trade_record: Some(record("IRN", "RUS", "8708", 2022, 1)),
                request_id: String::new(),
            })
            .await
    });
    let gate = tokio::task::spawn_blocking(move || {
        gate.wait_entered();
        gate
    })
    .await
    .unwrap();
    (held, gate)
}

async fn get_missing(channel: Channel) -> Code {
    TradeServiceClient::new(channel)
        .get_trade_record(pb::GetTradeRecordRequest {
            id: "01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
        })
        .await
        .map_or_else(|s| s.code(), |_| Code::Ok)
}

#[tokio::test]
async fn one_connection_cannot_take_every_subscriber_slot() {
    let server = TestServer::with_config(Config {
        hub: HubConfig {
            max_subscribers_per_connection: 2,
            ..HubConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut first = ExportReportServiceClient::new(server.channel().await);
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(
            first
                .subscribe_export_reports(subscribe_with_timeout(None))
                .await
                .unwrap(),
        );
    }
    let refused = first
        .subscribe_export_reports(subscribe_with_timeout(None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("this connection"), "{refused:?}");
    let mut second = ExportReportServiceClient::new(server.channel().await);
    second
        .subscribe_export_reports(subscribe_with_timeout(None))
        .await
        .expect("another connection has its own share");
}

/// The bytes a status takes in trailers: its message and its details.
fn status_size(status: &tonic::Status) -> usize {
    status.message().len() + status.details().len() * 4 / 3
}

#[tokio::test]
async fn errors_stay_small_whatever_the_request() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;

    // 1,000 records (the allowed maximum), each with a bad exporter.
    let status = trade
        .batch_create_trade_records(batch(1000, "XX"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 21, "20 listed, then how many more");
    assert!(
        violations[20].description.contains("980 more"),
        "{violations:?}"
    );
    assert!(
        status_size(&status) < 8 * 1024,
        "{} bytes",
        status_size(&status)
    );
    // Its positive twin: the same batch, valid, is stored.
    trade
        .batch_create_trade_records(batch(1000, "IRN"))
        .await
        .unwrap();

    // A 10 KB id is quoted by a short prefix.
    let status = trade
        .get_trade_record(pb::GetTradeRecordRequest {
            id: "x".repeat(10_000),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status_size(&status) < 1024, "{}", status.message());
    assert!(
        status.message().contains("10000 bytes"),
        "{}",
        status.message()
    );

    // 500 KB of bad countries (125,000 of them) is one violation: the
    // count is checked before the elements.
    let mut announcements = AnnouncementServiceClient::new(server.channel().await);
    let mut announcement = meeting();
    announcement.countries = vec!["??".into(); 125_000];
    assert!(prost::Message::encoded_len(&announcement) >= 500_000);
    let status = announcements
        .create_announcement(pb::CreateAnnouncementRequest {
            announcement: Some(announcement),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["announcement.countries"],
        "{status:?}"
    );
    assert!(status_size(&status) < 1024);
}

fn meeting() -> pb::Announcement {
    pb::Announcement {
        kind: pb::AnnouncementKind::Meeting.into(),
        headline: "Iran and Russia meet at MIMS".into(),
        body: "A bilateral meeting.\n\tAt the exhibition.".into(),
        source: Some(pb::Source {
            outlet: "IRNA".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn control_characters_are_refused_in_names_and_allowed_as_line_breaks_in_text() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let mut nul = record("IRN", "RUS", "8708", 2022, 1);
    nul.commodity = "auto\u{0}parts".into();
    let status = trade
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(nul),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["trade_record.commodity"]);

    let mut announcements = AnnouncementServiceClient::new(server.channel().await);
    let mut escape = meeting();
    escape.headline = "\u{1b}[2Jcleared".into();
    let status = announcements
        .create_announcement(pb::CreateAnnouncementRequest {
            announcement: Some(escape),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["announcement.headline"]);
    // Tabs and line feeds in a body are text, not attacks.
    announcements
        .create_announcement(pb::CreateAnnouncementRequest {
            announcement: Some(meeting()),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_list_examines_a_bounded_number_of_items_per_call() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    // 10,500 records the filter does not match, then the one it does.
    for chunk in 0..11 {
        let size = if chunk == 10 { 500 } else { 1000 };
        let mut request = batch(size, "IRN");
        for (i, entry) in request.requests.iter_mut().enumerate() {
            let record = entry.trade_record.as_mut().unwrap();
            record.period = Some(year(
                pb::Calendar::Gregorian,
                1000 + ((chunk * 1000 + i) % 900) as i32,
            ));
        }
        trade.batch_create_trade_records(request).await.unwrap();
    }
    let mut last = record("IRN", "RUS", "8708", 9000, 1);
    last.commodity = "the match".into();
    trade
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(last),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // A span of 5,000 years uses no index: every record is a candidate.
    let filter = pb::TradeFilter {
        hs_prefix: "87".into(),
        period_overlaps: Some(pb::DateRange {
            start: Some(date(5000, 1, 1)),
            end: Some(date(9999, 12, 31)),
        }),
        ..Default::default()
    };
    let first = trade
        .list_trade_records(pb::ListTradeRecordsRequest {
            page_size: 10,
            page_token: String::new(),
            filter: Some(filter.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.trade_records.is_empty(), "the budget ran out first");
    assert!(!first.next_page_token.is_empty(), "with a token to go on");
    let second = trade
        .list_trade_records(pb::ListTradeRecordsRequest {
            page_size: 10,
            page_token: first.next_page_token,
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner();
    let found: Vec<&str> = second
        .trade_records
        .iter()
        .map(|r| r.commodity.as_str())
        .collect();
    assert_eq!(found, vec!["the match"]);
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn a_call_whose_request_arrived_may_work_past_the_receive_timeout() {
    let dir = TempDir::new("limits-arrived");
    let mut config = durable(dir.path());
    config.limits.receive_timeout = Duration::from_millis(100);
    config.limits.unary_deadline = Duration::from_secs(20);
    let gate = SyncGate::install(&mut config);
    let server = TestServer::with_config(config).await;
    let (held, gate) = hold_a_write(server.channel().await, gate).await;
    // The handler works (its fsync held) well past the receive timeout,
    // which bounds only the request's arrival.
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::task::spawn_blocking(move || gate.release())
        .await
        .unwrap();
    held.await.unwrap().expect("the write is answered OK");
}
