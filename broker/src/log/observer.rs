//! How the log reports its write-path timings without knowing who listens:
//! a [`LogObserver`] set in [`LogConfig::observer`](super::LogConfig) is told
//! about every append-path fdatasync (its duration and the batches it made
//! durable). The broker's telemetry subscribes; the log itself never calls
//! a metrics API (layering: `log` sits below `telemetry` and `server`).
//!
//! Invariant: an observer is called once per group-commit fdatasync, never
//! per message, from the committer thread with the writer lock held, so it
//! must be cheap and must not call back into the log.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Receives the log's write-path timings.
pub trait LogObserver: Send + Sync + fmt::Debug {
    /// One append-path fdatasync succeeded after `took`, making `batches`
    /// batches durable.
    fn fsynced(&self, took: Duration, batches: usize);
}

/// The observer of a log's [`LogConfig`](super::LogConfig): none by
/// default. Two configs compare equal when they hold the same observer (the
/// same `Arc`) or none.
#[derive(Clone, Debug, Default)]
pub struct Observer(Option<Arc<dyn LogObserver>>);

impl Observer {
    /// Reports to `observer`.
    pub fn new(observer: Arc<dyn LogObserver>) -> Self {
        Observer(Some(observer))
    }

    /// Tells the observer, if any, about one fdatasync.
    pub(crate) fn fsynced(&self, took: Duration, batches: usize) {
        if let Some(o) = &self.0 {
            o.fsynced(took, batches);
        }
    }
}

impl PartialEq for Observer {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for Observer {}
