//! The partition log: an append-only, segmented, checksummed log on disk that
//! never loses an acknowledged batch and never serves a corrupt one.
//!
//! A partition is a directory of segments named by their base offset
//! (`00000000000000000000.log`), each with a sparse offset index (`.index`)
//! and time index (`.timeindex`), memory-mapped. Producer batches are stored
//! as they arrive (the format is `skiff_protocol::batch`); the log only stamps
//! the base offset, which the CRC does not cover.
//!
//! - [`partition`]: `PartitionLog`, group commit (one committer per log at a
//!   time, answering tickets), reads. `linger`: when the committer waits
//!   for more appends before writing a group.
//! - [`segment`], [`index`], [`mmap`]: one segment's files; all `unsafe`
//!   memory-map code is in `mmap` with its safety contract (the one other
//!   `unsafe` of the log, the `preadv2` call of cached-only reads, is in
//!   `segment`).
//! - [`recovery`]: clean-shutdown marker, tail scan and truncation, index
//!   rebuild. [`retention`]: which segments go.
//! - [`durability`]: the fsync policy and what each mode can lose.
//! - `producers`: idempotent-producer sequences per partition (checked in
//!   the commit critical section, rebuilt on open). `faults`: storage fault
//!   injection hooks for the log's own tests.
//!
//! Every method but `PartitionLog::submit`, `PartitionLog::try_read_cached`
//! (page cache only, `RWF_NOWAIT`, the newest segment only, never waiting
//! for a lock held across I/O) and `AppendTicket::outcome` does
//! blocking disk I/O: the server calls them inside
//! `tokio::task::spawn_blocking`, never on an async worker thread. One broker
//! process owns a partition directory at a time.

pub mod durability;
pub mod error;
mod faults;
#[cfg(test)]
pub(crate) use faults::{evict_cached_reads, evicted_reads_left};
mod index;
mod linger;
mod mmap;
pub mod partition;
mod producers;
pub mod recovery;
mod retention;
mod segment;

use std::path::Path;

pub use durability::{Durability, ParseDurabilityError};
pub use error::LogError;
pub use partition::{AppendInfo, AppendTicket, Committer, LogStats, PartitionLog};
pub use producers::{PRODUCER_BATCHES_REMEMBERED, PRODUCERS_PER_PARTITION_MAX_DEFAULT};
pub use recovery::{CLEAN_SHUTDOWN_MARKER, RecoveryReport};

/// Default segment size: 1 GiB, Kafka's default; large enough that rolls and
/// per-segment files are rare, small enough that retention is fine-grained.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Largest segment size: index positions are u32, and a segment may overshoot
/// its size by one batch (<= 16 MiB); 2 GiB keeps every position in range.
pub const SEGMENT_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;
/// Smallest segment size (tests use tiny segments to force rolls).
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Default bytes of log between two index entries (Kafka's default).
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Default cap on one read: 16 MiB, the largest batch, so the "at least one
/// whole batch" rule never exceeds it.
pub const READ_BYTES_MAX_DEFAULT: usize = skiff_protocol::batch::BATCH_BYTES_MAX;

const _: () =
    assert!(SEGMENT_BYTES_MAX + skiff_protocol::batch::BATCH_BYTES_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(
    SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT && SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX
);

/// Settings of one partition log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this many
    /// bytes (clamped to `SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX`).
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch timestamp is this old:
    /// on append, measured against the incoming batch's max timestamp (as
    /// Kafka does); in `enforce_retention`, against its `now_ms`.
    pub segment_ms: Option<u64>,
    /// Delete the oldest segments while the rest still hold this many bytes.
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest batch timestamp is older than this.
    pub retention_ms: Option<u64>,
    /// When appends are acknowledged; see [`Durability`].
    pub durability: Durability,
    /// Bytes of log between two index entries (at least 1).
    pub index_interval_bytes: u32,
    /// Cap on the bytes one `read` returns (one whole batch is always
    /// returned, even if larger).
    pub read_bytes_max: usize,
    /// Idempotent producers remembered (at least 1); see
    /// [`PRODUCERS_PER_PARTITION_MAX_DEFAULT`].
    pub producers_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: None,
            retention_bytes: None,
            retention_ms: None,
            durability: Durability::Always,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            read_bytes_max: READ_BYTES_MAX_DEFAULT,
            producers_max: PRODUCERS_PER_PARTITION_MAX_DEFAULT,
        }
    }
}

impl LogConfig {
    /// The config with every limit clamped into its allowed range.
    fn sanitized(mut self) -> LogConfig {
        self.segment_bytes = self
            .segment_bytes
            .clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        self.index_interval_bytes = self.index_interval_bytes.max(1);
        self.read_bytes_max = self.read_bytes_max.max(1);
        self
    }
}

/// Fsyncs a directory so creating, renaming or deleting its entries is
/// durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    faults::on_dir_sync()
        .and_then(|()| crate::fsutil::sync_dir(dir))
        .map_err(|e| LogError::io("fsync directory", dir, e))
}
