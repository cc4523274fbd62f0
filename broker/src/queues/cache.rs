//! Decoded records of a queue's partitions, so a batch is decoded once: the
//! window fill reads and decodes whole batches of the log and keeps every
//! record here, those beyond the window's room for the next fills; the
//! receive that hands records out takes them from here instead of reading
//! and decoding the log again.
//!
//! Invariants:
//! - A cached record is the log's record at its offset (records are
//!   immutable once appended); a miss is always answered from the log, so
//!   the cache changes only the cost of a receive, never its result.
//! - A record leaves the cache when it is handed out (a redelivery reads
//!   the log) or when retention passes it ([`RecordCache::retain`]).
//! - A fill takes only a run of consecutive cached offsets from the
//!   window's end, so a record missing from the cache (not inserted past
//!   the limit) is read from the log, never skipped.
//! - The cache holds at most [`QUEUE_RECORD_CACHE_BYTES_MAX`] accounted
//!   bytes per queue; past that, fills keep records in the window without
//!   caching them.

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_protocol::batch::DecodedRecord;

/// Accounted bytes of decoded records one queue keeps, at most. A default
/// window of 10,000 records of 100 bytes accounts for about 2 MiB
/// (payload plus [`RECORD_OVERHEAD_BYTES`]); 16 MiB leaves room for larger
/// records or several partitions, while bounding memory per queue.
pub const QUEUE_RECORD_CACHE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes accounted per record besides its key, value and headers: the
/// record struct, its map entry and its share of the read buffer's
/// bookkeeping.
const RECORD_OVERHEAD_BYTES: usize = 128;

fn cost(record: &DecodedRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.len())
        .sum();
    RECORD_OVERHEAD_BYTES
        + record.key.as_ref().map_or(0, |k| k.len())
        + record.value.len()
        + headers
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct RecordCache {
    records: BTreeMap<(u32, u64), DecodedRecord>,
    bytes: usize,
}

impl RecordCache {
    /// Keeps `records` of `partition` while the cache has room.
    pub fn insert(&mut self, partition: u32, records: impl IntoIterator<Item = DecodedRecord>) {
        for record in records {
            let bytes = cost(&record);
            if self.bytes + bytes > QUEUE_RECORD_CACHE_BYTES_MAX {
                break;
            }
            if let Some(old) = self.records.insert((partition, record.offset), record) {
                self.bytes -= cost(&old);
            }
            self.bytes += bytes;
        }
    }

    /// Takes the records of `partition` at `offsets` out of the cache: the
    /// ones found, and the offsets not found (in the order given).
    pub fn take(&mut self, partition: u32, offsets: &[u64]) -> (Vec<DecodedRecord>, Vec<u64>) {
        let mut found = Vec::with_capacity(offsets.len());
        let mut missing = Vec::new();
        for &offset in offsets {
            match self.records.remove(&(partition, offset)) {
                Some(record) => {
                    self.bytes -= cost(&record);
                    found.push(record);
                }
                None => missing.push(offset),
            }
        }
        (found, missing)
    }

    /// Offsets and keys of the run of `partition`'s cached records from
    /// `from` on, consecutive offsets only, at most `max`.
    pub fn run_from(&self, partition: u32, from: u64, max: usize) -> Vec<(u64, Option<Bytes>)> {
        let mut run = Vec::new();
        let mut expect = from;
        for (&(_, offset), record) in self.records.range((partition, from)..(partition, u64::MAX)) {
            if offset != expect || run.len() >= max {
                break;
            }
            run.push((offset, record.key.clone()));
            expect = offset + 1;
        }
        run
    }

    /// Drops `partition`'s records below `log_start` (retention passed
    /// them).
    pub fn retain(&mut self, partition: u32, log_start: u64) {
        let gone: Vec<(u32, u64)> = self
            .records
            .range((partition, 0)..(partition, log_start))
            .map(|(&k, _)| k)
            .collect();
        for k in gone {
            if let Some(record) = self.records.remove(&k) {
                self.bytes -= cost(&record);
            }
        }
    }

    /// Drops every record (the queue's topic was deleted: a topic created
    /// again under its name reuses the offsets with other records).
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }

    /// Accounted bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, value_bytes: usize) -> DecodedRecord {
        DecodedRecord {
            offset,
            timestamp_ms: 0,
            key: None,
            value: Bytes::from(vec![b'x'; value_bytes]),
            headers: Vec::new(),
        }
    }

    #[test]
    fn takes_what_was_inserted_once_and_reports_misses() {
        let mut cache = RecordCache::default();
        cache.insert(0, (10..20).map(|o| record(o, 100)));
        cache.insert(1, [record(10, 100)]);
        assert_eq!(cache.len(), 11);
        let (found, missing) = cache.take(0, &[9, 10, 15, 25]);
        assert_eq!(found.iter().map(|r| r.offset).collect::<Vec<_>>(), [10, 15]);
        assert_eq!(missing, [9, 25]);
        // Taken once: a second take misses.
        let (found, missing) = cache.take(0, &[10]);
        assert!(found.is_empty());
        assert_eq!(missing, [10]);
        assert_eq!(cache.len(), 9);
        assert_eq!(cache.bytes(), 9 * (RECORD_OVERHEAD_BYTES + 100));
    }

    #[test]
    fn a_run_stops_at_a_gap_or_its_maximum() {
        let mut cache = RecordCache::default();
        cache.insert(0, (10..20).filter(|&o| o != 15).map(|o| record(o, 1)));
        cache.insert(1, [record(20, 1)]);
        let offsets =
            |run: Vec<(u64, Option<Bytes>)>| run.into_iter().map(|(o, _)| o).collect::<Vec<_>>();
        assert_eq!(offsets(cache.run_from(0, 10, 100)), [10, 11, 12, 13, 14]);
        assert_eq!(offsets(cache.run_from(0, 12, 2)), [12, 13]);
        assert_eq!(offsets(cache.run_from(0, 16, 100)), [16, 17, 18, 19]);
        assert!(cache.run_from(0, 9, 100).is_empty());
        assert!(
            cache.run_from(0, 20, 100).is_empty(),
            "partition 1's record is not partition 0's"
        );
    }

    #[test]
    fn clear_forgets_every_record_and_its_bytes() {
        let mut cache = RecordCache::default();
        cache.insert(0, (0..10).map(|o| record(o, 100)));
        assert!(cache.bytes() > 0);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
        assert!(cache.run_from(0, 0, 100).is_empty());
    }

    #[test]
    fn retention_drops_only_its_partition_below_the_start() {
        let mut cache = RecordCache::default();
        cache.insert(0, (0..10).map(|o| record(o, 1)));
        cache.insert(1, (0..10).map(|o| record(o, 1)));
        cache.retain(0, 5);
        assert_eq!(cache.len(), 15);
        assert_eq!(cache.take(0, &[4, 5]).1, [4]);
        assert_eq!(cache.take(1, &[4]).1, Vec::<u64>::new());
    }

    #[test]
    fn stays_within_its_byte_limit_and_replacing_keeps_the_count() {
        let mut cache = RecordCache::default();
        let big = QUEUE_RECORD_CACHE_BYTES_MAX / 4;
        cache.insert(0, (0..10).map(|o| record(o, big)));
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= QUEUE_RECORD_CACHE_BYTES_MAX);
        let before = cache.bytes();
        cache.insert(0, [record(1, big)]);
        assert_eq!((cache.len(), cache.bytes()), (3, before));
        cache.take(0, &[0, 1, 2]);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }
}
