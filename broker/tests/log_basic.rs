//! Partition log: appends, reads, rolls, timestamps, retention, concurrency.

mod log_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use log_support::*;
use skiff_broker::log::{Durability, LogConfig, LogError, PartitionLog};
use skiff_protocol::batch::{BatchHeader, BatchIter, decode_records};

#[test]
fn append_read_round_trip_with_contiguous_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert!(!report.clean);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let mut expected = 0;
    for tag in 0..200u64 {
        let records = 1 + (tag as usize % 7);
        let info = log
            .append(batch(tag, records, 40, 1_000 + tag as i64))
            .expect("append");
        assert_eq!(info.base_offset, expected);
        assert_eq!(info.last_offset, expected + records as u64 - 1);
        expected += records as u64;
    }
    assert_eq!(log.log_end_offset(), expected);
    assert!(
        log.segment_base_offsets().len() > 3,
        "small segments rolled"
    );
    for max in [1, 700, 5_000, 1 << 20] {
        let all = read_all(&log, max);
        assert_eq!(all.len() as u64, expected);
        assert!(all.iter().enumerate().all(|(i, r)| r.offset == i as u64));
    }
    // A read from the middle of a batch returns the whole containing batch.
    let chunk = log.read(2, 1).expect("read");
    let first = BatchIter::new(chunk).next().expect("one").expect("whole");
    let h = BatchHeader::parse(&first).expect("header");
    assert!(h.base_offset <= 2 && h.last_offset() >= 2);
    // End and out of range.
    assert!(log.read(expected, 100).expect("at end").is_empty());
    assert!(matches!(
        log.read(expected + 1, 100),
        Err(LogError::OffsetOutOfRange { offset, start: 0, end }) if offset == expected + 1 && end == expected
    ));
    // Reopen (unclean: no close) sees everything.
    drop(log);
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert!(!report.clean);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), expected);
    assert_eq!(read_all(&log, 3_000).len() as u64, expected);
}

#[test]
fn read_stops_at_max_bytes_on_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), LogConfig::default());
    let b = batch(1, 10, 100, 5);
    let len = b.len();
    for _ in 0..10 {
        log.append(b.clone()).expect("append");
    }
    let got = log.read(0, len * 3 + len / 2).expect("read");
    assert_eq!(got.len(), len * 3);
    assert_eq!(
        log.read(0, 0).expect("read").len(),
        len,
        "at least one batch"
    );
    log.set_config(LogConfig {
        read_bytes_max: len * 2,
        ..LogConfig::default()
    })
    .expect("valid config");
    assert_eq!(log.read(0, usize::MAX).expect("read").len(), len * 2);
}

#[test]
fn invalid_batch_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), LogConfig::default());
    log.append(batch(1, 3, 10, 0)).expect("append");
    let size = log.size_bytes();
    let good = batch(2, 3, 10, 0);
    let mut bad = good.to_vec();
    let n = bad.len();
    bad[n - 1] ^= 0x40;
    assert!(matches!(
        log.append(Bytes::from(bad)),
        Err(LogError::InvalidBatch(_))
    ));
    assert!(matches!(
        log.append(good.slice(..n - 3)),
        Err(LogError::InvalidBatch(_))
    ));
    assert!(matches!(
        log.append(Bytes::from_static(b"nonsense")),
        Err(LogError::InvalidBatch(_))
    ));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.append(good).expect("append").base_offset, 3);
    assert_eq!(read_all(&log, 1 << 20).len(), 6);
}

