//! The in-memory store: trade records, announcements and export reports,
//! their indexes, request-id de-duplication, and the numbered logs that feed
//! subscriptions.
//!
//! `Store` is a cheap-to-clone handle. It owns one `RwLock` over all state;
//! every method takes it for a short synchronous critical section and never
//! across an `.await`. Writes validate everything that can fail before they
//! change anything, so a failed write leaves no trace. Sequences are assigned
//! and broadcast under the write lock, so broadcast order is sequence order.

mod index;
mod seqlog;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;
use ulid::Ulid;

use crate::domain::record::RecordKey;
use crate::domain::{Announcement, AnnouncementFilter, ExportReport, TradeFilter, TradeRecord};
use crate::error::{Error, Result};
use index::{AnnouncementIndex, TradeIndex};
pub use seqlog::{Evicted, SeqLog};

/// Sizes and limits of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Reports (and announcements) kept for replay; older ones fall off.
    pub report_retention: usize,
    /// Capacity of the live broadcast channels; a subscriber that falls
    /// further behind catches up from the store.
    pub broadcast_capacity: usize,
    /// How many request ids are remembered for de-duplication.
    pub request_id_capacity: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            report_retention: 1_000_000,
            broadcast_capacity: 1024,
            request_id_capacity: 100_000,
        }
    }
}

/// An idempotency key with a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub request_id: String,
    pub fingerprint: u64,
}

/// How many items of each kind the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub trade_records: usize,
    pub announcements: usize,
    pub export_reports: usize,
}

/// One page of a list, and whether more items match after it.
#[derive(Debug)]
pub struct Page<T, K> {
    pub items: Vec<Arc<T>>,
    /// The cursor to continue from, when more items match.
    pub next: Option<K>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    CreateTradeRecords,
    CreateAnnouncement,
    PublishExportReport,
}

#[derive(Debug, Clone)]
enum Outcome {
    TradeRecords(Vec<Arc<TradeRecord>>),
    Announcement(Arc<Announcement>),
    ExportReport(Arc<ExportReport>),
}

/// Remembered outcomes of requests that carried a request id, oldest first
/// out once `capacity` is reached.
#[derive(Debug, Default)]
struct RequestLog {
    outcomes: HashMap<(Operation, String), (u64, Outcome)>,
    order: VecDeque<(Operation, String)>,
    capacity: usize,
}

impl RequestLog {
    /// The earlier outcome for this key, or None if it is new.
    fn lookup(&self, op: Operation, key: Option<&RequestKey>) -> Result<Option<Outcome>> {
        let Some(key) = key else { return Ok(None) };
        match self.outcomes.get(&(op, key.request_id.clone())) {
            None => Ok(None),
            Some((fingerprint, outcome)) if *fingerprint == key.fingerprint => {
                Ok(Some(outcome.clone()))
            }
            Some(_) => Err(Error::AlreadyExists(format!(
                "request_id {:?} was already used for a different request",
                key.request_id
            ))),
        }
    }

    fn remember(&mut self, op: Operation, key: Option<&RequestKey>, outcome: Outcome) {
        let Some(key) = key else { return };
        let entry = (op, key.request_id.clone());
        self.outcomes
            .insert(entry.clone(), (key.fingerprint, outcome));
        self.order.push_back(entry);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }
}

struct State {
    ids: ulid::Generator,
    records: BTreeMap<Ulid, Arc<TradeRecord>>,
    record_index: TradeIndex<Ulid>,
    record_keys: HashMap<RecordKey, Ulid>,
    /// How many reports and announcements refer to each record.
    record_refs: HashMap<Ulid, usize>,
    announcements: BTreeMap<Ulid, Arc<Announcement>>,
    announcement_index: AnnouncementIndex<Ulid>,
    announcement_log: SeqLog<Announcement>,
    reports: SeqLog<ExportReport>,
    report_ids: HashMap<Ulid, u64>,
    report_index: TradeIndex<u64>,
    requests: RequestLog,
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

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    reports_tx: broadcast::Sender<Arc<ExportReport>>,
    announcements_tx: broadcast::Sender<Arc<Announcement>>,
}

