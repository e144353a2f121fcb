//! ExportReportService over a real server: publication computes the change,
//! links trade records, is idempotent, validates, lists and broadcasts.

use crate::common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tradewire::pb;
use tradewire::pb::subscribe_export_reports_response::Event;

fn growth_report() -> pb::ExportReport {
    pb::ExportReport {
        period: Some(year(pb::Calendar::Gregorian, 2023)),
        value: Some(usd(66_000_000, pb::Bound::AtLeast)),
        baseline_period: Some(year(pb::Calendar::Gregorian, 2022)),
        baseline_value: Some(usd(13_000_000, pb::Bound::Exact)),
        commodity: "Iran-made auto parts".into(),
        ..report("IRN", "RUS", "8708", "Auto parts exports to Russia up")
    }
}

#[tokio::test]
async fn publishing_computes_the_change_and_records_the_figures() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let mut trade = server.trade().await;

    let published = reports
        .publish_export_report(publish(growth_report()))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(published.sequence, 1);
    assert_eq!(published.change_percent, Some(407.69));
    assert_eq!(published.change_bound, pb::Bound::AtLeast as i32);
    assert!(published.publish_time.is_some());

    let value = trade
        .get_trade_record(pb::GetTradeRecordRequest {
            id: published.trade_record_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    assert_eq!(value.value, Some(usd(66_000_000, pb::Bound::AtLeast)));
    assert_eq!(value.period.unwrap().label, "2023");
    let baseline = trade
        .get_trade_record(pb::GetTradeRecordRequest {
            id: published.baseline_trade_record_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    assert_eq!(baseline.value, Some(usd(13_000_000, pb::Bound::Exact)));

    // A second report on the same figures links the same records.
    let again = reports
        .publish_export_report(publish(growth_report()))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(again.sequence, 2);
    assert_eq!(again.trade_record_id, published.trade_record_id);
    assert_eq!(
        again.baseline_trade_record_id,
        published.baseline_trade_record_id
    );
    assert_eq!(server.app.counts().trade_records, 2);

    // A record an export report refers to cannot be deleted.
    let status = trade
        .delete_trade_record(pb::DeleteTradeRecordRequest {
            id: published.trade_record_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    let got = reports
        .get_export_report(pb::GetExportReportRequest {
            id: published.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(got, published);
}

#[tokio::test]
async fn publishing_links_an_existing_record_with_the_same_key() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let mut existing = record("IRN", "RUS", "8708", 2022, 13_000_000);
    existing.source = Some(source("test statistics office"));
    let existing = trade
        .create_trade_record(create(existing))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    let mut reports = server.reports().await;
    let published = reports
        .publish_export_report(publish(growth_report()))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(
        published.baseline_trade_record_id, existing.id,
        "same exporter, importer, HS, period, organization"
    );
    assert_ne!(published.trade_record_id, existing.id);
    assert_eq!(server.app.counts().trade_records, 2);
}

#[tokio::test]
async fn a_reported_change_keeps_its_solar_hijri_periods() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let input = pb::ExportReport {
        period: Some(quarter(pb::Calendar::SolarHijri, 1403, 1)),
        baseline_period: Some(quarter(pb::Calendar::SolarHijri, 1402, 1)),
        change_percent: Some(100.0),
        ..report("IRN", "RUS", "8708", "Exports doubled in Q1 1403")
    };
    let published = reports
        .publish_export_report(publish(input))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(published.change_percent, Some(100.0));
    assert_eq!(published.change_bound, pb::Bound::Exact as i32);
    let period = published.period.unwrap();
    assert_eq!(period.label, "1403-Q1 SH");
    assert_eq!(period.start_date, Some(date(2024, 3, 20)));
    assert_eq!(period.end_date, Some(date(2024, 6, 20)));
    let baseline = published.baseline_period.unwrap();
    assert_eq!(baseline.label, "1402-Q1 SH");
    assert_eq!(baseline.start_date, Some(date(2023, 3, 21)));
    assert!(
        published.trade_record_id.is_empty(),
        "no value, no trade record"
    );
    assert_eq!(server.app.counts().trade_records, 0);
}

#[tokio::test]
async fn invalid_reports_name_their_fields() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let cases: Vec<Case<pb::ExportReport>> = vec![
        ("export_report.headline", Box::new(|r| r.headline.clear())),
        (
            "export_report.headline",
            Box::new(|r| r.headline = "h".repeat(501)),
        ),
        (
            "export_report.exporter",
            Box::new(|r| r.exporter = "QQQ".into()),
        ),
        ("export_report.period", Box::new(|r| r.period = None)),
        ("export_report.source", Box::new(|r| r.source = None)),
        (
            "export_report.baseline_period",
            Box::new(|r| r.baseline_period = None),
        ),
        (
            "export_report.baseline_period",
            Box::new(|r| r.baseline_period = r.period.clone()),
        ),
        (
            "export_report.baseline_value.value.currency_code",
            Box::new(|r| {
                r.baseline_value
                    .as_mut()
                    .unwrap()
                    .value
                    .as_mut()
                    .unwrap()
                    .currency_code = "EUR".into()
            }),
        ),
        (
            "export_report.value.value.nanos",
            Box::new(|r| r.value.as_mut().unwrap().value.as_mut().unwrap().nanos = -1),
        ),
        (
            "export_report.baseline_period",
            Box::new(|r| {
                r.value = None;
                r.baseline_value = None;
                r.baseline_period = None;
                r.change_percent = Some(12.0);
            }),
        ),
        (
            "export_report.change_percent",
            Box::new(|r| {
                r.value = None;
                r.baseline_value = None;
                r.change_percent = Some(f64::INFINITY);
            }),
        ),
        (
            "export_report.change_percent",
            Box::new(|r| {
                r.value = None;
                r.baseline_value = None;
                r.change_percent = Some(-100.5);
            }),
        ),
    ];
    for (field, mutate) in &cases {
        let mut input = growth_report();
        mutate(&mut input);
        let status = reports
            .publish_export_report(publish(input))
            .await
            .unwrap_err();
        assert_names_field(&status, field);
    }
    let status = reports
        .publish_export_report(pb::PublishExportReportRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["export_report"]);
    let counts = server.app.counts();
    assert_eq!(
        (counts.export_reports, counts.trade_records),
        (0, 0),
        "nothing half-published"
    );

    let status = reports
        .get_export_report(pb::GetExportReportRequest {
            id: ulid::Ulid::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_retried_publish_is_stored_and_broadcast_once() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let mut stream = reports
        .subscribe_export_reports(pb::SubscribeExportReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first_event = stream.next().await.unwrap().unwrap().event;
    assert!(matches!(first_event, Some(Event::CaughtUp(_))));

    let request = pb::PublishExportReportRequest {
        export_report: Some(growth_report()),
        request_id: "publish-once".into(),
    };
    let first = reports
        .publish_export_report(request.clone())
        .await
        .unwrap()
        .into_inner();
    let retry = reports
        .publish_export_report(request)
        .await
        .unwrap()
        .into_inner();
    assert!(
        !first.replayed && retry.replayed,
        "the retry says it is one"
    );
    assert_eq!(first.export_report, retry.export_report);
    let next = reports
        .publish_export_report(publish(report("IRN", "RUS", "8703", "Cars")))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    assert_eq!(next.sequence, 2, "the retry took no sequence");

    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        if let Some(Event::ExportReport(r)) = stream.next().await.unwrap().unwrap().event {
            delivered.push(r.sequence);
        }
    }
    assert_eq!(delivered, vec![1, 2]);
}

#[tokio::test]
async fn list_filters_and_pages_in_sequence_order() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    for (i, (exporter, hs)) in [
        ("IRN", "8708"),
        ("RUS", "8708"),
        ("IRN", "8703"),
        ("IRN", "2709"),
    ]
    .into_iter()
    .cycle()
    .take(40)
    .enumerate()
    {
        let importer = if exporter == "IRN" { "RUS" } else { "IRN" };
        reports
            .publish_export_report(publish(report(
                exporter,
                importer,
                hs,
                &format!("report {i}"),
            )))
            .await
            .unwrap();
    }
    let filter = pb::TradeFilter {
        exporter: "IRN".into(),
        hs_prefix: "87".into(),
        ..Default::default()
    };
    let mut sequences = Vec::new();
    let mut token = String::new();
    loop {
        let page = reports
            .list_export_reports(pb::ListExportReportsRequest {
                page_size: 7,
                page_token: token,
                filter: Some(filter.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        sequences.extend(page.export_reports.iter().map(|r| r.sequence));
        assert!(
            page.export_reports
                .iter()
                .all(|r| r.exporter == "IRN" && r.hs_code.starts_with("87"))
        );
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let expected: Vec<u64> = (1..=40).filter(|s| s % 4 == 1 || s % 4 == 3).collect();
    assert_eq!(sequences, expected);
}

#[tokio::test]
async fn a_subscriber_receives_a_published_report() {
    let server = TestServer::start().await;
    let mut reports = server.reports().await;
    let mut stream = reports
        .subscribe_export_reports(pb::SubscribeExportReportsRequest {
            filter: Some(pb::TradeFilter {
                importer: "RUS".into(),
                ..Default::default()
            }),
            start: Some(pb::subscribe_export_reports_request::Start::FromNow(
                pb::FromNow {},
            )),
            heartbeat_interval: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        stream.next().await.unwrap().unwrap().event,
        Some(Event::CaughtUp(pb::CaughtUp { head_sequence: 0 }))
    ));
    reports
        .publish_export_report(publish(report("RUS", "IRN", "8708", "filtered out")))
        .await
        .unwrap();
    let published = reports
        .publish_export_report(publish(growth_report()))
        .await
        .unwrap()
        .into_inner()
        .export_report
        .unwrap();
    match stream.next().await.unwrap().unwrap().event {
        Some(Event::ExportReport(received)) => assert_eq!(received, published),
        other => panic!("expected the report, got {other:?}"),
    }
}