#[test]
fn concurrent_appenders_get_distinct_contiguous_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let log = Arc::new(log);
    let mut rx = log.watch_end();
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..25u64)
                    .map(|i| {
                        let tag = t * 1000 + i;
                        (tag, log.append(batch(tag, 3, 30, 0)).expect("append"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acks: Vec<_> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    acks.sort_by_key(|(_, info)| info.base_offset);
    let mut next = 0;
    for (_, info) in &acks {
        assert_eq!(info.base_offset, next, "contiguous");
        assert_eq!(info.last_offset, next + 2);
        next += 3;
    }
    assert_eq!(log.log_end_offset(), 16 * 25 * 3);
    let stats = log.stats();
    eprintln!("group commit: {stats:?}");
    assert_eq!(stats.appends, 16 * 25);
    assert!(stats.syncs <= stats.groups && stats.groups <= stats.appends);
    assert!(rx.has_changed().expect("sender alive"));
    assert_eq!(*rx.borrow_and_update(), 16 * 25 * 3);
    let records = read_all(&log, 1 << 16);
    for (tag, info) in &acks {
        assert_eq!(tag_of(&records[info.base_offset as usize]), *tag);
    }
}

/// The server's path: one task submits in order, a ticket that holds the
/// committer starts it on the blocking pool, and every outcome is awaited
/// concurrently without a thread per append. Offsets follow submit order,
/// across several idle periods (each of which hands the committer out anew
/// or lets the running one pick up the next submit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tickets_follow_submit_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let log = Arc::new(log);
    let mut expected = 0;
    for round in 0..3u64 {
        let mut waits = Vec::new();
        for i in 0..50u64 {
            let tag = round * 1000 + i;
            let mut ticket = log.submit(batch(tag, 2, 30, 0)).expect("submit");
            if let Some(committer) = ticket.take_committer() {
                let log = Arc::clone(&log);
                tokio::task::spawn_blocking(move || log.drive(committer));
            }
            waits.push(tokio::spawn(async move { (tag, ticket.outcome().await) }));
        }
        for wait in waits {
            let (tag, outcome) = wait.await.expect("task");
            let info = outcome.expect("append");
            assert_eq!(info.base_offset, expected, "batch {tag} in submit order");
            expected += 2;
        }
        assert_eq!(log.log_end_offset(), expected);
    }
    let records = read_all(&log, 1 << 20);
    assert_eq!(records.len() as u64, expected);
    assert_eq!(log.stats().appends, 150);
}

/// One `commit_group` step commits everything queued as one group, and with
/// nothing left queued it gives the committer up: the next submit gets it.
#[test]
fn commit_group_commits_the_queue_and_gives_the_committer_up_when_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let mut first = log.submit(batch(1, 2, 30, 0)).expect("submit");
    let committer = first
        .take_committer()
        .expect("an idle queue hands out the committer");
    let mut second = log.submit(batch(2, 3, 30, 0)).expect("submit");
    assert!(second.take_committer().is_none(), "one committer at a time");
    assert!(log.commit_group(committer).is_none(), "nothing left queued");
    assert_eq!(log.stats().groups, 1);
    assert_eq!(log.wait(first).expect("first").base_offset, 0);
    assert_eq!(log.wait(second).expect("second").base_offset, 2);
    let mut third = log.submit(batch(3, 1, 30, 0)).expect("submit");
    let committer = third.take_committer().expect("handed out again");
    log.drive(committer);
    assert_eq!(log.wait(third).expect("third").base_offset, 5);
    assert_eq!(log.log_end_offset(), 6);
}

/// `try_commit_inline` commits on the calling thread only when nothing can
/// block it: without fsync and within the segment it commits the whole
/// queue; with `fsync = always`, or when the group would roll the segment,
/// it hands the committer back untouched and `commit_group` does the work.
#[test]
fn try_commit_inline_commits_only_what_cannot_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    let mut first = log.submit(batch(1, 2, 30, 0)).expect("submit");
    let committer = first.take_committer().expect("committer");
    let second = log.submit(batch(2, 3, 30, 0)).expect("submit");
    let Ok(None) = log.try_commit_inline(committer) else {
        panic!("a small group without fsync commits inline, and the queue is empty after it");
    };
    assert_eq!(log.wait(first).expect("first").base_offset, 0);
    assert_eq!(log.wait(second).expect("second").base_offset, 2);
    assert_eq!((log.stats().groups, log.stats().syncs), (1, 0));

    // A group that does not fit the 8 KiB segment would roll it: refused.
    let mut big = log.submit(batch(3, 100, 100, 0)).expect("submit");
    let committer = big.take_committer().expect("committer");
    let Err(committer) = log.try_commit_inline(committer) else {
        panic!("a group that rolls the segment is not committed inline");
    };
    assert_eq!(log.log_end_offset(), 5, "nothing written");
    assert!(log.commit_group(committer).is_none());
    assert_eq!(log.wait(big).expect("big").base_offset, 5);
    assert!(log.segment_base_offsets().len() > 1, "rolled");
    drop(log);

    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let mut t = log.submit(batch(4, 1, 30, 0)).expect("submit");
    let committer = t.take_committer().expect("committer");
    let Err(committer) = log.try_commit_inline(committer) else {
        panic!("a group that must fsync is not committed inline");
    };
    assert_eq!(log.stats().groups, 0);
    assert!(log.commit_group(committer).is_none());
    assert_eq!(log.wait(t).expect("synced").base_offset, 0);
    assert_eq!(log.stats().syncs, 1);
}

