//! The binary's log writer: a line is appended to a buffer in memory by
//! the thread that logs it, and a thread of its own writes the buffer out
//! in batches.
//!
//! Why not a line per write, or a channel per line (`tracing-appender`):
//! every call logs a line, so a write per line is a syscall on the call
//! path, and a channel whose reader sleeps between lines wakes (or spins)
//! that reader once per line. Both cost more than the rest of a Get at one
//! call in flight (BENCHMARKS.md, `clients`). Here the logging thread only
//! copies the line under a lock; the writer thread wakes every
//! [`FLUSH_INTERVAL`], or sooner once [`WAKE_AT`] bytes wait.
//!
//! A log that cannot be written out (a stuck pipe) must not stop the
//! server: past [`MAX_BUFFERED`] bytes, lines are dropped whole and
//! counted, and the count is written as a line of its own once the output
//! moves again. Dropping the [`Guard`] writes out everything buffered.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line waits, at most, before it is written out (unless the
/// output itself is slow).
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Buffered bytes at which the writer thread is woken before its interval.
pub(crate) const WAKE_AT: usize = 256 * 1024;

/// Buffered bytes past which lines are dropped.
pub(crate) const MAX_BUFFERED: usize = 16 * 1024 * 1024;

/// What the logging threads and the writer thread share.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped since the last write-out.
    dropped: u64,
    /// The guard was dropped: write out what is left and stop.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    max_buffered: usize,
    /// The writer thread, woken early once `WAKE_AT` bytes wait.
    writer: Thread,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked while copying a line leaves whole bytes
        // behind at worst: the buffer is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands the fmt layer a writer per event; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes out what is buffered and stops the writer thread when dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer whose lines go to `out`, and the guard that flushes it.
pub(crate) fn log_writer<W: Write + Send + 'static>(out: W) -> io::Result<(LogWriter, Guard)> {
    with_limit(out, MAX_BUFFERED)
}

fn with_limit<W: Write + Send + 'static>(
    out: W,
    max_buffered: usize,
) -> io::Result<(LogWriter, Guard)> {
    // The thread needs the shared state and the state names the thread:
    // the thread waits for its state on a channel.
    let (give, take) = std::sync::mpsc::sync_channel::<Arc<Shared>>(1);
    let thread = thread::Builder::new()
        .name("tradewire-log".into())
        .spawn(move || {
            if let Ok(shared) = take.recv() {
                write_out(&shared, out);
            }
        })?;
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        max_buffered,
        writer: thread.thread().clone(),
    });
    // The thread holds the receiver until it gets this: it cannot fail.
    let _ = give.send(Arc::clone(&shared));
    Ok((
        LogWriter {
            shared: Arc::clone(&shared),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: every interval (or when woken), takes what is
/// buffered and writes it out, until the guard is dropped.
fn write_out<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let (dropped, closed) = {
            let mut pending = shared.lock();
            // Swapped, not copied: the buffers' capacity is kept for reuse.
            std::mem::swap(&mut pending.bytes, &mut batch);
            (std::mem::take(&mut pending.dropped), pending.closed)
        };
        if dropped > 0 {
            let _ = writeln!(
                out,
                "tradewire: {dropped} log lines dropped: the log's output did not keep up"
            );
        }
        if !batch.is_empty() {
            // An output that fails loses this batch, not the server.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
        }
        if closed {
            return;
        }
        thread::park_timeout(FLUSH_INTERVAL);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// One event's writer: the fmt layer writes each line with one
/// `write_all`, so a line is dropped whole or kept whole.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    shared: &'a Shared,
}

impl Write for Line<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let wake = {
            let mut pending = self.shared.lock();
            let before = pending.bytes.len();
            if before + line.len() > self.shared.max_buffered {
                pending.dropped += 1;
                false
            } else {
                pending.bytes.extend_from_slice(line);
                before < WAKE_AT && before + line.len() >= WAKE_AT
            }
        };
        if wake {
            self.shared.writer.unpark();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests;
