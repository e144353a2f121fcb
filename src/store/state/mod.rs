//! The store's state and the only code that changes it.
//!
//! `Draft::execute` (in `draft.rs`) checks a `Command` against the state
//! and turns it into a `Mutation` (assigning ids, sequences and times)
//! without changing the state. `State::apply` makes a mutation's changes and
//! cannot fail. The journal logs a mutation between the two, and recovery
//! replays logged mutations through the same `apply`, so a restarted store
//! is the store that acknowledged them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::index::{AnnouncementIndex, TradeIndex};
use super::record_keys::RecordKeys;
use super::revision::Revision;
use super::seqlog::SeqLog;
use super::stored::Stored;
use super::{RequestKey, StoreConfig};
use crate::domain::{Announcement, ExportReport, RecordPatch, Source, TradeRecord};
use crate::error::Result;
use requests::RequestLog;

/// A write as a client asked for it. `Clone`: a replica drafts a command
/// again when another replica wrote first.
#[derive(Debug, Clone)]
pub(super) enum Command {
    CreateTradeRecords {
        records: Vec<TradeRecord>,
        request: Option<RequestKey>,
    },
    DeleteTradeRecord(Ulid),
    CreateAnnouncement {
        announcement: Announcement,
        request: Option<RequestKey>,
    },
    DeleteAnnouncement(Ulid),
    PublishExportReport {
        report: ExportReport,
        request: Option<RequestKey>,
    },
    UpdateTradeRecord {
        id: Ulid,
        patch: RecordPatch,
        /// The revision the caller read; another is ABORTED.
        etag: Option<u32>,
        /// The revision's source; `None`: the record's.
        source: Option<Source>,
    },
}

impl Command {
    /// The idempotency key this command carries, with its operation.
    pub(super) fn request(&self) -> Option<(Operation, &RequestKey)> {
        match self {
            Command::CreateTradeRecords { request, .. } => {
                Some((Operation::CreateTradeRecords, request.as_ref()?))
            }
            Command::CreateAnnouncement { request, .. } => {
                Some((Operation::CreateAnnouncement, request.as_ref()?))
            }
            Command::PublishExportReport { request, .. } => {
                Some((Operation::PublishExportReport, request.as_ref()?))
            }
            Command::DeleteTradeRecord(_)
            | Command::DeleteAnnouncement(_)
            | Command::UpdateTradeRecord { .. } => None,
        }
    }
}

/// A checked write with everything assigned: what the journal logs and
/// `apply` performs. Deterministic: applying it twice to equal states gives
/// equal states.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Mutation {
    TradeRecordsCreated {
        records: Vec<TradeRecord>,
        request: Option<RequestKey>,
    },
    TradeRecordDeleted(Ulid),
    AnnouncementCreated {
        announcement: Announcement,
        request: Option<RequestKey>,
    },
    AnnouncementDeleted(Ulid),
    ExportReportPublished {
        report: ExportReport,
        /// Records for the report's figures that did not exist yet.
        new_records: Vec<TradeRecord>,
        request: Option<RequestKey>,
    },
    /// Written by earlier versions when they loaded the demo; older logs
    /// still hold it, so it stays readable, and it changes nothing.
    DemoLoaded,
    /// A record's figures revised; variants are only ever added at the
    /// end, so that logs written before stay readable.
    TradeRecordUpdated {
        /// The record as revised.
        record: TradeRecord,
        /// Its revision number, the time, the fields changed and the source.
        number: u32,
        time: std::time::SystemTime,
        changed: Vec<String>,
        source: Source,
    },
}

impl Mutation {
    /// The idempotency key this write is remembered under.
    pub(super) fn request(&self) -> Option<(Operation, &RequestKey)> {
        match self {
            Mutation::TradeRecordsCreated { request, .. } => {
                Some((Operation::CreateTradeRecords, request.as_ref()?))
            }
            Mutation::AnnouncementCreated { request, .. } => {
                Some((Operation::CreateAnnouncement, request.as_ref()?))
            }
            Mutation::ExportReportPublished { request, .. } => {
                Some((Operation::PublishExportReport, request.as_ref()?))
            }
            Mutation::TradeRecordDeleted(_)
            | Mutation::AnnouncementDeleted(_)
            | Mutation::DemoLoaded
            | Mutation::TradeRecordUpdated { .. } => None,
        }
    }
}