/// An open-loop pattern: a group of 4, then a lone append that nobody
/// joins, again and again. The committer lingers for the 4 it saw, in vain;
/// after each linger that runs out it skips twice as many cycles before it
/// tries again, so 40 lone appends linger about log2(40) times, not 40.
#[test]
fn lingers_that_run_out_back_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let mut tag = 0;
    let mut commit = |n: usize| {
        let mut tickets: Vec<_> = (0..n)
            .map(|_| {
                tag += 1;
                log.submit(batch(tag, 1, 30, 0)).expect("submit")
            })
            .collect();
        let committer = tickets[0].take_committer().expect("idle queue");
        assert!(log.commit_group(committer).is_none(), "one group");
        for t in tickets {
            log.wait(t).expect("append");
        }
    };
    let rounds = 40;
    for _ in 0..rounds {
        commit(4);
        commit(1);
    }
    let stats = log.stats();
    assert_eq!(stats.groups, 2 * rounds);
    assert!(
        (1..=8).contains(&stats.lingers),
        "{} lingers in {rounds} lone appends",
        stats.lingers
    );
}

#[test]
fn offset_for_timestamp_finds_first_batch_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    // Timestamps 0, 10, 20, ... with one late out-of-order batch.
    let mut bases = Vec::new();
    for i in 0..300i64 {
        let ts = if i == 150 { 5 } else { i * 10 };
        bases.push((
            ts,
            log.append(batch(i as u64, 2, 50, ts))
                .expect("append")
                .base_offset,
        ));
    }
    assert!(log.segment_base_offsets().len() > 3);
    assert_eq!(log.offset_for_timestamp(i64::MIN).expect("ok"), Some(0));
    assert_eq!(log.offset_for_timestamp(0).expect("ok"), Some(0));
    assert_eq!(log.offset_for_timestamp(1).expect("ok"), Some(2));
    for probe in [95i64, 1_000, 1_495, 1_500, 1_501, 2_990] {
        let want = bases.iter().find(|(ts, _)| *ts >= probe).map(|(_, o)| *o);
        assert_eq!(
            log.offset_for_timestamp(probe).expect("ok"),
            want,
            "ts {probe}"
        );
    }
    assert_eq!(log.offset_for_timestamp(2_991).expect("ok"), None);
    // Same answers from rebuilt / reloaded indexes.
    log.close().expect("close");
    drop(log);
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert!(report.clean);
    assert_eq!(
        log.offset_for_timestamp(1_501).expect("ok"),
        bases.iter().find(|(ts, _)| *ts >= 1_501).map(|(_, o)| *o)
    );
}

