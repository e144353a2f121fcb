//! The subscription contract: ordered, gap-free, resumable streams over a
//! numbered feed (export reports, announcements), shared by every stream RPC.
//!
//! A subscription is a position in the feed, not a queue:
//! 1. `Feed::register` snapshots the head sequence and subscribes to the
//!    live broadcast under the lock that assigns sequences, so every item
//!    after the head reaches the receiver.
//! 2. Replay reads retained items above the resume point from the store in
//!    chunks, up to the head, then sends `CaughtUp` once.
//! 3. Live delivery takes items from the broadcast receiver and drops those
//!    at or below the position, so the switch neither skips nor repeats.
//! 4. A receiver that lags past the broadcast capacity catches up from the
//!    store the same way and rejoins; it never skips. A resume point that has
//!    fallen off retention ends the stream with `OUT_OF_RANGE`.
//!
//! Publishers never wait for subscribers. A stalled subscriber holds one
//! position, a broadcast receiver and at most one chunk of `Arc`s.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::domain::Sequenced;
use crate::error::{Error, Result};
use crate::store::{Evicted, Feed};

/// How many items replay and catch-up read from the store at a time.
const CHUNK: usize = 256;
/// Bounds of a per-request heartbeat interval.
pub(crate) const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
pub(crate) const MAX_HEARTBEAT: Duration = Duration::from_secs(300);

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartPosition {
    FromNow,
    AfterSequence(u64),
}

/// What a subscription delivers.
#[derive(Debug)]
pub(crate) enum SubscriptionEvent<T> {
    Item(Arc<T>),
    /// Replay is over; carries the sequence delivered up to.
    CaughtUp(u64),
    /// The stream was idle; carries the head sequence.
    Heartbeat(u64),
}

/// Limits and defaults of the subscriptions.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Most open subscriptions at once; more get `RESOURCE_EXHAUSTED`.
    pub max_subscribers: usize,
    /// Idle time before a stream gets a heartbeat, unless the request
    /// sets its own interval.
    pub heartbeat: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_subscribers: 10_000,
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// Admits subscriptions, counts them, and ends them all at shutdown.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    subscribers: watch::Sender<usize>,
    /// How many times a subscription fell behind the broadcast buffer and
    /// caught up from the store.
    catch_ups: AtomicU64,
    config: HubConfig,
    shutdown: CancellationToken,
}

/// Holds one subscriber slot; dropping it frees the slot.
#[derive(Debug)]
struct Slot(Arc<HubInner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.subscribers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Hub {
    /// `shutdown` ends every open subscription with `UNAVAILABLE`.
    pub(crate) fn new(config: HubConfig, shutdown: CancellationToken) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                subscribers: watch::channel(0).0,
                catch_ups: AtomicU64::new(0),
                config,
                shutdown,
            }),
        }
    }

    /// The number of open subscriptions, watchable for changes.
    pub(crate) fn subscriber_count(&self) -> watch::Receiver<usize> {
        self.inner.subscribers.subscribe()
    }

    /// How many times a subscription has lagged and caught up from the
    /// store, since start.
    pub(crate) fn catch_ups(&self) -> u64 {
        self.inner.catch_ups.load(Ordering::Relaxed)
    }

    fn admit(&self) -> Result<Slot> {
        let max = self.inner.config.max_subscribers;
        let admitted = self.inner.subscribers.send_if_modified(|n| {
            if *n < max {
                *n += 1;
                true
            } else {
                false
            }
        });
        if admitted {
            Ok(Slot(Arc::clone(&self.inner)))
        } else {
            Err(Error::ResourceExhausted(format!(
                "the server holds its maximum of {max} subscribers"
            )))
        }
    }

    /// Opens a subscription on `feed` that delivers the items `matches`
    /// accepts. Fails at once, before any event, when the server is shutting
    /// down, full, or the resume point is out of range.
    pub(crate) fn subscribe<F, M>(
        &self,
        feed: F,
        start: StartPosition,
        matches: M,
        heartbeat: Option<Duration>,
    ) -> Result<impl Stream<Item = Result<SubscriptionEvent<F::Item>>> + Send + 'static>
    where
        F: Feed,
        M: Fn(&F::Item) -> bool + Send + Sync + 'static,
    {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Unavailable {
                message: "the server is shutting down".into(),
                resume_after: None,
            });
        }
        let slot = self.admit()?;
        let (head, live) = feed.register();
        let position = match start {
            StartPosition::FromNow => head,
            StartPosition::AfterSequence(after) if after > head => {
                return Err(Error::OutOfRange {
                    message: format!("after_sequence {after} is beyond the latest sequence {head}"),
                    oldest_retained: feed.oldest_retained(),
                });
            }
            StartPosition::AfterSequence(after) => {
                feed.read_after(after, 0)
                    .map_err(|e| out_of_range(after, e))?;
                after
            }
        };
        let heartbeat = heartbeat.unwrap_or(self.inner.config.heartbeat);
        let subscription = Subscription {
            feed,
            matches,
            live,
            position,
            mode: Mode::Replay { until: head },
            pending: VecDeque::new(),
            heartbeat,
            idle_since: Instant::now(),
            heartbeat_timer: Box::pin(tokio::time::sleep(heartbeat)),
            shutdown: self.inner.shutdown.clone(),
            stopping: Box::pin(self.inner.shutdown.clone().cancelled_owned()),
            stop_seen: false,
            done: false,
            slot,
        };
        Ok(futures_util::stream::unfold(
            subscription,
            |mut s| async move { s.next_event().await.map(|event| (event, s)) },
        ))
    }
}