/// What a write returns to its caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Outcome {
    TradeRecords(Vec<Arc<Stored<TradeRecord>>>),
    Announcement(Arc<Announcement>),
    ExportReport(Arc<Stored<ExportReport>>),
    Done,
}

/// What `apply` asks to broadcast to subscribers.
#[derive(Debug, Clone)]
pub(super) enum Published {
    ExportReport(Arc<Stored<ExportReport>>),
    Announcement(Arc<Announcement>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) enum Operation {
    CreateTradeRecords,
    CreateAnnouncement,
    PublishExportReport,
}

/// Everything a snapshot holds; the rest of the state is derived from it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Snapshot {
    records: Vec<Arc<Stored<TradeRecord>>>,
    announcements: Vec<Arc<Announcement>>,
    announcement_head: u64,
    announcement_floor: u64,
    reports: Vec<Arc<Stored<ExportReport>>>,
    report_head: u64,
    report_floor: u64,
    requests: Vec<(Operation, String, u64, Outcome)>,
    last_id: Ulid,
    /// Earlier versions' demo marker: still in the format, so that their
    /// snapshots read; always false now, and ignored.
    demo_loaded: bool,
    /// The histories of revised records, written after the fields above
    /// (`encode`), so that snapshots from before revisions still read.
    #[serde(skip)]
    revisions: Vec<(Ulid, Vec<Revision>)>,
}

impl Snapshot {
    /// The snapshot's bytes: the fields, then the revision histories.
    pub(super) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut bytes = postcard::to_stdvec(self)?;
        bytes.extend(postcard::to_stdvec(&self.revisions)?);
        Ok(bytes)
    }

    /// A snapshot from `encode`'s bytes, or from a snapshot written
    /// before revisions existed (nothing after the fields).
    pub(super) fn decode(bytes: &[u8]) -> Result<Snapshot, postcard::Error> {
        let (mut snapshot, rest): (Snapshot, &[u8]) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            snapshot.revisions = postcard::from_bytes(rest)?;
        }
        Ok(snapshot)
    }
}

pub(super) struct State {
    /// The greatest id ever assigned; new ids are always above it, also
    /// after a restart on a clock that went backwards.
    pub(super) last_id: Ulid,
    pub(super) records: BTreeMap<Ulid, Arc<Stored<TradeRecord>>>,
    pub(super) record_index: TradeIndex<Ulid>,
    pub(super) record_keys: RecordKeys,
    /// How many reports and announcements refer to each record.
    pub(super) record_refs: HashMap<Ulid, usize>,
    pub(super) announcements: BTreeMap<Ulid, Arc<Announcement>>,
    pub(super) announcement_index: AnnouncementIndex<Ulid>,
    pub(super) announcement_log: SeqLog<Announcement>,
    pub(super) reports: SeqLog<Stored<ExportReport>>,
    pub(super) report_ids: HashMap<Ulid, u64>,
    pub(super) report_index: TradeIndex<u64>,
    pub(super) requests: RequestLog,
    /// Every revision of each record revised at least once (revision 1
    /// included), oldest first; kept after a delete until the next
    /// snapshot.
    pub(super) revisions: HashMap<Ulid, Vec<Revision>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("records", &self.records.len())
            .field("announcements", &self.announcements.len())
            .field("reports", &self.reports.len())
            .finish_non_exhaustive()
    }
}

impl State {
    pub(super) fn new(config: &StoreConfig) -> State {
        State {
            last_id: Ulid::nil(),
            records: BTreeMap::new(),
            record_index: TradeIndex::default(),
            record_keys: RecordKeys::default(),
            record_refs: HashMap::new(),
            announcements: BTreeMap::new(),
            announcement_index: AnnouncementIndex::default(),
            announcement_log: SeqLog::new(config.retention),
            reports: SeqLog::new(config.retention),
            report_ids: HashMap::new(),
            report_index: TradeIndex::default(),
            requests: RequestLog::new(config.request_id_capacity),
            revisions: HashMap::new(),
        }
    }

