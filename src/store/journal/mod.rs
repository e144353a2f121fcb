//! The on-disk form of the store: a write-ahead log of mutations in
//! segments, and snapshots that let old segments go.
//!
//! Layout of a data directory:
//! - `LOCK`: held with an exclusive file lock while a server uses the dir;
//! - `wal-<first lsn>.log`: segments of log entries, numbered by log
//!   sequence number (lsn) from 1;
//! - `snapshot-<lsn>.snap`: the whole state before entry `<lsn>`.
//!
//! A log entry is a 20-byte header — payload length (u32), lsn (u64),
//! CRC32C of the payload (u32), CRC32C of the preceding 16 header bytes
//! (u32), all little-endian — then the payload: a postcard-encoded
//! `Mutation`. A snapshot is `TWSNAP01`, lsn (u64), length (u64), CRC32C
//! (u32), then the postcard-encoded `Snapshot`. Snapshots are written to a
//! temporary file, fsynced, renamed and the directory fsynced, so a crash
//! leaves either the old or the new one.
//!
//! Recovery loads the newest snapshot and replays the entries after it. A
//! torn tail (the last entry of the last segment incomplete, or failing its
//! checksum where it ends the file) is truncated with a warning. Damage
//! anywhere else stops the start with the file and offset, unless repair
//! was asked for: then the damaged file is copied aside and cut at the bad
//! entry, and later segments are moved aside.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod faults;
mod recovery;
mod scan;
mod snapshot;

use super::StoreConfig;
use super::state::{Mutation, Snapshot, State};
#[cfg(not(feature = "testing"))]
use faults::Faults;
#[cfg(feature = "testing")]
pub use faults::{Faults, SyncHook};
pub use recovery::Recovery;
use recovery::load;
use scan::header;
use snapshot::write_snapshot;

/// When the log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before every acknowledgement (group commit shares one fsync among
    /// the writes that arrive together).
    Always,
    /// At most this long after a write; a power loss may lose that window,
    /// a process crash loses nothing.
    Interval(Duration),
    /// Never; the OS decides. A process crash loses nothing.
    Never,
}

impl FsyncPolicy {
    /// The longest a write waits for its fsync under `Interval`, unless
    /// told otherwise.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
}

/// Where and how the store keeps its data.
#[derive(Debug, Clone)]
pub struct DurableConfig {
    /// The data directory: log segments, snapshots and the lock file.
    pub dir: PathBuf,
    /// When appended log entries are synced to disk.
    pub fsync: FsyncPolicy,
    /// Cut the log at damaged entries instead of refusing to start.
    pub repair: bool,
    /// Write a snapshot and start a new segment past this many log bytes.
    pub snapshot_after_bytes: u64,
    /// Faults to inject, for tests: none unless set with `with_faults`
    /// (feature `testing`).
    faults: Faults,
}

impl DurableConfig {
    /// The data directory a server uses unless told otherwise.
    pub const DEFAULT_DIR: &str = "./tradewire-data";

    /// Defaults for a store kept in `dir`: fsync on every group, no repair,
    /// a snapshot every 64 MiB of log.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DurableConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            repair: false,
            snapshot_after_bytes: 64 * 1024 * 1024,
            faults: Faults::default(),
        }
    }

    /// This configuration with `faults` injected into its log.
    #[cfg(feature = "testing")]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// Why a data directory cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process holds the directory's lock.
    #[error("data directory {dir} is in use by another tradewire process (lock file {lock})")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// A log entry before the tail is damaged; opening with
    /// `DurableConfig::repair` keeps the intact prefix.
    #[error("{file}: damaged log entry at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The `jetstream` backend could not reach NATS, or could not open or
    /// read its streams.
    #[error("jetstream backend: {0}")]
    Replica(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn segment_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

fn snapshot_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}.snap")
}