fn out_of_range(after: u64, evicted: Evicted) -> Error {
    Error::OutOfRange {
        message: format!(
            "sequence {after} is older than the retained window; oldest retained sequence is {}",
            evicted.oldest_retained
        ),
        oldest_retained: evicted.oldest_retained,
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Reading retained items up to `until`, then `CaughtUp`.
    Replay {
        until: u64,
    },
    /// Reading missed items up to `until` after a lag, then live again.
    CatchUp {
        until: u64,
    },
    Live,
}

struct Subscription<F: Feed, M> {
    feed: F,
    matches: M,
    live: broadcast::Receiver<Arc<F::Item>>,
    /// Every item up to here has been delivered or filtered out.
    position: u64,
    mode: Mode,
    pending: VecDeque<Arc<F::Item>>,
    heartbeat: Duration,
    idle_since: Instant,
    /// One timer and one cancellation waiter for the subscription's life:
    /// re-creating them per delivery would cost timer-wheel and waiter-list
    /// work on the hottest path. The timer is moved forward lazily, when it
    /// fires early.
    heartbeat_timer: Pin<Box<Sleep>>,
    shutdown: CancellationToken,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Shutdown was seen; the next event is `UNAVAILABLE`.
    stop_seen: bool,
    done: bool,
    slot: Slot,
}

impl<F: Feed, M: Fn(&F::Item) -> bool> Subscription<F, M> {
    async fn next_event(&mut self) -> Option<Result<SubscriptionEvent<F::Item>>> {
        loop {
            if self.done {
                return None;
            }
            if self.stop_seen {
                self.done = true;
                return Some(Err(Error::Unavailable {
                    message: format!(
                        "the server is shutting down; resume after sequence {}",
                        self.position
                    ),
                    resume_after: Some(self.position),
                }));
            }
            if let Some(item) = self.pending.pop_front() {
                let sequence = item.sequence();
                if sequence <= self.position {
                    continue;
                }
                self.position = sequence;
                if (self.matches)(&item) {
                    self.idle_since = Instant::now();
                    return Some(Ok(SubscriptionEvent::Item(item)));
                }
                continue;
            }
            match self.mode {
                Mode::Replay { until } | Mode::CatchUp { until } if self.position >= until => {
                    let replay_ended = matches!(self.mode, Mode::Replay { .. });
                    self.mode = Mode::Live;
                    if replay_ended {
                        self.idle_since = Instant::now();
                        return Some(Ok(SubscriptionEvent::CaughtUp(self.position)));
                    }
                }
                Mode::Replay { until } | Mode::CatchUp { until } => {
                    // Checked per chunk: the token's check takes a lock.
                    if self.shutdown.is_cancelled() {
                        self.stop_seen = true;
                        continue;
                    }
                    match self.feed.read_after(self.position, CHUNK) {
                        // Nothing retained above the position: the rest up to
                        // `until` was deleted.
                        Ok(items) if items.is_empty() => self.position = until,
                        Ok(items) => self.pending.extend(items),
                        Err(evicted) => {
                            self.done = true;
                            return Some(Err(out_of_range(self.position, evicted)));
                        }
                    }
                }
                Mode::Live => {
                    enum Woke<T> {
                        Stopping,
                        Received(Result<T, broadcast::error::RecvError>),
                        Timer,
                    }
                    let woke = tokio::select! {
                        biased;
                        received = self.live.recv() => Woke::Received(received),
                        _ = self.stopping.as_mut() => Woke::Stopping,
                        _ = self.heartbeat_timer.as_mut() => Woke::Timer,
                    };
                    match woke {
                        Woke::Stopping => self.stop_seen = true,
                        Woke::Received(Ok(item)) => self.pending.push_back(item),
                        Woke::Received(Err(broadcast::error::RecvError::Lagged(_))) => {
                            self.catch_up(self.feed.head());
                        }
                        Woke::Received(Err(broadcast::error::RecvError::Closed)) => {
                            self.done = true
                        }
                        Woke::Timer => {
                            let due = self.idle_since + self.heartbeat;
                            if Instant::now() < due {
                                // Something was sent since the timer was set.
                                self.heartbeat_timer.as_mut().reset(due);
                            } else if let Some(event) = self.heartbeat_if_idle() {
                                return Some(Ok(event));
                            }
                        }
                    }
                }
            }
        }
    }

    /// The receiver skipped items: read them from the store up to `until`.
    fn catch_up(&mut self, until: u64) {
        self.slot.0.catch_ups.fetch_add(1, Ordering::Relaxed);
        self.mode = Mode::CatchUp { until };
    }

    /// A heartbeat at the head, unless items are still waiting in the
    /// receiver: reading the head first and then finding the receiver empty
    /// proves every item up to the head was taken.
    fn heartbeat_if_idle(&mut self) -> Option<SubscriptionEvent<F::Item>> {
        let head = self.feed.head();
        loop {
            match self.live.try_recv() {
                Ok(item) => self.pending.push_back(item),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.catch_up(head);
                    return None;
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            }
        }
        if !self.pending.is_empty() {
            return None;
        }
        self.position = self.position.max(head);
        self.idle_since = Instant::now();
        self.heartbeat_timer
            .as_mut()
            .reset(self.idle_since + self.heartbeat);
        Some(SubscriptionEvent::Heartbeat(head))
    }
}
