//! The contract against a fake feed, on paused time: timers fire when
//! the runtime is idle, in virtual time, so no test waits in real time.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Mutex;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::*;
use crate::domain::Sequenced;

#[derive(Debug, PartialEq, Eq)]
struct Item(u64);

impl Sequenced for Item {
    fn sequence(&self) -> u64 {
        self.0
    }
}

struct Log {
    items: BTreeMap<u64, Arc<Item>>,
    head: u64,
    floor: u64,
    live: broadcast::Sender<Arc<Item>>,
}

/// A numbered log in memory with a broadcast of `capacity`.
#[derive(Clone)]
struct FakeFeed(Arc<Mutex<Log>>);

impl FakeFeed {
    fn new(capacity: usize) -> Self {
        FakeFeed(Arc::new(Mutex::new(Log {
            items: BTreeMap::new(),
            head: 0,
            floor: 1,
            live: broadcast::channel(capacity).0,
        })))
    }

    fn publish(&self, n: u64) {
        let mut log = self.0.lock().unwrap();
        for _ in 0..n {
            log.head += 1;
            let sequence = log.head;
            let item = Arc::new(Item(sequence));
            log.items.insert(sequence, Arc::clone(&item));
            let _ = log.live.send(item);
        }
    }

    /// Drops every item below `floor` from retention.
    fn evict_below(&self, floor: u64) {
        let mut log = self.0.lock().unwrap();
        log.items.retain(|seq, _| *seq >= floor);
        log.floor = floor;
    }
}

impl Feed for FakeFeed {
    type Item = Item;

    fn kind(&self) -> &'static str {
        "items"
    }

    fn register(&self) -> (u64, broadcast::Receiver<Arc<Item>>) {
        let log = self.0.lock().unwrap();
        (log.head, log.live.subscribe())
    }

    fn head(&self) -> u64 {
        self.0.lock().unwrap().head
    }

    fn oldest_retained(&self) -> u64 {
        self.0.lock().unwrap().floor
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Item>>, Evicted> {
        let log = self.0.lock().unwrap();
        if after + 1 < log.floor {
            return Err(Evicted {
                oldest_retained: log.floor,
            });
        }
        Ok(log
            .items
            .range(after + 1..)
            .take(limit)
            .map(|(_, item)| Arc::clone(item))
            .collect())
    }
}

const HEARTBEAT: Duration = Duration::from_secs(10);

fn hub(max_subscribers: usize) -> (Hub, CancellationToken) {
    let shutdown = CancellationToken::new();
    let config = HubConfig {
        max_subscribers,
        heartbeat: HEARTBEAT,
        ..HubConfig::default()
    };
    (Hub::new(config, shutdown.clone()), shutdown)
}

type Events = Pin<Box<dyn Stream<Item = Result<SubscriptionEvent<Item>>> + Send>>;

fn open(hub: &Hub, feed: &FakeFeed, start: StartPosition) -> Events {
    Box::pin(
        hub.subscribe(
            feed.clone(),
            start,
            (|_: &Item| true, Owner::default()),
            None,
        )
        .unwrap(),
    )
}

