//! The follower: one task per replica, the only writer of its state. It
//! applies the log in order, commits this replica's writes onto the log
//! with optimistic concurrency, and takes snapshots.
//!
//! A write's way:
//! 1. Queued commands are taken as a group and drafted under the read lock
//!    against the state at log position S (the last message applied),
//!    while the encoded mutations fit one NATS message.
//! 2. The group is published with no lock held and
//!    `Nats-Expected-Last-Sequence: S`. JetStream stores it only if the
//!    log still ends at S, so every group was checked against the whole
//!    history before it: no lost update, and a request id is stored once
//!    however many replicas race on it.
//! 3. Acknowledged at S + 1, the group is applied under short write locks
//!    and answered (read your writes). Its copy arriving later from the
//!    consumer is skipped.
//! 4. On a mismatch, the follower applies the log up to its end, drafts
//!    the group again and retries, `MAX_ATTEMPTS` times at most.
//!
//! Nothing is applied before JetStream acknowledged it (or delivered it),
//! so nothing is visible before it is durable in the NATS cluster.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_nats::connection::State as Connection;
use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream;
use tokio::sync::mpsc;

use super::JetStreamConfig;
use super::entry::{FORMAT, FORMAT_HEADER, GroupBuilder, Refused, decode};
use super::log_reader::{CATCH_UP_STALL, LogReader};
use super::snapshots::{Manifest, Snapshots};
use crate::error::Error;
use crate::store::Shared;
use crate::store::group::{Group, Job, MAX_GROUP, Redraft, Take, refuse_all};

/// Most drafts of one group when other replicas keep writing first.
const MAX_ATTEMPTS: usize = 16;
/// Room left in a message for its headers.
const HEADER_ROOM: usize = 4096;

/// The follower's state; see the module doc.
pub(super) struct Follower {
    shared: Arc<Shared>,
    nats: async_nats::Client,
    context: jetstream::Context,
    log: Stream,
    subject: String,
    snapshots: Snapshots,
    snapshot_every: u64,
    request_timeout: Duration,
    /// The last log position applied.
    applied: u64,
    /// The log's last position when this replica started; it is ready once
    /// it has applied that far.
    target: u64,
    /// Messages after the last one applied, as the consumer last said.
    behind: u64,
    /// The newest snapshot this replica knows of, and the one before it.
    snapshot: Option<Manifest>,
    snapshot_task: Option<tokio::task::JoinHandle<Option<Manifest>>>,
    disconnected_since: Option<Instant>,
}

