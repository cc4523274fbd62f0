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
/// `responses` is the connection's response queue (skiff's responses, or
/// the Kafka front end's ordered replies), only checked for being closed.
pub(crate) async fn run<T>(
    mut jobs: mpsc::Receiver<InOrderJob>,
    responses: mpsc::Sender<T>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    /// A job that logs its start, fixes its order (or not), then waits for
    /// `release` before logging its end.
    fn job(
        name: &'static str,
        fixes_order: bool,
        log: Arc<Mutex<Vec<String>>>,
        release: oneshot::Receiver<()>,
    ) -> InOrderJob {
        let gate = Arc::new(OrderGate::default());
        let fixed = Arc::clone(&gate);
        InOrderJob::new(
            async move {
                log.lock().unwrap().push(format!("{name} start"));
                if fixes_order {
                    fixed.fix();
                }
                let _ = release.await;
                log.lock().unwrap().push(format!("{name} end"));
            },
            gate,
        )
    }

    #[tokio::test]
    async fn jobs_start_in_order_and_overlap_once_their_order_is_fixed() {
        let (jobs_tx, jobs_rx) = mpsc::channel(8);
        let (responses, _keep) = mpsc::channel::<()>(8);
        let tracker = TaskTracker::new();
        tokio::spawn(run(jobs_rx, responses, tracker.clone()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (release_a, a) = oneshot::channel();
        let (release_b, b) = oneshot::channel();
        let (release_c, c) = oneshot::channel();
        // a and b fix their order and wait; c does not fix it, so nothing
        // after c may start before c ends.
        jobs_tx
            .send(job("a", true, Arc::clone(&log), a))
            .await
            .unwrap();
        jobs_tx
            .send(job("b", true, Arc::clone(&log), b))
            .await
            .unwrap();
        jobs_tx
            .send(job("c", false, Arc::clone(&log), c))
            .await
            .unwrap();
        let (release_d, d) = oneshot::channel();
        jobs_tx
            .send(job("d", true, Arc::clone(&log), d))
            .await
            .unwrap();
        let seen = |n: usize| {
            let log = Arc::clone(&log);
            async move {
                for _ in 0..1000 {
                    if log.lock().unwrap().len() >= n {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                panic!("fewer than {n} events: {:?}", log.lock().unwrap());
            }
        };
        seen(3).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(*log.lock().unwrap(), ["a start", "b start", "c start"]);
        // b finishes on its own task while a still waits.
        release_b.send(()).unwrap();
        seen(4).await;
        release_c.send(()).unwrap();
        seen(6).await;
        assert_eq!(
            *log.lock().unwrap(),
            ["a start", "b start", "c start", "b end", "c end", "d start"]
        );
        release_a.send(()).unwrap();
        release_d.send(()).unwrap();
        seen(8).await;
    }
}
