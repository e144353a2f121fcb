//! `AnswerTurnLayer`: a connection writes the answers of its unary calls
//! that are ready at the same time together, in one `writev`, not one each.
//!
//! hyper runs each HTTP/2 stream as its own task. Once a unary call's
//! answer is ready, its task hands the frames to h2, which wakes the
//! connection's task, and tokio runs a task woken that way next (its LIFO
//! slot). With 16 calls in flight on a connection, the connection wrote
//! after every single answer: about 13 `writev`s per read of requests, and
//! the kernel's work on them was most of what a Get cost.
//!
//! So when a unary call's answer is ready on its first poll and its
//! connection has other calls opened but not answered yet, the call's task
//! ends its turn (`api::delivery_turn::end_turn`, as subscriptions do
//! after a delivery): tokio then queues the connection behind the calls already woken, and it
//! writes their answers in one go. A connection's only call keeps its
//! turn: nothing would be written with it, and running the connection
//! from the queue rather than next costs more than it saves (BENCHMARKS.md,
//! the 4x1 shape). An answer that had to wait (a write waiting
//! for the committer) keeps its turn too: such answers are woken one at a
//! time from another thread, and holding their connection back made Gets
//! beside paced writers wait several times longer at p99
//! (`tradewire-bench readwrite`).
//!
//! The calls a connection has opened are counted by the accept path as
//! it reads them (`Peer::calls`): this layer is called only on each
//! stream task's first poll (hyper-util's `oneshot`), too late to see the
//! calls queued behind it. A call that never reaches the stack (a stream
//! refused by hyper, or reset before its task ran) stays counted, and its
//! connection's answers then always end their turn: slower, never wrong.
//!
//! Outermost in the stack: the turn ends when every layer is done with the
//! answer, and what runs after it in the task (hyper handing the frames to
//! h2) spends no budget. Streams are counted answered once their headers
//! are ready; `DeliveryTurn` ends their turns after deliveries.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tower::Layer;

use super::guarded::{Inner, answers_with};
use super::limits::is_streaming;
use crate::api::caller::{CallCounts, Peer};
use crate::api::delivery_turn::end_turn;

/// The answer-turn layer.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnswerTurnLayer;

impl<S> Layer<S> for AnswerTurnLayer {
    type Service = AnswerTurn<S>;

    fn layer(&self, inner: S) -> AnswerTurn<S> {
        AnswerTurn { inner }
    }
}

/// The answer-turn layer's service around `S`.
#[derive(Debug, Clone)]
pub(crate) struct AnswerTurn<S> {
    inner: S,
}

answers_with!(AnswerTurn, TurnAnswer<S::Future>);

impl<S: Inner> AnswerTurn<S> {
    fn answer(&mut self, request: http::Request<Body>) -> TurnAnswer<S::Future> {
        let call = request.extensions().get::<Peer>().map(|peer| Answering {
            calls: Arc::clone(&peer.calls),
            unary: !is_streaming(request.uri().path()),
        });
        TurnAnswer {
            inner: self.inner.call(request),
            call,
            waited: false,
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's answer; a unary one ends its task's turn when it is ready
    /// at once and its connection has other calls to answer.
    pub(crate) struct TurnAnswer<F> {
        #[pin]
        inner: F,
        call: Option<Answering>,
        // The answer was not ready on the first poll.
        waited: bool,
    }
}

impl<F: Future> Future for TurnAnswer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Poll::Ready(answer) = this.inner.poll(cx) else {
            *this.waited = true;
            return Poll::Pending;
        };
        if let Some(call) = this.call.take()
            && call.answered()
            && !*this.waited
        {
            end_turn(cx);
        }
        Poll::Ready(answer)
    }
}

/// A call of a connection, counted answered when it is, or dropped.
#[derive(Debug)]
struct Answering {
    calls: Arc<CallCounts>,
    unary: bool,
}

impl Answering {
    /// Counts the call answered; says whether its turn should end: a
    /// unary call whose connection has other calls opened and unanswered.
    fn answered(self) -> bool {
        let opened = self.calls.opened.load(Ordering::Relaxed);
        let unary = self.unary;
        // Dropping counts it.
        let answered_before = self.calls.answered.load(Ordering::Relaxed);
        drop(self);
        unary && opened > answered_before + 1
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.calls.answered.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::poll_fn;
    use std::net::SocketAddr;

    use tokio::sync::oneshot;
    use tokio::task::coop;
    use tower::{Service, ServiceExt};

    use super::*;

    type Answer = Result<http::Response<Body>, Infallible>;
    type Call = Pin<Box<TurnAnswer<Pin<Box<dyn Future<Output = Answer> + Send>>>>>;

    /// The routes: a call is answered at once, or when `hold` is released.
    struct Answers {
        hold: Option<oneshot::Receiver<()>>,
    }

    impl Service<http::Request<Body>> for Answers {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            let hold = self.hold.take();
            Box::pin(async move {
                if let Some(hold) = hold {
                    let _ = hold.await;
                }
                Ok(http::Response::new(Body::empty()))
            })
        }
    }

