//! Revisions of figures: UpdateTradeRecord with a field mask and an etag,
//! every revision kept (across a restart and a delete), and summaries on
//! current revisions.

use prost_types::FieldMask;
use tonic::Code;
use tonic::transport::Channel;
use tradewire::pb::trade_service_client::TradeServiceClient;
use tradewire::{Config, pb};

use crate::common::*;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn update(
    record: &pb::TradeRecord,
    paths: &[&str],
    etag: &str,
    source: Option<pb::Source>,
) -> pb::UpdateTradeRecordRequest {
    pb::UpdateTradeRecordRequest {
        trade_record: Some(record.clone()),
        update_mask: mask(paths),
        etag: etag.into(),
        revision_source: source,
    }
}

async fn revise(
    trade: &mut TradeServiceClient<Channel>,
    request: pb::UpdateTradeRecordRequest,
) -> pb::TradeRecord {
    trade
        .update_trade_record(request)
        .await
        .expect("update")
        .into_inner()
        .trade_record
        .expect("the revised record")
}

async fn get(trade: &mut TradeServiceClient<Channel>, id: &str) -> pb::TradeRecord {
    trade
        .get_trade_record(pb::GetTradeRecordRequest { id: id.into() })
        .await
        .expect("get")
        .into_inner()
        .trade_record
        .expect("the record")
}

async fn history(
    trade: &mut TradeServiceClient<Channel>,
    id: &str,
) -> Vec<pb::TradeRecordRevision> {
    trade
        .list_trade_record_revisions(pb::ListTradeRecordRevisionsRequest { id: id.into() })
        .await
        .expect("revisions")
        .into_inner()
        .revisions
}

/// Three revisions of a 2023 figure: a value, a commodity, a value again.
async fn three_updates(trade: &mut TradeServiceClient<Channel>) -> pb::TradeRecord {
    let mut record = stored(trade, record("IRN", "RUS", "8708", 2023, 60_000_000)).await;
    assert_eq!((record.revision, record.etag.as_str()), (1, "r1"));
    record.value = Some(usd(66_000_000, pb::Bound::AtLeast));
    let record = revise(
        trade,
        update(&record, &["value"], "r1", Some(source("ITPO"))),
    )
    .await;
    let mut next = record.clone();
    next.commodity = "Iran-made auto parts".into();
    let record = revise(trade, update(&next, &["commodity"], &record.etag, None)).await;
    let mut next = record.clone();
    next.value = Some(usd(67_000_000, pb::Bound::Exact));
    revise(
        trade,
        update(&next, &["value"], &record.etag, Some(source("Customs"))),
    )
    .await
}

