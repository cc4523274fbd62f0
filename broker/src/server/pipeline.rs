//! A connection's ordered pipeline, for [`Runs::InOrder`](super::api::Runs)
//! requests (produce): a producer's batches for one partition must be
//! stored in the order it sent them, yet their waits for durability should
//! overlap so pipelined batches share one group commit.
//!
//! Each job runs on the pipeline's task, one after another in arrival
//! order, until it calls [`Ctx::order_fixed`](super::api::Ctx::order_fixed)
//! (its batch is queued on its log) and then waits; from there it finishes
//! as its own task and the next job starts. A job that finishes (or fails)
//! before fixing its order simply ends. Each job holds its connection's
//! in-flight permit until its response is queued, which bounds the jobs
//! waiting per connection.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use skiff_protocol::frame::OutgoingResponse;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::api::OrderGate;

/// One in-order request: its whole work, answer included.
pub(crate) struct InOrderJob {
    work: Pin<Box<dyn Future<Output = ()> + Send>>,
    gate: Arc<OrderGate>,
}

impl InOrderJob {
    pub(crate) fn new(
        work: impl Future<Output = ()> + Send + 'static,
        gate: Arc<OrderGate>,
    ) -> Self {
        Self {
            work: Box::pin(work),
            gate,
        }
    }
}

/// Runs a connection's in-order jobs until the connection closes.
pub(crate) async fn run(
    mut jobs: mpsc::Receiver<InOrderJob>,
    responses: mpsc::Sender<OutgoingResponse>,
    tracker: TaskTracker,
) {
    while let Some(InOrderJob { mut work, gate }) = jobs.recv().await {
        if responses.is_closed() {
            // The connection is gone: its client has already been told these
            // requests failed, so storing them now could only land them
            // behind batches it retries elsewhere.
            break;
        }
        let finished = poll_fn(|cx| match work.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(true),
            Poll::Pending if gate.is_fixed() => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        })
        .await;
        if !finished {
            // Boxed, so the started future moves without being moved in
            // memory; the task's first poll registers its own waker.
            tracker.spawn(work);
        }
    }
}