    const GET: &str = "/tradewire.v1.TradeService/GetTradeRecord";
    const SUBSCRIBE: &str = "/tradewire.v1.ExportReportService/SubscribeExportReports";

    /// A connection whose client has opened `opened` calls.
    fn connection(opened: u64) -> Peer {
        let peer = Peer {
            id: 1,
            addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
            calls: Arc::default(),
        };
        peer.calls.opened.store(opened, Ordering::Relaxed);
        peer
    }

    fn answered(peer: &Peer) -> u64 {
        peer.calls.answered.load(Ordering::Relaxed)
    }

    async fn call(peer: Option<&Peer>, path: &str, hold: Option<oneshot::Receiver<()>>) -> Call {
        let mut service = AnswerTurnLayer.layer(Answers { hold });
        let mut request = http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap();
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer.clone());
        }
        Box::pin(service.ready().await.unwrap().call(request))
    }

    /// Polls the answer once, in a fresh turn: is it ready, and is the
    /// turn's budget left?
    async fn poll_in_a_fresh_turn(answer: &mut Call) -> (bool, bool) {
        tokio::task::yield_now().await;
        poll_fn(|cx| {
            assert!(coop::has_budget_remaining());
            let ready = answer.as_mut().poll(cx).is_ready();
            Poll::Ready((ready, coop::has_budget_remaining()))
        })
        .await
    }

    #[tokio::test]
    async fn a_unary_answer_ends_the_turn_while_its_connection_has_calls_to_answer() {
        let peer = connection(3);
        let mut answer = call(Some(&peer), GET, None).await;
        assert_eq!(poll_in_a_fresh_turn(&mut answer).await, (true, false));
        assert_eq!(answered(&peer), 1);
    }

    #[tokio::test]
    async fn a_connections_last_call_keeps_the_turn() {
        let peer = connection(2);
        let mut first = call(Some(&peer), GET, None).await;
        let mut last = call(Some(&peer), GET, None).await;
        assert_eq!(poll_in_a_fresh_turn(&mut first).await, (true, false));
        assert_eq!(poll_in_a_fresh_turn(&mut last).await, (true, true));
        assert_eq!(answered(&peer), 2);
    }

    #[tokio::test]
    async fn a_unary_answer_that_waited_keeps_the_turn() {
        let peer = connection(2);
        let (release, hold) = oneshot::channel();
        let mut answer = call(Some(&peer), GET, Some(hold)).await;
        assert_eq!(poll_in_a_fresh_turn(&mut answer).await, (false, true));
        assert_eq!(answered(&peer), 0);
        release.send(()).unwrap();
        assert_eq!(poll_in_a_fresh_turn(&mut answer).await, (true, true));
        assert_eq!(answered(&peer), 1);
    }

    #[tokio::test]
    async fn a_stream_is_counted_answered_and_keeps_the_turn() {
        let peer = connection(3);
        let mut answer = call(Some(&peer), SUBSCRIBE, None).await;
        assert_eq!(poll_in_a_fresh_turn(&mut answer).await, (true, true));
        assert_eq!(answered(&peer), 1);
    }

    #[tokio::test]
    async fn a_call_dropped_unanswered_is_counted() {
        let peer = connection(2);
        let (_release, hold) = oneshot::channel();
        let mut held = call(Some(&peer), GET, Some(hold)).await;
        assert_eq!(poll_in_a_fresh_turn(&mut held).await, (false, true));
        drop(held);
        let mut last = call(Some(&peer), GET, None).await;
        assert_eq!(poll_in_a_fresh_turn(&mut last).await, (true, true));
        assert_eq!(answered(&peer), 2);
    }

    #[tokio::test]
    async fn a_call_without_a_connection_keeps_the_turn() {
        let mut answer = call(None, GET, None).await;
        assert_eq!(poll_in_a_fresh_turn(&mut answer).await, (true, true));
    }
}
