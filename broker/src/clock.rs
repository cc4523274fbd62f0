//! Wall-clock time in Unix milliseconds, for record timestamps and
//! retention by age; and [`AtomicInstant`], a monotonic instant that one
//! thread stores and others read without a lock (for stage timings).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonic instant in an atomic: nanoseconds since a process-wide
/// anchor (the first use), so a store is one relaxed write. For timings
/// only: readers may see a slightly older value than the latest store.
#[derive(Debug)]
pub struct AtomicInstant(AtomicU64);

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

impl AtomicInstant {
    /// Holding the current instant.
    pub fn now() -> AtomicInstant {
        let a = AtomicInstant(AtomicU64::new(0));
        a.store_now();
        a
    }

    /// Stores the current instant.
    pub fn store_now(&self) {
        let nanos = u64::try_from(anchor().elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.store(nanos, Ordering::Relaxed);
    }

    /// The instant last stored.
    pub fn load(&self) -> Instant {
        anchor() + Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
