//! The log line's timestamp, RFC 3339 in UTC with microseconds, as
//! tracing-subscriber's default writes it (`2024-03-20T12:00:00.123456Z`).
//!
//! Why not tracing-subscriber's own `SystemTime`: every call logs a line,
//! and that timer works the calendar date out of the clock for each one.
//! Here each logging thread keeps the date and time of the last whole
//! second it formatted, so most lines only add their microseconds.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The timer of the binary's log lines.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineTime;

/// A thread's last whole second: seconds since the epoch, and that second
/// written out up to its seconds (`2024-03-20T12:00:00`).
struct Second {
    unix: u64,
    text: String,
}

thread_local! {
    static LAST_SECOND: RefCell<Second> = const {
        RefCell::new(Second { unix: u64::MAX, text: String::new() })
    };
}

impl FormatTime for LineTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write_time(w, since_epoch.as_secs(), since_epoch.subsec_micros())
    }
}

/// Writes the second `unix` and `micros` into it, formatting the date only
/// when the second differs from this thread's last.
fn write_time(w: &mut impl fmt::Write, unix: u64, micros: u32) -> fmt::Result {
    LAST_SECOND.with(|last| {
        let mut last = last.borrow_mut();
        if last.unix != unix {
            last.text.clear();
            let seconds = i64::try_from(unix).unwrap_or(i64::MAX);
            match chrono::DateTime::from_timestamp(seconds, 0) {
                Some(time) => {
                    fmt::Write::write_fmt(
                        &mut last.text,
                        format_args!("{}", time.format("%Y-%m-%dT%H:%M:%S")),
                    )?;
                }
                // Past chrono's calendar: the seconds themselves.
                None => fmt::Write::write_fmt(&mut last.text, format_args!("{unix}"))?,
            }
            last.unix = unix;
        }
        write!(w, "{}.{micros:06}Z", last.text)
    })
}

#[cfg(test)]
mod tests {
    use super::write_time;

    fn written(unix: u64, micros: u32) -> String {
        let mut out = String::new();
        write_time(&mut out, unix, micros).unwrap();
        out
    }

    #[test]
    fn writes_rfc3339_with_micros_and_follows_the_second() {
        // 2025-03-20T00:00:00Z, the forecast's date in the seed.
        assert_eq!(written(1_742_428_800, 7), "2025-03-20T00:00:00.000007Z");
        assert_eq!(
            written(1_742_428_800, 999_999),
            "2025-03-20T00:00:00.999999Z"
        );
        // The next second is not the cached one.
        assert_eq!(written(1_742_428_801, 0), "2025-03-20T00:00:01.000000Z");
        // Nor is an earlier one.
        assert_eq!(written(0, 1), "1970-01-01T00:00:00.000001Z");
    }
}
