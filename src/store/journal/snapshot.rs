//! Snapshot files: `TWSNAP01`, lsn (u64), length (u64), CRC32C (u32), then
//! the postcard-encoded `Snapshot`, written atomically (temp file, fsync,
//! rename, fsync of the directory) on the snapshot thread.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use super::{OpenError, io_err, numbered, snapshot_name, sync_dir};
use crate::store::state::Snapshot;

const SNAPSHOT_MAGIC: &[u8; 8] = b"TWSNAP01";
const SNAPSHOT_HEADER_LEN: usize = 8 + 8 + 8 + 4;

/// Reads the snapshot at `path`, which must be of the state before `lsn`.
pub(super) fn read_snapshot(path: &Path, lsn: u64) -> Result<Snapshot, OpenError> {
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
    Snapshot::decode(body).map_err(|e| corrupt(&format!("snapshot does not decode: {e}")))
}

/// Writes the snapshot of the state before entry `lsn` (temp file, fsync,
/// rename, fsync of the directory), then deletes the segments and
/// snapshots it makes redundant. Runs on the snapshot thread, with no lock.
pub(super) fn write_snapshot(dir: &Path, lsn: u64, view: &Snapshot) -> io::Result<()> {
    let started = Instant::now();
    let body = view.encode().map_err(io::Error::other)?;
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
    metrics::histogram!("tradewire_snapshot_seconds").record(started.elapsed().as_secs_f64());
    tracing::info!(
        lsn,
        bytes = body.len(),
        millis = started.elapsed().as_millis() as u64,
        "snapshot written; older log segments dropped"
    );
    Ok(())
}
