//! Snapshots: they compact the log, and a restart from one restores all
//! the state a write can leave, not only records and reports: revisions,
//! announcements and their deletes, remembered request ids, retention.

use std::fs;

use crate::common::*;
use crate::durability::{announcement, everything};
use tonic::Code;
use tradewire::pb;
use tradewire::pb::subscribe_export_reports_request::Start;
use tradewire::pb::subscribe_export_reports_response::Event;

#[tokio::test]
async fn snapshots_compact_the_log_and_restore_everything() {
    let dir = TempDir::new("snapshot");
    let mut config = durable(dir.path());
    config.store.durable.as_mut().unwrap().snapshot_after_bytes = 4 * 1024;
    config.store.retention = 50;
    let server = TestServer::with_config(config.clone()).await;
    // Written first, so that the snapshot holds them, not the log's tail:
    // a record with two revisions under a request id, and announcements,
    // one of them deleted.
    let mut trade = server.trade().await;
    let create_once = |units: i64| pb::CreateTradeRecordRequest {
        trade_record: Some(record("IRN", "RUS", "8708", 2023, units)),
        request_id: "snapshot-create".into(),
    };
    let created = trade
        .create_trade_record(create_once(60_000_000))
        .await
        .unwrap()
        .into_inner();
    let mut current = created.trade_record.clone().unwrap();
    for units in [66_000_000, 67_000_000] {
        let mut next = current.clone();
        next.value = Some(usd(units, pb::Bound::AtLeast));
        current = trade
            .update_trade_record(pb::UpdateTradeRecordRequest {
                trade_record: Some(next),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["value".into()],
                }),
                etag: current.etag.clone(),
                revision_source: None,
            })
            .await
            .unwrap()
            .into_inner()
            .trade_record
            .unwrap();
    }
    let history = |mut trade: tradewire::pb::trade_service_client::TradeServiceClient<_>,
                   id: String| async move {
        trade
            .list_trade_record_revisions(pb::ListTradeRecordRevisionsRequest { id })
            .await
            .unwrap()
            .into_inner()
            .revisions
    };
    let revisions = history(trade.clone(), current.id.clone()).await;
    assert_eq!(revisions.len(), 3);
    let mut announcements = server.announcements().await;
    let mut announced = Vec::new();
    for headline in ["kept", "deleted"] {
        let created = announcements
            .create_announcement(announcement(headline, vec![]))
            .await
            .unwrap()
            .into_inner()
            .announcement
            .unwrap();
        announced.push(created.id);
    }
    announcements
        .delete_announcement(pb::DeleteAnnouncementRequest {
            id: announced[1].clone(),
        })
        .await
        .unwrap();
    let mut reports = server.reports().await;
    for i in 0..60 {
        reports
            .publish_export_report(publish(growth(1900 + i)))
            .await
            .unwrap();
    }
    let before = everything(&server).await;
    let sequences: Vec<u64> = before.2.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, (11..=60).collect::<Vec<_>>(), "50 retained");
    server.shutdown().await.unwrap();

    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let snapshots: Vec<&String> = names.iter().filter(|n| n.ends_with(".snap")).collect();
    assert_eq!(snapshots.len(), 1, "older snapshots are dropped: {names:?}");
    let snapshot_lsn: u64 = snapshots[0]
        .trim_start_matches("snapshot-")
        .trim_end_matches(".snap")
        .parse()
        .unwrap();
    for log in names.iter().filter(|n| n.ends_with(".log")) {
        let first: u64 = log
            .trim_start_matches("wal-")
            .trim_end_matches(".log")
            .parse()
            .unwrap();
        assert!(
            first >= snapshot_lsn,
            "segment {log} is covered by the snapshot and should be gone"
        );
    }
    assert!(!names.iter().any(|n| n.ends_with(".tmp")));

    let server = TestServer::with_config(config).await;
    assert_eq!(
        server.app.recovery().unwrap().snapshot_lsn,
        Some(snapshot_lsn)
    );
    assert_eq!(everything(&server).await, before, "retention included");
    let mut trade = server.trade().await;
    assert_eq!(history(trade.clone(), current.id.clone()).await, revisions);
    let retried = trade
        .create_trade_record(create_once(60_000_000))
        .await
        .unwrap()
        .into_inner();
    assert!(
        retried.replayed,
        "a retry after the snapshot says it is one"
    );
    assert_eq!(
        retried.trade_record, created.trade_record,
        "a remembered request id answers its outcome"
    );
    let reused = trade.create_trade_record(create_once(1)).await.unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    let gone = server
        .announcements()
        .await
        .get_announcement(pb::GetAnnouncementRequest {
            id: announced[1].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    // Retention holds for a resuming subscriber too: below the oldest
    // retained report is OUT_OF_RANGE, at it the replay starts at 11.
    let mut reports = server.reports().await;
    let resume = |after: u64| pb::SubscribeExportReportsRequest {
        start: Some(Start::AfterSequence(after)),
        ..Default::default()
    };
    let below = match reports.subscribe_export_reports(resume(5)).await {
        Err(status) => status,
        Ok(stream) => stream.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(below.code(), Code::OutOfRange, "{below:?}");
    let first = reports
        .subscribe_export_reports(resume(10))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first.event, Some(Event::ExportReport(r)) if r.sequence == 11),
        "{first:?}"
    );
    let next = server
        .reports()
        .await
        .publish_export_report(publish(growth(2100)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.export_report.unwrap().sequence, 61);
}
