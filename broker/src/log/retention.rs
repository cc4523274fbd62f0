//! Which old segments retention deletes.
//!
//! Pure policy, no I/O, so it is tested on its own; `PartitionLog::
//! enforce_retention` applies it. Invariants: only whole segments go, oldest
//! first, never the active (last) segment; a segment goes by size only while
//! what remains still holds at least `retention_bytes`, and by time only when
//! its newest batch timestamp is older than `now - retention_ms`.

/// What retention needs to know about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentStats {
    /// Bytes of the segment file.
    pub size_bytes: u64,
    /// Largest batch timestamp in it (`i64::MIN` when empty).
    pub max_timestamp_ms: i64,
}

/// How many segments, from the oldest, to delete. `segments` is ordered by
/// base offset and its last element is the active segment, which is never
/// counted.
pub(crate) fn segments_to_delete(
    segments: &[SegmentStats],
    retention_bytes: Option<u64>,
    retention_ms: Option<u64>,
    now_ms: i64,
) -> usize {
    let deletable = segments.len().saturating_sub(1);
    let mut total: u64 = segments.iter().map(|s| s.size_bytes).sum();
    let cutoff =
        retention_ms.map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
    let mut n = 0;
    while n < deletable {
        let s = segments[n];
        let by_size = retention_bytes.is_some_and(|max| total - s.size_bytes >= max && total > max);
        let by_time = cutoff.is_some_and(|cutoff| s.max_timestamp_ms < cutoff);
        if !(by_size || by_time) {
            break;
        }
        total -= s.size_bytes;
        n += 1;
    }
    n
}

/// True when the active segment should roll because its first batch is
/// `segment_ms` old.
pub(crate) fn roll_due(
    first_batch_timestamp_ms: i64,
    segment_ms: Option<u64>,
    now_ms: i64,
) -> bool {
    match segment_ms {
        Some(ms) if first_batch_timestamp_ms != i64::MIN => {
            now_ms.saturating_sub(first_batch_timestamp_ms) >= i64::try_from(ms).unwrap_or(i64::MAX)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(size: u64, ts: i64) -> SegmentStats {
        SegmentStats {
            size_bytes: size,
            max_timestamp_ms: ts,
        }
    }

    #[test]
    fn by_size_keeps_at_least_the_limit() {
        let segs = [s(100, 0), s(100, 0), s(100, 0), s(50, 0)];
        assert_eq!(segments_to_delete(&segs, Some(150), None, 0), 2);
        assert_eq!(segments_to_delete(&segs, Some(250), None, 0), 1);
        assert_eq!(segments_to_delete(&segs, Some(350), None, 0), 0);
        assert_eq!(
            segments_to_delete(&segs, Some(0), None, 0),
            3,
            "never the active segment"
        );
        assert_eq!(segments_to_delete(&segs, None, None, 0), 0);
    }

    #[test]
    fn by_time_stops_at_first_young_segment() {
        let segs = [s(1, 10), s(1, 50), s(1, 20), s(1, 5)];
        assert_eq!(segments_to_delete(&segs, None, Some(100), 140), 1);
        assert_eq!(segments_to_delete(&segs, None, Some(100), 1_000), 3);
        assert_eq!(segments_to_delete(&segs, None, Some(100), 0), 0);
    }

    #[test]
    fn roll_by_age() {
        assert!(roll_due(1_000, Some(500), 1_500));
        assert!(!roll_due(1_000, Some(500), 1_499));
        assert!(
            !roll_due(i64::MIN, Some(500), 1_500),
            "empty segment never rolls"
        );
        assert!(!roll_due(1_000, None, i64::MAX));
    }
}
