//! Partition log: idempotent-producer deduplication, and its state surviving
//! a reopen without close (crash), rolls and a clean close.

mod log_support;

use bytes::Bytes;
use log_support::*;
use skiff_broker::log::{Durability, LogError, PartitionLog};
use skiff_protocol::batch::{BatchBuilder, Record, next_sequence};

fn pbatch(pid: u64, seq: u32, records: usize, value_bytes: usize) -> Bytes {
    let mut b = BatchBuilder::new().with_producer(pid, 0, seq);
    for i in 0..records {
        b.push(Record {
            timestamp_ms: 1_000,
            key: None,
            value: Bytes::from(vec![b'a' + (i % 26) as u8; value_bytes]),
            headers: vec![],
        });
    }
    b.build()
}

#[test]
fn retry_gets_original_offsets_and_gaps_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let first = log.append(pbatch(1, 0, 3, 10)).expect("append");
    let second = log.append(pbatch(1, 3, 2, 10)).expect("append");
    assert_eq!(log.append(pbatch(1, 0, 3, 10)).expect("retry"), first);
    assert_eq!(log.append(pbatch(1, 3, 2, 10)).expect("retry"), second);
    assert_eq!(log.log_end_offset(), 5, "retries wrote nothing");
    let gap = log.append(pbatch(1, 9, 1, 10));
    assert!(
        matches!(
            gap,
            Err(LogError::OutOfOrderSequence {
                expected: Some(5),
                got: 9,
                ..
            })
        ),
        "{gap:?}"
    );
    // Other producers and non-idempotent batches are independent.
    assert_eq!(log.append(pbatch(2, 0, 1, 10)).expect("p2").base_offset, 5);
    assert_eq!(
        log.append(batch(7, 1, 10, 1_000))
            .expect("plain")
            .base_offset,
        6
    );
}

#[test]
fn state_survives_crash_rolls_and_clean_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut infos = Vec::new();
    let mut seq = 0;
    {
        let (log, _) = open(dir.path(), small_config(Durability::Always));
        // Many rolls (8 KiB segments, ~1 KiB batches).
        for _ in 0..40 {
            infos.push((seq, log.append(pbatch(9, seq, 4, 250)).expect("append")));
            seq = next_sequence(seq, 4);
        }
        assert!(log.segment_base_offsets().len() > 3);
        // Dropped without close: a crash as far as the files are concerned.
    }
    let (log, report) = open(dir.path(), small_config(Durability::Always));
    assert!(!report.clean);
    let end = log.log_end_offset();
    // The last batch (active segment) and one from before the last roll
    // (snapshot) are both still known... only the last 5 per producer are
    // remembered, so retry the last one.
    let (last_seq, last_info) = infos[infos.len() - 1];
    assert_eq!(
        log.append(pbatch(9, last_seq, 4, 250)).expect("retry"),
        last_info
    );
    assert_eq!(log.log_end_offset(), end);
    let next = log.append(pbatch(9, seq, 4, 250)).expect("next");
    assert_eq!(next.base_offset, end);
    seq = next_sequence(seq, 4);
    assert!(
        log.append(pbatch(9, seq + 4, 4, 250)).is_err(),
        "gap refused after recovery"
    );
    log.close().expect("close");
    drop(log);
    let (log, report) = open(dir.path(), small_config(Durability::Always));
    assert!(report.clean);
    assert_eq!(log.append(pbatch(9, seq - 4, 4, 250)).expect("retry"), next);
    assert_eq!(
        log.append(pbatch(9, seq, 4, 250))
            .expect("next")
            .base_offset,
        end + 4
    );
}

#[test]
fn concurrent_producers_keep_sequence_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let log: std::sync::Arc<PartitionLog> = std::sync::Arc::new(log);
    let threads: Vec<_> = (0..4u64)
        .map(|pid| {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                let mut seq = 0;
                for _ in 0..50 {
                    let b = pbatch(pid, seq, 2, 20);
                    let a = log.append(b.clone()).expect("append");
                    assert_eq!(log.append(b).expect("retry"), a);
                    seq = next_sequence(seq, 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(log.log_end_offset(), 4 * 50 * 2);
}

#[test]
fn state_survives_a_crash_after_a_clean_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a_info;
    {
        let (log, _) = open(dir.path(), small_config(Durability::Always));
        a_info = log.append(pbatch(1, 0, 2, 250)).expect("a");
        // Roll past producer 1's batch.
        for i in 0..20 {
            log.append(pbatch(2, i * 4, 4, 250)).expect("filler");
        }
        assert!(log.segment_base_offsets().len() > 1);
        log.close().expect("close");
    }
    {
        let (log, report) = open(dir.path(), small_config(Durability::Always));
        assert!(report.clean);
        log.append(pbatch(3, 0, 1, 10)).expect("after restart");
        // Dropped without close: a crash.
    }
    let (log, report) = open(dir.path(), small_config(Durability::Always));
    assert!(!report.clean);
    let end = log.log_end_offset();
    assert_eq!(log.append(pbatch(1, 0, 2, 250)).expect("retry"), a_info);
    assert_eq!(log.log_end_offset(), end, "the retry wrote nothing");
}
