//! Ending a task's turn early, so that the connection task it woke runs
//! after the other tasks already queued rather than next, and writes their
//! frames together.
//!
//! hyper runs each HTTP/2 stream as its own task. When a stream's task
//! hands h2 a frame, h2 wakes the connection's task, and tokio's
//! multi-threaded runtime runs a task woken that way next (its LIFO slot)
//! while the running task has cooperative budget left; otherwise it
//! queues it behind the tasks already woken. Spending the rest of the
//! budget moves the connection in the queue; it never delays a wake.
//! Used by the subscription streams (`api::delivery_turn`) after a
//! delivery and by the call layer (`server::calls`) after a unary answer
//! that was ready at once; BENCHMARKS.md has what it saves at each client
//! shape.

use std::task::{Context, Poll};

use tokio::task::coop;

/// tokio's budget for one turn of a task (its `coop` module's, which it
/// does not export); the test below fails if a turn outlasts it.
const TURN_BUDGET: usize = 128;

/// Spends what is left of the running task's cooperative budget, without
/// asking to be woken (the last unit is spent successfully). Bounded: a
/// task run unconstrained (`coop::unconstrained`, or outside a runtime)
/// has a budget that never runs out.
pub(crate) fn end_turn(cx: &mut Context<'_>) {
    for _ in 0..TURN_BUDGET {
        if !coop::has_budget_remaining() {
            break;
        }
        match coop::poll_proceed(cx) {
            Poll::Ready(spent) => spent.made_progress(),
            Poll::Pending => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    #[tokio::test]
    async fn a_fresh_turn_is_spent_whole() {
        poll_fn(|cx| {
            assert!(coop::has_budget_remaining());
            end_turn(cx);
            assert!(
                !coop::has_budget_remaining(),
                "tokio's budget outlasted {TURN_BUDGET}"
            );
            Poll::Ready(())
        })
        .await;
    }

    /// What `end_turn` is for, on tokio's multi-threaded runtime: a task
    /// woken by a task that then ends its turn runs after the tasks
    /// already queued, not next.
    #[test]
    fn a_task_woken_before_the_turn_ends_runs_after_those_queued() {
        for end_the_turn in [true, false] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = std::sync::Arc::clone(&order);
            runtime.block_on(async move {
                let (connection, other) = tokio::spawn(async move {
                    let (wake, woken) = tokio::sync::oneshot::channel::<()>();
                    let log = std::sync::Arc::clone(&seen);
                    let connection = tokio::spawn(async move {
                        let _ = woken.await;
                        log.lock().unwrap().push("connection");
                    });
                    // The connection waits on its channel.
                    tokio::task::yield_now().await;
                    let log = std::sync::Arc::clone(&seen);
                    let other = tokio::spawn(async move {
                        log.lock().unwrap().push("other call");
                    });
                    let mut wake = Some(wake);
                    poll_fn(|cx| {
                        if let Some(wake) = wake.take() {
                            let _ = wake.send(());
                        }
                        if end_the_turn {
                            end_turn(cx);
                        }
                        Poll::Ready(())
                    })
                    .await;
                    (connection, other)
                })
                .await
                .unwrap();
                connection.await.unwrap();
                other.await.unwrap();
            });
            drop(runtime);
            let order = order.lock().unwrap().clone();
            let expected = if end_the_turn {
                ["other call", "connection"]
            } else {
                ["connection", "other call"]
            };
            assert_eq!(order, expected, "end the turn: {end_the_turn}");
        }
    }
}
