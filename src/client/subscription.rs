//! `Subscription`: the client side of the stream contract, written once.
//!
//! A task holds the stream. It remembers the last sequence it saw (an
//! item's, or the head of a caught-up marker or heartbeat, which promise
//! that every matching item up to it was sent), reconnects after any
//! retryable failure with `after_sequence` set to it, and drops items at or
//! below it. The consumer reads a `Stream` of items; it ends only with an
//! error that retrying cannot fix: `NotRetained` (the resume point fell off
//! the server's retention) or a refusal such as `UNAUTHENTICATED`.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Code, Status, Streaming};

use super::Authed;
use crate::pb;
use crate::pb::announcement_service_client::AnnouncementServiceClient;
use crate::pb::export_report_service_client::ExportReportServiceClient;

/// Metadata in which the server names its oldest retained sequence.
const OLDEST_RETAINED: &str = "tradewire-oldest-retained";

/// Why a subscription ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubscriptionError {
    /// The resume point is older than anything the server keeps: items
    /// were lost to retention. Start again from `oldest_retained - 1`
    /// (after reading what was missed elsewhere), or from now.
    #[error("sequence {after} is no longer retained; the oldest retained is {oldest_retained}")]
    NotRetained {
        /// Where the subscription tried to resume.
        after: u64,
        /// The oldest sequence the server still has.
        oldest_retained: u64,
    },
    /// The server refused the subscription in a way retrying cannot fix.
    #[error("{}: {}", .0.code(), .0.message())]
    Refused(Status),
}

/// Jittered exponential backoff between reconnects: the n-th wait is
/// uniform in [0, min(max, initial * 2^n)], and resets after a stream
/// delivers anything.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The first wait's upper bound.
    pub initial: Duration,
    /// The largest upper bound.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    fn wait(&self, attempt: u32, random: &RandomState) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let fraction = (random.hash_one(attempt) % 1_000_001) as f64 / 1_000_000.0;
        ceiling.mul_f64(fraction)
    }
}

/// One event of a stream, whatever its kind.
#[derive(Debug)]
pub enum Event<T> {
    /// An item and its sequence.
    Item(u64, T),
    /// Everything matching up to this sequence has been sent.
    Head(u64),
    /// An event this client does not know (a newer server).
    Other,
}

/// A kind of stream: how to open it and read its events.
pub trait StreamKind: Send + 'static {
    /// What the stream carries.
    type Item: Send + 'static;
    /// The stream's response message.
    type Response: Send + 'static;

    /// Opens the stream after `after` (`None`: from now).
    fn open(
        &mut self,
        after: Option<u64>,
    ) -> impl Future<Output = Result<Streaming<Self::Response>, Status>> + Send;

    /// Reads one response.
    fn event(response: Self::Response) -> Event<Self::Item>;
}

/// Export reports (`SubscribeExportReports`).
#[derive(Debug, Clone)]
pub struct Reports {
    pub(super) client: ExportReportServiceClient<Authed>,
    pub(super) filter: Option<pb::TradeFilter>,
}

impl StreamKind for Reports {
    type Item = pb::ExportReport;
    type Response = pb::SubscribeExportReportsResponse;

    async fn open(&mut self, after: Option<u64>) -> Result<Streaming<Self::Response>, Status> {
        use pb::subscribe_export_reports_request::Start;
        let request = pb::SubscribeExportReportsRequest {
            filter: self.filter.clone(),
            start: Some(match after {
                Some(after) => Start::AfterSequence(after),
                None => Start::FromNow(pb::FromNow {}),
            }),
            heartbeat_interval: None,
        };
        Ok(self
            .client
            .subscribe_export_reports(request)
            .await?
            .into_inner())
    }

    fn event(response: Self::Response) -> Event<Self::Item> {
        use pb::subscribe_export_reports_response::Event as E;
        match response.event {
            Some(E::ExportReport(report)) => Event::Item(report.sequence, report),
            Some(E::CaughtUp(c)) => Event::Head(c.head_sequence),
            Some(E::Heartbeat(h)) => Event::Head(h.head_sequence),
            None => Event::Other,
        }
    }
}

/// Announcements (`WatchAnnouncements`).
#[derive(Debug, Clone)]
pub struct Announcements {
    pub(super) client: AnnouncementServiceClient<Authed>,
    pub(super) filter: Option<pb::AnnouncementFilter>,
}

impl StreamKind for Announcements {
    type Item = pb::Announcement;
    type Response = pb::WatchAnnouncementsResponse;