/// Handle to the store; clones share the same state.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        let capacity = config.broadcast_capacity.max(1);
        let state = State {
            ids: ulid::Generator::new(),
            records: BTreeMap::new(),
            record_index: TradeIndex::default(),
            record_keys: HashMap::new(),
            record_refs: HashMap::new(),
            announcements: BTreeMap::new(),
            announcement_index: AnnouncementIndex::default(),
            announcement_log: SeqLog::new(config.report_retention),
            reports: SeqLog::new(config.report_retention),
            report_ids: HashMap::new(),
            report_index: TradeIndex::default(),
            requests: RequestLog {
                capacity: config.request_id_capacity,
                ..RequestLog::default()
            },
        };
        Store {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                reports_tx: broadcast::channel(capacity).0,
                announcements_tx: broadcast::channel(capacity).0,
            }),
        }
    }

    // Critical sections never panic between checks and changes, so a
    // poisoned lock still guards consistent state.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ---- trade records ----

    /// Stores `records` all or nothing, assigning ids and create times.
    pub fn create_trade_records(
        &self,
        records: Vec<TradeRecord>,
        request: Option<&RequestKey>,
    ) -> Result<Vec<Arc<TradeRecord>>> {
        let op = Operation::CreateTradeRecords;
        let mut state = self.write();
        if let Some(Outcome::TradeRecords(done)) = state.requests.lookup(op, request)? {
            return Ok(done);
        }
        let now = SystemTime::now();
        let mut ids = Vec::with_capacity(records.len());
        for _ in &records {
            ids.push(state.next_id()?);
        }
        let stored: Vec<Arc<TradeRecord>> = records
            .into_iter()
            .zip(ids)
            .map(|(mut record, id)| {
                record.id = id;
                record.create_time = now;
                let record = Arc::new(record);
                state.insert_record(Arc::clone(&record));
                record
            })
            .collect();
        state
            .requests
            .remember(op, request, Outcome::TradeRecords(stored.clone()));
        Ok(stored)
    }

    pub fn get_trade_record(&self, id: Ulid) -> Result<Arc<TradeRecord>> {
        self.read()
            .records
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("trade record", id))
    }

    pub fn list_trade_records(
        &self,
        filter: &TradeFilter,
        after: Option<Ulid>,
        limit: usize,
    ) -> Page<TradeRecord, Ulid> {
        let state = self.read();
        let candidates = state.record_index.candidates(filter);
        let keys = candidates.after(after, keys_after(&state.records, after));
        let matching = keys
            .filter_map(|k| state.records.get(&k))
            .filter(|r| filter.matches(r.as_ref()));
        page(matching, limit, |r| r.id)
    }

    pub fn delete_trade_record(&self, id: Ulid) -> Result<()> {
        let mut state = self.write();
        if !state.records.contains_key(&id) {
            return Err(not_found("trade record", id));
        }
        if let Some(refs) = state.record_refs.get(&id) {
            return Err(Error::FailedPrecondition(format!(
                "trade record {id} is referred to by {refs} export report(s) or announcement(s)"
            )));
        }
        if let Some(record) = state.records.remove(&id) {
            state.record_index.remove(id, record.as_ref());
            state.record_keys.remove(&record.key());
        }
        Ok(())
    }

    // ---- announcements ----

    pub fn create_announcement(
        &self,
        mut announcement: Announcement,
        request: Option<&RequestKey>,
    ) -> Result<Arc<Announcement>> {
        let op = Operation::CreateAnnouncement;
        let mut state = self.write();
        if let Some(Outcome::Announcement(done)) = state.requests.lookup(op, request)? {
            return Ok(done);
        }
        for (i, id) in announcement.related_trade_record_ids.iter().enumerate() {
            if !state.records.contains_key(id) {
                return Err(Error::invalid(
                    format!("announcement.related_trade_record_ids[{i}]"),
                    format!("no trade record with id {id}"),
                ));
            }
        }
        announcement.id = state.next_id()?;
        announcement.sequence = state.announcement_log.next_sequence();
        announcement.create_time = SystemTime::now();
        let announcement = Arc::new(announcement);
        for id in &announcement.related_trade_record_ids {
            *state.record_refs.entry(*id).or_default() += 1;
        }
        state
            .announcements
            .insert(announcement.id, Arc::clone(&announcement));
        state
            .announcement_index
            .insert(announcement.id, announcement.as_ref());
        // Falling off the replay log does not delete an announcement.
        state
            .announcement_log
            .append(announcement.sequence, Arc::clone(&announcement));
        state.requests.remember(
            op,
            request,
            Outcome::Announcement(Arc::clone(&announcement)),
        );
        // No receivers is fine: nobody is subscribed.
        let _ = self.inner.announcements_tx.send(Arc::clone(&announcement));
        Ok(announcement)
    }

    pub fn get_announcement(&self, id: Ulid) -> Result<Arc<Announcement>> {
        self.read()
            .announcements
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("announcement", id))
    }

    pub fn list_announcements(
        &self,
        filter: &AnnouncementFilter,
        after: Option<Ulid>,
        limit: usize,
    ) -> Page<Announcement, Ulid> {
        let state = self.read();
        let candidates = state.announcement_index.candidates(filter);
        let keys = candidates.after(after, keys_after(&state.announcements, after));
        let matching = keys
            .filter_map(|k| state.announcements.get(&k))
            .filter(|a| filter.matches(a));
        page(matching, limit, |a| a.id)
    }

    pub fn delete_announcement(&self, id: Ulid) -> Result<()> {
        let mut state = self.write();
        let announcement = state
            .announcements
            .remove(&id)
            .ok_or_else(|| not_found("announcement", id))?;
        state.announcement_index.remove(id, announcement.as_ref());
        state.announcement_log.remove(announcement.sequence);
        for record in &announcement.related_trade_record_ids {
            state.release_record(*record);
        }
        Ok(())
    }

    // ---- export reports ----

    /// Publishes a report: links or stores its figures as trade records,
    /// numbers it, stores it and broadcasts it, all under one lock.
    pub fn publish_export_report(
        &self,
        mut report: ExportReport,
        request: Option<&RequestKey>,
    ) -> Result<Arc<ExportReport>> {
        let op = Operation::PublishExportReport;
        let mut state = self.write();
        if let Some(Outcome::ExportReport(done)) = state.requests.lookup(op, request)? {
            return Ok(done);
        }
        // Ids first: the only step that can fail, before anything changes.
        let report_id = state.next_id()?;
        let (current, baseline) = report.figures();
        let mut fresh_ids = Vec::new();
        for figure in [&current, &baseline].into_iter().flatten() {
            if !state.record_keys.contains_key(&figure.key()) {
                fresh_ids.push(state.next_id()?);
            }
        }
        let now = SystemTime::now();
        let mut fresh_ids = fresh_ids.into_iter();
        let mut link = |state: &mut State, figure: Option<TradeRecord>| -> Option<Ulid> {
            let mut figure = figure?;
            let id = match state.record_keys.get(&figure.key()) {
                Some(id) => *id,
                None => {
                    figure.id = fresh_ids.next()?;
                    figure.create_time = now;
                    let id = figure.id;
                    state.insert_record(Arc::new(figure));
                    id
                }
            };
            *state.record_refs.entry(id).or_default() += 1;
            Some(id)
        };
        report.trade_record_id = link(&mut state, current);
        report.baseline_trade_record_id = link(&mut state, baseline);
        report.id = report_id;
        report.sequence = state.reports.next_sequence();
        report.publish_time = now;
        let report = Arc::new(report);
        state.report_ids.insert(report.id, report.sequence);
        state.report_index.insert(report.sequence, report.as_ref());
        let evicted = state.reports.append(report.sequence, Arc::clone(&report));
        for old in evicted {
            state.forget_report(&old);
        }
        state
            .requests
            .remember(op, request, Outcome::ExportReport(Arc::clone(&report)));
        let _ = self.inner.reports_tx.send(Arc::clone(&report));
        Ok(report)
    }

    pub fn get_export_report(&self, id: Ulid) -> Result<Arc<ExportReport>> {
        let state = self.read();
        state
            .report_ids
            .get(&id)
            .and_then(|seq| state.reports.get(*seq))
            .cloned()
            .ok_or_else(|| not_found("export report", id))
    }

    pub fn list_export_reports(
        &self,
        filter: &TradeFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Page<ExportReport, u64> {
        let state = self.read();
        let candidates = state.report_index.candidates(filter);
        let keys = candidates.after(after, state.reports.keys_after(after));
        let matching = keys
            .filter_map(|seq| state.reports.get(seq))
            .filter(|r| filter.matches(r.as_ref()));
        page(matching, limit, |r| r.sequence)
    }

    // ---- feeds for subscriptions ----

    pub fn report_feed(&self) -> ReportFeed {
        ReportFeed(self.clone())
    }

    pub fn announcement_feed(&self) -> AnnouncementFeed {
        AnnouncementFeed(self.clone())
    }

    /// How many items of each kind are stored.
    pub fn counts(&self) -> Counts {
        let state = self.read();
        Counts {
            trade_records: state.records.len(),
            announcements: state.announcements.len(),
            export_reports: state.reports.len(),
        }
    }
}

