//! The store: trade records, announcements and export reports, their
//! indexes, request-id de-duplication, the numbered logs that feed
//! subscriptions, and (when durable) the write-ahead log under them.
//!
//! `Store` is a cheap-to-clone handle. All state sits behind one `RwLock`,
//! taken only in short synchronous sections, never across an `.await`.
//! Every write is a `Command` that `Draft::execute` checks and turns into a
//! `Mutation`, and `State::apply` performs:
//! - in memory, inline under the write lock;
//! - durably, on the committer thread (the only writer), in three steps
//!   per group of queued commands: draft them all under the *read* lock,
//!   write and sync their mutations to the log with *no* lock held, then
//!   apply and broadcast them under a short write lock and answer. Readers
//!   never wait for an fsync and never see a write that is not durable; a
//!   failed write has applied nothing, so there is nothing to undo.
//! - A failed fsync fences the store for good (`Store::fenced`): writes
//!   answer `UNAVAILABLE`, reads go on, and a restart recovers from disk.
//!
//! Only the committer assigns sequences, and it broadcasts under the write
//! lock in the order it applies, so broadcast order is sequence order.

mod draft;
mod index;
mod journal;
mod seqlog;
mod state;

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use tokio::sync::{broadcast, oneshot, watch};
use ulid::Ulid;

use crate::domain::{Announcement, AnnouncementFilter, ExportReport, TradeFilter, TradeRecord};
use crate::error::{Error, Result};
use draft::{Draft, Drafted};
pub use journal::{DurableConfig, FsyncPolicy, OpenError, Recovery, SyncHook};
pub use seqlog::{Evicted, SeqLog};
use state::{Command, Mutation, Outcome, Published, State};

/// Most commands one group commit takes.
const MAX_GROUP: usize = 1024;

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
    /// Keep the data on disk; `None` keeps it in memory only.
    pub durable: Option<DurableConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            report_retention: 1_000_000,
            broadcast_capacity: 1024,
            request_id_capacity: 100_000,
            durable: None,
        }
    }
}

/// An idempotency key with a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// The state and the broadcast channels, shared with the committer.
#[derive(Debug)]
struct Shared {
    state: RwLock<State>,
    reports_tx: broadcast::Sender<Arc<ExportReport>>,
    announcements_tx: broadcast::Sender<Arc<Announcement>>,
    /// Why writes are refused for good, once the log has failed.
    fence: watch::Sender<Option<Arc<str>>>,
}

impl Shared {
    fn new(state: State, config: &StoreConfig) -> Arc<Shared> {
        let capacity = config.broadcast_capacity.max(1);
        Arc::new(Shared {
            state: RwLock::new(state),
            reports_tx: broadcast::channel(capacity).0,
            announcements_tx: broadcast::channel(capacity).0,
            fence: watch::Sender::new(None),
        })
    }

    /// Fences the store, once: every later write answers `UNAVAILABLE`;
    /// reads go on from the last durable state.
    fn fence(&self, reason: &str) {
        self.fence.send_if_modified(|fence| {
            if fence.is_some() {
                return false;
            }
            tracing::error!(
                reason,
                "the write-ahead log failed; writes are refused until a restart recovers from disk"
            );
            *fence = Some(reason.into());
            true
        });
    }

    /// `UNAVAILABLE` for writes once fenced.
    fn check_fence(&self) -> Result<()> {
        match &*self.fence.borrow() {
            None => Ok(()),
            Some(reason) => Err(Error::Unavailable {
                message: format!(
                    "writes are refused: {reason}; a restart recovers the store from disk"
                ),
                resume_after: None,
            }),
        }
    }

    // Critical sections never panic between checks and changes, so a
    // poisoned lock still guards consistent state.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends what a write published; called under the write lock.
    fn broadcast(&self, published: Option<Published>) {
        // No receivers is fine: nobody is subscribed.
        match published {
            Some(Published::ExportReport(r)) => drop(self.reports_tx.send(r)),
            Some(Published::Announcement(a)) => drop(self.announcements_tx.send(a)),
            None => {}
        }
    }
}