    async fn open(&mut self, after: Option<u64>) -> Result<Streaming<Self::Response>, Status> {
        use pb::watch_announcements_request::Start;
        let request = pb::WatchAnnouncementsRequest {
            filter: self.filter.clone(),
            start: Some(match after {
                Some(after) => Start::AfterSequence(after),
                None => Start::FromNow(pb::FromNow {}),
            }),
            heartbeat_interval: None,
        };
        Ok(self.client.watch_announcements(request).await?.into_inner())
    }

    fn event(response: Self::Response) -> Event<Self::Item> {
        use pb::watch_announcements_response::Event as E;
        match response.event {
            Some(E::Announcement(a)) => Event::Item(a.sequence, a),
            Some(E::CaughtUp(c)) => Event::Head(c.head_sequence),
            Some(E::Heartbeat(h)) => Event::Head(h.head_sequence),
            None => Event::Other,
        }
    }
}

/// A resuming subscription: a `Stream` of items, each sequence once and in
/// order. Dropping it ends the subscription.
#[derive(Debug)]
pub struct Subscription<K: StreamKind> {
    items: mpsc::Receiver<Result<K::Item, SubscriptionError>>,
    task: JoinHandle<()>,
    position: tokio::sync::watch::Receiver<Option<u64>>,
}

impl<K: StreamKind> Subscription<K> {
    pub(super) fn start(kind: K, after: Option<u64>, backoff: Backoff) -> Self {
        // A small buffer: a slow consumer slows the stream (and the server
        // then applies its own lag policy) instead of growing memory here.
        let (items_tx, items) = mpsc::channel(64);
        let (position_tx, position) = tokio::sync::watch::channel(after);
        let task = tokio::spawn(follow(kind, after, backoff, items_tx, position_tx));
        Subscription {
            items,
            task,
            position,
        }
    }

    /// The sequence the subscription would resume after now (`None` until
    /// the first stream has told where "now" is).
    pub fn position(&self) -> Option<u64> {
        *self.position.borrow()
    }

    /// Waits until the position is known: at once for a subscription
    /// started after a sequence; for one started from now, until the
    /// server's caught-up marker, after which what is published reaches
    /// it. `None` if the subscription ended first.
    pub async fn started(&mut self) -> Option<u64> {
        let position = self.position.wait_for(Option::is_some).await.ok()?;
        *position
    }
}

impl<K: StreamKind> Stream for Subscription<K> {
    type Item = Result<K::Item, SubscriptionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.poll_recv(cx)
    }
}

impl<K: StreamKind> Drop for Subscription<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Codes after which reconnecting can help: the server went away, is
/// shutting down or overloaded, or the connection broke.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

fn not_retained(status: &Status, after: u64) -> SubscriptionError {
    let oldest_retained = status
        .metadata()
        .get(OLDEST_RETAINED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    SubscriptionError::NotRetained {
        after,
        oldest_retained,
    }
}

async fn follow<K: StreamKind>(
    mut kind: K,
    mut last: Option<u64>,
    backoff: Backoff,
    items: mpsc::Sender<Result<K::Item, SubscriptionError>>,
    position: tokio::sync::watch::Sender<Option<u64>>,
) {
    let random = RandomState::new();
    let mut attempt = 0u32;
    loop {
        let failure = match kind.open(last).await {
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(response)) => {
                        attempt = 0;
                        match K::event(response) {
                            Event::Item(sequence, item) => {
                                if last.is_some_and(|l| sequence <= l) {
                                    continue; // seen before a reconnect
                                }
                                last = Some(sequence);
                                if items.send(Ok(item)).await.is_err() {
                                    return; // the consumer went away
                                }
                            }
                            Event::Head(head) => {
                                last = Some(last.map_or(head, |l| l.max(head)));
                            }
                            Event::Other => {}
                        }
                        position.send_replace(last);
                    }
                    // The server ended the stream (it does not, except when
                    // shutting down); resume.
                    Ok(None) => break None,
                    Err(status) => break Some(status),
                }
            },
            Err(status) => Some(status),
        };
        if let Some(status) = failure {
            if status.code() == Code::OutOfRange {
                let _ = items
                    .send(Err(not_retained(&status, last.unwrap_or(0))))
                    .await;
                return;
            }
            if !retryable(status.code()) {
                let _ = items.send(Err(SubscriptionError::Refused(status))).await;
                return;
            }
            tracing::debug!(code = ?status.code(), message = status.message(), "subscription interrupted; reconnecting");
        }
        tokio::time::sleep(backoff.wait(attempt, &random)).await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter_below_it() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let random = RandomState::new();
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(2));
            assert!(
                backoff.wait(attempt, &random) <= ceiling,
                "attempt {attempt}"
            );
        }
        // Jitter: across many draws of one attempt, not all waits are equal.
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| backoff.wait(5, &RandomState::new()))
            .collect();
        assert!(waits.len() > 1);
    }
}
