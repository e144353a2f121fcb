//! Faults a test injects into the local log: a disk that fills up, an
//! fsync or a snapshot held up or failed. Always present, always empty
//! outside tests: only the `testing` feature can set them
//! (`DurableConfig::with_faults`), so a production build has no way in.

// Public only through the `testing` feature's exports.
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]

use std::io;
use std::sync::Arc;

/// What to break in the log, and when.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail any write that would take the log past this many bytes in
    /// total, as a full disk would.
    pub fail_writes_after: Option<u64>,
    /// Runs on the committer thread before every fsync of the log; an
    /// error it returns counts as a failed fsync.
    pub sync_hook: Option<SyncHook>,
    /// Runs on the snapshot thread before it writes; an error it returns
    /// fails the snapshot.
    pub snapshot_hook: Option<SyncHook>,
}

/// A hook around an fsync or a snapshot: it can hold it up (block) or make
/// it fail (return an error).
#[derive(Clone)]
pub struct SyncHook(pub Arc<dyn Fn() -> io::Result<()> + Send + Sync>);

impl std::fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHook")
    }
}