#[test]
fn rolls_by_size_and_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = small_config(Durability::Never);
    config.segment_ms = Some(60_000);
    let (log, _) = open(dir.path(), config);
    let b = batch(0, 10, 60, 1_000);
    let per_segment = 8 * 1024 / b.len();
    for _ in 0..per_segment * 3 {
        log.append(b.clone()).expect("append");
    }
    let segs = log.segment_base_offsets();
    assert_eq!(segs.len(), 3, "{segs:?}");
    assert_eq!(segs[1], (per_segment * 10) as u64);
    // Age, by enforce_retention's clock.
    let n = segs.len();
    assert_eq!(log.enforce_retention(1_000 + 59_999).expect("retention"), 0);
    assert_eq!(log.segment_base_offsets().len(), n);
    assert_eq!(log.enforce_retention(1_000 + 60_000).expect("retention"), 0);
    assert_eq!(log.segment_base_offsets().len(), n + 1, "rolled by age");
    assert_eq!(log.enforce_retention(1_000 + 70_000).expect("retention"), 0);
    assert_eq!(
        log.segment_base_offsets().len(),
        n + 1,
        "an empty segment never rolls"
    );
    // Age, by batch time on append.
    log.append(batch(1, 1, 10, 100_000)).expect("append");
    log.append(batch(2, 1, 10, 159_999)).expect("append");
    assert_eq!(log.segment_base_offsets().len(), n + 1);
    log.append(batch(3, 1, 10, 160_000)).expect("append");
    assert_eq!(
        log.segment_base_offsets().len(),
        n + 2,
        "rolled by batch age"
    );
    for p in files(dir.path(), "log") {
        let len = std::fs::metadata(&p).expect("meta").len();
        assert!(len <= 8 * 1024, "{} is {len} bytes", p.display());
    }
}

#[test]
fn retention_by_size_and_time_moves_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    let b = |ts| batch(0, 10, 60, ts);
    let len = b(0).len();
    let per_segment = 8 * 1024 / len;
    for i in 0..per_segment * 6 {
        log.append(b(i as i64 / per_segment as i64 * 1_000))
            .expect("append");
    }
    assert_eq!(log.segment_base_offsets().len(), 6);
    let total = log.size_bytes();
    let mut config = small_config(Durability::Never);
    config.retention_bytes = Some(total - (per_segment * len) as u64);
    log.set_config(config).expect("valid config");
    assert_eq!(log.enforce_retention(0).expect("retention"), 1);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert!(log.log_start_offset() > 0);
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(files(dir.path(), "log").len(), 5);
    assert_eq!(files(dir.path(), "index").len(), 5);
    // By time: segments hold timestamps 0, 1000, .. 5000; keep >= 3000.
    let mut config = small_config(Durability::Never);
    config.retention_ms = Some(10_000);
    log.set_config(config).expect("valid config");
    assert_eq!(log.enforce_retention(13_000).expect("retention"), 2);
    assert_eq!(log.segment_base_offsets().len(), 3);
    assert_eq!(read_all(&log, 1 << 20).len(), 3 * per_segment * 10);
    // Everything expired: the active segment is rolled, then deleted.
    let end = log.log_end_offset();
    assert_eq!(log.enforce_retention(100_000).expect("retention"), 3);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
    assert!(log.read(end, 100).expect("empty").is_empty());
    assert_eq!(log.append(b(200_000)).expect("append").base_offset, end);
    // Reopen keeps the start.
    drop(log);
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.log_end_offset(), end + 10);
}

