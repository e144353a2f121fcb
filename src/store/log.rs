//! `Log`: where the committer makes a group durable before it is applied.
//! Two logs run under it: the local journal (a data directory) and the
//! null log of a store kept in memory only, which makes nothing durable
//! and so never fails. (The JetStream log has a writer of its own, the
//! replica's follower, since its commit is a publish that can lose a race
//! to another replica; it drafts and answers through the same core.)

use std::io;
use std::time::Duration;

use super::Shared;
use super::journal::Journal;
use super::state::Mutation;

/// A log as the committer drives it, one group at a time.
pub(super) trait Log {
    /// Queues a mutation of the group being built; on an error nothing of
    /// it is queued.
    fn append(&mut self, mutation: &Mutation) -> io::Result<()>;
    /// Makes everything queued since the last commit durable; on an error
    /// none of it is, and it is dropped.
    fn commit(&mut self) -> io::Result<()>;
    /// How long until an interval sync is due, if one is pending.
    fn sync_due_in(&self) -> Option<Duration>;
    /// Syncs if an interval sync is due.
    fn sync_if_due(&mut self) -> io::Result<()>;
    /// Why the log can no longer be trusted, once it cannot.
    fn broken(&self) -> Option<&str>;
    /// The log's work between groups: snapshots and compaction.
    fn between_groups(&mut self, shared: &Shared);
    /// The last flush at a clean stop; waits for a snapshot in progress.
    fn close(&mut self);
}

/// The log of a store kept in memory only.
#[derive(Debug, Default)]
pub(super) struct NullLog;

impl Log for NullLog {
    fn append(&mut self, _: &Mutation) -> io::Result<()> {
        Ok(())
    }

    fn commit(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn sync_due_in(&self) -> Option<Duration> {
        None
    }

    fn sync_if_due(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn broken(&self) -> Option<&str> {
        None
    }

    fn between_groups(&mut self, _: &Shared) {}

    fn close(&mut self) {}
}

/// The local journal, with the mark of the group it is building.
pub(super) struct JournalLog {
    journal: Journal,
    /// Where the group being built starts, once it has an entry.
    group_start: Option<u64>,
}

impl JournalLog {
    pub(super) fn new(journal: Journal) -> JournalLog {
        JournalLog {
            journal,
            group_start: None,
        }
    }
}

impl Log for JournalLog {
    fn append(&mut self, mutation: &Mutation) -> io::Result<()> {
        let mark = self.journal.mark();
        self.journal.append(mutation)?;
        self.group_start.get_or_insert(mark);
        Ok(())
    }

    fn commit(&mut self) -> io::Result<()> {
        let mark = self
            .group_start
            .take()
            .unwrap_or_else(|| self.journal.mark());
        self.journal.commit(mark)
    }

    fn sync_due_in(&self) -> Option<Duration> {
        self.journal.sync_due_in()
    }

    fn sync_if_due(&mut self) -> io::Result<()> {
        self.journal.sync_if_due()
    }

    fn broken(&self) -> Option<&str> {
        self.journal.broken()
    }

    fn between_groups(&mut self, shared: &Shared) {
        self.journal.reap_snapshot(false);
        if self.journal.wants_snapshot() {
            // A consistent view is a copy of the state's `Arc`s, taken
            // under the read lock at a group boundary; it is serialized
            // and written on the snapshot thread while writes go on.
            let view = shared.read().snapshot();
            if let Err(error) = self.journal.start_snapshot(view) {
                tracing::error!(%error, "snapshot failed; the log keeps growing until one succeeds");
            }
        }
    }

    fn close(&mut self) {
        // Everything acknowledged is on disk already under `always`; make
        // the other policies' tail durable at a clean stop, and let a
        // snapshot in progress finish while the directory is still locked.
        if let Err(error) = self.journal.sync_pending() {
            tracing::error!(%error, "final log flush failed");
        }
        self.journal.reap_snapshot(true);
    }
}