impl Follower {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        shared: Arc<Shared>,
        nats: async_nats::Client,
        context: jetstream::Context,
        log: Stream,
        snapshots: Snapshots,
        config: &JetStreamConfig,
        applied: u64,
        target: u64,
    ) -> Follower {
        Follower {
            shared,
            nats,
            context,
            log,
            subject: config.subject(),
            snapshots,
            snapshot_every: config.snapshot_every,
            request_timeout: config.request_timeout,
            applied,
            target,
            behind: target.saturating_sub(applied),
            snapshot: None,
            snapshot_task: None,
            disconnected_since: None,
        }
    }

    /// Runs until the job queue closes (the store is dropped).
    pub(super) async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut reader = LogReader::new(self.log.clone());
        let mut deferred: VecDeque<Job> = VecDeque::new();
        self.snapshot = self.snapshots.latest().await.unwrap_or_default();
        self.gauge();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let group: Vec<Job> = tokio::select! {
                message = reader.next(self.applied) => {
                    self.on_message(&message);
                    continue;
                }
                job = jobs.recv(), if deferred.is_empty() => match job {
                    Some(job) => {
                        let mut group = vec![job];
                        while group.len() < MAX_GROUP {
                            match jobs.try_recv() {
                                Ok(job) => group.push(job),
                                Err(_) => break,
                            }
                        }
                        group
                    }
                    None => break,
                },
                () = std::future::ready(()), if !deferred.is_empty() => deferred.drain(..).collect(),
                _ = tick.tick() => {
                    self.watch_connection();
                    continue;
                }
            };
            self.commit(group, &mut deferred, &mut reader).await;
            self.maybe_snapshot().await;
        }
        if let Some(task) = self.snapshot_task.take() {
            let _ = task.await;
        }
    }

    /// Applies one message of the log, unless it is already applied.
    fn on_message(&mut self, message: &jetstream::Message) {
        let Ok(info) = message.info() else {
            tracing::warn!(subject = %message.subject, "a log message without JetStream metadata; skipped");
            return;
        };
        let sequence = info.stream_sequence;
        self.behind = info.pending;
        if sequence <= self.applied {
            return;
        }
        if sequence > self.applied + 1 {
            self.shared.fence(&format!(
                "the log was compacted past this replica (it needs message {}, the log goes on at {sequence}); a restart loads the latest snapshot",
                self.applied + 1
            ));
            return;
        }
        let format = message
            .headers
            .as_ref()
            .and_then(|h| h.get(FORMAT_HEADER))
            .map(|v| v.as_str().to_owned());
        let mutations = match format.as_deref() {
            Some(FORMAT) => decode(&message.payload),
            other => Err(format!("an unknown format {other:?}")),
        };
        match mutations {
            Ok(mutations) => {
                for mutation in mutations {
                    self.shared.apply(mutation);
                }
                self.applied = sequence;
                self.after_apply();
            }
            Err(reason) => self.shared.fence(&format!(
                "log message {sequence} cannot be applied: {reason}; a newer tradewire may have written it"
            )),
        }
    }

    fn after_apply(&mut self) {
        if self.applied >= self.target {
            self.shared
                .ready
                .send_if_modified(|ready| !std::mem::replace(ready, true));
        }
        Shared::gauge_items(&self.shared.read());
        self.gauge();
    }

    fn gauge(&self) {
        metrics::gauge!("tradewire_replica_applied_position").set(self.applied as f64);
        metrics::gauge!("tradewire_replica_behind_messages").set(self.behind as f64);
    }

    /// Notes when NATS went away and came back, for the log and the
    /// answers to writes.
    fn watch_connection(&mut self) {
        let connected = self.nats.connection_state() == Connection::Connected;
        metrics::gauge!("tradewire_replica_connected").set(if connected { 1.0 } else { 0.0 });
        match (connected, self.disconnected_since) {
            (false, None) => self.disconnected_since = Some(Instant::now()),
            (true, Some(since)) => {
                tracing::info!(after = ?since.elapsed(), applied = self.applied, "NATS is back; writes resume");
                self.disconnected_since = None;
            }
            _ => {}
        }
    }

    fn unavailable(&self, why: &str) -> Error {
        Error::Unavailable {
            message: format!(
                "{why}; this replica serves reads as of log position {} ({} behind the log as last seen)",
                self.applied, self.behind
            ),
            resume_after: None,
        }
    }

    /// Commits a group: draft, publish on the expected position, apply,
    /// answer; again after applying what other replicas wrote first.
    async fn commit(
        &mut self,
        mut jobs: Vec<Job>,
        deferred: &mut VecDeque<Job>,
        reader: &mut LogReader,
    ) {
        metrics::histogram!("tradewire_commit_group_size").record(jobs.len() as f64);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.nats.connection_state() != Connection::Connected {
                self.watch_connection();
                let error = self.unavailable("NATS is unreachable, so writes are refused");
                return refuse_all(jobs, &error);
            }
            let at = self.applied;
            let (group, payload) = self.draft(jobs);
            if group.is_empty() {
                return group.apply_and_answer(&self.shared, deferred);
            }
            let publish = PublishMessage::build()
                .payload(payload)
                .header(FORMAT_HEADER, FORMAT)
                .expected_last_sequence(at);
            let acked = match self
                .context
                .send_publish(self.subject.clone(), publish)
                .await
            {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            match acked {
                Ok(ack) if ack.sequence == at + 1 => {
                    group.apply_and_answer(&self.shared, deferred);
                    self.applied = ack.sequence;
                    self.after_apply();
                    return;
                }
                Ok(ack) => {
                    // JetStream checked the expected sequence; a different
                    // one means the stream is not what this replica thinks.
                    self.shared.fence(&format!(
                        "a write drafted at log position {at} was stored at {}",
                        ack.sequence
                    ));
                    let error = self.unavailable("the replica lost its place in the log");
                    return group.fail(&error, deferred);
                }
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                    metrics::counter!("tradewire_replica_write_conflicts_total").increment(1);
                    if attempt >= MAX_ATTEMPTS {
                        let error = self.unavailable(&format!(
                            "other replicas wrote first {attempt} times in a row; retry"
                        ));
                        return group.fail(&error, deferred);
                    }
                    if let Err(why) = self.catch_up(reader).await {
                        let error = self.unavailable(&why);
                        return group.fail(&error, deferred);
                    }
                    // Drafted again on the history the others made.
                    jobs = group.into_jobs();
                }
                Err(error) => {
                    // A timeout is ambiguous: the group may still be in the
                    // log, and is applied when it arrives. Clients retry
                    // with their request id.
                    tracing::warn!(%error, "a write to the log failed");
                    let error =
                        self.unavailable(&format!("the log did not take the write: {error}"));
                    return group.fail(&error, deferred);
                }
            }
        }
    }

    /// Drafts `jobs` as a group whose encoded mutations fit one message,
    /// and that message's payload.
    fn draft(&self, jobs: Vec<Job>) -> (Group, bytes::Bytes) {
        let limit = self
            .nats
            .server_info()
            .max_payload
            .saturating_sub(HEADER_ROOM)
            .max(HEADER_ROOM);
        let mut builder = GroupBuilder::new(limit);
        let group = Group::draft(&self.shared.read(), jobs, Redraft::Possible, |mutation| {
            match builder.push(mutation) {
                Ok(()) => Take::Taken,
                Err(Refused::TooLarge { alone: false, .. }) => Take::Full,
                Err(Refused::TooLarge { alone: true, size }) => {
                    Take::Refused(Error::ResourceExhausted(format!(
                        "the write is {size} bytes in the log; a NATS message holds at most {limit}"
                    )))
                }
                Err(Refused::Encoding(reason)) => Take::Refused(Error::Internal(format!(
                    "a write does not encode: {reason}"
                ))),
            }
        });
        (group, builder.finish())
    }

    /// Applies the log up to its current end.
    async fn catch_up(&mut self, reader: &mut LogReader) -> std::result::Result<(), String> {
        let end = self
            .log
            .get_info()
            .await
            .map_err(|e| format!("reading the log's end: {e}"))?
            .state
            .last_sequence;
        let limit = self.request_timeout;
        let catch_up = async {
            while self.applied < end {
                let message = reader.next_within(self.applied, CATCH_UP_STALL).await;
                self.on_message(&message);
                if self.shared.check_fence().is_err() {
                    return Err("the replica is fenced".to_owned());
                }
            }
            Ok(())
        };
        tokio::time::timeout(limit, catch_up)
            .await
            .map_err(|_| format!("catching up with the log to {end} took over {limit:?}"))?
    }

    /// Takes a snapshot when the log has grown by `snapshot_every` since
    /// the newest one, unless another replica took it; then compacts.
    async fn maybe_snapshot(&mut self) {
        if let Some(task) = &self.snapshot_task {
            if !task.is_finished() {
                return;
            }
            if let Some(task) = self.snapshot_task.take()
                && let Ok(Some(manifest)) = task.await
            {
                self.snapshot = Some(manifest);
            }
        }
        let since = self.snapshot.as_ref().map_or(0, |m| m.position);
        if self.snapshot_every == 0 || self.applied < since + self.snapshot_every {
            return;
        }
        // Another replica may have taken one meanwhile.
        if let Ok(Some(latest)) = self.snapshots.latest().await
            && latest.position + self.snapshot_every > self.applied
        {
            self.snapshot = Some(latest);
            return;
        }
        let view = self.shared.read().snapshot();
        let position = self.applied;
        let previous = self.snapshot.clone();
        let snapshots = self.snapshots.clone();
        let log = self.log.clone();
        self.snapshot_task = Some(tokio::spawn(async move {
            let encoded = tokio::task::spawn_blocking(move || view.encode()).await;
            let encoded = match encoded {
                Ok(Ok(encoded)) => encoded,
                Ok(Err(error)) => {
                    tracing::error!(%error, "a snapshot does not encode");
                    return None;
                }
                Err(error) => {
                    tracing::error!(%error, "the snapshot encoder failed");
                    return None;
                }
            };
            let manifest = match snapshots.publish(position, &encoded).await {
                Ok(manifest) => manifest,
                Err(error) => {
                    tracing::error!(%error, position, "publishing a snapshot failed; the log is kept");
                    return None;
                }
            };
            tracing::info!(position, bytes = encoded.len(), "snapshot published");
            if let Some(previous) = previous {
                let compacted = async {
                    log.purge()
                        .sequence(previous.position + 1)
                        .await
                        .map_err(|e| e.to_string())?;
                    snapshots.purge_before(&previous).await
                };
                match compacted.await {
                    Ok(()) => tracing::info!(below = previous.position + 1, "log compacted"),
                    Err(error) => tracing::warn!(%error, "compacting the log failed; it is kept"),
                }
            }
            Some(manifest)
        }));
    }
}
