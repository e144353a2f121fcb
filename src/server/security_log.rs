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

/// What a security event was; its name labels `tradewire_refused_total`
/// and the log line's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SecurityEvent {
    /// The listener's accept failed for a reason not of one connection.
    AcceptFailed,
    /// The listener's accept failed for want of file descriptors.
    OutOfFileDescriptors,
    /// A connection past `--max-connections`, closed at once.
    ConnectionRefused,
    /// A TLS or HTTP/2 handshake that failed.
    HandshakeFailed,
    /// A handshake not done within `--handshake-timeout`.
    HandshakeTimeout,
    /// A request whose body did not arrive within its time.
    RequestTimeout,
    /// A request body over the limit.
    RequestTooLarge,
    /// A call without a valid token, or with one lacking the method's scope.
    AuthRefused,
    /// A call past the in-flight limit.
    Overloaded,
}

impl SecurityEvent {
    /// Every kind, for registering their series at zero.
    pub(crate) const ALL: [SecurityEvent; 9] = [
        SecurityEvent::AcceptFailed,
        SecurityEvent::OutOfFileDescriptors,
        SecurityEvent::ConnectionRefused,
        SecurityEvent::HandshakeFailed,
        SecurityEvent::HandshakeTimeout,
        SecurityEvent::RequestTimeout,
        SecurityEvent::RequestTooLarge,
        SecurityEvent::AuthRefused,
        SecurityEvent::Overloaded,
    ];

    /// The name in metrics and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SecurityEvent::AcceptFailed => "accept_failed",
            SecurityEvent::OutOfFileDescriptors => "out_of_file_descriptors",
            SecurityEvent::ConnectionRefused => "connection_refused",
            SecurityEvent::HandshakeFailed => "handshake_failed",
            SecurityEvent::HandshakeTimeout => "handshake_timeout",
            SecurityEvent::RequestTimeout => "request_timeout",
            SecurityEvent::RequestTooLarge => "request_too_large",
            SecurityEvent::AuthRefused => "auth_refused",
            SecurityEvent::Overloaded => "overloaded",
        }
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    lines: u32,
    suppressed: u64,
}

/// A handle to the rate-limited security log; clones share the limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecurityLog {
    windows: Arc<Mutex<HashMap<SecurityEvent, Window>>>,
}

impl SecurityLog {
    /// Logs one event of `kind`, unless this second's lines for the kind
    /// are spent; returns whether it was logged.
    pub(crate) fn event(
        &self,
        kind: SecurityEvent,
        peer: Option<SocketAddr>,
        detail: &str,
    ) -> bool {
        metrics::counter!("tradewire_refused_total", "limit" => kind.name()).increment(1);
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
            Some(peer) => tracing::warn!(event = kind.name(), %peer, suppressed, "{detail}"),
            None => tracing::warn!(event = kind.name(), suppressed, "{detail}"),
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
            .filter(|_| log.event(SecurityEvent::ConnectionRefused, None, "full"))
            .count();
        assert_eq!(logged, LINES_PER_SECOND as usize);
        assert!(
            log.event(SecurityEvent::HandshakeTimeout, None, "slow"),
            "another kind has its own budget"
        );
        let windows = log.windows.lock().unwrap();
        assert_eq!(windows[&SecurityEvent::ConnectionRefused].suppressed, 95);
    }
}
