//! The `jetstream` log backend: the store as one replica of several that
//! share one log, a NATS JetStream stream, instead of a local write-ahead
//! log. JetStream replicates and orders the log (Raft, in the NATS
//! cluster); tradewire builds no consensus of its own.
//!
//! - Each message of the stream is one group commit (`entry`): the
//!   mutations `Draft` made, which every replica performs through the same
//!   `State::apply`. The stream sequence is the log position; report and
//!   announcement sequences are assigned by the draft in log order, so
//!   they are the same on every replica.
//! - One task per replica (`follower`) is the only writer of its state: it
//!   applies the stream in order from an ordered consumer, and commits
//!   this replica's writes: a group drafted at log position S is published
//!   with `Nats-Expected-Last-Sequence: S`, so it lands only on the history
//!   it was checked against; on a mismatch the replica applies what it
//!   missed and drafts again. A write answers OK once JetStream has
//!   acknowledged it and this replica has applied it.
//! - Snapshots live in a second stream (`snapshots`): a new replica loads
//!   the latest and replays the log after it, and the log below the
//!   snapshot before it is purged.

mod entry;
mod follower;
mod log_reader;
mod snapshots;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType, Stream};
use tokio::sync::mpsc;

use super::group::Job;
use super::journal::OpenError;
use super::state::State;
use super::{Shared, StoreConfig};
use follower::Follower;

/// Where the replicated log lives, and how it is kept.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// NATS servers (`nats://host:port`); any one of a cluster will do,
    /// the client learns the others.
    pub urls: Vec<String>,
    /// The stream that is the log; snapshots go to `{stream}_SNAPSHOTS`.
    pub stream: String,
    /// Copies of each stream in the NATS cluster, when this replica creates
    /// them (1 for a single server, 3 for a cluster of three).
    pub replicas: usize,
    /// How long a JetStream request or a publish acknowledgement may take;
    /// a write that waits longer answers `UNAVAILABLE`.
    pub request_timeout: Duration,
    /// Take a snapshot after this many log messages since the last one
    /// (any replica may take it); 0 never does.
    pub snapshot_every: u64,
}

impl JetStreamConfig {
    /// The defaults, on `urls`.
    pub fn new(urls: Vec<String>) -> Self {
        JetStreamConfig {
            urls,
            stream: "TRADEWIRE_LOG".into(),
            replicas: 1,
            request_timeout: Duration::from_secs(5),
            snapshot_every: 10_000,
        }
    }

    fn subject(&self) -> String {
        format!("tradewire.{}", self.stream.to_lowercase())
    }
}

/// Where this replica started: what it loaded and how far the log went.
#[derive(Debug, Clone, Copy)]
pub(super) struct Started {
    /// The log position of the snapshot loaded, if any.
    pub(super) snapshot: Option<u64>,
    /// The stream's last sequence when this replica started: it is ready
    /// once it has applied that far.
    pub(super) target: u64,
}

/// Connects to NATS, opens (or creates) the streams, loads the latest
/// snapshot and starts the follower; the state then catches up with the
/// log in the background (`Store::ready`).
pub(super) async fn open(
    config: &StoreConfig,
    replica: &JetStreamConfig,
) -> Result<
    (
        Arc<Shared>,
        mpsc::UnboundedSender<Job>,
        tokio::task::JoinHandle<()>,
        Started,
    ),
    OpenError,
> {
    let nats = connect(replica).await?;
    let mut context = jetstream::new(nats.clone());
    context.set_timeout(replica.request_timeout);
    // A NATS cluster started at the same time elects its JetStream leaders
    // first (the meta leader, then each stream's): keep trying a while.
    let deadline = tokio::time::Instant::now() + OPEN_PATIENCE;
    let (log, snapshots, loaded, target) = loop {
        match prepare(&context, replica).await {
            Ok(prepared) => break prepared,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "the JetStream log is not ready yet; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    };
    let (state, position) = match loaded {
        Some((position, snapshot)) => (State::restore(snapshot, config), position),
        None => (State::new(config), 0),
    };
    let started = Started {
        snapshot: (position > 0).then_some(position),
        target,
    };
    let shared = Shared::new(state, config);
    shared.ready.send_replace(position >= target);
    let (queue, jobs) = mpsc::unbounded_channel();
    let follower = Follower::new(
        Arc::clone(&shared),
        nats,
        context,
        log,
        snapshots,
        replica,
        position,
        target,
    );
    let task = tokio::spawn(follower.run(jobs));
    Ok((shared, queue, task, started))
}

async fn connect(replica: &JetStreamConfig) -> Result<async_nats::Client, OpenError> {
    let addrs = replica
        .urls
        .iter()
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| OpenError::Replica(format!("--nats-url {url}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(OpenError::Replica("no --nats-url given".into()));
    }
    async_nats::ConnectOptions::new()
        .name("tradewire")
        .connection_timeout(replica.request_timeout)
        .max_reconnects(None)
        // Back soon after an outage: at most 1 s between attempts.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(50 * 2u64.pow(attempts.min(5) as u32)).min(Duration::from_secs(1))
        })
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; writes are refused until it is back")
                }
                other => tracing::info!(event = %other, "NATS"),
            }
        })
        .connect(addrs)
        .await
        .map_err(|e| OpenError::Replica(format!("connecting to {:?}: {e}", replica.urls)))
}

/// How long a replica keeps trying to open its log at start.
const OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// The log stream, the snapshot stream, the newest snapshot and the log's
/// last sequence, as a replica finds them at start.
async fn prepare(
    context: &jetstream::Context,
    replica: &JetStreamConfig,
) -> Result<
    (
        Stream,
        snapshots::Snapshots,
        Option<(u64, super::state::Snapshot)>,
        u64,
    ),
    OpenError,
> {
    let log = open_stream(
        context,
        StreamConfig {
            name: replica.stream.clone(),
            subjects: vec![replica.subject()],
            num_replicas: replica.replicas,
            storage: StorageType::File,
            ..Default::default()
        },
    )
    .await?;
    let snapshots = snapshots::Snapshots::open(context, replica).await?;
    let loaded = snapshots.load_latest().await?;
    let target = log
        .get_info()
        .await
        .map_err(|e| OpenError::Replica(format!("reading stream {}: {e}", replica.stream)))?
        .state
        .last_sequence;
    Ok((log, snapshots, loaded, target))
}

/// The stream named in `config`, created if missing (its settings are
/// left alone if it exists).
async fn open_stream(
    context: &jetstream::Context,
    config: StreamConfig,
) -> Result<Stream, OpenError> {
    let name = config.name.clone();
    context
        .get_or_create_stream(config)
        .await
        .map_err(|e| OpenError::Replica(format!("opening stream {name}: {e}")))
}
