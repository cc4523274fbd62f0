//! Helpers shared by the partition-log tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use skiff_broker::log::{Durability, LogConfig, PartitionLog, RecoveryReport};
use skiff_protocol::batch::{BatchBuilder, BatchIter, DecodedRecord, Record, decode_records};

/// A batch of `records` records whose values are `"<tag>:<i>"` padded to
/// `value_bytes`, all with timestamp `ts`.
pub fn batch(tag: u64, records: usize, value_bytes: usize, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        let mut v = format!("{tag}:{i}").into_bytes();
        v.resize(value_bytes.max(v.len()), b'.');
        b.push(Record {
            timestamp_ms: ts,
            key: Some(Bytes::from(format!("k{tag}"))),
            value: Bytes::from(v),
            headers: vec![],
        });
    }
    b.build()
}

/// The tag a batch made by [`batch`] carries in its first record.
pub fn tag_of(record: &DecodedRecord) -> u64 {
    let s = std::str::from_utf8(&record.value).expect("utf8 value");
    s.split(':')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("tagged value")
}

/// Small segments and a fine index so tests exercise rolls and lookups.
pub fn small_config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        durability,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(dir, config).expect("open log")
}

/// Every record from the log start to the visible end, in order, reading
/// with `max_bytes` per call.
pub fn read_all(log: &PartitionLog, max_bytes: usize) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, max_bytes).expect("read");
        assert!(
            !chunk.is_empty(),
            "empty read at {offset} below end {}",
            log.log_end_offset()
        );
        for b in BatchIter::new(chunk) {
            let b = b.expect("whole batch");
            for r in decode_records(&b).expect("valid batch") {
                if r.offset >= offset {
                    out.push(r);
                }
            }
        }
        offset = out.last().map(|r| r.offset + 1).expect("progress");
    }
    out
}

/// Paths of the segment files of `ext`, oldest first.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    v
}