struct Job {
    command: Command,
    reply: oneshot::Sender<Result<Outcome>>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    committer: Option<(mpsc::Sender<Job>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("command", &self.command)
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the committer after its last group; joining
        // it releases the data directory's lock before the store is gone.
        if let Some((queue, thread)) = self.committer.take() {
            drop(queue);
            let _ = thread.join();
        }
    }
}

/// Handle to the store; clones share the same state.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// An in-memory store, or a durable one recovered from its directory.
    pub fn open(config: StoreConfig) -> Result<(Store, Option<Recovery>), OpenError> {
        let Some(durable) = config.durable.clone() else {
            return Ok((Store::new(config), None));
        };
        let (journal, state, recovery) = journal::Journal::open(durable, &config)?;
        let shared = Shared::new(state, &config);
        let (queue, jobs) = mpsc::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("tradewire-committer".into())
                .spawn(move || commit_loop(&shared, journal, &jobs))
                .map_err(|source| OpenError::Io {
                    path: "committer thread".into(),
                    source,
                })?
        };
        let store = Store {
            inner: Arc::new(Inner {
                shared,
                committer: Some((queue, thread)),
            }),
        };
        Ok((store, Some(recovery)))
    }

    /// An in-memory store; `config.durable` is ignored.
    pub fn new(config: StoreConfig) -> Store {
        let state = State::new(&config);
        Store {
            inner: Arc::new(Inner {
                shared: Shared::new(state, &config),
                committer: None,
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.shared.read()
    }

    /// Why writes are refused, once the log has failed (`None` while
    /// healthy); watch it to report health.
    pub fn fenced(&self) -> watch::Receiver<Option<Arc<str>>> {
        self.inner.shared.fence.subscribe()
    }

    /// Runs a write: inline in memory, or through the committer.
    async fn submit(&self, command: Command) -> Result<Outcome> {
        self.inner.shared.check_fence()?;
        let Some((queue, _)) = &self.inner.committer else {
            let shared = &self.inner.shared;
            let mut state = shared.write();
            return match Draft::new(&state).execute(command)? {
                Drafted::Repeat(outcome) => Ok(outcome),
                Drafted::Mutate(mutation) => {
                    let (outcome, published) = state.apply(*mutation);
                    shared.broadcast(published);
                    Ok(outcome)
                }
                Drafted::Defer(_) => Err(Error::Internal(
                    "a command alone in its group was deferred".into(),
                )),
            };
        };
        let closed = || Error::Unavailable {
            message: "the store is closed".into(),
            resume_after: None,
        };
        let (reply, answer) = oneshot::channel();
        queue.send(Job { command, reply }).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    // ---- trade records ----

    /// Stores `records` all or nothing, assigning ids and create times.
    pub async fn create_trade_records(
        &self,
        records: Vec<TradeRecord>,
        request: Option<RequestKey>,
    ) -> Result<Vec<Arc<TradeRecord>>> {
        match self
            .submit(Command::CreateTradeRecords { records, request })
            .await?
        {
            Outcome::TradeRecords(stored) => Ok(stored),
            other => Err(unexpected(other)),
        }
    }

    pub fn get_trade_record(&self, id: Ulid) -> Result<Arc<TradeRecord>> {
        self.read()
            .records
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("trade record", id))
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

    pub async fn delete_trade_record(&self, id: Ulid) -> Result<()> {
        self.submit(Command::DeleteTradeRecord(id)).await.map(drop)
    }

    // ---- announcements ----

    pub async fn create_announcement(
        &self,
        announcement: Announcement,
        request: Option<RequestKey>,
    ) -> Result<Arc<Announcement>> {
        let command = Command::CreateAnnouncement {
            announcement,
            request,
        };
        match self.submit(command).await? {
            Outcome::Announcement(stored) => Ok(stored),
            other => Err(unexpected(other)),
        }
    }

    pub fn get_announcement(&self, id: Ulid) -> Result<Arc<Announcement>> {
        self.read()
            .announcements
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("announcement", id))
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

    pub async fn delete_announcement(&self, id: Ulid) -> Result<()> {
        self.submit(Command::DeleteAnnouncement(id)).await.map(drop)
    }

    // ---- export reports ----

    /// Publishes a report: links or stores its figures as trade records,
    /// numbers it, stores it and broadcasts it, as one write.
    pub async fn publish_export_report(
        &self,
        report: ExportReport,
        request: Option<RequestKey>,
    ) -> Result<Arc<ExportReport>> {
        match self
            .submit(Command::PublishExportReport { report, request })
            .await?
        {
            Outcome::ExportReport(published) => Ok(published),
            other => Err(unexpected(other)),
        }
    }

    pub fn get_export_report(&self, id: Ulid) -> Result<Arc<ExportReport>> {
        let state = self.read();
        state
            .report_ids
            .get(&id)
            .and_then(|seq| state.reports.get(*seq))
            .cloned()
            .ok_or_else(|| Error::not_found("export report", id))
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

    // ---- demo marker ----

    /// Whether the demo data set was ever loaded into this store.
    pub fn demo_loaded(&self) -> bool {
        self.read().demo_loaded
    }

    pub async fn mark_demo_loaded(&self) -> Result<()> {
        self.submit(Command::MarkDemoLoaded).await.map(drop)
    }

    // ---- feeds for subscriptions ----

    pub fn report_feed(&self) -> ReportFeed {
        ReportFeed(Arc::clone(&self.inner.shared))
    }

    pub fn announcement_feed(&self) -> AnnouncementFeed {
        AnnouncementFeed(Arc::clone(&self.inner.shared))
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

/// The committer: group commit of everything queued, in arrival order
/// (deferred commands first), interval syncs and snapshots; it fences the
/// store when the journal breaks.
fn commit_loop(shared: &Shared, mut journal: journal::Journal, jobs: &mpsc::Receiver<Job>) {
    let mut deferred = VecDeque::new();
    loop {
        let mut group: Vec<Job> = deferred.drain(..).collect();
        if group.is_empty() {
            let first = match journal.sync_due_in() {
                Some(wait) => match jobs.recv_timeout(wait) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(error) = journal.sync_if_due() {
                            tracing::error!(%error, "interval fsync failed");
                        }
                        fence_if_broken(shared, &journal);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            group.push(first);
        }
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(shared, &mut journal, group, &mut deferred);
        if let Err(error) = journal.sync_if_due() {
            tracing::error!(%error, "interval fsync failed");
        }
        journal.reap_snapshot(false);
        if journal.wants_snapshot() {
            // A consistent view is a copy of the state's `Arc`s, taken
            // under the read lock at a group boundary; it is serialized
            // and written on the snapshot thread while writes go on.
            let view = shared.read().snapshot();
            if let Err(error) = journal.start_snapshot(view) {
                tracing::error!(%error, "snapshot failed; the log keeps growing until one succeeds");
            }
        }
        fence_if_broken(shared, &journal);
    }
    // Everything acknowledged is on disk already under `always`; make the
    // other policies' tail durable at a clean stop, and let a snapshot in
    // progress finish while the directory is still locked.
    if let Err(error) = journal.sync_pending() {
        tracing::error!(%error, "final log flush failed");
    }
    journal.reap_snapshot(true);
}

fn fence_if_broken(shared: &Shared, journal: &journal::Journal) {
    if let Some(reason) = journal.broken() {
        shared.fence(reason);
    }
}

/// A drafted command waiting for its group to be durable.
enum Pending {
    /// Answered without a write: an error or a remembered outcome.
    Answered(Result<Outcome>),
    /// The outcome of its mutation; mutations are applied, and their
    /// outcomes taken, in the order they were drafted.
    Mutation,
}

/// Commits one group: (1) draft every command under the read lock,
/// queueing their mutations in the journal; (2) write and sync them with
/// no lock held; (3) apply and broadcast them under the write lock, then
/// answer. Commands that depend on others of the group in ways the draft
/// does not model go to `deferred`, for the next group.
fn commit_group(
    shared: &Shared,
    journal: &mut journal::Journal,
    group: Vec<Job>,
    deferred: &mut VecDeque<Job>,
) {
    let mark = journal.mark();
    let mut waiting = Vec::with_capacity(group.len());
    let mut mutations: Vec<Mutation> = Vec::new();
    let mut encoding_error = None;
    {
        let state = shared.read();
        let mut draft = Draft::new(&state);
        for Job { command, reply } in group {
            let pending = match draft.execute(command) {
                Err(error) => Pending::Answered(Err(error)),
                Ok(Drafted::Repeat(outcome)) => Pending::Answered(Ok(outcome)),
                Ok(Drafted::Defer(command)) => {
                    deferred.push_back(Job {
                        command: *command,
                        reply,
                    });
                    continue;
                }
                Ok(Drafted::Mutate(mutation)) => {
                    if let Err(error) = journal.append(&mutation) {
                        encoding_error.get_or_insert(error);
                    }
                    mutations.push(*mutation);
                    Pending::Mutation
                }
            };
            waiting.push((reply, pending));
        }
    }

    // Later mutations of the group may build on any earlier one, so a
    // mutation that cannot be logged fails the whole group.
    let durable = match encoding_error {
        Some(error) => {
            journal.discard(mark);
            Err(error)
        }
        None => journal.commit(mark),
    };
    if let Err(error) = durable {
        if !mutations.is_empty() {
            tracing::error!(%error, writes = mutations.len(), "log write failed; the writes are refused");
        }
        for (reply, pending) in waiting {
            let answer = match pending {
                Pending::Answered(answer) => answer,
                Pending::Mutation => Err(Error::Unavailable {
                    message: format!("the write could not be made durable: {error}"),
                    resume_after: None,
                }),
            };
            let _ = reply.send(answer);
        }
        return;
    }

    let mut outcomes = Vec::with_capacity(mutations.len());
    {
        let mut state = shared.write();
        for mutation in mutations {
            let (outcome, published) = state.apply(mutation);
            shared.broadcast(published);
            outcomes.push(outcome);
        }
    }
    let mut outcomes = outcomes.into_iter();
    for (reply, pending) in waiting {
        let answer = match pending {
            Pending::Answered(answer) => answer,
            Pending::Mutation => outcomes
                .next()
                .ok_or_else(|| Error::Internal("a write lost its outcome".into())),
        };
        // A caller that went away still had its write made durable.
        let _ = reply.send(answer);
    }
}

fn unexpected(outcome: Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {outcome:?}"))
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
pub struct ReportFeed(Arc<Shared>);

/// The announcement stream, as the hub sees it.
#[derive(Debug, Clone)]
pub struct AnnouncementFeed(Arc<Shared>);

impl crate::hub::Feed for ReportFeed {
    type Item = ExportReport;

    fn register(&self) -> (u64, broadcast::Receiver<Arc<ExportReport>>) {
        // Under the read lock no publish can slip between the two.
        let state = self.0.read();
        (state.reports.head(), self.0.reports_tx.subscribe())
    }

    fn head(&self) -> u64 {
        self.0.read().reports.head()
    }

    fn oldest_retained(&self) -> u64 {
        self.0.read().reports.oldest_retained()
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
            self.0.announcements_tx.subscribe(),
        )
    }

    fn head(&self) -> u64 {
        self.0.read().announcement_log.head()
    }

    fn oldest_retained(&self) -> u64 {
        self.0.read().announcement_log.oldest_retained()
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Announcement>>, Evicted> {
        self.0.read().announcement_log.read_after(after, limit)
    }
}
