//! The replica's reader of the log: an ordered JetStream consumer from a
//! position, made again whenever it is lost or stalls (a NATS node gone),
//! so the follower sees every message after the last one it applied.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;

/// How long one pull request of the log waits; heartbeats come at half.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// The log, read in order from an ordered consumer that is made again
/// after `after` whenever it is lost.
pub(super) struct LogReader {
    log: Stream,
    messages: Option<pull::Ordered>,
    /// When the consumer last delivered or was made: quiet for `STALL`
    /// while behind the log's end, it is made again. Kept across calls,
    /// since callers cancel `next` (select, timeouts) sooner than that.
    progress: tokio::time::Instant,
}

/// How long a consumer may stay quiet before the log's end is checked.
const STALL: Duration = Duration::from_secs(3);

/// How long a consumer may stay quiet while catching up to a log end read
/// just before: the messages exist, so a healthy consumer delivers them
/// at once, and one lost with a NATS node must not hold a write for the
/// whole `STALL` (which would outlast the write's own timeout).
pub(super) const CATCH_UP_STALL: Duration = Duration::from_millis(500);

impl LogReader {
    pub(super) fn new(log: Stream) -> Self {
        LogReader {
            log,
            messages: None,
            progress: tokio::time::Instant::now(),
        }
    }

    /// The next message after `after` (or a repeat the caller skips).
    /// Cancel-safe: a message is returned or stays in the consumer.
    pub(super) async fn next(&mut self, after: u64) -> jetstream::Message {
        self.next_within(after, STALL).await
    }

    /// `next`, checking the log's end once the consumer has been quiet for
    /// `quiet` (at most `STALL` since its last delivery).
    pub(super) async fn next_within(&mut self, after: u64, quiet: Duration) -> jetstream::Message {
        loop {
            let Some(messages) = &mut self.messages else {
                let config = pull::OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    // Pull requests of 2 s with a heartbeat each second.
                    max_expires: PULL_EXPIRES,
                    ..Default::default()
                };
                let made = match self.log.create_consumer(config).await {
                    Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                match made {
                    Ok(messages) => {
                        self.messages = Some(messages);
                        self.progress = tokio::time::Instant::now();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot follow the log; trying again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                continue;
            };
            let checked_at = (self.progress + STALL).min(tokio::time::Instant::now() + quiet);
            match tokio::time::timeout_at(checked_at, messages.next()).await {
                Ok(Some(Ok(message))) => {
                    self.progress = tokio::time::Instant::now();
                    return message;
                }
                Ok(Some(Err(error))) => tracing::warn!(%error, "following the log"),
                Ok(None) => self.messages = None,
                // Quiet: either nothing was written, or the consumer was
                // lost with a NATS node and async-nats has not noticed yet
                // (it waits for missed heartbeats, then backs off). Behind
                // the log's end, make it again.
                Err(_) => {
                    self.progress = tokio::time::Instant::now();
                    match self.log.get_info().await {
                        Ok(info) if info.state.last_sequence <= after => {}
                        Ok(_) => {
                            tracing::info!(after, "the log consumer stalled; making it again");
                            self.messages = None;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot read the log's end; making the consumer again");
                            self.messages = None;
                        }
                    }
                }
            }
        }
    }
}
