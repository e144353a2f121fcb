//! The group-commit core that every backend's writer runs: the committer
//! (memory, or the local log) and the replica's follower (JetStream).
//!
//! A writer takes the queued jobs as one group, and then:
//! 1. **drafts** them in order under the read lock, against the state plus
//!    the group's own effects (`Draft`), offering each mutation to its log
//!    (`draft`); a job the draft cannot place yet waits for the next group;
//! 2. makes the taken mutations **durable** in its log, with no lock held
//!    (the writer's own step);
//! 3. **applies** them in draft order, each under a short write lock, and
//!    broadcasts, then **answers** every job by its plan (`Group::answer`).
//!
//! The invariants, stated once (ARCHITECTURE.md says why):
//! - nothing is visible before it is durable: a mutation is applied only
//!   after step 2 succeeded for its whole group, and a failed step 2
//!   applies nothing;
//! - a draft sees its whole group: each job is checked against the state
//!   plus every earlier job of the group, or waits for the next group; the
//!   first job of a group never waits, so every job is answered;
//! - a request id is stored once: a retried id is answered with its first
//!   outcome (`Answer::repeated`), and two jobs of one group with the same
//!   id are never both drafted;
//! - the fence: once a log cannot be trusted, the writer fences the store
//!   and every later write is refused before it is queued.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use super::Shared;
use super::draft::{Draft, Drafted};
use super::state::{Command, Mutation, Outcome, State};
use crate::error::{Error, Result};

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

/// Most jobs one group takes.
pub(super) const MAX_GROUP: usize = 1024;

/// What a log says to one more mutation of the group it is building.
pub(super) enum Take {
    /// Queued with the group.
    Taken,
    /// The group is full: this job and the rest wait for the next group.
    Full,
    /// Never, in any group: this job fails with the error, and the rest
    /// wait for the next group (the draft holds this job's effects).
    Refused(Error),
}

/// Whether a writer may draft a group again, and so keeps its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redraft {
    /// Never (the committer): each command is given up to the draft.
    Never,
    /// After a lost race (a replica's follower): the draft works on
    /// copies, and the group's jobs can be taken back whole.
    Possible,
}

/// What became of one job in its group's draft.
enum Plan {
    /// Answered without a write: an error, or a retry's first outcome.
    Answer(Result<Answer>),
    /// Answered with the outcome of its mutation, once the group is
    /// durable and applied (outcomes come in draft order).
    Mutation,
    /// Waits for the next group, with its command.
    Later(Box<Command>),
}

/// One job of a drafted group.
struct Entry {
    reply: oneshot::Sender<Result<Answer>>,
    plan: Plan,
    /// The job's command, kept for a redraft (`Redraft::Possible`).
    kept: Option<Command>,
}

/// A drafted group: its jobs and what became of each, and the mutations
/// to make durable, in draft order.
pub(super) struct Group {
    entries: Vec<Entry>,
    mutations: Vec<Mutation>,
}

impl Group {
    /// Drafts `jobs` in order against `state`, offering each mutation to
    /// `take`.
    pub(super) fn draft(
        state: &State,
        jobs: Vec<Job>,
        redraft: Redraft,
        mut take: impl FnMut(&Mutation) -> Take,
    ) -> Group {
        let mut entries = Vec::with_capacity(jobs.len());
        let mut mutations = Vec::new();
        let mut draft = Draft::new(state);
        let mut closed = false;
        for Job { command, reply } in jobs {
            if closed {
                let plan = Plan::Later(Box::new(command));
                entries.push(Entry {
                    reply,
                    plan,
                    kept: None,
                });
                continue;
            }
            let (input, mut kept) = match redraft {
                Redraft::Possible => (command.clone(), Some(command)),
                Redraft::Never => (command, None),
            };
            let plan = match draft.execute(input) {
                Err(error) => Plan::Answer(Err(error)),
                Ok(Drafted::Repeat(outcome)) => Plan::Answer(Ok(Answer::repeated(outcome))),
                Ok(Drafted::Defer(command)) => Plan::Later(command),
                Ok(Drafted::Mutate(mutation)) => match take(&mutation) {
                    Take::Taken => {
                        mutations.push(*mutation);
                        Plan::Mutation
                    }
                    // The draft now holds this job's effects, so no later
                    // job of this group may be drafted on top of them.
                    Take::Full => {
                        closed = true;
                        match kept.take() {
                            Some(command) => Plan::Later(Box::new(command)),
                            // Its command went into the mutation.
                            None => Plan::Answer(Err(Error::Internal(
                                "a log that cannot redraft was full".into(),
                            ))),
                        }
                    }
                    Take::Refused(error) => {
                        closed = true;
                        Plan::Answer(Err(error))
                    }
                },
            };
            entries.push(Entry { reply, plan, kept });
        }
        Group { entries, mutations }
    }

    /// Whether the group has anything to make durable.
    pub(super) fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// How many mutations the group makes durable.
    pub(super) fn len(&self) -> usize {
        self.mutations.len()
    }

    /// Takes the group's jobs back, to draft them again; whole when it was
    /// drafted with `Redraft::Possible` (a job without its command would
    /// be dropped, and its caller told the store is closed).
    pub(super) fn into_jobs(self) -> Vec<Job> {
        self.entries
            .into_iter()
            .filter_map(|Entry { reply, plan, kept }| {
                let command = match plan {
                    Plan::Later(command) => Some(*command),
                    Plan::Answer(_) | Plan::Mutation => kept,
                }?;
                Some(Job { command, reply })
            })
            .collect()
    }

    /// Applies the durable group in draft order, each mutation under a
    /// short write lock (readers wait for one apply, not a group), and
    /// answers every job; those that wait go to `later`.
    pub(super) fn apply_and_answer(self, shared: &Shared, later: &mut VecDeque<Job>) {
        let Group { entries, mutations } = self;
        let outcomes: Vec<Outcome> = mutations.into_iter().map(|m| shared.apply(m)).collect();
        answer(entries, outcomes, later);
    }

    /// Answers the group whose log refused it: each job drafted to a
    /// mutation gets `failed`; the others their own answers.
    pub(super) fn fail(self, failed: &Error, later: &mut VecDeque<Job>) {
        let entries = self
            .entries
            .into_iter()
            .map(|entry| match entry.plan {
                Plan::Mutation => Entry {
                    plan: Plan::Answer(Err(failed.clone())),
                    ..entry
                },
                _ => entry,
            })
            .collect();
        answer(entries, Vec::new(), later);
    }
}

/// Answers each job by its plan, taking the outcomes in order.
fn answer(entries: Vec<Entry>, outcomes: Vec<Outcome>, later: &mut VecDeque<Job>) {
    let mut outcomes = outcomes.into_iter();
    for Entry { reply, plan, .. } in entries {
        let answer = match plan {
            Plan::Answer(answer) => answer,
            Plan::Mutation => outcomes
                .next()
                .map(Answer::new)
                .ok_or_else(|| Error::Internal("a write lost its outcome".into())),
            Plan::Later(command) => {
                later.push_back(Job {
                    command: *command,
                    reply,
                });
                continue;
            }
        };
        // A caller that went away still had its write made durable.
        let _ = reply.send(answer);
    }
}

/// Answers every job with `error`: the group was never drafted, or its
/// place in the log was lost.
pub(super) fn refuse_all(jobs: Vec<Job>, error: &Error) {
    for job in jobs {
        let _ = job.reply.send(Err(error.clone()));
    }
}
