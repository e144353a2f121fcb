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
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::StoreConfig;
use super::state::{Mutation, Snapshot, State};

const HEADER_LEN: usize = 20;
const SNAPSHOT_MAGIC: &[u8; 8] = b"TWSNAP01";
const SNAPSHOT_HEADER_LEN: usize = 8 + 8 + 8 + 4;
/// Entries larger than this are treated as damage, not allocated.
const MAX_ENTRY_LEN: u32 = 256 * 1024 * 1024;

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

/// Where and how the store keeps its data.
#[derive(Debug, Clone)]
pub struct DurableConfig {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// Cut the log at damaged entries instead of refusing to start.
    pub repair: bool,
    /// Write a snapshot and start a new segment past this many log bytes.
    pub segment_bytes: u64,
    /// Test hook: fail any write that would take the log past this many
    /// bytes in total, as a full disk would.
    #[doc(hidden)]
    pub fail_writes_after: Option<u64>,
    /// Test hook: runs on the committer thread before every fsync of the
    /// log; an error it returns counts as a failed fsync.
    #[doc(hidden)]
    pub sync_hook: Option<SyncHook>,
    /// Test hook: runs on the snapshot thread before it writes; an error
    /// it returns fails the snapshot.
    #[doc(hidden)]
    pub snapshot_hook: Option<SyncHook>,
}

/// A fault-injection hook (tests only) around an fsync or a snapshot: it
/// can hold it up or make it fail.
#[doc(hidden)]
#[derive(Clone)]
pub struct SyncHook(pub std::sync::Arc<dyn Fn() -> io::Result<()> + Send + Sync>);

impl std::fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHook")
    }
}

impl DurableConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DurableConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            repair: false,
            segment_bytes: 64 * 1024 * 1024,
            fail_writes_after: None,
            sync_hook: None,
            snapshot_hook: None,
        }
    }
}

/// Why a data directory cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data directory {dir} is in use by another tradewire process (lock file {lock})")]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error(
        "{file}: damaged log entry at offset {offset}: {reason}; start with --repair to keep the intact prefix (a copy of the file is kept)"
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
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

fn header(payload: &[u8], lsn: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..12].copy_from_slice(&lsn.to_le_bytes());
    h[12..16].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&h[0..16]);
    h[16..20].copy_from_slice(&header_crc.to_le_bytes());
    h
}

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub snapshot_lsn: Option<u64>,
    pub replayed: u64,
    /// Bytes cut from a torn tail.
    pub torn_bytes: u64,
    /// Files moved aside by repair.
    pub repaired: Vec<PathBuf>,
}

enum Scan {
    /// The segment is intact up to its end.
    Clean,
    /// Damage at `offset`; `torn` when it is an unfinished last write.
    Damaged {
        offset: u64,
        torn: bool,
        reason: String,
    },
}

/// Reads a segment's entries, calling `entry` for each intact one.
fn scan_segment(
    bytes: &[u8],
    expect_lsn: &mut u64,
    last_segment: bool,
    mut entry: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Scan {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let damaged = |torn: bool, reason: String| Scan::Damaged {
            offset: offset as u64,
            torn,
            reason,
        };
        if rest.len() < HEADER_LEN {
            return damaged(
                last_segment,
                format!("{} bytes of a {HEADER_LEN}-byte header", rest.len()),
            );
        }
        let h = &rest[..HEADER_LEN];
        let header_crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        if crc32c::crc32c(&h[0..16]) != header_crc {
            let zero_tail = rest.iter().all(|b| *b == 0);
            return damaged(last_segment && zero_tail, "header checksum mismatch".into());
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let lsn = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
        let payload_crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        if len > MAX_ENTRY_LEN {
            return damaged(false, format!("entry length {len} is implausible"));
        }
        let end = HEADER_LEN + len as usize;
        if rest.len() < end {
            return damaged(
                last_segment,
                format!(
                    "entry of {len} bytes cut short at {}",
                    rest.len() - HEADER_LEN
                ),
            );
        }
        let payload = &rest[HEADER_LEN..end];
        if crc32c::crc32c(payload) != payload_crc {
            let ends_file = rest.len() == end;
            return damaged(
                last_segment && ends_file,
                "payload checksum mismatch".into(),
            );
        }
        if lsn != *expect_lsn {
            return damaged(
                false,
                format!("entry number {lsn} where {} was expected", *expect_lsn),
            );
        }
        if let Err(reason) = entry(lsn, payload) {
            return damaged(false, reason);
        }
        *expect_lsn += 1;
        offset += end;
    }
    Scan::Clean
}

/// Where repair keeps a damaged file: `<name>.damaged-<unix seconds>`.
fn aside_path(path: &Path) -> PathBuf {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    path.with_extension(format!("damaged-{stamp}"))
}

/// Copies a damaged file aside before repair cuts it.
fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let aside = aside_path(path);
    fs::copy(path, &aside)?;
    Ok(aside)
}