/// The next event, as a short label: "item 3", "caught up 3",
/// "heartbeat 3", or the error's code.
async fn next(events: &mut Events) -> String {
    match events.next().await {
        Some(Ok(SubscriptionEvent::Item(item))) => format!("item {}", item.0),
        Some(Ok(SubscriptionEvent::CaughtUp(head))) => format!("caught up {head}"),
        Some(Ok(SubscriptionEvent::Heartbeat(head))) => format!("heartbeat {head}"),
        Some(Err(error)) => format!("error {error:?}"),
        None => "end".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn replay_then_caught_up_then_live() {
    let (hub, _) = hub(10);
    let feed = FakeFeed::new(16);
    feed.publish(3);
    let mut events = open(&hub, &feed, StartPosition::AfterSequence(1));
    assert_eq!(next(&mut events).await, "item 2");
    assert_eq!(next(&mut events).await, "item 3");
    assert_eq!(next(&mut events).await, "caught up 3");
    feed.publish(2);
    assert_eq!(next(&mut events).await, "item 4");
    assert_eq!(next(&mut events).await, "item 5");

    let mut from_now = open(&hub, &feed, StartPosition::FromNow);
    assert_eq!(next(&mut from_now).await, "caught up 5");
    feed.publish(1);
    assert_eq!(next(&mut from_now).await, "item 6");
}

#[tokio::test(start_paused = true)]
async fn a_filtered_stream_skips_items_but_moves_its_position() {
    let (hub, _) = hub(10);
    let feed = FakeFeed::new(16);
    feed.publish(4);
    let even = |item: &Item| item.0.is_multiple_of(2);
    let mut events: Events = Box::pin(
        hub.subscribe(
            feed.clone(),
            StartPosition::AfterSequence(0),
            (even, Owner::default()),
            None,
        )
        .unwrap(),
    );
    assert_eq!(next(&mut events).await, "item 2");
    assert_eq!(next(&mut events).await, "item 4");
    assert_eq!(next(&mut events).await, "caught up 4");
    feed.publish(1);
    assert_eq!(next(&mut events).await, "heartbeat 5");
}

#[tokio::test(start_paused = true)]
async fn a_lagging_receiver_catches_up_from_the_feed_without_a_gap() {
    let (hub, _) = hub(10);
    let feed = FakeFeed::new(2);
    let mut events = open(&hub, &feed, StartPosition::FromNow);
    assert_eq!(next(&mut events).await, "caught up 0");
    feed.publish(10);
    for seq in 1..=10 {
        assert_eq!(next(&mut events).await, format!("item {seq}"));
    }
    assert_eq!(hub.catch_ups(), 1);
    feed.publish(1);
    assert_eq!(next(&mut events).await, "item 11");
}

#[tokio::test(start_paused = true)]
async fn a_resume_point_off_retention_is_out_of_range() {
    let (hub, _) = hub(10);
    let feed = FakeFeed::new(16);
    feed.publish(6);
    feed.evict_below(4);
    let refused = hub
        .subscribe(
            feed.clone(),
            StartPosition::AfterSequence(1),
            (|_: &Item| true, Owner::default()),
            None,
        )
        .err();
    assert!(
        matches!(
            refused,
            Some(Error::OutOfRange {
                oldest_retained: 4,
                ..
            })
        ),
        "{refused:?}"
    );
    let beyond = hub
        .subscribe(
            feed.clone(),
            StartPosition::AfterSequence(7),
            (|_: &Item| true, Owner::default()),
            None,
        )
        .err();
    assert!(
        matches!(beyond, Some(Error::OutOfRange { .. })),
        "{beyond:?}"
    );
    let mut events = open(&hub, &feed, StartPosition::AfterSequence(3));
    assert_eq!(next(&mut events).await, "item 4");
}

#[tokio::test(start_paused = true)]
async fn a_catch_up_that_falls_off_retention_ends_the_stream() {
    let (hub, _) = hub(10);
    let feed = FakeFeed::new(2);
    let mut events = open(&hub, &feed, StartPosition::FromNow);
    assert_eq!(next(&mut events).await, "caught up 0");
    feed.publish(10);
    feed.evict_below(8);
    let ended = next(&mut events).await;
    assert!(ended.contains("OutOfRange"), "{ended}");
    assert!(ended.contains("oldest_retained: 8"), "{ended}");
    assert_eq!(next(&mut events).await, "end");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_come_after_the_idle_interval_with_the_head() {
    let (hub, _) = hub(10);
    let feed = FakeFeed::new(16);
    feed.publish(2);
    let mut events = open(&hub, &feed, StartPosition::FromNow);
    assert_eq!(next(&mut events).await, "caught up 2");
    let started = Instant::now();
    assert_eq!(next(&mut events).await, "heartbeat 2");
    assert_eq!(started.elapsed(), HEARTBEAT);

    // A delivery restarts the idle interval.
    tokio::time::sleep(HEARTBEAT / 2).await;
    feed.publish(1);
    assert_eq!(next(&mut events).await, "item 3");
    let delivered = Instant::now();
    assert_eq!(next(&mut events).await, "heartbeat 3");
    assert_eq!(delivered.elapsed(), HEARTBEAT);

    // A request's own interval wins over the default.
    let own = Duration::from_secs(1);
    let mut quick: Events = Box::pin(
        hub.subscribe(
            feed.clone(),
            StartPosition::FromNow,
            (|_: &Item| true, Owner::default()),
            Some(own),
        )
        .unwrap(),
    );
    assert_eq!(next(&mut quick).await, "caught up 3");
    let started = Instant::now();
    assert_eq!(next(&mut quick).await, "heartbeat 3");
    assert_eq!(started.elapsed(), own);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_streams_with_their_position_and_refuses_new_ones() {
    let (hub, shutdown) = hub(10);
    let feed = FakeFeed::new(16);
    feed.publish(3);
    let mut live = open(&hub, &feed, StartPosition::AfterSequence(0));
    for expected in ["item 1", "item 2", "item 3", "caught up 3"] {
        assert_eq!(next(&mut live).await, expected);
    }
    let mut replaying = open(&hub, &feed, StartPosition::AfterSequence(0));
    assert_eq!(next(&mut replaying).await, "item 1");
    assert_eq!(*hub.subscriber_count().borrow(), 2);

    shutdown.cancel();
    let ended = next(&mut live).await;
    assert!(ended.contains("resume_after: Some(3)"), "{ended}");
    assert_eq!(next(&mut live).await, "end");
    // Replay delivers the chunk it holds (and the marker it reached),
    // then stops at its position.
    assert_eq!(next(&mut replaying).await, "item 2");
    assert_eq!(next(&mut replaying).await, "item 3");
    assert_eq!(next(&mut replaying).await, "caught up 3");
    let ended = next(&mut replaying).await;
    assert!(ended.contains("resume_after: Some(3)"), "{ended}");
    drop((live, replaying));
    assert_eq!(*hub.subscriber_count().borrow(), 0);

    let refused = hub
        .subscribe(
            feed.clone(),
            StartPosition::FromNow,
            (|_: &Item| true, Owner::default()),
            None,
        )
        .err();
    assert!(
        matches!(refused, Some(Error::Unavailable { .. })),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn subscribers_past_the_maximum_are_refused_until_one_leaves() {
    let (hub, _) = hub(2);
    let feed = FakeFeed::new(16);
    let first = open(&hub, &feed, StartPosition::FromNow);
    let _second = open(&hub, &feed, StartPosition::FromNow);
    let refused = hub
        .subscribe(
            feed.clone(),
            StartPosition::FromNow,
            (|_: &Item| true, Owner::default()),
            None,
        )
        .err();
    assert!(
        matches!(refused, Some(Error::ResourceExhausted(_))),
        "{refused:?}"
    );
    drop(first);
    assert_eq!(*hub.subscriber_count().borrow(), 1);
    let _third = open(&hub, &feed, StartPosition::FromNow);
}

#[tokio::test(start_paused = true)]
async fn one_connection_or_token_cannot_take_every_slot() {
    let shutdown = CancellationToken::new();
    let hub = Hub::new(
        HubConfig {
            max_subscribers: 10,
            max_subscribers_per_connection: 2,
            max_subscribers_per_token: 3,
            heartbeat: HEARTBEAT,
        },
        shutdown,
    );
    let feed = FakeFeed::new(16);
    let owner = |connection: u64, token: Option<&str>| Owner {
        connection: Some(connection),
        token: token.map(Arc::from),
    };
    let open_as = |owner: &Owner| {
        hub.subscribe(
            feed.clone(),
            StartPosition::FromNow,
            (|_: &Item| true, owner.clone()),
            None,
        )
        .map(|s| Box::pin(s) as Events)
    };
    let first = open_as(&owner(1, None)).unwrap();
    let _second = open_as(&owner(1, None)).unwrap();
    let third = open_as(&owner(1, None)).err();
    assert!(
        matches!(&third, Some(Error::ResourceExhausted(m)) if m.contains("this connection")),
        "{third:?}"
    );
    // Another connection has its own share.
    let _other = open_as(&owner(2, Some("ingest"))).unwrap();
    let _more = open_as(&owner(3, Some("ingest"))).unwrap();
    let _most = open_as(&owner(4, Some("ingest"))).unwrap();
    let over = open_as(&owner(5, Some("ingest"))).err();
    assert!(
        matches!(&over, Some(Error::ResourceExhausted(m)) if m.contains("token \"ingest\"")),
        "{over:?}"
    );
    // A refused subscription takes no slot; a closed one frees its shares.
    assert_eq!(*hub.subscriber_count().borrow(), 5);
    drop(first);
    let _again = open_as(&owner(1, None)).unwrap();
    assert_eq!(*hub.subscriber_count().borrow(), 5);
}
