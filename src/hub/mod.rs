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

mod subscription;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::store::{Evicted, FEED_KINDS, Feed};
use subscription::Subscription;

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
    /// Most open subscriptions of one connection.
    pub max_subscribers_per_connection: usize,
    /// Most open subscriptions of one token (anonymous callers are held to
    /// the per-connection share only).
    pub max_subscribers_per_token: usize,
    /// Idle time before a stream gets a heartbeat, unless the request
    /// sets its own interval.
    pub heartbeat: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_subscribers: 10_000,
            max_subscribers_per_connection: 1_000,
            max_subscribers_per_token: 5_000,
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// Who opens a subscription: its connection and its token, each held to
/// a share of the subscriber slots, so that one client cannot take them
/// all.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owner {
    pub(crate) connection: Option<u64>,
    pub(crate) token: Option<Arc<str>>,
}

/// A share of the subscriber slots that is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Share {
    Connection(u64),
    Token(Arc<str>),
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
    /// Open subscriptions by connection and by token; admission holds this
    /// lock while it checks and counts, so limits are never overshot.
    shares: Mutex<HashMap<Share, usize>>,
    config: HubConfig,
    shutdown: CancellationToken,
}

/// Holds one subscriber slot and its shares; dropping it frees them.
#[derive(Debug)]
struct Slot {
    hub: Arc<HubInner>,
    shares: Vec<Share>,
    /// The open subscriptions of this slot's stream kind, as a gauge.
    open: metrics::Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .hub
            .shares
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for share in &self.shares {
            if let Some(n) = counts.get_mut(share) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(share);
                }
            }
        }
        drop(counts);
        self.open.decrement(1);
        self.hub
            .subscribers
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Hub {
    /// `shutdown` ends every open subscription with `UNAVAILABLE`.
    pub(crate) fn new(config: HubConfig, shutdown: CancellationToken) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                subscribers: watch::channel(0).0,
                catch_ups: AtomicU64::new(0),
                shares: Mutex::new(HashMap::new()),
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
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn catch_ups(&self) -> u64 {
        self.inner
            .catch_ups
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn admit(&self, owner: &Owner, kind: &'static str) -> Result<Slot> {
        let config = &self.inner.config;
        let mut shares = Vec::new();
        if let Some(id) = owner.connection {
            shares.push((Share::Connection(id), config.max_subscribers_per_connection));
        }
        if let Some(token) = &owner.token {
            shares.push((
                Share::Token(Arc::clone(token)),
                config.max_subscribers_per_token,
            ));
        }
        let mut counts = self
            .inner
            .shares
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (share, limit) in &shares {
            if counts.get(share).copied().unwrap_or(0) >= *limit {
                let holder = match share {
                    Share::Connection(_) => "this connection".to_owned(),
                    Share::Token(name) => format!("token {name:?}"),
                };
                metrics::counter!("tradewire_refused_total", "limit" => SUBSCRIBER_SHARE)
                    .increment(1);
                return Err(Error::ResourceExhausted(format!(
                    "{holder} holds its maximum of {limit} subscribers"
                )));
            }
        }
        let max = config.max_subscribers;
        let admitted = self.inner.subscribers.send_if_modified(|n| {
            if *n < max {
                *n += 1;
                true
            } else {
                false
            }
        });
        if admitted {
            for (share, _) in &shares {
                *counts.entry(share.clone()).or_default() += 1;
            }
            let open = metrics::gauge!("tradewire_subscribers", "stream" => kind);
            open.increment(1);
            Ok(Slot {
                hub: Arc::clone(&self.inner),
                shares: shares.into_iter().map(|(share, _)| share).collect(),
                open,
            })
        } else {
            metrics::counter!("tradewire_refused_total", "limit" => MAX_SUBSCRIBERS).increment(1);
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
        (matches, owner): (M, Owner),
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
        let slot = self.admit(&owner, feed.kind())?;
        let (head, live) = feed.register();
        let position = match start {
            StartPosition::FromNow => head,
            StartPosition::AfterSequence(after) if after > head => {
                return Err(Error::OutOfRange {
                    message: format!("sequence {after} is beyond the latest sequence {head}"),
                    oldest_retained: feed.oldest_retained(),
                });
            }
            StartPosition::AfterSequence(after) => {
                feed.read_after(after, 0)
                    .map_err(|e| out_of_range(after, e))?;
                after
            }
        };
        let subscription = Subscription::new(
            feed,
            matches,
            (live, position, head),
            heartbeat.unwrap_or(self.inner.config.heartbeat),
            self.inner.shutdown.clone(),
            slot,
        );
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

/// The `limit` of `tradewire_refused_total` when a connection or a token
/// holds its share of subscriber slots, and when the server holds its
/// maximum.
const SUBSCRIBER_SHARE: &str = "subscriber_share";
const MAX_SUBSCRIBERS: &str = "max_subscribers";

/// Registers and describes the hub's series at zero, so that a scrape of
/// a fresh server shows them (alerts on `absent()` and rates need them
/// from the start); the values are emitted where subscriptions open,
/// deliver and close.
pub(crate) fn register_metrics() {
    metrics::describe_gauge!("tradewire_subscribers", "Open subscriptions, by stream.");
    metrics::describe_counter!(
        "tradewire_deliveries_total",
        "Items delivered to subscribers, by stream."
    );
    metrics::describe_counter!(
        "tradewire_heartbeats_total",
        "Heartbeats sent to idle subscribers, by stream."
    );
    metrics::describe_counter!(
        "tradewire_catch_ups_total",
        "Times a subscriber fell behind the live channel and caught up from the store, by stream."
    );
    metrics::describe_counter!(
        "tradewire_catch_up_items_total",
        "Items delivered from the store while catching up, by stream."
    );
    for stream in FEED_KINDS {
        metrics::gauge!("tradewire_subscribers", "stream" => stream).set(0.0);
        for counter in [
            "tradewire_deliveries_total",
            "tradewire_heartbeats_total",
            "tradewire_catch_ups_total",
            "tradewire_catch_up_items_total",
        ] {
            metrics::counter!(counter, "stream" => stream).increment(0);
        }
    }
    for limit in [SUBSCRIBER_SHARE, MAX_SUBSCRIBERS] {
        metrics::counter!("tradewire_refused_total", "limit" => limit).increment(0);
    }
}

#[cfg(test)]
mod tests;
