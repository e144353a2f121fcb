//! Bad input for every RPC, sent through real tonic clients: each gets the
//! status its contract names (INVALID_ARGUMENT naming the field,
//! NOT_FOUND, OUT_OF_RANGE, ALREADY_EXISTS), never a panic or a hang. A
//! request id reused with a different request is ALREADY_EXISTS on every
//! method that takes one; reused with the same request it answers the
//! first outcome again.

use std::time::Duration;

use tonic::{Code, Status};
use tradewire::pb;

use crate::common::*;

const MALFORMED_ID: &str = "not-a-ulid";
const ABSENT_ID: &str = "01HZZZZZZZZZZZZZZZZZZZZZZZ";

/// The status a server stream ends with before its first event: tonic
/// gives it either as the call's answer (Trailers-Only) or as the first
/// item of the stream.
async fn stream_refusal<T: std::fmt::Debug>(
    call: impl Future<Output = Result<tonic::Response<tonic::Streaming<T>>, Status>>,
) -> Status {
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        match call.await {
            Err(status) => status,
            Ok(response) => match response.into_inner().message().await {
                Err(status) => status,
                Ok(event) => panic!("the stream started: {event:?}"),
            },
        }
    })
    .await;
    answer.expect("refused at once, not left hanging")
}

fn heartbeat(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

#[tokio::test]
async fn malformed_ids_name_the_field_and_absent_ones_are_not_found() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let mut reports = server.reports().await;
    let mut announcements = server.announcements().await;
    for id in [MALFORMED_ID, ABSENT_ID] {
        let answers: Vec<(&str, Status)> = vec![
            (
                "GetExportReport",
                reports
                    .get_export_report(pb::GetExportReportRequest { id: id.into() })
                    .await
                    .unwrap_err(),
            ),
            (
                "GetAnnouncement",
                announcements
                    .get_announcement(pb::GetAnnouncementRequest { id: id.into() })
                    .await
                    .unwrap_err(),
            ),
            (
                "DeleteAnnouncement",
                announcements
                    .delete_announcement(pb::DeleteAnnouncementRequest { id: id.into() })
                    .await
                    .unwrap_err(),
            ),
            (
                "DeleteTradeRecord",
                trade
                    .delete_trade_record(pb::DeleteTradeRecordRequest { id: id.into() })
                    .await
                    .unwrap_err(),
            ),
            (
                "ListTradeRecordRevisions",
                trade
                    .list_trade_record_revisions(pb::ListTradeRecordRevisionsRequest {
                        id: id.into(),
                    })
                    .await
                    .unwrap_err(),
            ),
        ];
        for (method, status) in answers {
            if id == MALFORMED_ID {
                assert_names_field(&status, "id");
            } else {
                assert_eq!(status.code(), Code::NotFound, "{method}: {status:?}");
            }
        }
    }
}