fn read_snapshot(path: &Path, lsn: u64) -> Result<Snapshot, OpenError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    let corrupt = |reason: &str| OpenError::Corrupt {
        file: path.to_owned(),
        offset: 0,
        reason: reason.to_owned(),
    };
    if bytes.len() < SNAPSHOT_HEADER_LEN || &bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(corrupt("not a tradewire snapshot"));
    }
    let stored_lsn = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| corrupt("header"))?);
    let len = u64::from_le_bytes(bytes[16..24].try_into().map_err(|_| corrupt("header"))?);
    let crc = u32::from_le_bytes(bytes[24..28].try_into().map_err(|_| corrupt("header"))?);
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    if stored_lsn != lsn || body.len() as u64 != len || crc32c::crc32c(body) != crc {
        return Err(corrupt("snapshot checksum or length mismatch"));
    }
    postcard::from_bytes(body).map_err(|e| corrupt(&format!("snapshot does not decode: {e}")))
}

/// An open data directory: the lock, the segment being written, and the
/// next lsn.
#[derive(Debug)]
pub struct Journal {
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
    pub fn open(
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
    pub fn append(&mut self, mutation: &Mutation) -> io::Result<()> {
        let payload = postcard::to_stdvec(mutation).map_err(io::Error::other)?;
        self.pending
            .extend_from_slice(&header(&payload, self.next_lsn));
        self.pending.extend_from_slice(&payload);
        self.next_lsn += 1;
        Ok(())
    }

    /// The lsn to return to if the queued entries are dropped.
    pub fn mark(&self) -> u64 {
        self.next_lsn
    }

    /// Drops the entries queued since `mark` without writing them.
    pub fn discard(&mut self, mark: u64) {
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
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Writes the entries queued since `mark` and syncs them as the policy
    /// says.
    ///
    /// A failed write is cut back off the file, so nothing of the batch
    /// stays and later batches may try again; if it cannot be cut back, or
    /// the fsync fails, the journal is broken and refuses every later
    /// commit and sync. A batch whose fsync failed is cut off too.
    pub fn commit(&mut self, mark: u64) -> io::Result<()> {
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
        if let Some(limit) = self.config.fail_writes_after
            && self.total_written + len > limit
        {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (simulated)",
            ));
        }
        self.segment.write_all(&self.pending)?;
        self.segment_len += len;
        self.total_written += len;
        self.pending.clear();
        Ok(())
    }

    /// fsyncs the segment, once: a failure breaks the journal for good.
    fn sync(&mut self) -> io::Result<()> {
        self.refuse_if_broken()?;
        let synced = match &self.config.sync_hook {
            Some(hook) => (hook.0)(),
            None => Ok(()),
        }
        .and_then(|()| self.segment.sync_data());
        if let Err(error) = synced {
            self.broken = Some(format!("fsync of the log failed: {error}"));
            return Err(error);
        }
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }

    /// For the interval policy: how long until the next sync is due.
    pub fn sync_due_in(&self) -> Option<Duration> {
        match self.config.fsync {
            FsyncPolicy::Interval(every) if self.unsynced && self.broken.is_none() => {
                Some(every.saturating_sub(self.last_sync.elapsed()))
            }
            _ => None,
        }
    }

