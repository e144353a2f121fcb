//! Recovery: the newest snapshot plus the log after it, with torn tails
//! cut and, when asked, damage repaired (the damaged file copied aside and
//! cut, later segments moved aside).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::scan::{Scan, scan_segment};
use super::snapshot::read_snapshot;
use super::{DurableConfig, OpenError, io_err, numbered, segment_name, sync_dir};
use crate::store::StoreConfig;
use crate::store::state::{Mutation, State};

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The log position of the snapshot loaded, if any.
    pub snapshot_lsn: Option<u64>,
    /// Log entries replayed after it.
    pub replayed: u64,
    /// Bytes cut from a torn tail.
    pub torn_bytes: u64,
    /// Files moved aside by repair.
    pub repaired: Vec<PathBuf>,
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

/// Where appending continues after a load.
pub(super) struct Tail {
    pub(super) segment: File,
    pub(super) segment_len: u64,
    pub(super) next_lsn: u64,
}

/// Rebuilds the state from the newest snapshot and the log after it,
/// cutting a torn tail (and, with repair, damage).
pub(super) fn load(
    config: &DurableConfig,
    store: &StoreConfig,
) -> Result<(State, Recovery, Tail), OpenError> {
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
