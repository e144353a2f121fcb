//! One subscription's state machine: replay, catch-up and live, the
//! heartbeat timer, and the shutdown waiter.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{CHUNK, Slot, SubscriptionEvent, out_of_range};
use crate::domain::Sequenced;
use crate::error::{Error, Result};
use crate::store::Feed;

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

pub(super) struct Subscription<F: Feed, M> {
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
    /// Handles made once: an increment is then one atomic add, which the
    /// fan-out path can afford per delivery.
    counters: Counters,
}

struct Counters {
    deliveries: metrics::Counter,
    heartbeats: metrics::Counter,
    catch_ups: metrics::Counter,
    caught_up_items: metrics::Counter,
}

impl Counters {
    fn of(kind: &'static str) -> Counters {
        Counters {
            deliveries: metrics::counter!("tradewire_deliveries_total", "stream" => kind),
            heartbeats: metrics::counter!("tradewire_heartbeats_total", "stream" => kind),
            catch_ups: metrics::counter!("tradewire_catch_ups_total", "stream" => kind),
            caught_up_items: metrics::counter!("tradewire_catch_up_items_total", "stream" => kind),
        }
    }
}

impl<F: Feed, M: Fn(&F::Item) -> bool> Subscription<F, M> {
    /// A subscription that replays from `position` up to `head`, then
    /// delivers from `live`, the receiver registered at `head`.
    pub(super) fn new(
        feed: F,
        matches: M,
        (live, position, head): (broadcast::Receiver<Arc<F::Item>>, u64, u64),
        heartbeat: Duration,
        shutdown: CancellationToken,
        slot: Slot,
    ) -> Self {
        Subscription {
            counters: Counters::of(feed.kind()),
            feed,
            matches,
            live,
            position,
            mode: Mode::Replay { until: head },
            pending: VecDeque::new(),
            heartbeat,
            idle_since: Instant::now(),
            heartbeat_timer: Box::pin(tokio::time::sleep(heartbeat)),
            stopping: Box::pin(shutdown.clone().cancelled_owned()),
            shutdown,
            stop_seen: false,
            done: false,
            slot,
        }
    }

    /// The next event of the stream, or `None` once it has ended: the hot
    /// path of every delivery. It drains `pending` first (items at or below
    /// the position are dropped, the rest filtered), then by mode reads the
    /// next chunk from the store (replay, catch-up) or waits on the live
    /// receiver, the shutdown waiter and the heartbeat timer, in that order
    /// of priority. Shutdown is checked per chunk while reading the store,
    /// and surfaces as one `UNAVAILABLE` carrying the position.
    pub(super) async fn next_event(&mut self) -> Option<Result<SubscriptionEvent<F::Item>>> {
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
                    self.counters.deliveries.increment(1);
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
                        Ok(items) => {
                            if matches!(self.mode, Mode::CatchUp { .. }) {
                                self.counters.caught_up_items.increment(items.len() as u64);
                            }
                            self.pending.extend(items);
                        }
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
        self.slot.hub.catch_ups.fetch_add(1, Ordering::Relaxed);
        self.counters.catch_ups.increment(1);
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
        self.counters.heartbeats.increment(1);
        Some(SubscriptionEvent::Heartbeat(head))
    }
}
