//! The one home of the log's size and age limits (segments and retention),
//! and the check every entry point runs: the broker config (file,
//! environment, flags), `CreateTopic`/`AlterTopic` settings, a topic's stored
//! `topic.json` and [`PartitionLog::open`](super::PartitionLog::open) /
//! `set_config`. An out-of-range value is refused with an error naming the
//! key, the value and the allowed range; nothing is clamped.
//!
//! Names carry their unit last (`segment_bytes_max`); each says why its
//! number is what it is, and how they relate is checked at compile time.

use skiff_protocol::batch::BATCH_BYTES_MAX;

/// Smallest segment size, in bytes: 1 KiB. Room for a batch header and a
/// few small records, so tests (and tiny deployments) can force rolls with
/// tiny segments; any smaller and nearly every append would roll, each roll
/// costing an fsync, a directory fsync and three new files.
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Default segment size, in bytes: 1 GiB, Kafka's default; large enough
/// that rolls and per-segment files are rare, small enough that retention
/// (which deletes whole segments) frees space in reasonable steps.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Largest segment size, in bytes: 2 GiB. Index positions are `u32`, and a
/// segment may overshoot its size by one batch (at most
/// [`BATCH_BYTES_MAX`], 16 MiB); 2 GiB keeps every position in range.
pub const SEGMENT_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// Largest `segment_ms`, `retention_ms`, in milliseconds: record timestamps
/// are `i64` milliseconds, so an age beyond `i64::MAX` cannot be compared
/// with them (about 292 million years: "forever" is spelled unset).
pub const AGE_MS_MAX: u64 = i64::MAX as u64;
/// Smallest `segment_ms`, `retention_ms`, in milliseconds: 0, allowed (an
/// age of 0 rolls, or deletes, every closed segment at each check: a way to
/// empty a topic).
pub const AGE_MS_MIN: u64 = 0;

/// `retention_bytes` has no bound: 0 keeps only the active segment, and any
/// `u64` is a meaningful partition size.
pub const RETENTION_BYTES_MAX: u64 = u64::MAX;

const _: () = assert!(SEGMENT_BYTES_MAX + BATCH_BYTES_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(
    SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT && SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX
);

/// A setting outside its allowed range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value} is out of range: allowed {min}..={max}")]
pub struct LimitError {
    /// The setting's key (`segment_bytes`, `retention_ms`, ..).
    pub key: &'static str,
    /// The value refused.
    pub value: u64,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
}

/// Checks `value` of `key` against `min..=max`.
pub fn check(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), LimitError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(LimitError {
            key,
            value,
            min,
            max,
        })
    }
}

/// The segment and retention settings as every entry point carries them
/// (`None`: unset, or left at the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogLimits {
    /// `segment_bytes`.
    pub segment_bytes: Option<u64>,
    /// `segment_ms`.
    pub segment_ms: Option<u64>,
    /// `retention_bytes`.
    pub retention_bytes: Option<u64>,
    /// `retention_ms`.
    pub retention_ms: Option<u64>,
}

impl LogLimits {
    /// Refuses the first setting out of its range.
    pub fn check(&self) -> Result<(), LimitError> {
        let opt = |key, v: Option<u64>, min, max| v.map_or(Ok(()), |v| check(key, v, min, max));
        opt(
            "segment_bytes",
            self.segment_bytes,
            SEGMENT_BYTES_MIN,
            SEGMENT_BYTES_MAX,
        )?;
        opt("segment_ms", self.segment_ms, AGE_MS_MIN, AGE_MS_MAX)?;
        opt(
            "retention_bytes",
            self.retention_bytes,
            0,
            RETENTION_BYTES_MAX,
        )?;
        opt("retention_ms", self.retention_ms, AGE_MS_MIN, AGE_MS_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_error_names_key_value_and_range() {
        let ok = LogLimits {
            segment_bytes: Some(SEGMENT_BYTES_MIN),
            segment_ms: Some(AGE_MS_MAX),
            retention_bytes: Some(0),
            retention_ms: Some(AGE_MS_MIN),
        };
        assert_eq!(ok.check(), Ok(()));
        let too_big = LogLimits {
            segment_bytes: Some(SEGMENT_BYTES_MAX + 1),
            ..LogLimits::default()
        };
        let err = too_big.check().unwrap_err().to_string();
        assert_eq!(
            err,
            "segment_bytes = 2147483649 is out of range: allowed 1024..=2147483648"
        );
        let beyond_i64 = LogLimits {
            retention_ms: Some(AGE_MS_MAX + 1),
            ..LogLimits::default()
        };
        assert_eq!(beyond_i64.check().unwrap_err().key, "retention_ms");
    }
}
