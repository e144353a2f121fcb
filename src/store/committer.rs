//! The committer thread of a durable store, the only writer: it takes the
//! queued commands in groups, drafts them against the state, makes their
//! mutations durable with no lock held, then applies and broadcasts them
//! under a short write lock and answers. It also runs interval syncs and
//! starts snapshots, and fences the store when the log breaks.

use std::collections::VecDeque;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::Shared;
use super::draft::{Draft, Drafted};
use super::journal::Journal;
use super::state::{Command, Mutation, Outcome};
use crate::error::{Error, Result};

/// Most commands one group commit takes.
const MAX_GROUP: usize = 1024;

/// A write's answer: its outcome, and whether its request_id named a
/// request already done, so that nothing was written now.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) outcome: Outcome,
    pub(super) repeated: bool,
}

impl Answer {
    /// The answer of a write done now.
    pub(super) fn new(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            repeated: false,
        }
    }

    /// The first outcome of a retried request.
    pub(super) fn repeated(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            repeated: true,
        }
    }
}

/// A queued command and where its answer goes.
pub(super) struct Job {
    pub(super) command: Command,
    pub(super) reply: oneshot::Sender<Result<Answer>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("command", &self.command)
            .finish()
    }
}

/// The committer: group commit of everything queued, in arrival order
/// (deferred commands first), interval syncs and snapshots; it fences the
/// store when the journal breaks.
pub(super) fn commit_loop(shared: &Shared, mut journal: Journal, jobs: &mpsc::Receiver<Job>) {
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

fn fence_if_broken(shared: &Shared, journal: &Journal) {
    if let Some(reason) = journal.broken() {
        shared.fence(reason);
    }
}

/// A drafted command waiting for its group to be durable.
enum Pending {
    /// Answered without a write: an error or a remembered outcome.
    Answered(Result<Answer>),
    /// The outcome of its mutation; mutations are applied, and their
    /// outcomes taken, in the order they were drafted.
    Mutation,
}

/// Commits one group: (1) draft every command under the read lock,
/// queueing their mutations in the journal; (2) write and sync them with
/// no lock held; (3) apply and broadcast each under the write lock, then
/// answer. Commands that depend on others of the group in ways the draft
/// does not model go to `deferred`, for the next group.
fn commit_group(
    shared: &Shared,
    journal: &mut Journal,
    group: Vec<Job>,
    deferred: &mut VecDeque<Job>,
) {
    metrics::histogram!("tradewire_commit_group_size").record(group.len() as f64);
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
                Ok(Drafted::Repeat(outcome)) => Pending::Answered(Ok(Answer::repeated(outcome))),
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

    // The write lock is taken per mutation, not per group: a reader then
    // waits for one command's apply (a few microseconds), not a group of
    // 64 (a few hundred). Each command stays atomic, and every mutation
    // is durable already, so a reader may see a group's first commands
    // before its last.
    let outcomes: Vec<Outcome> = mutations.into_iter().map(|m| shared.apply(m)).collect();
    Shared::gauge_items(&shared.read());
    let mut outcomes = outcomes.into_iter();
    for (reply, pending) in waiting {
        let answer = match pending {
            Pending::Answered(answer) => answer,
            Pending::Mutation => outcomes
                .next()
                .map(Answer::new)
                .ok_or_else(|| Error::Internal("a write lost its outcome".into())),
        };
        // A caller that went away still had its write made durable.
        let _ = reply.send(answer);
    }
}