    /// Syncs whatever is written but not yet synced (at a clean stop).
    pub fn sync_pending(&mut self) -> io::Result<()> {
        if self.unsynced && self.broken.is_none() {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Syncs if the interval policy's time has come.
    pub fn sync_if_due(&mut self) -> io::Result<()> {
        match self.sync_due_in() {
            Some(wait) if wait.is_zero() => self.sync(),
            _ => Ok(()),
        }
    }

    /// Whether the segment is big enough for a snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.broken.is_none()
            && self.snapshotting.is_none()
            && self.segment_len >= self.config.segment_bytes
    }

    /// Starts a snapshot of `view`, the state before entry `next_lsn`,
    /// taken by the caller at a group boundary. Here, on the committer: the
    /// current segment is synced (so that only the last segment can ever
    /// have a torn tail) and a new one started at `next_lsn`. On another
    /// thread: the snapshot is written and made durable, and only then are
    /// the segments and snapshots it covers deleted. Writes go on into the
    /// new segment meanwhile; one snapshot runs at a time.
    pub fn start_snapshot(&mut self, view: Snapshot) -> io::Result<()> {
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
        let hook = self.config.snapshot_hook.clone();
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
    pub fn reap_snapshot(&mut self, wait: bool) {
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

/// Writes the snapshot of the state before entry `lsn` (temp file, fsync,
/// rename, fsync of the directory), then deletes the segments and
/// snapshots it makes redundant. Runs on the snapshot thread, with no lock.
fn write_snapshot(dir: &Path, lsn: u64, view: &Snapshot) -> io::Result<()> {
    let started = Instant::now();
    let body = postcard::to_stdvec(view).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{}.tmp", snapshot_name(lsn)));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(SNAPSHOT_MAGIC)?;
        file.write_all(&lsn.to_le_bytes())?;
        file.write_all(&(body.len() as u64).to_le_bytes())?;
        file.write_all(&crc32c::crc32c(&body).to_le_bytes())?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(snapshot_name(lsn)))?;
    sync_dir(dir)?;
    let stale = |n: u64| n < lsn;
    for (n, path) in numbered(dir, "wal-", ".log").map_err(io::Error::other)? {
        if stale(n) {
            fs::remove_file(path)?;
        }
    }
    for (n, path) in numbered(dir, "snapshot-", ".snap").map_err(io::Error::other)? {
        if stale(n) {
            fs::remove_file(path)?;
        }
    }
    sync_dir(dir)?;
    tracing::info!(
        lsn,
        bytes = body.len(),
        millis = started.elapsed().as_millis() as u64,
        "snapshot written; older log segments dropped"
    );
    Ok(())
}

/// Where appending continues after a load.
struct Tail {
    segment: File,
    segment_len: u64,
    next_lsn: u64,
}

/// Rebuilds the state from the newest snapshot and the log after it,
/// cutting a torn tail (and, with repair, damage).
fn load(config: &DurableConfig, store: &StoreConfig) -> Result<(State, Recovery, Tail), OpenError> {
    let dir = config.dir.clone();
    let mut recovery = Recovery::default();
    let snapshots = numbered(&dir, "snapshot-", ".snap")?;
    let (mut state, mut next_lsn) = match snapshots.last() {
        Some((lsn, path)) => {
            recovery.snapshot_lsn = Some(*lsn);
            (State::restore(read_snapshot(path, *lsn)?, store), *lsn)
        }
        None => (State::new(store), 1),
    };
    let snapshot_lsn = next_lsn;

    let segments = numbered(&dir, "wal-", ".log")?;
    let mut expect = segments
        .first()
        .map_or(next_lsn, |(first, _)| *first)
        .min(next_lsn);
    let mut cut_from: Option<usize> = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        if *first != expect {
            let reason = format!("segment starts at entry {first}, expected {expect}");
            if !config.repair {
                return Err(OpenError::Corrupt {
                    file: path.clone(),
                    offset: 0,
                    reason,
                });
            }
            cut_from = Some(i);
            break;
        }
        let bytes = fs::read(path).map_err(io_err(path))?;
        let last = i + 1 == segments.len();
        let scan = scan_segment(&bytes, &mut expect, last, |lsn, payload| {
            if lsn < snapshot_lsn {
                return Ok(());
            }
            let mutation: Mutation =
                postcard::from_bytes(payload).map_err(|e| format!("entry does not decode: {e}"))?;
            state.apply(mutation);
            recovery.replayed += 1;
            Ok(())
        });
        if let Scan::Damaged {
            offset,
            torn,
            reason,
        } = scan
        {
            if torn {
                recovery.torn_bytes = bytes.len() as u64 - offset;
                tracing::warn!(
                    file = %path.display(), offset, dropped_bytes = recovery.torn_bytes, %reason,
                    "truncating a torn tail of the log"
                );
            } else if config.repair {
                recovery
                    .repaired
                    .push(move_aside(path).map_err(io_err(path))?);
                tracing::warn!(
                    file = %path.display(), offset, dropped_bytes = bytes.len() as u64 - offset, %reason,
                    "repair: cutting the log at a damaged entry; a copy of the file is kept"
                );
                cut_from = Some(i + 1);
            } else {
                return Err(OpenError::Corrupt {
                    file: path.clone(),
                    offset,
                    reason,
                });
            }
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            file.set_len(offset).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            if !torn {
                break;
            }
        }
    }
    if let Some(from) = cut_from {
        for (_, path) in &segments[from..] {
            let aside = aside_path(path);
            fs::rename(path, &aside).map_err(io_err(path))?;
            recovery.repaired.push(aside);
        }
    }
    next_lsn = next_lsn.max(expect);

    // Append to the last intact segment, or start one.
    let intact = &segments[..cut_from.unwrap_or(segments.len())];
    let segment_path = match intact.last() {
        Some((_, path)) => path.clone(),
        None => dir.join(segment_name(next_lsn)),
    };
    let segment = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&segment_path)
        .map_err(io_err(&segment_path))?;
    let segment_len = segment.metadata().map_err(io_err(&segment_path))?.len();
    sync_dir(&dir).map_err(io_err(&dir))?;
    let tail = Tail {
        segment,
        segment_len,
        next_lsn,
    };
    Ok((state, recovery, tail))
}