    /// Makes a mutation's changes. Never fails, never panics.
    pub(super) fn apply(&mut self, mutation: Mutation) -> (Outcome, Option<Published>) {
        match mutation {
            Mutation::TradeRecordUpdated {
                mut record,
                number,
                time,
                changed,
                source,
            } => {
                record.revision = number;
                let record = Arc::new(Stored::new(record));
                // The draft checked that it exists; identity fields never
                // change, so the indexes and record keys stay as they are.
                if let Some(old) = self.records.insert(record.id, Arc::clone(&record)) {
                    let history = self.revisions.entry(record.id).or_insert_with(|| {
                        vec![Revision {
                            number: 1,
                            time: old.create_time,
                            changed: Vec::new(),
                            source: old.source.clone(),
                            record: Arc::clone(&old),
                        }]
                    });
                    history.push(Revision {
                        number,
                        time,
                        changed,
                        source,
                        record: Arc::clone(&record),
                    });
                }
                (Outcome::TradeRecords(vec![record]), None)
            }
            Mutation::TradeRecordsCreated { records, request } => {
                let stored: Vec<Arc<Stored<TradeRecord>>> = records
                    .into_iter()
                    .map(|record| {
                        let record = Arc::new(Stored::new(record));
                        self.insert_record(Arc::clone(&record));
                        record
                    })
                    .collect();
                let outcome = Outcome::TradeRecords(stored);
                self.requests
                    .remember(Operation::CreateTradeRecords, request.as_ref(), &outcome);
                (outcome, None)
            }
            Mutation::TradeRecordDeleted(id) => {
                if let Some(record) = self.records.remove(&id) {
                    self.record_index.remove(id, record.as_ref());
                    self.record_keys.remove(&record);
                }
                (Outcome::Done, None)
            }
            Mutation::AnnouncementCreated {
                announcement,
                request,
            } => {
                let announcement = Arc::new(announcement);
                self.insert_announcement(Arc::clone(&announcement));
                // Falling off the replay log does not delete an announcement.
                self.announcement_log
                    .append(announcement.sequence, Arc::clone(&announcement));
                let outcome = Outcome::Announcement(Arc::clone(&announcement));
                self.requests
                    .remember(Operation::CreateAnnouncement, request.as_ref(), &outcome);
                (outcome, Some(Published::Announcement(announcement)))
            }
            Mutation::AnnouncementDeleted(id) => {
                if let Some(announcement) = self.announcements.remove(&id) {
                    self.announcement_index.remove(id, announcement.as_ref());
                    self.announcement_log.remove(announcement.sequence);
                    for record in &announcement.related_trade_record_ids {
                        self.release_record(*record);
                    }
                }
                (Outcome::Done, None)
            }
            Mutation::ExportReportPublished {
                report,
                new_records,
                request,
            } => {
                for record in new_records {
                    self.insert_record(Arc::new(Stored::new(record)));
                }
                let report = Arc::new(Stored::new(report));
                self.insert_report(Arc::clone(&report));
                let outcome = Outcome::ExportReport(Arc::clone(&report));
                self.requests
                    .remember(Operation::PublishExportReport, request.as_ref(), &outcome);
                (outcome, Some(Published::ExportReport(report)))
            }
            Mutation::DemoLoaded => (Outcome::Done, None),
        }
    }

    fn insert_record(&mut self, record: Arc<Stored<TradeRecord>>) {
        self.last_id = self.last_id.max(record.id);
        self.record_index.insert(record.id, record.as_ref());
        self.record_keys.insert(&record, &self.records);
        self.records.insert(record.id, record);
    }

