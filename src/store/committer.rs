//! The committer thread, the only writer of a store on memory or on the
//! local log: it takes the queued jobs in groups and runs each through
//! the group-commit core (`group.rs`) with its `Log`: draft under the read
//! lock, make durable with no lock held, apply under short write locks,
//! answer. Between groups it runs the log's interval syncs and snapshots,
//! and it fences the store when the log breaks.

use std::collections::VecDeque;
use std::sync::mpsc;

use super::Shared;
use super::group::{Group, Job, MAX_GROUP, Redraft, Take};
use super::log::Log;
use crate::error::Error;

/// The committer: group commit of everything queued, in arrival order
/// (deferred jobs first), and the log's work between groups; it fences
/// the store when the log breaks. It ends once the queue is closed and
/// drained, after the log's last flush.
pub(super) fn commit_loop(shared: &Shared, mut log: impl Log, jobs: &mpsc::Receiver<Job>) {
    let mut deferred = VecDeque::new();
    loop {
        let mut group: Vec<Job> = deferred.drain(..).collect();
        if group.is_empty() {
            let first = match log.sync_due_in() {
                Some(wait) => match jobs.recv_timeout(wait) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(error) = log.sync_if_due() {
                            tracing::error!(%error, "interval fsync failed");
                        }
                        fence_if_broken(shared, &log);
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
        commit_group(shared, &mut log, group, &mut deferred);
        if let Err(error) = log.sync_if_due() {
            tracing::error!(%error, "interval fsync failed");
        }
        log.between_groups(shared);
        fence_if_broken(shared, &log);
    }
    log.close();
}

fn fence_if_broken(shared: &Shared, log: &impl Log) {
    if let Some(reason) = log.broken() {
        shared.fence(reason);
    }
}

/// Commits one group: drafts every job under the read lock, appending
/// their mutations to the log; makes them durable with no lock held; then
/// applies, broadcasts and answers. Jobs the draft cannot place yet go to
/// `deferred`, for the next group.
fn commit_group(shared: &Shared, log: &mut impl Log, jobs: Vec<Job>, deferred: &mut VecDeque<Job>) {
    metrics::histogram!("tradewire_commit_group_size").record(jobs.len() as f64);
    let group = Group::draft(&shared.read(), jobs, Redraft::Never, |mutation| {
        match log.append(mutation) {
            Ok(()) => Take::Taken,
            // Nothing of it was queued; it cannot be logged in any group.
            Err(error) => Take::Refused(Error::Internal(format!(
                "a write does not encode for the log: {error}"
            ))),
        }
    });
    match log.commit() {
        Ok(()) => {
            let wrote = !group.is_empty();
            group.apply_and_answer(shared, deferred);
            if wrote {
                Shared::gauge_items(&shared.read());
            }
        }
        Err(error) => {
            if !group.is_empty() {
                tracing::error!(%error, writes = group.len(), "log write failed; the writes are refused");
            }
            let failed = Error::Unavailable {
                message: format!("the write could not be made durable: {error}"),
                resume_after: None,
            };
            group.fail(&failed, deferred);
        }
    }
}