#[tokio::test]
async fn list_requests_name_a_bad_page_size_token_or_filter() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let mut announcements = server.announcements().await;
    let cases: Vec<(&str, pb::ListExportReportsRequest)> = vec![
        (
            "page_size",
            pb::ListExportReportsRequest {
                page_size: -1,
                ..Default::default()
            },
        ),
        (
            "page_token",
            pb::ListExportReportsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        ),
        (
            "filter.exporter",
            pb::ListExportReportsRequest {
                filter: Some(pb::TradeFilter {
                    exporter: "XX1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "filter.hs_prefix",
            pb::ListExportReportsRequest {
                filter: Some(pb::TradeFilter {
                    hs_prefix: "87a".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    ];
    for (field, request) in cases {
        let status = reports.list_export_reports(request).await.unwrap_err();
        assert_names_field(&status, field);
    }
    let cases: Vec<(&str, pb::ListAnnouncementsRequest)> = vec![
        (
            "page_size",
            pb::ListAnnouncementsRequest {
                page_size: -1,
                ..Default::default()
            },
        ),
        (
            "page_token",
            pb::ListAnnouncementsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
        ),
        (
            "filter.country",
            pb::ListAnnouncementsRequest {
                filter: Some(pb::AnnouncementFilter {
                    country: "XX1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    ];
    for (field, request) in cases {
        let status = announcements.list_announcements(request).await.unwrap_err();
        assert_names_field(&status, field);
    }
}

#[tokio::test]
async fn subscriptions_refuse_a_bad_start_heartbeat_or_filter() {
    use pb::subscribe_export_reports_request::Start as ReportStart;
    use pb::watch_announcements_request::Start as AnnouncementStart;

    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let mut announcements = server.announcements().await;

    let status = stream_refusal(
        announcements.watch_announcements(pb::WatchAnnouncementsRequest {
            start: Some(AnnouncementStart::AfterSequence(7)),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let status = stream_refusal(reports.subscribe_export_reports(
        pb::SubscribeExportReportsRequest {
            start: Some(ReportStart::AfterSequence(7)),
            ..Default::default()
        },
    ))
    .await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // Allowed from 100 ms to 300 s: just outside either bound is refused.
    for interval in [
        heartbeat(0, 99_000_000),
        heartbeat(300, 1),
        heartbeat(-1, 0),
    ] {
        let status = stream_refusal(announcements.watch_announcements(
            pb::WatchAnnouncementsRequest {
                heartbeat_interval: interval,
                ..Default::default()
            },
        ))
        .await;
        assert_names_field(&status, "heartbeat_interval");
        let status = stream_refusal(reports.subscribe_export_reports(
            pb::SubscribeExportReportsRequest {
                heartbeat_interval: interval,
                ..Default::default()
            },
        ))
        .await;
        assert_names_field(&status, "heartbeat_interval");
    }

    let status = stream_refusal(
        announcements.watch_announcements(pb::WatchAnnouncementsRequest {
            filter: Some(pb::AnnouncementFilter {
                country: "XX1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .await;
    assert_names_field(&status, "filter.country");
    let status = stream_refusal(reports.subscribe_export_reports(
        pb::SubscribeExportReportsRequest {
            filter: Some(pb::TradeFilter {
                importer: "R".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ))
    .await;
    assert_names_field(&status, "filter.importer");

    // Nothing was left open by the refusals.
    assert_eq!(*server.subscribers().borrow(), 0);
}

fn announcement(headline: &str) -> pb::Announcement {
    pb::Announcement {
        kind: pb::AnnouncementKind::Statement.into(),
        headline: headline.into(),
        source: Some(source("IRNA")),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_reused_request_id_answers_its_first_outcome_or_already_exists() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let mut reports = server.reports().await;
    let mut announcements = server.announcements().await;

    let batch = |year: i32| pb::BatchCreateTradeRecordsRequest {
        requests: vec![create(record("IRN", "RUS", "8708", year, 13))],
        request_id: "batch-1".into(),
    };
    let first = trade
        .batch_create_trade_records(batch(2001))
        .await
        .unwrap()
        .into_inner();
    let again = trade
        .batch_create_trade_records(batch(2001))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !first.replayed && again.replayed,
        "the retry says it is one"
    );
    assert_eq!(
        first.trade_records, again.trade_records,
        "the first outcome"
    );
    let status = trade
        .batch_create_trade_records(batch(2002))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    let publication = |headline: &str| pb::PublishExportReportRequest {
        export_report: Some(report("IRN", "RUS", "8708", headline)),
        request_id: "publish-1".into(),
    };
    let first = reports
        .publish_export_report(publication("grew"))
        .await
        .unwrap();
    let again = reports
        .publish_export_report(publication("grew"))
        .await
        .unwrap();
    let (first, again) = (first.into_inner(), again.into_inner());
    assert!(
        !first.replayed && again.replayed,
        "the retry says it is one"
    );
    assert_eq!(
        first.export_report, again.export_report,
        "the first outcome"
    );
    let status = reports
        .publish_export_report(publication("fell"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    let creation = |headline: &str| pb::CreateAnnouncementRequest {
        announcement: Some(announcement(headline)),
        request_id: "announce-1".into(),
    };
    let first = announcements
        .create_announcement(creation("met"))
        .await
        .unwrap();
    let again = announcements
        .create_announcement(creation("met"))
        .await
        .unwrap();
    let (first, again) = (first.into_inner(), again.into_inner());
    assert!(
        !first.replayed && again.replayed,
        "the retry says it is one"
    );
    assert_eq!(first.announcement, again.announcement, "the first outcome");
    let status = announcements
        .create_announcement(creation("did not meet"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // Each stored once.
    let counts = server.app.counts();
    assert_eq!(
        (counts.export_reports, counts.announcements),
        (1, 1),
        "{counts:?}"
    );
}

/// `grpc-timeout` as the spec writes it: a zero timeout has passed before
/// the call starts (as grpc-go has it), a malformed one is refused, a
/// well-formed one is served. Sent by a raw client, since tonic writes the
/// header itself.
#[tokio::test]
async fn grpc_timeout_zero_expires_at_once_and_a_malformed_one_is_refused() {
    use crate::common::raw_h2::RawGrpc;

    let server = TestServer::start().await;
    let mut raw = RawGrpc::connect(server.addr).await;
    let get = pb::GetTradeRecordRequest {
        id: ABSENT_ID.into(),
    };
    let path = "/tradewire.v1.TradeService/GetTradeRecord";
    for (timeout, status) in [
        ("0n", "4"),
        ("0S", "4"),
        ("garbage", "3"),
        ("1.5S", "3"),
        ("-1S", "3"),
        ("123456789m", "3"),
        ("10S", "5"),
        ("99999999H", "5"),
    ] {
        let reply = raw
            .unary_with(path, &get, &[("grpc-timeout", timeout)])
            .await;
        assert_eq!(reply.grpc_status, status, "grpc-timeout {timeout:?}");
    }
    let stream = "/tradewire.v1.ExportReportService/SubscribeExportReports";
    let subscribe = pb::SubscribeExportReportsRequest::default();
    let reply = raw
        .unary_with(stream, &subscribe, &[("grpc-timeout", "0m")])
        .await;
    assert_eq!(reply.grpc_status, "4", "a stream whose deadline has passed");
    assert_eq!(*server.subscribers().borrow(), 0);
}
