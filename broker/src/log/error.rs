//! Errors of the partition log.
//!
//! Every variant names what failed and where (segment path, byte position,
//! offsets) so an operator can act on the message alone. `Io` and
//! `StorageFull` carry the OS error; a disk-full condition is its own variant
//! because it is transient and maps to a distinct protocol error code.

use std::io;
use std::path::PathBuf;

use skiff_protocol::batch::BatchError;

/// Why a partition-log operation failed.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum LogError {
    /// The batch given to `append` was refused; nothing was written.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The requested offset is outside the log's `[start, end]` range.
    #[error("offset {offset} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Log start offset (oldest readable offset).
        start: u64,
        /// Visible log end offset (next offset to be assigned).
        end: u64,
    },
    /// Data on disk failed its length, CRC or offset check; it is never
    /// served.
    #[error("corrupt data in segment {} at byte {position}", segment.display())]
    Corrupt {
        /// The segment file holding the bad bytes.
        segment: PathBuf,
        /// Byte position of the bad batch in that file.
        position: u64,
    },
    /// The disk (or the quota) is full. The append failed and nothing of it is
    /// visible; appends work again once space is freed.
    #[error("storage full writing {}: {source}", path.display())]
    StorageFull {
        /// The file being written.
        path: PathBuf,
        /// The OS error (ENOSPC or EDQUOT).
        source: io::Error,
    },
    /// Any other I/O error.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "fdatasync", "open segment", ..).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The log was closed; it accepts no more appends.
    #[error("the partition log is closed")]
    Closed,
    /// An idempotent producer's batch does not continue its sequence (a gap
    /// or a reorder); nothing was written.
    #[error("out-of-order sequence from producer {producer_id}: expected {}, got {got}", expected.map_or_else(|| "a sequence below 2^31".to_owned(), |e| e.to_string()))]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: u64,
        /// The sequence the partition expects next (None: no valid one).
        expected: Option<u32>,
        /// The batch's base sequence.
        got: u32,
    },
    /// An idempotent producer's batch repeats a sequence older than the
    /// batches remembered per producer; it was stored before, at offsets no
    /// longer known. Nothing was written.
    #[error(
        "duplicate sequence {sequence} from producer {producer_id} (last stored {last}) is older than the remembered batches"
    )]
    DuplicateSequence {
        /// The producer id.
        producer_id: u64,
        /// The batch's base sequence.
        sequence: u32,
        /// The producer's last stored sequence.
        last: u32,
    },
    /// The batch's producer epoch is older than one this partition stored.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        /// The producer id.
        producer_id: u64,
        /// The batch's epoch.
        epoch: u16,
        /// The newest epoch stored.
        current: u16,
    },
    /// A setting is out of its allowed range (see `log::limits`); nothing
    /// was opened or changed.
    #[error("invalid log config: {0}")]
    InvalidConfig(#[from] super::limits::LimitError),
    /// The partition directory holds something the log cannot interpret
    /// (for example a segment file name that is not a 20-digit offset).
    #[error("bad partition directory {}: {reason}", path.display())]
    BadDirectory {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl LogError {
    /// Builds the error for a failed I/O call, classifying disk-full errors.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        let path = path.into();
        if is_storage_full(&source) {
            LogError::StorageFull { path, source }
        } else {
            LogError::Io { op, path, source }
        }
    }

    /// A copy of this error for every append of a failed commit group
    /// (`io::Error` is not `Clone`, so the OS error is re-created from its
    /// kind and message).
    pub(crate) fn duplicate(&self) -> LogError {
        fn dup(e: &io::Error) -> io::Error {
            match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            }
        }
        match self {
            LogError::InvalidBatch(e) => LogError::InvalidBatch(e.clone()),
            LogError::OffsetOutOfRange { offset, start, end } => LogError::OffsetOutOfRange {
                offset: *offset,
                start: *start,
                end: *end,
            },
            LogError::Corrupt { segment, position } => LogError::Corrupt {
                segment: segment.clone(),
                position: *position,
            },
            LogError::StorageFull { path, source } => LogError::StorageFull {
                path: path.clone(),
                source: dup(source),
            },
            LogError::Io { op, path, source } => LogError::Io {
                op,
                path: path.clone(),
                source: dup(source),
            },
            LogError::Closed => LogError::Closed,
            LogError::OutOfOrderSequence {
                producer_id,
                expected,
                got,
            } => LogError::OutOfOrderSequence {
                producer_id: *producer_id,
                expected: *expected,
                got: *got,
            },
            LogError::DuplicateSequence {
                producer_id,
                sequence,
                last,
            } => LogError::DuplicateSequence {
                producer_id: *producer_id,
                sequence: *sequence,
                last: *last,
            },
            LogError::ProducerFenced {
                producer_id,
                epoch,
                current,
            } => LogError::ProducerFenced {
                producer_id: *producer_id,
                epoch: *epoch,
                current: *current,
            },
            LogError::BadDirectory { path, reason } => LogError::BadDirectory {
                path: path.clone(),
                reason: reason.clone(),
            },
            LogError::InvalidConfig(e) => LogError::InvalidConfig(e.clone()),
        }
    }
}

/// True for "no space left on device" and "disk quota exceeded".
pub(crate) fn is_storage_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
        || e.kind() == io::ErrorKind::StorageFull
}
