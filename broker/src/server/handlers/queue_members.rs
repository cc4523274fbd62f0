//! The queue members of one connection, and the release of their locks
//! when the connection ends.
//!
//! A worker that dies or loses its connection should not keep its records
//! locked until their lock time runs out (which may be minutes): every
//! member id a connection receives with is noted here, and when the
//! connection closes or breaks, every lock those members hold is released
//! (available again at once, delivery count kept, or dead-lettered if that
//! was the last allowed delivery), as a nack with no delay would.
//!
//! Invariants:
//! - The release runs only once no request of the connection is in flight
//!   (the caller holds every in-flight permit), so a receive that was
//!   running when the connection closed cannot hand out records after the
//!   release; waiting receives end early on [`QueueMembers::closing`].
//! - At most [`QUEUE_MEMBERS_PER_CONNECTION_MAX`] members per connection:
//!   member ids come from the client, so the set is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use skiff_protocol::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::blocking;
use super::queues::sink;
use crate::server::Shared;
use crate::server::failure::Failure;

/// Most queue members (distinct queue and member id pairs) one connection
/// may receive as. A worker process is one member per queue; this leaves
/// room for many consumers sharing a connection while bounding what the
/// release at close has to do.
pub(crate) const QUEUE_MEMBERS_PER_CONNECTION_MAX: usize = 1024;

/// The queue members of one connection. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct QueueMembers {
    /// Member ids by queue name.
    held: Mutex<BTreeMap<String, BTreeSet<u64>>>,
    count: std::sync::atomic::AtomicUsize,
    closing: CancellationToken,
}

impl QueueMembers {
    /// Notes that `member` of `queue` receives on this connection; refused
    /// past [`QUEUE_MEMBERS_PER_CONNECTION_MAX`].
    pub(crate) fn note(&self, queue: &str, member: u64) -> Result<(), Failure> {
        let mut held = crate::poison::lock(&self.held);
        if held.get(queue).is_some_and(|m| m.contains(&member)) {
            return Ok(());
        }
        let count = self.count.load(std::sync::atomic::Ordering::Relaxed);
        if count >= QUEUE_MEMBERS_PER_CONNECTION_MAX {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                format!(
                    "this connection already receives as {count} queue members (QUEUE_MEMBERS_PER_CONNECTION_MAX = {QUEUE_MEMBERS_PER_CONNECTION_MAX}); reuse a member id"
                ),
            ));
        }
        held.entry(queue.to_owned()).or_default().insert(member);
        self.count
            .store(count + 1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether any member was noted.
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(std::sync::atomic::Ordering::Relaxed) == 0
    }

    /// Cancelled when the connection is closing: waiting receives answer
    /// at once (nobody will read the answer).
    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// Takes every noted member, by queue.
    fn take(&self) -> BTreeMap<String, BTreeSet<u64>> {
        self.count.store(0, std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *crate::poison::lock(&self.held))
    }
}

/// Releases every lock held by the members of a closed connection, then
/// dead-letters the records that ran out of deliveries. Call only once no
/// request of the connection is in flight. Returns how many partitions had
/// locks released.
pub(crate) async fn release_all(shared: Arc<Shared>, members: &QueueMembers) -> usize {
    let held = members.take();
    if held.is_empty() {
        return 0;
    }
    let released = blocking(move || {
        let now_ms = crate::clock::now_ms();
        let mut released = 0;
        for (name, ids) in held {
            // A queue deleted meanwhile has no locks left to release.
            let Some(queue) = shared.queues.get(&name) else {
                continue;
            };
            let mut partitions = Vec::new();
            for member in ids {
                for (p, pending) in queue.release_member(member, now_ms) {
                    if let Err(e) = pending.wait_blocking() {
                        tracing::warn!(queue = %name, partition = p, error = %e, "queue: releasing a closed connection's locks failed");
                    }
                    partitions.push(p);
                }
            }
            partitions.sort_unstable();
            partitions.dedup();
            released += partitions.len();
            let mut sink = sink(&shared.topics, &queue);
            for p in partitions {
                if let Err(e) = queue.dead_letter(p, &mut sink) {
                    tracing::warn!(queue = %name, partition = p, error = %e, "queue: dead-lettering failed; retried later");
                }
            }
        }
        Ok(released)
    })
    .await;
    released.unwrap_or_else(|f| {
        tracing::warn!(error = %f.message, "queue: releasing a closed connection's locks failed");
        0
    })
}