    fn insert_announcement(&mut self, announcement: Arc<Announcement>) {
        self.last_id = self.last_id.max(announcement.id);
        for id in &announcement.related_trade_record_ids {
            *self.record_refs.entry(*id).or_default() += 1;
        }
        self.announcement_index
            .insert(announcement.id, announcement.as_ref());
        self.announcements.insert(announcement.id, announcement);
    }

    fn insert_report(&mut self, report: Arc<Stored<ExportReport>>) {
        self.index_report(&report);
        let evicted = self.reports.append(report.sequence, report);
        for old in evicted {
            self.forget_report(&old);
        }
    }

    /// Everything about a report but its place in the log.
    fn index_report(&mut self, report: &ExportReport) {
        self.last_id = self.last_id.max(report.id);
        for id in [report.trade_record_id, report.baseline_trade_record_id]
            .into_iter()
            .flatten()
        {
            *self.record_refs.entry(id).or_default() += 1;
        }
        self.report_ids.insert(report.id, report.sequence);
        self.report_index.insert(report.sequence, report);
    }

    fn release_record(&mut self, id: Ulid) {
        if let Some(refs) = self.record_refs.get_mut(&id) {
            *refs -= 1;
            if *refs == 0 {
                self.record_refs.remove(&id);
            }
        }
    }

    fn forget_report(&mut self, report: &ExportReport) {
        self.report_ids.remove(&report.id);
        self.report_index.remove(report.sequence, report);
        for id in [report.trade_record_id, report.baseline_trade_record_id]
            .into_iter()
            .flatten()
        {
            self.release_record(id);
        }
    }

    /// Everything needed to rebuild this state.
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            records: self.records.values().cloned().collect(),
            announcements: self.announcements.values().cloned().collect(),
            announcement_head: self.announcement_log.head(),
            announcement_floor: self.announcement_log.oldest_retained(),
            reports: self.reports.items().cloned().collect(),
            report_head: self.reports.head(),
            report_floor: self.reports.oldest_retained(),
            requests: self.requests.entries().collect(),
            last_id: self.last_id,
            demo_loaded: false,
            // A snapshot is the compaction: histories of deleted records go.
            revisions: self
                .revisions
                .iter()
                .filter(|(id, _)| self.records.contains_key(id))
                .map(|(id, history)| (*id, history.clone()))
                .collect(),
        }
    }

    /// The state a snapshot describes, indexes rebuilt.
    pub(super) fn restore(snapshot: Snapshot, config: &StoreConfig) -> State {
        let mut state = State::new(config);
        state.last_id = snapshot.last_id;
        let mut revisions: HashMap<Ulid, Vec<Revision>> = snapshot.revisions.into_iter().collect();
        for history in revisions.values_mut() {
            for revision in history.iter_mut() {
                Arc::make_mut(&mut revision.record).value_mut().revision = revision.number;
            }
        }
        for mut record in snapshot.records {
            let current = revisions.get(&record.id).map_or(1, |h| h.len() as u32);
            Arc::make_mut(&mut record).value_mut().revision = current;
            state.insert_record(record);
        }
        state.revisions = revisions;
        state.announcement_log = SeqLog::restore(
            config.retention,
            snapshot.announcement_head,
            snapshot.announcement_floor,
            snapshot
                .announcements
                .iter()
                .filter(|a| a.sequence >= snapshot.announcement_floor)
                .map(|a| (a.sequence, Arc::clone(a))),
        );
        for announcement in snapshot.announcements {
            state.insert_announcement(announcement);
        }
        for report in &snapshot.reports {
            state.index_report(report);
        }
        // A retention smaller than before trims at the next publication.
        state.reports = SeqLog::restore(
            config.retention,
            snapshot.report_head,
            snapshot.report_floor,
            snapshot.reports.into_iter().map(|r| (r.sequence, r)),
        );
        for (op, request_id, fingerprint, outcome) in snapshot.requests {
            let key = RequestKey {
                request_id,
                fingerprint,
            };
            state.requests.remember(op, Some(&key), &outcome);
        }
        state
    }
}

mod requests;
#[cfg(test)]
mod tests;
