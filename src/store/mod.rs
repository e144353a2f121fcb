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

mod committer;
mod draft;
mod feed;
#[cfg(test)]
mod fixtures;
mod group;
mod index;
mod journal;
mod log;
mod page;
mod record_keys;
mod replica;
mod revision;
mod seqlog;
mod series;
mod state;
mod stored;
mod summaries;
mod writes;

use std::sync::mpsc;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use tokio::sync::{broadcast, watch};
use ulid::Ulid;

use crate::domain::{Announcement, AnnouncementFilter, ExportReport, TradeFilter, TradeRecord};
use crate::error::{Error, Result};
use committer::commit_loop;
pub(crate) use feed::{FEED_KINDS, Feed, LogFeed};
use group::Job;
pub use journal::{DurableConfig, FsyncPolicy, OpenError, Recovery};
#[cfg(feature = "testing")]
pub use journal::{Faults, SyncHook};
use log::{JournalLog, Log, NullLog};
pub(crate) use page::Page;
use page::{SCAN_BUDGET, page};
pub use replica::JetStreamConfig;
pub(crate) use revision::Revision;
pub(crate) use seqlog::Evicted;
use seqlog::keys_after;
pub(crate) use series::register as register_metrics;
use state::{Outcome, Published, State};
pub(crate) use stored::Stored;

/// Sizes and limits of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Reports (and announcements) kept for replay; older ones fall off.
    pub retention: usize,
    /// Capacity of the live broadcast channels; a subscriber that falls
    /// further behind catches up from the store.
    pub broadcast_capacity: usize,
    /// How many request ids are remembered for de-duplication.
    pub request_id_capacity: usize,
    /// Keep the data on disk (the `local` backend); `None` keeps it in
    /// memory only, unless `jetstream` is set.
    pub durable: Option<DurableConfig>,
    /// Be one replica of several over a NATS JetStream log (the
    /// `jetstream` backend); exclusive with `durable`.
    pub jetstream: Option<JetStreamConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention: 1_000_000,
            broadcast_capacity: 1024,
            request_id_capacity: 100_000,
            durable: None,
            jetstream: None,
        }
    }
}

/// An idempotency key with a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RequestKey {
    pub request_id: String,
    pub fingerprint: u64,
}

/// How many items of each kind the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Trade records stored.
    pub trade_records: usize,
    /// Announcements stored.
    pub announcements: usize,
    /// Export reports retained.
    pub export_reports: usize,
}

/// The state and the broadcast channels, shared with the committer.
#[derive(Debug)]
struct Shared {
    state: RwLock<State>,
    reports_tx: broadcast::Sender<Arc<Stored<ExportReport>>>,
    announcements_tx: broadcast::Sender<Arc<Announcement>>,
    /// Why writes are refused for good, once the log has failed.
    fence: watch::Sender<Option<Arc<str>>>,
    /// Whether the state has caught up with the log as of its start (a
    /// `jetstream` replica replaying it); always true otherwise.
    ready: watch::Sender<bool>,
}

impl Shared {
    fn new(state: State, config: &StoreConfig) -> Arc<Shared> {
        let capacity = config.broadcast_capacity.max(1);
        Arc::new(Shared {
            state: RwLock::new(state),
            reports_tx: broadcast::channel(capacity).0,
            announcements_tx: broadcast::channel(capacity).0,
            fence: watch::Sender::new(None),
            ready: watch::Sender::new(true),
        })
    }

