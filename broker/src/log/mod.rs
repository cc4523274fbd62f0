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
//! - `runway`: zeros laid ahead of the active segment's batches under
//!   `fsync = always`, so a group's fdatasync flushes data only.
//! - [`recovery`]: clean-shutdown marker, tail scan and truncation, index
//!   rebuild. [`retention`]: which segments go.
//! - [`durability`]: the fsync policy and what each mode can lose.
//! - [`observer`]: how the log reports fsync timings to whoever listens
//!   (the broker's telemetry), without calling a metrics API itself.
//! - [`limits`]: the one home of segment and retention limits, and the
//!   check that refuses out-of-range settings at every entry point.
//! - `producers`: idempotent-producer sequences per partition (checked in
//!   the commit critical section, rebuilt on open). `faults`: storage fault
//!   injection hooks for the log's tests (public with the `testing`
//!   feature, compiled away without it and outside `cfg(test)`).
//!
//! Every method but `PartitionLog::submit`, `PartitionLog::try_read_cached`
//! (page cache only, `RWF_NOWAIT`, the newest segment only, never waiting
//! for a lock held across I/O), `PartitionLog::try_commit_inline` (a small
//! page-cache write under `fsync = never` when no roll is due, never waiting for a lock
//! held across I/O) and `AppendTicket::outcome` does
//! blocking disk I/O: the server calls them inside
//! `tokio::task::spawn_blocking`, never on an async worker thread. One broker
//! process owns a partition directory at a time.

pub mod durability;
pub mod error;
#[cfg(feature = "testing")]
pub mod faults;
#[cfg(not(feature = "testing"))]
mod faults;
pub mod limits;
#[cfg(test)]
pub(crate) use faults::{evict_cached_reads, evicted_reads_left};
mod index;
mod linger;
mod mmap;
pub mod observer;
pub mod partition;
mod producers;
pub mod recovery;
mod retention;
mod runway;
mod segment;

use std::path::Path;

pub use durability::{Durability, ParseDurabilityError};
pub use error::LogError;
pub use limits::{
    LimitError, LogLimits, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
pub use observer::{LogObserver, Observer};
pub use partition::{AppendInfo, AppendTicket, Committer, LogStats, PartitionLog};
pub use producers::{PRODUCER_BATCHES_REMEMBERED, PRODUCERS_PER_PARTITION_MAX_DEFAULT};
pub use recovery::{CLEAN_SHUTDOWN_MARKER, RecoveryReport};

/// Default bytes of log between two index entries (Kafka's default).
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Default cap on one read: 16 MiB, the largest batch, so the "at least one
/// whole batch" rule never exceeds it.
pub const READ_BYTES_MAX_DEFAULT: usize = skiff_protocol::batch::BATCH_BYTES_MAX;

/// Settings of one partition log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this many
    /// bytes (`SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX`, else refused).
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
    /// Who is told about write-path timings (fdatasync durations); none by
    /// default. See [`observer`].
    pub observer: Observer,
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
            observer: Observer::default(),
        }
    }
}

impl LogConfig {
    /// Refuses the first setting out of its range (see [`limits`]): the log
    /// never clamps a value it was given.
    pub fn validate(&self) -> Result<(), LimitError> {
        LogLimits {
            segment_bytes: Some(self.segment_bytes),
            segment_ms: self.segment_ms,
            retention_bytes: self.retention_bytes,
            retention_ms: self.retention_ms,
        }
        .check()?;
        limits::check(
            "index_interval_bytes",
            u64::from(self.index_interval_bytes),
            1,
            u64::from(u32::MAX),
        )?;
        let usize_max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
        let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        limits::check("read_bytes_max", as_u64(self.read_bytes_max), 1, usize_max)?;
        limits::check("producers_max", as_u64(self.producers_max), 1, usize_max)
    }
}

/// Fsyncs a directory so creating, renaming or deleting its entries is
/// durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    faults::on_dir_sync()
        .and_then(|()| crate::fsio::sync_dir(dir))
        .map_err(|e| LogError::io("fsync directory", dir, e))
}