#[test]
fn close_writes_marker_and_refuses_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(
        dir.path(),
        small_config(Durability::Interval(Duration::from_millis(5))),
    );
    for i in 0..50 {
        log.append(batch(i, 2, 20, 0)).expect("append");
    }
    log.flush().expect("flush");
    log.close().expect("close");
    assert!(matches!(
        log.append(batch(9, 1, 1, 0)),
        Err(LogError::Closed)
    ));
    assert_eq!(read_all(&log, 1 << 20).len(), 100, "reads work after close");
    drop(log);
    let (log, report) = open(dir.path(), small_config(Durability::Always));
    assert!(report.clean);
    assert_eq!(report.segments_scanned, 0);
    assert_eq!(report.indexes_rebuilt, 0);
    assert_eq!(log.log_end_offset(), 100);
    // The marker is gone once opened: a crash now is detected.
    drop(log);
    let (_, report) = open(dir.path(), small_config(Durability::Always));
    assert!(!report.clean);
}

#[test]
fn partition_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    let b = batch(1, 2, 3, 4);
    assert_eq!(decode_records(&b).expect("valid").len(), 2);
    assert_eq!(BatchIter::new(b).count(), 1);
}

/// A zstd batch of `records` JSON order events (about 500 bytes each) from
/// the event stream `events`; returns it with its uncompressed size.
fn json_zstd_batch(
    events: &mut skiff_protocol::testdata::JsonEvents,
    records: usize,
    ts: i64,
) -> (Bytes, usize) {
    let mut b = skiff_protocol::batch::BatchBuilder::new();
    for _ in 0..records {
        b.push(skiff_protocol::batch::Record {
            timestamp_ms: ts,
            key: None,
            value: Bytes::from(events.next_json()),
            headers: Vec::new(),
        });
    }
    let plain = b.encoded_bytes();
    let batch = b
        .build_compressed(
            skiff_protocol::Compression::Zstd,
            skiff_protocol::compression::Level::Default,
        )
        .expect("compresses");
    (batch, plain)
}

#[test]
fn retention_by_size_counts_compressed_bytes_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention_bytes: u64 = 48 * 1024;
    let mut config = small_config(Durability::Never);
    config.segment_bytes = 4096;
    config.retention_bytes = Some(retention_bytes);
    let (log, _) = open(dir.path(), config);
    let mut events = skiff_protocol::testdata::JsonEvents::new(15);
    // Phase 1: three times the retention limit in logical (uncompressed)
    // bytes, which zstd stores in less than the limit: nothing may go.
    let (mut logical, mut records) = (0usize, 0u64);
    while logical < 3 * retention_bytes as usize {
        let (batch, plain) = json_zstd_batch(&mut events, 20, 1_000);
        log.append(batch).expect("append");
        logical += plain;
        records += 20;
    }
    let stored = log.size_bytes();
    assert!(
        stored < retention_bytes,
        "zstd should store {logical} logical bytes in under {retention_bytes}, stored {stored}"
    );
    assert!(
        log.segment_base_offsets().len() > 3,
        "small segments rolled"
    );
    assert_eq!(log.enforce_retention(1_000).expect("retention"), 0);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(read_all(&log, 1 << 20).len() as u64, records);
    // Phase 2: the compressed bytes pass the limit: whole old segments go,
    // and what stays is at least the limit and under the limit plus one
    // segment (the rule counts bytes on disk).
    while log.size_bytes() < 2 * retention_bytes {
        let (batch, _) = json_zstd_batch(&mut events, 20, 1_000);
        log.append(batch).expect("append");
        records += 20;
    }
    let deleted = log.enforce_retention(1_000).expect("retention");
    assert!(deleted > 0, "compressed segments over the limit were kept");
    let kept = log.size_bytes();
    let largest_segment = 4096 + 16 * 1024;
    assert!(
        kept >= retention_bytes && kept < retention_bytes + largest_segment,
        "kept {kept} bytes for retention_bytes {retention_bytes}"
    );
    assert!(log.log_start_offset() > 0);
    // What is left decodes (inflates) from the new log start to the end.
    let left = read_all(&log, 1 << 20);
    assert_eq!(
        left.len() as u64,
        records - log.log_start_offset(),
        "every record above the log start is readable"
    );
    assert_eq!(left.first().map(|r| r.offset), Some(log.log_start_offset()));
}
