//! `apply`, retention and snapshots of the state, through drafts as the
//! committer makes them.

use super::*;
use crate::error::Error;
use crate::store::draft::Draft;
use crate::store::fixtures::{mutation, record, report};

fn config(retention: usize) -> StoreConfig {
    StoreConfig {
        retention,
        ..StoreConfig::default()
    }
}

/// Drafts and applies one command, as the committer does.
fn run(state: &mut State, command: Command) -> Outcome {
    let drafted = mutation(Draft::new(state).execute(command));
    state.apply(drafted).0
}

fn publish(state: &mut State, year: i32, request_id: &str) -> Arc<Stored<ExportReport>> {
    let request = Some(RequestKey {
        request_id: request_id.into(),
        fingerprint: 7,
    });
    match run(
        state,
        Command::PublishExportReport {
            report: report(year),
            request,
        },
    ) {
        Outcome::ExportReport(report) => report,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reports_past_retention_fall_off_and_release_their_records() {
    let mut state = State::new(&config(2));
    let first = publish(&mut state, 2021, "a");
    let linked = first
        .trade_record_id
        .expect("the report's figure is stored");
    assert_eq!(state.record_refs.get(&linked), Some(&1));
    publish(&mut state, 2023, "b");
    publish(&mut state, 2025, "c");
    assert_eq!(state.reports.len(), 2);
    assert_eq!(state.reports.oldest_retained(), 2);
    assert!(!state.report_ids.contains_key(&first.id));
    assert_eq!(
        state.record_refs.get(&linked),
        None,
        "the fallen-off report no longer holds its record"
    );
    assert!(
        state.records.contains_key(&linked),
        "records outlive the reports that created them"
    );
}

#[test]
fn a_snapshot_restores_to_the_same_state() {
    let mut state = State::new(&config(2));
    run(
        &mut state,
        Command::CreateTradeRecords {
            records: vec![record(2020, 1)],
            request: None,
        },
    );
    for (year, id) in [(2021, "a"), (2023, "b"), (2025, "c")] {
        publish(&mut state, year, id);
    }
    let restored = State::restore(state.snapshot(), &config(2));

    assert_eq!(restored.records.len(), state.records.len());
    assert_eq!(restored.record_keys.holders(), state.record_keys.holders());
    assert_eq!(restored.record_refs, state.record_refs);
    assert_eq!(restored.report_ids, state.report_ids);
    assert_eq!(restored.reports.head(), state.reports.head());
    assert_eq!(
        restored.reports.oldest_retained(),
        state.reports.oldest_retained()
    );
    assert_eq!(restored.last_id, state.last_id);
    // Remembered request ids answer the same after a restore.
    let key = RequestKey {
        request_id: "c".into(),
        fingerprint: 7,
    };
    let again = restored
        .requests
        .lookup(Operation::PublishExportReport, Some(&key))
        .unwrap();
    assert!(matches!(again, Some(Outcome::ExportReport(r)) if r.sequence == 3));
    let reused = RequestKey {
        fingerprint: 8,
        ..key
    };
    assert!(matches!(
        restored
            .requests
            .lookup(Operation::PublishExportReport, Some(&reused)),
        Err(Error::AlreadyExists(_))
    ));
    // The next report numbers on from the head.
    let mut restored = restored;
    assert_eq!(publish(&mut restored, 2027, "d").sequence, 4);
}

#[test]
fn revisions_go_through_a_snapshot_and_old_snapshots_still_read() {
    let mut state = State::new(&config(2));
    let created = match run(
        &mut state,
        Command::CreateTradeRecords {
            records: vec![record(2020, 1), record(2021, 1)],
            request: None,
        },
    ) {
        Outcome::TradeRecords(records) => records,
        other => panic!("{other:?}"),
    };
    let (kept, deleted) = (created[0].id, created[1].id);
    for id in [kept, deleted] {
        run(
            &mut state,
            Command::UpdateTradeRecord {
                id,
                patch: crate::domain::RecordPatch {
                    commodity: Some("revised".into()),
                    ..Default::default()
                },
                etag: Some(1),
                source: None,
            },
        );
    }
    run(&mut state, Command::DeleteTradeRecord(deleted));
    assert_eq!(state.revisions.len(), 2, "a delete keeps the history");

    let bytes = state.snapshot().encode().unwrap();
    let restored = State::restore(Snapshot::decode(&bytes).unwrap(), &config(2));
    assert_eq!(restored.records[&kept].revision, 2);
    assert_eq!(restored.records[&kept].commodity, "revised");
    let history = &restored.revisions[&kept];
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].record.revision, 1);
    assert_eq!(history[1].changed, ["commodity"]);
    assert!(
        !restored.revisions.contains_key(&deleted),
        "a snapshot compacts the histories of deleted records"
    );

    // A snapshot written before revisions existed: the fields alone.
    let old = postcard::to_stdvec(&state.snapshot()).unwrap();
    let restored = State::restore(Snapshot::decode(&old).unwrap(), &config(2));
    assert_eq!(restored.records.len(), 1);
    assert!(restored.revisions.is_empty());
    assert_eq!(restored.records[&kept].revision, 1);
}
