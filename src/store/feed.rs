//! The numbered feeds that subscriptions read: the `Feed` contract the hub
//! relies on, and `LogFeed`, its one implementation over a `SeqLog` of the
//! state and the broadcast channel that the committer sends on.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Shared;
use super::seqlog::{Evicted, SeqLog};
use super::state::State;
use crate::domain::Sequenced;

/// The stream names of the feeds, as metrics label them.
pub(crate) const EXPORT_REPORTS: &str = "export_reports";
pub(crate) const ANNOUNCEMENTS: &str = "announcements";
/// Every feed's name.
pub(crate) const FEED_KINDS: [&str; 2] = [EXPORT_REPORTS, ANNOUNCEMENTS];

/// A numbered stream of items, as the hub reads it.
pub(crate) trait Feed: Send + Sync + 'static {
    /// What the stream carries.
    type Item: Sequenced + Send + Sync + 'static;

    /// The stream's name in metrics: "export_reports", "announcements".
    fn kind(&self) -> &'static str;

    /// The head sequence and a live receiver that gets every item after it,
    /// taken atomically with respect to publication.
    fn register(&self) -> (u64, broadcast::Receiver<Arc<Self::Item>>);
    /// The latest sequence published.
    fn head(&self) -> u64;
    /// The oldest sequence still retained for replay.
    fn oldest_retained(&self) -> u64;
    /// Up to `limit` retained items above `after`, in order.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Self::Item>>, Evicted>;
}

/// A feed over one numbered log of the state and its broadcast channel.
pub(crate) struct LogFeed<T> {
    kind: &'static str,
    shared: Arc<Shared>,
    log: fn(&State) -> &SeqLog<T>,
    sender: fn(&Shared) -> &broadcast::Sender<Arc<T>>,
}

impl<T> LogFeed<T> {
    pub(super) fn new(
        kind: &'static str,
        shared: Arc<Shared>,
        log: fn(&State) -> &SeqLog<T>,
        sender: fn(&Shared) -> &broadcast::Sender<Arc<T>>,
    ) -> Self {
        LogFeed {
            kind,
            shared,
            log,
            sender,
        }
    }
}

impl<T> Clone for LogFeed<T> {
    fn clone(&self) -> Self {
        LogFeed {
            kind: self.kind,
            shared: Arc::clone(&self.shared),
            log: self.log,
            sender: self.sender,
        }
    }
}

impl<T> std::fmt::Debug for LogFeed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFeed").finish_non_exhaustive()
    }
}

impl<T: Sequenced + Send + Sync + 'static> Feed for LogFeed<T> {
    type Item = T;

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn register(&self) -> (u64, broadcast::Receiver<Arc<T>>) {
        // The committer broadcasts under the write lock, so under the read
        // lock no publish can slip between the head and the subscription.
        let state = self.shared.read();
        (
            (self.log)(&state).head(),
            (self.sender)(&self.shared).subscribe(),
        )
    }

    fn head(&self) -> u64 {
        (self.log)(&self.shared.read()).head()
    }

    fn oldest_retained(&self) -> u64 {
        (self.log)(&self.shared.read()).oldest_retained()
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<T>>, Evicted> {
        (self.log)(&self.shared.read()).read_after(after, limit)
    }
}