#[tokio::test]
async fn every_revision_is_kept_and_get_returns_the_current_one() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let current = three_updates(&mut trade).await;
    assert_eq!((current.revision, current.etag.as_str()), (4, "r4"));

    let got = get(&mut trade, &current.id).await;
    assert_eq!(got, current, "Get answers the current revision");
    assert_eq!(got.value, Some(usd(67_000_000, pb::Bound::Exact)));
    assert_eq!(got.commodity, "Iran-made auto parts");

    let revisions = history(&mut trade, &current.id).await;
    let summary: Vec<(i64, Vec<String>, String)> = revisions
        .iter()
        .map(|r| {
            (
                r.revision,
                r.changed_fields.clone(),
                r.source.as_ref().unwrap().organization.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, vec![], "Test Statistics Office".to_owned()),
            (2, vec!["value".to_owned()], "ITPO".to_owned()),
            (
                3,
                vec!["commodity".to_owned()],
                "Test Statistics Office".to_owned()
            ),
            (4, vec!["value".to_owned()], "Customs".to_owned()),
        ]
    );
    let values: Vec<_> = revisions
        .iter()
        .map(|r| r.trade_record.as_ref().unwrap().value.clone())
        .collect();
    assert_eq!(values[0], Some(usd(60_000_000, pb::Bound::Exact)));
    assert_eq!(values[1], Some(usd(66_000_000, pb::Bound::AtLeast)));
    assert_eq!(values[3], Some(usd(67_000_000, pb::Bound::Exact)));
    let times: Vec<_> = revisions
        .iter()
        .map(|r| {
            let t = r.revise_time.unwrap();
            (t.seconds, t.nanos)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[tokio::test]
async fn a_stale_etag_is_aborted_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let mut record = stored(&mut trade, record("IRN", "RUS", "8708", 2023, 1)).await;
    record.value = Some(usd(2, pb::Bound::Exact));
    revise(&mut trade, update(&record, &["value"], "r1", None)).await;
    record.value = Some(usd(3, pb::Bound::Exact));
    let stale = trade
        .update_trade_record(update(&record, &["value"], "r1", None))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    assert!(stale.message().contains("r2"), "{}", stale.message());
    assert_eq!(history(&mut trade, &record.id).await.len(), 2);
    // Without an etag, the update is unconditional.
    let forced = revise(&mut trade, update(&record, &["value"], "", None)).await;
    assert_eq!(forced.revision, 3);
}

#[tokio::test]
async fn summaries_count_the_current_revision() {
    let server = TestServer::with_config(Config {
        demo: true,
        ..Config::default()
    })
    .await;
    let mut trade = server.trade().await;
    let seed_2023 = trade
        .list_trade_records(pb::ListTradeRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .trade_records
        .into_iter()
        .find(|r| r.period.as_ref().unwrap().label == "2023")
        .unwrap();
    let mut revised = seed_2023.clone();
    revised.value = Some(usd(70_000_000, pb::Bound::Exact));
    revise(
        &mut trade,
        update(&revised, &["value"], &seed_2023.etag, None),
    )
    .await;
    let summary = trade
        .summarize_trade(pb::SummarizeTradeRequest {
            calendar: pb::Calendar::Gregorian.into(),
            granularity: pb::Granularity::Year.into(),
            first_year: 2023,
            last_year: 2023,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let bucket = &summary.buckets[0];
    assert_eq!(bucket.total, Some(usd(70_000_000, pb::Bound::Exact)));
    let growth = bucket.change_from_year_earlier.as_ref().unwrap();
    assert_eq!((growth.percent, growth.bound()), (438.46, pb::Bound::Exact));
}

#[tokio::test]
async fn revisions_survive_a_restart_and_a_delete() {
    let dir = TempDir::new("revisions");
    let server = TestServer::with_config(durable(dir.path())).await;
    let mut trade = server.trade().await;
    let current = three_updates(&mut trade).await;
    let addr = server.addr;
    server.shutdown().await.unwrap();

    let server = TestServer::with_config_at(durable(dir.path()), addr).await;
    let mut trade = server.trade().await;
    let got = get(&mut trade, &current.id).await;
    assert_eq!(got, current, "replayed from the log, revision and all");
    assert_eq!(history(&mut trade, &current.id).await.len(), 4);

    trade
        .delete_trade_record(pb::DeleteTradeRecordRequest {
            id: current.id.clone(),
        })
        .await
        .unwrap();
    let gone = trade
        .get_trade_record(pb::GetTradeRecordRequest {
            id: current.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        history(&mut trade, &current.id).await.len(),
        4,
        "deleting keeps the history until compaction"
    );
}

#[tokio::test]
async fn bad_updates_name_their_fields() {
    let server = TestServer::start().await;
    let mut trade = server.trade().await;
    let record = stored(&mut trade, record("IRN", "RUS", "8708", 2023, 1)).await;
    let cases = [
        (
            "update_mask.paths[0]",
            update(&record, &["exporter"], "", None),
        ),
        ("update_mask.paths", update(&record, &[], "", None)),
        (
            "update_mask.paths[1]",
            update(&record, &["value", "value"], "", None),
        ),
        ("etag", update(&record, &["value"], "W/xyz", None)),
        (
            "trade_record.id",
            update(
                &pb::TradeRecord {
                    id: "nope".into(),
                    ..record.clone()
                },
                &["value"],
                "",
                None,
            ),
        ),
        (
            "trade_record.value",
            update(
                &pb::TradeRecord {
                    value: None,
                    ..record.clone()
                },
                &["value"],
                "",
                None,
            ),
        ),
    ];
    for (field, bad) in cases {
        let status = trade.update_trade_record(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_names_field(&status, field);
    }
    // Bad input is quoted by a short prefix, never echoed whole.
    let long = "r".repeat(10_000);
    let status = trade
        .update_trade_record(update(&record, &["value"], &long, None))
        .await
        .unwrap_err();
    assert_names_field(&status, "etag");
    assert!(status.message().len() < 1_000, "{}", status.message().len());
    let long_id = pb::TradeRecord {
        id: "x".repeat(10_000),
        ..record.clone()
    };
    let status = trade
        .update_trade_record(update(&long_id, &["value"], "", None))
        .await
        .unwrap_err();
    assert_names_field(&status, "trade_record.id");
    assert!(status.message().len() < 1_000, "{}", status.message().len());

    let missing = trade
        .update_trade_record(update(
            &pb::TradeRecord {
                id: ulid::Ulid::new().to_string(),
                ..record.clone()
            },
            &["value"],
            "",
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(history(&mut trade, &record.id).await.len(), 1);
}