    /// Performs a durable mutation under a short write lock and broadcasts
    /// what it published; the committer's and the follower's one way to
    /// change the state.
    fn apply(&self, mutation: state::Mutation) -> Outcome {
        let mut state = self.write();
        let (outcome, published) = state.apply(mutation);
        self.broadcast(published);
        outcome
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

    /// The items held, as gauges; called after writes are applied.
    fn gauge_items(state: &State) {
        let [records, announcements, reports] = series::ITEM_KINDS;
        metrics::gauge!("tradewire_items", "kind" => records).set(state.records.len() as f64);
        metrics::gauge!("tradewire_items", "kind" => announcements)
            .set(state.announcements.len() as f64);
        metrics::gauge!("tradewire_items", "kind" => reports).set(state.reports.len() as f64);
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

/// The committer's thread would not start.
fn committer_failed(source: std::io::Error) -> OpenError {
    OpenError::Io {
        path: "committer thread".into(),
        source,
    }
}

/// Who performs the writes: the committer thread (in memory, or over the
/// local journal), or the follower task of a `jetstream` replica.
#[derive(Debug)]
enum Writer {
    Local(mpsc::Sender<Job>, JoinHandle<()>),
    Replica(tokio::sync::mpsc::UnboundedSender<Job>),
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    writer: Option<Writer>,
    /// Dropped after the writer is joined: `released` then says that the
    /// data directory's lock is free.
    released: tokio::sync::watch::Sender<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the committer after its last group; joining
        // it releases the data directory's lock before the store is gone.
        // A follower ends on its own once its queue is closed.
        if let Some(Writer::Local(queue, thread)) = self.writer.take() {
            drop(queue);
            let _ = thread.join();
        }
    }
}

/// Handle to the store; clones share the same state.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// An in-memory store, a durable one recovered from its directory, or
    /// a replica following its JetStream log.
    pub(crate) async fn open(config: StoreConfig) -> Result<(Store, Option<Recovery>), OpenError> {
        if let Some(replica) = &config.jetstream {
            if config.durable.is_some() {
                return Err(OpenError::Replica(
                    "a replica keeps its log in JetStream, not in a data directory".into(),
                ));
            }
            let (shared, queue, _follower, started) = replica::open(&config, replica).await?;
            tracing::info!(
                snapshot = ?started.snapshot,
                log_end = started.target,
                "replica following the JetStream log"
            );
            let store = Store {
                inner: Arc::new(Inner {
                    shared,
                    writer: Some(Writer::Replica(queue)),
                    released: tokio::sync::watch::Sender::new(()),
                }),
            };
            return Ok((store, None));
        }
        let Some(durable) = config.durable.clone() else {
            return Ok((Store::new(config).map_err(committer_failed)?, None));
        };
        let (journal, state, recovery) = journal::Journal::open(durable, &config)?;
        let store = Store::with_committer(Shared::new(state, &config), JournalLog::new(journal))
            .map_err(committer_failed)?;
        Ok((store, Some(recovery)))
    }

    /// A store whose writes go through a committer thread over `log`.
    fn with_committer(
        shared: Arc<Shared>,
        log: impl Log + Send + 'static,
    ) -> std::io::Result<Store> {
        let (queue, jobs) = mpsc::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("tradewire-committer".into())
                .spawn(move || commit_loop(&shared, log, &jobs))?
        };
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                writer: Some(Writer::Local(queue, thread)),
                released: tokio::sync::watch::Sender::new(()),
            }),
        })
    }

    /// Closes when the last handle is dropped and the writer has stopped
    /// (a local store's directory lock is free by then).
    pub(crate) fn released(&self) -> tokio::sync::watch::Receiver<()> {
        self.inner.released.subscribe()
    }

    /// An in-memory store (`config.durable` is ignored): its writes go
    /// through the committer as a durable store's do, over the null log.
    /// Fails only if its thread cannot start.
    pub(crate) fn new(config: StoreConfig) -> std::io::Result<Store> {
        let state = State::new(&config);
        Store::with_committer(Shared::new(state, &config), NullLog)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.shared.read()
    }

    /// Why writes are refused, once the log has failed (`None` while
    /// healthy); watch it to report health.
    pub(crate) fn fenced(&self) -> watch::Receiver<Option<Arc<str>>> {
        self.inner.shared.fence.subscribe()
    }

    /// Whether the state has caught up with the log as it was when the
    /// store opened; watch it to report health. At once true unless this
    /// is a `jetstream` replica.
    pub(crate) fn ready(&self) -> watch::Receiver<bool> {
        self.inner.shared.ready.subscribe()
    }

    // ---- trade records ----

    pub(crate) fn get_trade_record(&self, id: Ulid) -> Result<Arc<Stored<TradeRecord>>> {
        self.read()
            .records
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("trade record", id))
    }

    /// `read` applied to a record under the read lock: a Get that copies
    /// out what it answers from needs no reference of its own (an `Arc`
    /// count touched on a cold cache line).
    pub(crate) fn read_trade_record<T>(
        &self,
        id: Ulid,
        read: impl FnOnce(&Stored<TradeRecord>) -> T,
    ) -> Result<T> {
        self.read()
            .records
            .get(&id)
            .map(|record| read(record))
            .ok_or_else(|| Error::not_found("trade record", id))
    }

    pub(crate) fn list_trade_records(
        &self,
        filter: &TradeFilter,
        after: Option<Ulid>,
        limit: usize,
    ) -> Page<Stored<TradeRecord>, Ulid> {
        let state = self.read();
        let candidates = state.record_index.candidates(filter);
        let keys = candidates.after(after, keys_after(&state.records, after));
        page(keys, limit, SCAN_BUDGET, |k| {
            state.records.get(&k).filter(|r| filter.matches(r.as_ref()))
        })
    }

    /// Every revision of a record, oldest first: its history once revised
    /// (kept after a delete until the next snapshot), else the record as
    /// revision 1.
    pub(crate) fn trade_record_revisions(&self, id: Ulid) -> Result<Vec<Revision>> {
        let state = self.read();
        if let Some(history) = state.revisions.get(&id) {
            return Ok(history.clone());
        }
        let record = state
            .records
            .get(&id)
            .ok_or_else(|| Error::not_found("trade record", id))?;
        Ok(vec![Revision {
            number: 1,
            time: record.create_time,
            changed: Vec::new(),
            source: record.source.clone(),
            record: Arc::clone(record),
        }])
    }

    // ---- announcements ----

    pub(crate) fn get_announcement(&self, id: Ulid) -> Result<Arc<Announcement>> {
        self.read()
            .announcements
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("announcement", id))
    }

    pub(crate) fn list_announcements(
        &self,
        filter: &AnnouncementFilter,
        after: Option<Ulid>,
        limit: usize,
    ) -> Page<Announcement, Ulid> {
        let state = self.read();
        let candidates = state.announcement_index.candidates(filter);
        let keys = candidates.after(after, keys_after(&state.announcements, after));
        page(keys, limit, SCAN_BUDGET, |k| {
            state.announcements.get(&k).filter(|a| filter.matches(a))
        })
    }

    // ---- export reports ----

    pub(crate) fn get_export_report(&self, id: Ulid) -> Result<Arc<Stored<ExportReport>>> {
        let state = self.read();
        state
            .report_ids
            .get(&id)
            .and_then(|seq| state.reports.get(*seq))
            .cloned()
            .ok_or_else(|| Error::not_found("export report", id))
    }

    pub(crate) fn list_export_reports(
        &self,
        filter: &TradeFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Page<Stored<ExportReport>, u64> {
        let state = self.read();
        let candidates = state.report_index.candidates(filter);
        let keys = candidates.after(after, keys_after(state.reports.items_by_sequence(), after));
        page(keys, limit, SCAN_BUDGET, |seq| {
            state
                .reports
                .get(seq)
                .filter(|r| filter.matches(r.as_ref()))
        })
    }

    // ---- demo marker ----

    /// Whether nothing was ever stored here: no id was ever given (ids
    /// are kept across restarts and snapshots, and deletes keep them).
    pub(crate) fn never_written(&self) -> bool {
        self.read().last_id == ulid::Ulid::nil()
    }

    // ---- feeds for subscriptions ----

    /// The export reports, numbered, for subscriptions.
    pub(crate) fn report_feed(&self) -> LogFeed<Stored<ExportReport>> {
        LogFeed::new(
            feed::EXPORT_REPORTS,
            Arc::clone(&self.inner.shared),
            |state| &state.reports,
            |shared| &shared.reports_tx,
        )
    }

    /// The announcements, numbered, for subscriptions.
    pub(crate) fn announcement_feed(&self) -> LogFeed<Announcement> {
        LogFeed::new(
            feed::ANNOUNCEMENTS,
            Arc::clone(&self.inner.shared),
            |state| &state.announcement_log,
            |shared| &shared.announcements_tx,
        )
    }

    /// Sets the item gauges now (they are kept up to date after writes).
    pub(crate) fn gauge_items(&self) {
        Shared::gauge_items(&self.read());
    }

    /// How many items of each kind are stored.
    pub(crate) fn counts(&self) -> Counts {
        let state = self.read();
        Counts {
            trade_records: state.records.len(),
            announcements: state.announcements.len(),
            export_reports: state.reports.len(),
        }
    }
}