impl State {
    fn next_id(&mut self) -> Result<Ulid> {
        self.ids
            .generate()
            .map_err(|e| Error::Internal(format!("id generator: {e}")))
    }

    fn insert_record(&mut self, record: Arc<TradeRecord>) {
        self.record_index.insert(record.id, record.as_ref());
        self.record_keys.entry(record.key()).or_insert(record.id);
        self.records.insert(record.id, record);
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
}

fn not_found(kind: &'static str, id: Ulid) -> Error {
    Error::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// The keys of `map` above `after`, ascending.
fn keys_after<K: Ord + Copy, V>(
    map: &BTreeMap<K, V>,
    after: Option<K>,
) -> impl Iterator<Item = K> + '_ {
    use std::ops::Bound::{Excluded, Unbounded};
    map.range((after.map_or(Unbounded, Excluded), Unbounded))
        .map(|(k, _)| *k)
}

/// Takes up to `limit` items and notes whether another one follows.
fn page<'a, T: 'a, K>(
    mut matching: impl Iterator<Item = &'a Arc<T>>,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> Page<T, K> {
    let items: Vec<Arc<T>> = matching.by_ref().take(limit).cloned().collect();
    let next = match (items.last(), matching.next()) {
        (Some(last), Some(_)) => Some(key(last)),
        _ => None,
    };
    Page { items, next }
}

/// The export report stream, as the hub sees it.
#[derive(Debug, Clone)]
pub struct ReportFeed(Store);

/// The announcement stream, as the hub sees it.
#[derive(Debug, Clone)]
pub struct AnnouncementFeed(Store);

impl crate::hub::Feed for ReportFeed {
    type Item = ExportReport;

    fn register(&self) -> (u64, broadcast::Receiver<Arc<ExportReport>>) {
        // Under the read lock no publish can slip between the two.
        let state = self.0.read();
        (state.reports.head(), self.0.inner.reports_tx.subscribe())
    }

    fn head(&self) -> u64 {
        self.0.read().reports.head()
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<ExportReport>>, Evicted> {
        self.0.read().reports.read_after(after, limit)
    }
}

impl crate::hub::Feed for AnnouncementFeed {
    type Item = Announcement;

    fn register(&self) -> (u64, broadcast::Receiver<Arc<Announcement>>) {
        let state = self.0.read();
        (
            state.announcement_log.head(),
            self.0.inner.announcements_tx.subscribe(),
        )
    }

    fn head(&self) -> u64 {
        self.0.read().announcement_log.head()
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Announcement>>, Evicted> {
        self.0.read().announcement_log.read_after(after, limit)
    }
}