/// Files named `<prefix><number><suffix>` in `dir`, sorted by number.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An open data directory: the lock, the segment being written, and the
/// next lsn.
#[derive(Debug)]
pub(super) struct Journal {
    config: DurableConfig,
    _lock: File,
    segment: File,
    segment_len: u64,
    /// Entries appended but not yet written to the file.
    pending: Vec<u8>,
    next_lsn: u64,
    total_written: u64,
    last_sync: Instant,
    unsynced: bool,
    /// Why the log can no longer be trusted, once it cannot. A failed
    /// fsync is never retried: after one, the kernel may have dropped the
    /// dirty pages and a later fsync can succeed without them
    /// (PostgreSQL's "fsyncgate"). Only a restart, reading back what the
    /// disk really holds, recovers.
    broken: Option<String>,
    /// The snapshot being written, if one is.
    snapshotting: Option<JoinHandle<io::Result<()>>>,
}

impl Journal {
    /// Locks `config.dir`, rebuilds the state from it, and opens the log for
    /// appending.
    pub(super) fn open(
        config: DurableConfig,
        store: &StoreConfig,
    ) -> Result<(Journal, State, Recovery), OpenError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked {
                dir,
                lock: lock_path,
            });
        }

        let (state, recovery, tail) = load(&config, store)?;
        let journal = Journal {
            config,
            _lock: lock,
            segment: tail.segment,
            segment_len: tail.segment_len,
            pending: Vec::new(),
            next_lsn: tail.next_lsn,
            total_written: 0,
            last_sync: Instant::now(),
            unsynced: false,
            broken: None,
            snapshotting: None,
        };
        Ok((journal, state, recovery))
    }

    /// Queues a mutation as the next entry; nothing reaches the file until
    /// `commit`.
    pub(super) fn append(&mut self, mutation: &Mutation) -> io::Result<()> {
        let payload = postcard::to_stdvec(mutation).map_err(io::Error::other)?;
        self.pending
            .extend_from_slice(&header(&payload, self.next_lsn));
        self.pending.extend_from_slice(&payload);
        self.next_lsn += 1;
        Ok(())
    }

    /// The lsn to return to if the queued entries are dropped.
    pub(super) fn mark(&self) -> u64 {
        self.next_lsn
    }

    /// Drops the entries queued since `mark` without writing them.
    pub(super) fn discard(&mut self, mark: u64) {
        self.next_lsn = mark;
        self.pending.clear();
    }

    /// The error every commit and sync gets once the journal is broken.
    fn refuse_if_broken(&self) -> io::Result<()> {
        match &self.broken {
            Some(reason) => Err(io::Error::other(format!("the log is fenced: {reason}"))),
            None => Ok(()),
        }
    }

    /// Why the log is fenced, if it is: see `broken`.
    pub(super) fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Writes the entries queued since `mark` and syncs them as the policy
    /// says.
    ///
    /// A failed write is cut back off the file, so nothing of the batch
    /// stays and later batches may try again; if it cannot be cut back, or
    /// the fsync fails, the journal is broken and refuses every later
    /// commit and sync. A batch whose fsync failed is cut off too.
    pub(super) fn commit(&mut self, mark: u64) -> io::Result<()> {
        if let Err(fenced) = self.refuse_if_broken() {
            self.discard(mark);
            return Err(fenced);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let group_start = self.segment_len;
        let written = self.write_pending();
        if let Err(error) = written {
            self.discard(mark);
            if let Err(cut) = self.segment.set_len(self.segment_len) {
                self.broken = Some(format!(
                    "a failed write ({error}) could not be cut back: {cut}"
                ));
            }
            return Err(error);
        }
        match self.config.fsync {
            FsyncPolicy::Always => {
                let synced = self.sync();
                if synced.is_err() {
                    // The writes are refused, so they must not come back
                    // after a restart either: cut them off (best effort; if
                    // the cut fails too, their outcome is unknown, as with
                    // any lost connection, and a retry with the same
                    // request_id is still safe).
                    if self.segment.set_len(group_start).is_ok() {
                        self.segment_len = group_start;
                    }
                }
                synced
            }
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => {
                self.unsynced = true;
                Ok(())
            }
        }
    }

    fn write_pending(&mut self) -> io::Result<()> {
        let len = self.pending.len() as u64;
        if let Some(limit) = self.config.faults.fail_writes_after
            && self.total_written + len > limit
        {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (simulated)",
            ));
        }
        self.segment.write_all(&self.pending)?;
        metrics::counter!("tradewire_log_bytes_total").increment(len);
        self.segment_len += len;
        self.total_written += len;
        self.pending.clear();
        Ok(())
    }

    /// fsyncs the segment, once: a failure breaks the journal for good.
    fn sync(&mut self) -> io::Result<()> {
        self.refuse_if_broken()?;
        let started = Instant::now();
        let synced = match &self.config.faults.sync_hook {
            Some(hook) => (hook.0)(),
            None => Ok(()),
        }
        .and_then(|()| self.segment.sync_data());
        if let Err(error) = synced {
            self.broken = Some(format!("fsync of the log failed: {error}"));
            return Err(error);
        }
        metrics::histogram!("tradewire_fsync_seconds").record(started.elapsed().as_secs_f64());
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }

    /// For the interval policy: how long until the next sync is due.
    pub(super) fn sync_due_in(&self) -> Option<Duration> {
        match self.config.fsync {
            FsyncPolicy::Interval(every) if self.unsynced && self.broken.is_none() => {
                Some(every.saturating_sub(self.last_sync.elapsed()))
            }
            _ => None,
        }
    }

    /// Syncs whatever is written but not yet synced (at a clean stop).
    pub(super) fn sync_pending(&mut self) -> io::Result<()> {
        if self.unsynced && self.broken.is_none() {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Syncs if the interval policy's time has come.
    pub(super) fn sync_if_due(&mut self) -> io::Result<()> {
        match self.sync_due_in() {
            Some(wait) if wait.is_zero() => self.sync(),
            _ => Ok(()),
        }
    }

    /// Whether the segment is big enough for a snapshot.
    pub(super) fn wants_snapshot(&self) -> bool {
        self.broken.is_none()
            && self.snapshotting.is_none()
            && self.segment_len >= self.config.snapshot_after_bytes
    }

    /// Starts a snapshot of `view`, the state before entry `next_lsn`,
    /// taken by the caller at a group boundary. Here, on the committer: the
    /// current segment is synced (so that only the last segment can ever
    /// have a torn tail) and a new one started at `next_lsn`. On another
    /// thread: the snapshot is written and made durable, and only then are
    /// the segments and snapshots it covers deleted. Writes go on into the
    /// new segment meanwhile; one snapshot runs at a time.
    pub(super) fn start_snapshot(&mut self, view: Snapshot) -> io::Result<()> {
        let lsn = self.next_lsn;
        let dir = self.config.dir.clone();
        self.sync()?;
        let new_path = dir.join(segment_name(lsn));
        let new_segment = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&new_path)?;
        sync_dir(&dir)?;
        self.segment = new_segment;
        self.segment_len = 0;
        let hook = self.config.faults.snapshot_hook.clone();
        let thread = std::thread::Builder::new()
            .name("tradewire-snapshot".into())
            .spawn(move || {
                if let Some(hook) = hook {
                    (hook.0)()?;
                }
                write_snapshot(&dir, lsn, &view)
            })?;
        self.snapshotting = Some(thread);
        Ok(())
    }

    /// Collects a finished snapshot thread's result (waiting for it with
    /// `wait`), logging a failure: the log then keeps growing until a later
    /// snapshot succeeds.
    pub(super) fn reap_snapshot(&mut self, wait: bool) {
        let done = self
            .snapshotting
            .as_ref()
            .is_some_and(|thread| wait || thread.is_finished());
        if !done {
            return;
        }
        let result = match self.snapshotting.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the snapshot thread panicked")),
            None => Ok(()),
        };
        if let Err(error) = result {
            tracing::error!(%error, "snapshot failed; the log keeps growing until one succeeds");
        }
    }
}
