//! The durable store (issue 4): restart, resume across restart, torn tail,
//! corruption and repair, the lock, failed writes, snapshots.

use std::fs;

use crate::common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tradewire::pb::subscribe_export_reports_request::Start;
use tradewire::pb::subscribe_export_reports_response::Event;
use tradewire::{App, Config, Faults, OpenError, ServeError, pb};

pub(crate) async fn everything(
    server: &TestServer,
) -> (
    Vec<pb::TradeRecord>,
    Vec<pb::Announcement>,
    Vec<pb::ExportReport>,
) {
    let records = server
        .trade()
        .await
        .list_trade_records(pb::ListTradeRecordsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .trade_records;
    let announcements = server
        .announcements()
        .await
        .list_announcements(pb::ListAnnouncementsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .announcements;
    let reports = server
        .reports()
        .await
        .list_export_reports(pb::ListExportReportsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .export_reports;
    (records, announcements, reports)
}

pub(crate) fn announcement(headline: &str, related: Vec<String>) -> pb::CreateAnnouncementRequest {
    pb::CreateAnnouncementRequest {
        announcement: Some(pb::Announcement {
            kind: pb::AnnouncementKind::Meeting.into(),
            headline: headline.into(),
            countries: vec!["IRN".into(), "RUS".into()],
            source: Some(pb::Source {
                outlet: "IRNA".into(),
                ..Default::default()
            }),
            related_trade_record_ids: related,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn a_restart_keeps_every_write_and_sequences_continue() {
    let dir = TempDir::new("restart");
    let server = TestServer::with_config(durable(dir.path())).await;
    let mut trade = server.trade().await;
    let first = trade
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(record("IRN", "RUS", "8708", 2021, 9)),
            request_id: "kept-across-restart".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let batch = trade
        .batch_create_trade_records(pb::BatchCreateTradeRecordsRequest {
            requests: (0..3)
                .map(|i| create(record("IRN", "TUR", "2709", 2020 + i, 1)))
                .collect(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    trade
        .delete_trade_record(pb::DeleteTradeRecordRequest {
            id: batch.trade_records[0].id.clone(),
        })
        .await
        .unwrap();
    let mut announcements = server.announcements().await;
    let related = vec![batch.trade_records[1].id.clone()];
    announcements
        .create_announcement(announcement("kept", related))
        .await
        .unwrap();
    let dropped = announcements
        .create_announcement(announcement("deleted", vec![]))
        .await
        .unwrap()
        .into_inner()
        .announcement
        .unwrap();
    announcements
        .delete_announcement(pb::DeleteAnnouncementRequest { id: dropped.id })
        .await
        .unwrap();
    let mut reports = server.reports().await;
    reports
        .publish_export_report(publish(growth(2023)))
        .await
        .unwrap();
    reports
        .publish_export_report(publish(report("IRN", "RUS", "8703", "cars")))
        .await
        .unwrap();
    let before = everything(&server).await;
    server.shutdown().await.unwrap();

    let server = TestServer::with_config(durable(dir.path())).await;
    let recovery = server.app.recovery().expect("durable").clone();
    assert_eq!(
        recovery.replayed, 8,
        "every logged write replayed: {recovery:?}"
    );
    assert_eq!(
        everything(&server).await,
        before,
        "everything is back, exactly"
    );

    let mut reports = server.reports().await;
    let next = reports
        .publish_export_report(publish(growth(2024)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next.export_report.unwrap().sequence,
        3,
        "the next publish gets the next sequence"
    );
    let next = server
        .announcements()
        .await
        .create_announcement(announcement("after restart", vec![]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next.announcement.unwrap().sequence,
        3,
        "announcement sequences are not reused either"
    );
    let retry = server
        .trade()
        .await
        .create_trade_record(pb::CreateTradeRecordRequest {
            trade_record: Some(record("IRN", "RUS", "8708", 2021, 9)),
            request_id: "kept-across-restart".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(retry.replayed, "a retry after the restart says it is one");
    assert_eq!(
        retry.trade_record, first.trade_record,
        "request_id de-duplication survives a restart"
    );
    let ids: Vec<String> = before.0.iter().map(|r| r.id.clone()).collect();
    let fresh = server
        .trade()
        .await
        .create_trade_record(create(record("IRN", "RUS", "8708", 2025, 1)))
        .await
        .unwrap()
        .into_inner()
        .trade_record
        .unwrap();
    assert!(
        ids.iter().all(|id| *id < fresh.id),
        "ids keep growing after a restart"
    );
}

#[tokio::test]
async fn a_subscriber_resumes_after_a_restart_with_exactly_the_next_sequences() {
    let dir = TempDir::new("resume");
    let server = TestServer::with_config(durable(dir.path())).await;
    let mut reports = server.reports().await;
    for i in 0..5 {
        reports
            .publish_export_report(publish(report("IRN", "RUS", "8708", &format!("r{i}"))))
            .await
            .unwrap();
    }
    let mut stream = reports
        .subscribe_export_reports(pb::SubscribeExportReportsRequest {
            start: Some(Start::AfterSequence(0)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut last_seen = 0;
    while last_seen < 3 {
        if let Some(Event::ExportReport(r)) = stream.next().await.unwrap().unwrap().event {
            last_seen = r.sequence;
        }
    }
    drop(stream);
    server.shutdown().await.unwrap();

    let server = TestServer::with_config(durable(dir.path())).await;
    let mut reports = server.reports().await;
    let mut stream = reports
        .subscribe_export_reports(pb::SubscribeExportReportsRequest {
            start: Some(Start::AfterSequence(last_seen)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    reports
        .publish_export_report(publish(report("IRN", "RUS", "8708", "after restart")))
        .await
        .unwrap();
    let mut received = Vec::new();
    while received.len() < 3 {
        if let Some(Event::ExportReport(r)) = stream.next().await.unwrap().unwrap().event {
            received.push(r.sequence);
        }
    }
    assert_eq!(received, vec![4, 5, 6]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_reported() {
    let dir = TempDir::new("torn");
    let server = TestServer::with_config(durable(dir.path())).await;
    let mut trade = server.trade().await;
    for i in 0..4 {
        trade
            .create_trade_record(create(record("IRN", "RUS", "8708", 2000 + i, 1)))
            .await
            .unwrap();
    }
    let log = segments(dir.path()).pop().unwrap();
    let intact = fs::metadata(&log).unwrap().len();
    trade
        .create_trade_record(create(record("IRN", "RUS", "8708", 2010, 1)))
        .await
        .unwrap();
    let full = fs::metadata(&log).unwrap().len();
    server.shutdown().await.unwrap();

    let cut = intact + 1 + rand::random_range(0..full - intact - 1);
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let server = TestServer::with_config(durable(dir.path())).await;
    assert_eq!(server.app.recovery().unwrap().torn_bytes, cut - intact);
    assert_eq!(
        fs::metadata(&log).unwrap().len(),
        intact,
        "the torn entry is gone from the file"
    );
    let (records, _, _) = everything(&server).await;
    let years: Vec<i32> = records
        .iter()
        .map(|r| r.period.as_ref().unwrap().start_date.unwrap().year)
        .collect();
    assert_eq!(years, vec![2000, 2001, 2002, 2003]);
    // The log continues cleanly after the cut.
    server
        .trade()
        .await
        .create_trade_record(create(record("IRN", "RUS", "8708", 2011, 1)))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
    let server = TestServer::with_config(durable(dir.path())).await;
    assert_eq!(server.app.recovery().unwrap().torn_bytes, 0);
    assert_eq!(server.app.counts().trade_records, 5);
}

#[tokio::test]
async fn a_damaged_early_entry_stops_the_start_unless_repair() {
    let dir = TempDir::new("corrupt");
    let server = TestServer::with_config(durable(dir.path())).await;
    let mut trade = server.trade().await;
    trade
        .create_trade_record(create(record("IRN", "RUS", "8708", 2000, 1)))
        .await
        .unwrap();
    let log = segments(dir.path()).pop().unwrap();
    let second_entry = fs::metadata(&log).unwrap().len();
    for i in 1..6 {
        trade
            .create_trade_record(create(record("IRN", "RUS", "8708", 2000 + i, 1)))
            .await
            .unwrap();
    }
    server.shutdown().await.unwrap();

    let mut bytes = fs::read(&log).unwrap();
    bytes[second_entry as usize + 25] ^= 0x40;
    fs::write(&log, &bytes).unwrap();

    let error = App::open(durable(dir.path())).await.unwrap_err();
    match &error {
        ServeError::Open(OpenError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, &log);
            assert_eq!(*offset, second_entry);
        }
        other => panic!("{other:?}"),
    }
    let error = error.to_string();
    assert!(error.contains(&log.display().to_string()), "{error}");
    assert!(error.contains(&format!("offset {second_entry}")), "{error}");
    assert_eq!(
        fs::read(&log).unwrap(),
        bytes,
        "a refused start changes nothing"
    );

    let mut repair = durable(dir.path());
    repair.store.durable.as_mut().unwrap().repair = true;
    let app = App::open(repair).await.unwrap();
    assert_eq!(app.counts().trade_records, 1, "the intact prefix");
    assert_eq!(app.recovery().unwrap().repaired.len(), 1);
    let kept = &app.recovery().unwrap().repaired[0];
    assert_eq!(
        fs::read(kept).unwrap(),
        bytes,
        "a copy of the damaged file is kept"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = TempDir::new("lock");
    let first = App::open(durable(dir.path())).await.unwrap();
    let error = App::open(durable(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("in use by another tradewire process"),
        "{error}"
    );
    drop(first);
    App::open(durable(dir.path()))
        .await
        .expect("the lock is released with the first store");
}

#[tokio::test]
async fn a_failed_log_write_is_unavailable_and_leaves_nothing_visible() {
    let dir = TempDir::new("full");
    let mut config = durable(dir.path());
    let full_at_3000 = config.store.durable.take().unwrap().with_faults(Faults {
        fail_writes_after: Some(3_000),
        ..Faults::default()
    });
    config.store.durable = Some(full_at_3000);
    let server = TestServer::with_config(config).await;
    let mut reports = server.reports().await;
    let mut stream = reports
        .subscribe_export_reports(pb::SubscribeExportReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        stream.next().await.unwrap().unwrap().event,
        Some(Event::CaughtUp(_))
    ));
    let mut stored = 0;
    let status = loop {
        match reports
            .publish_export_report(publish(growth(2001 + stored)))
            .await
        {
            Ok(_) => stored += 1,
            Err(status) => break status,
        }
        assert!(stored < 100, "the simulated disk never filled");
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let counts = server.app.counts();
    assert_eq!(counts.export_reports, stored as usize);
    assert_eq!(
        counts.trade_records,
        stored as usize + 1,
        "no record of the failed publish"
    );
    let again = reports
        .publish_export_report(publish(growth(2001 + stored)))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::Unavailable, "the disk is still full");
    for _ in 0..stored {
        assert!(matches!(
            stream.next().await.unwrap().unwrap().event,
            Some(Event::ExportReport(_))
        ));
    }
    server.shutdown().await.unwrap();
    drop(stream);

    let server = TestServer::with_config(durable(dir.path())).await;
    let after = server.app.counts();
    assert_eq!(
        after, counts,
        "what was acknowledged, and nothing else, is on disk"
    );
}

#[tokio::test]
async fn loading_the_demo_into_a_persistent_store_twice_adds_nothing() {
    let dir = TempDir::new("demo");
    let mut config: Config = durable(dir.path());
    config.demo = true;
    let app = App::open(config.clone()).await.unwrap();
    let counts = app.counts();
    assert_eq!(
        (
            counts.trade_records,
            counts.export_reports,
            counts.announcements
        ),
        (2, 2, 6)
    );
    drop(app);
    let app = App::open(config).await.unwrap();
    assert_eq!(app.counts(), counts);
}
