//! The demo data set holds every fact of the seed article, queryable over
//! the API, and loads idempotently.

use crate::common::*;
use tradewire::{Config, pb};

async fn demo_server() -> TestServer {
    TestServer::with_config(Config {
        demo: true,
        ..Config::default()
    })
    .await
}

fn units(m: &Option<pb::BoundedMoney>) -> (i64, i32) {
    let m = m.as_ref().unwrap();
    (m.value.as_ref().unwrap().units, m.bound)
}

#[tokio::test]
async fn trade_records_hold_13_million_then_more_than_66_million() {
    let server = demo_server().await;
    let mut trade = server.trade().await;
    let records = trade
        .list_trade_records(pb::ListTradeRecordsRequest {
            filter: Some(pb::TradeFilter {
                exporter: "IRN".into(),
                importer: "RUS".into(),
                hs_prefix: "8708".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .trade_records;
    let figures: Vec<(String, (i64, i32))> = records
        .iter()
        .map(|r| (r.period.as_ref().unwrap().label.clone(), units(&r.value)))
        .collect();
    assert_eq!(
        figures,
        vec![
            ("2022".to_string(), (13_000_000, pb::Bound::Exact as i32)),
            ("2023".to_string(), (66_000_000, pb::Bound::AtLeast as i32)),
        ]
    );
    let source = records[0].source.as_ref().unwrap();
    assert_eq!(source.organization, "Iran Trade Promotion Organization");
    assert_eq!(source.outlet, "IRNA");
    let speaker = source.speaker.as_ref().unwrap();
    assert_eq!(speaker.name, "Ebrahim Doustzadeh");
    assert!(speaker.organization.contains("ISMAPA"));
}

#[tokio::test]
async fn export_reports_hold_the_computed_and_the_reported_growth() {
    let server = demo_server().await;
    let mut reports = server.reports().await;
    let all = reports
        .list_export_reports(pb::ListExportReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .export_reports;
    assert_eq!(all.len(), 2);
    let yearly = &all[0];
    assert_eq!(
        (yearly.change_percent, yearly.change_bound),
        (Some(407.69), pb::Bound::AtLeast as i32)
    );
    assert!(!yearly.trade_record_id.is_empty() && !yearly.baseline_trade_record_id.is_empty());
    let quarterly = &all[1];
    assert_eq!(
        (quarterly.change_percent, quarterly.change_bound),
        (Some(100.0), pb::Bound::Exact as i32)
    );
    let period = quarterly.period.as_ref().unwrap();
    assert_eq!(period.label, "1403-Q1 SH");
    assert_eq!(
        (period.start_date, period.end_date),
        (Some(date(2024, 3, 20)), Some(date(2024, 6, 20)))
    );
    assert_eq!(
        quarterly.baseline_period.as_ref().unwrap().label,
        "1402-Q1 SH"
    );

    // The yearly report links to the demo's trade records, not to copies.
    assert_eq!(server.app.counts().trade_records, 2);
}

#[tokio::test]
async fn announcements_hold_the_meeting_booth_interest_and_forecast() {
    let server = demo_server().await;
    let mut client = server.announcements().await;
    let all = client
        .list_announcements(pb::ListAnnouncementsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .announcements;
    let find = |needle: &str| {
        all.iter()
            .find(|a| a.headline.contains(needle) || a.body.contains(needle))
            .unwrap_or_else(|| panic!("no announcement mentions {needle:?}"))
    };
    let meeting = find("discuss expansion of ties");
    assert_eq!(meeting.kind, pb::AnnouncementKind::Meeting as i32);
    let event = meeting.event.as_ref().unwrap();
    assert_eq!(
        (event.name.as_str(), event.start_date),
        ("MIMS Automobility Moscow 2024", Some(date(2024, 8, 19)))
    );
    assert!(meeting.organizations.iter().any(|o| o == "AvtoVAZ"));
    assert!(
        meeting
            .people
            .iter()
            .any(|p| p.name == "Farshad Moghimi" && p.role.contains("Deputy Minister"))
    );
    assert_eq!(meeting.related_trade_record_ids.len(), 2);

    assert_eq!(
        find("export cars").kind,
        pb::AnnouncementKind::Statement as i32
    );
    assert_eq!(
        find("third year in a row").kind,
        pb::AnnouncementKind::Exhibition as i32
    );
    assert!(
        find("high potential for becoming industrialized")
            .people
            .iter()
            .any(|p| p.name == "Abbas Aliabadi")
    );

    let forecast = find("1.5 million cars");
    assert_eq!(forecast.kind, pb::AnnouncementKind::Forecast as i32);
    assert!(forecast.event.as_ref().unwrap().name.contains("IAPEX"));
    let f = forecast.forecast.as_ref().unwrap();
    let target = f.target.as_ref().unwrap();
    assert_eq!(
        (target.amount, target.unit.as_str(), target.bound),
        (1_500_000.0, "cars", pb::Bound::AtLeast as i32)
    );
    assert_eq!(f.due_by, Some(date(2025, 3, 20)));
}

#[tokio::test]
async fn loading_the_demo_twice_adds_nothing() {
    let server = demo_server().await;
    let before = server.app.counts();
    server.app.load_demo().await.unwrap();
    assert_eq!(server.app.counts(), before);
    assert_eq!(
        (
            before.trade_records,
            before.export_reports,
            before.announcements
        ),
        (2, 2, 6)
    );
}

/// `--demo` on a persistent store loads once: a restart with it adds
/// nothing, even when the store has forgotten the demo's request ids
/// (here it remembers 3 of them; a real store, 100,000).
#[tokio::test]
async fn the_demo_loads_once_into_a_persistent_store_even_with_its_ids_forgotten() {
    let dir = TempDir::new("demo-once");
    let config = || {
        let mut config = durable(dir.path());
        config.demo = true;
        config.store.request_id_capacity = 3;
        config
    };
    let server = TestServer::with_config(config()).await;
    let loaded = server.app.counts();
    assert_eq!(
        (
            loaded.trade_records,
            loaded.export_reports,
            loaded.announcements
        ),
        (2, 2, 6)
    );
    server.shutdown().await.unwrap();

    let again = TestServer::with_config(config()).await;
    assert_eq!(again.app.counts(), loaded, "nothing loaded twice");
    again.shutdown().await.unwrap();
}
