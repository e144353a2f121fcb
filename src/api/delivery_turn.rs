//! Ends a subscription task's turn after it delivers, so that a
//! connection writes the frames of all its subscriptions together.
//!
//! hyper runs each HTTP/2 stream as its own task. When a report is
//! published, every subscription's task wakes, hands its frame to h2, and
//! h2 wakes the connection's task. tokio's multi-threaded runtime puts a
//! task woken from a running task in its LIFO slot and runs it next, so
//! the connection ran after every single subscription and wrote one frame
//! per `writev`: the kernel's side of those writes was most of a
//! delivery's CPU at low report rates (BENCHMARKS.md, fanout).
//!
//! The runtime runs the LIFO task next only while the running task has
//! cooperative budget left; otherwise it queues it behind the tasks
//! already woken. So once a subscription has handed over a delivery and
//! has nothing more to send, it spends the rest of its budget
//! ([`tokio::task::coop`]): the connection then runs after the other
//! subscriptions woken by the same report, and writes their frames in one
//! go. Nothing waits longer than those subscriptions' own turns, and
//! budget spent only moves the connection in the queue; it never delays a
//! wake. Anything the task polls after that, within the same turn, is
//! polled unconstrained, so a spent budget costs no spurious wake.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::task::coop;

use crate::turn::end_turn;

pin_project_lite::pin_project! {
    /// A stream of deliveries that ends its task's turn after handing one
    /// (or a batch) over.
    pub(crate) struct DeliveryTurn<S> {
        #[pin]
        inner: S,
        // An item was handed over since the stream last waited.
        delivered: bool,
        // This stream spent the budget of the task's current turn.
        turn_ended: bool,
    }
}

impl<S> DeliveryTurn<S> {
    pub(crate) fn new(inner: S) -> Self {
        DeliveryTurn {
            inner,
            delivered: false,
            turn_ended: false,
        }
    }
}

impl<S: Stream> Stream for DeliveryTurn<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if coop::has_budget_remaining() {
            // A new turn: the budget is the runtime's again.
            *this.turn_ended = false;
        }
        let polled = if *this.turn_ended {
            // Our own spent budget must not make the inner stream wait.
            let mut unconstrained = coop::unconstrained(futures_util::future::poll_fn(|cx| {
                this.inner.as_mut().poll_next(cx)
            }));
            Pin::new(&mut unconstrained).poll(cx)
        } else {
            this.inner.as_mut().poll_next(cx)
        };
        match polled {
            Poll::Ready(item) => {
                *this.delivered = item.is_some();
                Poll::Ready(item)
            }
            Poll::Pending => {
                if std::mem::take(this.delivered) {
                    end_turn(cx);
                    *this.turn_ended = true;
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use futures_util::StreamExt;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;

    use super::*;

    fn deliveries() -> (
        mpsc::UnboundedSender<u32>,
        DeliveryTurn<UnboundedReceiverStream<u32>>,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            sender,
            DeliveryTurn::new(UnboundedReceiverStream::new(receiver)),
        )
    }

    #[tokio::test]
    async fn waiting_after_a_delivery_spends_the_turn_without_starving_the_stream() {
        let (sender, mut stream) = deliveries();
        sender.send(1).unwrap();
        poll_fn(|cx| {
            assert_eq!(stream.poll_next_unpin(cx), Poll::Ready(Some(1)));
            assert!(
                coop::has_budget_remaining(),
                "a delivery alone keeps the turn"
            );
            assert!(stream.poll_next_unpin(cx).is_pending());
            assert!(
                !coop::has_budget_remaining(),
                "waiting after it ends the turn"
            );
            // tokio's channel answers Pending once the budget is spent;
            // within the ended turn the stream still reads it.
            sender.send(2).unwrap();
            assert_eq!(stream.poll_next_unpin(cx), Poll::Ready(Some(2)));
            Poll::Ready(())
        })
        .await;
    }

    #[tokio::test]
    async fn waiting_without_a_delivery_keeps_the_turn() {
        let (_sender, mut stream) = deliveries();
        poll_fn(|cx| {
            assert!(stream.poll_next_unpin(cx).is_pending());
            assert!(coop::has_budget_remaining());
            Poll::Ready(())
        })
        .await;
    }

    #[tokio::test]
    async fn an_unconstrained_task_delivers_and_waits() {
        let (sender, mut stream) = deliveries();
        sender.send(1).unwrap();
        coop::unconstrained(poll_fn(|cx| {
            assert_eq!(stream.poll_next_unpin(cx), Poll::Ready(Some(1)));
            // A budget that never runs out: ending the turn must stop.
            assert!(stream.poll_next_unpin(cx).is_pending());
            assert!(coop::has_budget_remaining());
            Poll::Ready(())
        }))
        .await;
    }

    #[test]
    fn a_stream_polled_outside_a_runtime_delivers_and_waits() {
        let (sender, mut stream) = deliveries();
        sender.send(1).unwrap();
        let item = futures_util::FutureExt::now_or_never(stream.next());
        assert_eq!(item, Some(Some(1)));
        assert_eq!(futures_util::FutureExt::now_or_never(stream.next()), None);
    }

    #[tokio::test]
    async fn the_next_turn_is_the_runtimes_again() {
        let (sender, mut stream) = deliveries();
        sender.send(1).unwrap();
        poll_fn(|cx| {
            assert_eq!(stream.poll_next_unpin(cx), Poll::Ready(Some(1)));
            assert!(stream.poll_next_unpin(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        tokio::task::yield_now().await;
        sender.send(2).unwrap();
        poll_fn(|cx| {
            assert!(coop::has_budget_remaining());
            assert_eq!(stream.poll_next_unpin(cx), Poll::Ready(Some(2)));
            assert!(stream.poll_next_unpin(cx).is_pending());
            assert!(!coop::has_budget_remaining());
            Poll::Ready(())
        })
        .await;
    }
}
