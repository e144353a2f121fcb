//! Security events, logged at WARN with the peer's address: refused
//! connections, handshakes that fail or time out, limits hit, failed
//! authentication. A flood must not become a log flood, so each kind of
//! event logs at most `LINES_PER_SECOND` lines a second; the rest are
//! counted and the count rides on the next line that is logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const LINES_PER_SECOND: u32 = 5;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    started: Instant,
    lines: u32,
    suppressed: u64,
}

/// A handle to the rate-limited security log; clones share the limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecurityLog {
    windows: Arc<Mutex<HashMap<&'static str, Window>>>,
}

impl SecurityLog {
    /// Logs one event of `kind`, unless this second's lines for the kind
    /// are spent; returns whether it was logged.
    pub(crate) fn event(&self, kind: &'static str, peer: Option<SocketAddr>, detail: &str) -> bool {
        metrics::counter!("tradewire_refused_total", "limit" => kind).increment(1);
        let now = Instant::now();
        let suppressed = {
            let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            let window = windows.entry(kind).or_insert(Window {
                started: now,
                lines: 0,
                suppressed: 0,
            });
            if now.duration_since(window.started) >= WINDOW {
                window.started = now;
                window.lines = 0;
            }
            if window.lines >= LINES_PER_SECOND {
                window.suppressed += 1;
                return false;
            }
            window.lines += 1;
            std::mem::take(&mut window.suppressed)
        };
        match peer {
            Some(peer) => tracing::warn!(event = kind, %peer, suppressed, "{detail}"),
            None => tracing::warn!(event = kind, suppressed, "{detail}"),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_logs_a_few_lines_a_second_and_counts_the_rest() {
        let log = SecurityLog::default();
        let logged = (0..100)
            .filter(|_| log.event("connection_refused", None, "full"))
            .count();
        assert_eq!(logged, LINES_PER_SECOND as usize);
        assert!(
            log.event("handshake_timeout", None, "slow"),
            "another kind has its own budget"
        );
        let windows = log.windows.lock().unwrap();
        assert_eq!(windows["connection_refused"].suppressed, 95);
    }
}
