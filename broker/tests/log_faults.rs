//! The partition log under injected storage faults (`log::faults`, behind
//! the `testing` feature): failed and stalled fsyncs, a full disk, a failed
//! directory fsync during a roll, evicted pages, simulated machine crashes
//! (each segment cut back to what its last fdatasync covered), and a panic
//! inside a group commit, which must stop the partition.
//!
//! Faults are armed per thread: each test arms them on the thread that then
//! appends (and so runs the committer).
use bytes::Bytes;
use skiff_broker::log::faults::{
    evict_cached_reads, evicted_reads_left, fail_dir_sync_after, fail_runway_writes, fail_syncs,
    fail_writes, panic_next_write, stall_next_sync, synced_len,
};
use skiff_broker::log::{Durability, LogConfig, LogError, PartitionLog, RecoveryReport};
use skiff_protocol::batch::{BatchBuilder, BatchIter, Record, decode_records};

fn batch(tag: &str) -> Bytes {
    let mut b = BatchBuilder::new();
    b.push(Record {
        timestamp_ms: 1,
        key: None,
        value: Bytes::from(tag.to_owned()),
        headers: vec![],
    });
    b.build()
}

fn values(log: &PartitionLog) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20).expect("read");
        for b in BatchIter::new(bytes) {
            for r in decode_records(&b.expect("batch")).expect("records") {
                out.push(String::from_utf8_lossy(&r.value).into_owned());
                offset = r.offset + 1;
            }
        }
    }
    out
}

fn open(dir: &std::path::Path) -> PartitionLog {
    open_with(dir, Durability::Always).0
}

fn open_with(dir: &std::path::Path, durability: Durability) -> (PartitionLog, RecoveryReport) {
    let config = LogConfig {
        durability,
        ..LogConfig::default()
    };
    PartitionLog::open(dir, config).expect("open")
}

/// The segment files of a partition directory, in offset order.
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    out.sort();
    out
}

/// A machine crash of the (still open) log in `dir`, as a copy in `to`:
/// every file copied as the page cache holds it, then in each segment the
/// bytes after what its last successful fdatasync covered are lost but for
/// the first `torn` of them (a crash may keep any prefix of them). Where
/// the segment has a runway (zeros laid ahead of its batches, see
/// `log::runway`; synced with an earlier group), the lost bytes turn back
/// into zeros; without one, the file is cut. Returns, for the last segment,
/// the unsynced batch bytes and the bytes of the copy after the synced
/// length. `log` is the log open on `dir` (it knows where its batches end).
fn crash_copy(
    log: &PartitionLog,
    dir: &std::path::Path,
    to: &std::path::Path,
    torn: u64,
) -> (u64, u64) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let from = entry.expect("entry").path();
        std::fs::copy(&from, to.join(from.file_name().expect("name"))).expect("copy");
    }
    let mut last = (0, 0);
    let segments = segment_files(dir);
    let sealed: u64 = segments[..segments.len() - 1]
        .iter()
        .map(|s| std::fs::metadata(s).expect("stat").len())
        .sum();
    for (i, seg) in segments.iter().enumerate() {
        let bytes = std::fs::read(seg).expect("read segment");
        let written = bytes.len() as u64;
        let synced = synced_len(seg).expect("every segment with data was synced once");
        assert!(synced <= written);
        // Sealed segments end at their last batch.
        let data_end = if i + 1 == segments.len() {
            log.size_bytes() - sealed
        } else {
            written
        };
        let unsynced = data_end - synced;
        let kept = synced + torn.min(unsynced);
        let mut image = bytes[..kept as usize].to_vec();
        if data_end < written {
            image.resize(bytes.len(), 0);
        }
        std::fs::write(to.join(seg.file_name().expect("name")), &image).expect("write copy");
        last = (unsynced, image.len() as u64 - synced);
    }
    last
}

/// Every acknowledged (offset, value) is in the log at its offset.
fn assert_acked_present(log: &PartitionLog, acked: &[(u64, &str)]) {
    for &(offset, tag) in acked {
        let bytes = log.read(offset, 1 << 20).expect("read acked");
        let found = BatchIter::new(bytes)
            .flat_map(|b| decode_records(&b.expect("batch")).expect("records"))
            .find(|r| r.offset == offset)
            .map(|r| String::from_utf8_lossy(&r.value).into_owned());
        assert_eq!(found.as_deref(), Some(tag), "acked offset {offset}");
    }
}

#[test]
fn crash_with_a_stalled_sync_loses_only_unacknowledged_unseen_appends_always() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(open(dir.path()));
    let mut acked = Vec::new();
    for tag in ["a", "b", "c"] {
        acked.push((log.append(batch(tag)).expect("append").base_offset, tag));
    }
    // A group whose sync fails is cut back, never acknowledged.
    fail_syncs(libc::EIO, 1);
    assert!(log.append(batch("failed")).is_err());
    acked.push((log.append(batch("d")).expect("append d").base_offset, "d"));
    // The next group's sync stalls: written, not synced, not acknowledged.
    let (reached_tx, reached) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let writer = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            stall_next_sync(reached_tx, release_rx);
            log.append(batch("stalled"))
        })
    };
    reached.recv().expect("the stalled sync is reached");
    // Readers cannot see the unsynced group: the visible end waits.
    let visible_end = log.log_end_offset();
    assert_eq!(visible_end, 4);
    assert_eq!(values(&log), ["a", "b", "c", "d"]);

    // The crash, while the sync stalls: exactly at the synced length,
    // and torn a few bytes into the unsynced group.
    for torn in [0, 7] {
        let crashed = tempfile::tempdir().expect("tempdir");
        let (unsynced, after_synced) = crash_copy(&log, dir.path(), crashed.path(), torn);
        assert_eq!(
            unsynced,
            batch("stalled").len() as u64,
            "the stalled group is on the page cache only"
        );
        let (recovered, report) = open_with(crashed.path(), Durability::Always);
        // Torn bytes that are all zeros are indistinguishable from the
        // runway (and a torn batch's cut takes the runway after it along);
        // either way everything after the synced length goes. The stamp of
        // offset 4 starts with a non-zero byte: 7 torn bytes are damage.
        assert_eq!(
            report.truncated_bytes > 0,
            torn > 0,
            "torn {torn}: {report:?}"
        );
        assert_eq!(
            report.truncated_bytes + report.zero_tail_bytes,
            after_synced,
            "torn {torn}: the torn tail and the runway are cut"
        );
        assert_acked_present(&recovered, &acked);
        assert_eq!(values(&recovered), ["a", "b", "c", "d"], "torn {torn}");
        assert!(
            recovered.log_end_offset() >= visible_end,
            "nothing a reader saw is missing"
        );
        // Appends resume right after the cut.
        assert_eq!(
            recovered.append(batch("e")).expect("append e").base_offset,
            4
        );
        assert_eq!(values(&recovered), ["a", "b", "c", "d", "e"]);
    }

    // Released, the stalled append completes as usual.
    release.send(()).expect("release");
    let info = writer.join().expect("writer").expect("stalled append");
    assert_eq!(info.base_offset, 4);
    assert_eq!(values(&log), ["a", "b", "c", "d", "stalled"]);
}

#[test]
fn interval_crash_loses_only_batches_acked_since_the_last_sync_and_cuts_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hour = Durability::Interval(std::time::Duration::from_secs(3600));
    let (log, _) = open_with(dir.path(), hour.clone());
    for tag in ["a", "b"] {
        log.append(batch(tag)).expect("append");
    }
    log.flush().expect("the interval sync");
    // Acknowledged and visible right after the write, not synced.
    let c = log.append(batch("c")).expect("append c");
    let d = log.append(batch("d")).expect("append d");
    assert_eq!((c.base_offset, d.base_offset), (2, 3));
    assert_eq!(
        values(&log),
        ["a", "b", "c", "d"],
        "readers see unsynced batches"
    );
    let synced_before = [(0, "a"), (1, "b")];

    let c_len = batch("c").len() as u64;
    // (bytes of the unsynced tail surviving, values after recovery, bytes cut)
    let cases: [(u64, &[&str], u64); 4] = [
        (0, &["a", "b"], 0),
        (5, &["a", "b"], 5),
        (c_len, &["a", "b", "c"], 0),
        (c_len + 9, &["a", "b", "c"], 9),
    ];
    for (torn, expect, cut) in cases {
        let crashed = tempfile::tempdir().expect("tempdir");
        let (unsynced, _) = crash_copy(&log, dir.path(), crashed.path(), torn);
        assert_eq!(unsynced, 2 * c_len, "c and d are unsynced");
        let (recovered, report) = open_with(crashed.path(), hour.clone());
        // Everything acknowledged before the last sync survives; only
        // c and d (acknowledged after it) may be lost, whole, in order.
        assert_acked_present(&recovered, &synced_before);
        assert_eq!(values(&recovered), expect, "torn {torn}");
        assert_eq!(
            report.truncated_bytes, cut,
            "torn {torn}: cut at a batch boundary"
        );
        let end = expect.len() as u64;
        assert_eq!(recovered.log_end_offset(), end);
        assert_eq!(
            recovered.append(batch("e")).expect("append e").base_offset,
            end
        );
        let mut after: Vec<&str> = expect.to_vec();
        after.push("e");
        assert_eq!(values(&recovered), after);
    }
}

#[test]
fn failed_fsync_fails_its_appends_and_is_never_acknowledged_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append(batch("a")).expect("append a");
    fail_syncs(libc::EIO, 1);
    let failed = log.append(batch("lost"));
    assert!(
        matches!(
            failed,
            Err(LogError::Io {
                op: "fdatasync",
                ..
            })
        ),
        "{failed:?}"
    );
    assert_eq!(log.log_end_offset(), 1, "the failed append is not visible");
    // The next append takes the failed one's offset; a successful fsync
    // never makes the failed bytes appear.
    assert_eq!(log.append(batch("b")).expect("append b").base_offset, 1);
    assert_eq!(values(&log), ["a", "b"]);
    drop(log);
    let log = open(dir.path());
    assert_eq!(values(&log), ["a", "b"], "after reopen too");
}

#[test]
fn full_disk_fails_produces_reads_work_and_space_coming_back_heals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append(batch("a")).expect("append a");
    fail_writes(libc::ENOSPC, 3);
    for _ in 0..3 {
        let r = log.append(batch("x"));
        assert!(matches!(r, Err(LogError::StorageFull { .. })), "{r:?}");
        assert_eq!(values(&log), ["a"], "reads keep working");
    }
    assert_eq!(
        log.append(batch("b")).expect("space is back").base_offset,
        1
    );
    assert_eq!(values(&log), ["a", "b"]);
}

#[test]
fn a_roll_whose_directory_fsync_fails_leaves_no_files_and_the_next_roll_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: skiff_broker::log::SEGMENT_BYTES_MIN,
        ..LogConfig::default()
    };
    let (log, _) = PartitionLog::open(dir.path(), config).expect("open");
    // Fill the first segment; the append that rolls writes a producer
    // snapshot (one directory fsync), creates the next segment, and
    // fails at the second directory fsync.
    let mut stored = Vec::new();
    let failed = loop {
        assert!(stored.len() < 100, "the segment never rolled");
        fail_dir_sync_after(1, libc::EIO);
        let tag = format!("v{}", stored.len());
        match log.append(batch(&tag)) {
            Ok(_) => stored.push(tag),
            Err(e) => break e,
        }
    };
    assert!(matches!(failed, LogError::Io { .. }), "{failed:?}");
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "the new segment's files are gone"
    );
    assert_eq!(
        values(&log),
        stored,
        "nothing of the failed append is visible"
    );
    // The next append rolls again, to the same base offset.
    log.append(batch("after")).expect("the roll works again");
    stored.push("after".to_owned());
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_eq!(values(&log), stored);
    drop(log);
    assert_eq!(values(&open(dir.path())), stored, "after reopen too");
}

/// Needs `RWF_NOWAIT` (without it every cached read is None).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn evicted_pages_make_the_cached_read_none_and_read_still_serves_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    for tag in ["a", "b", "c"] {
        log.append(batch(tag)).expect("append");
    }
    let want = log.read(1, 1 << 20).expect("read");
    assert_eq!(
        log.try_read_cached(1, 1 << 20, usize::MAX).expect("cached"),
        Some(want.clone()),
        "freshly written pages are cached"
    );
    // The first pread (the header walk) finds nothing cached.
    evict_cached_reads(1);
    assert_eq!(
        log.try_read_cached(1, 1 << 20, usize::MAX).expect("cached"),
        None
    );
    assert_eq!(evicted_reads_left(), 0, "the cached read asked the hook");
    assert_eq!(log.read(1, 1 << 20).expect("read"), want);
    // Errors that need no read of segment data come first: reading out of
    // range is an error even when nothing is cached.
    evict_cached_reads(1);
    assert!(matches!(
        log.try_read_cached(9, 1, usize::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.try_read_cached(3, 1, usize::MAX).expect("at end"),
        Some(Bytes::new())
    );
    assert_eq!(evicted_reads_left(), 1, "no segment data read");
    evict_cached_reads(0);
    // Blocking reads never consult it.
    evict_cached_reads(5);
    assert_eq!(log.read(1, 1 << 20).expect("read"), want);
    assert_eq!(evicted_reads_left(), 5);
    evict_cached_reads(0);
}

#[test]
fn a_panic_inside_a_group_commit_stops_the_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append(batch("a")).expect("append a");
    // Two appends in the group whose write panics (with the writer lock
    // held): both fail with an error that says so.
    let mut first = log.submit(batch("panics")).expect("submit");
    let committer = first
        .take_committer()
        .expect("an idle queue hands out the committer");
    let second = log.submit(batch("same group")).expect("submit");
    panic_next_write();
    log.drive(committer);
    for (name, ticket) in [("first", first), ("second", second)] {
        let failed = log.wait(ticket);
        assert!(
            matches!(&failed, Err(LogError::Io { source, .. }) if source.to_string().contains("panicked")),
            "{name}: {failed:?}"
        );
    }
    // No later append reuses the writer.
    assert!(
        matches!(log.submit(batch("later")), Err(LogError::Closed)),
        "the partition is stopped"
    );
    assert!(
        matches!(log.append(batch("b")), Err(LogError::Closed)),
        "the partition is stopped"
    );
    assert_eq!(
        log.log_end_offset(),
        1,
        "nothing of the panicked group is visible"
    );
    assert_eq!(values(&log), ["a"], "reads keep working");
    // No clean-shutdown marker is trusted blindly: a restart recovers.
    drop(log);
    let log = open(dir.path());
    assert_eq!(values(&log), ["a"]);
    assert_eq!(
        log.append(batch("b"))
            .expect("append after restart")
            .base_offset,
        1
    );
}

#[test]
fn a_runway_that_does_not_fit_fails_no_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    fail_runway_writes(libc::ENOSPC, 1);
    let a = log.append(batch("a")).expect("append without a runway");
    let seg = segment_files(dir.path()).pop().expect("segment");
    let len = |p: &std::path::Path| std::fs::metadata(p).expect("stat").len();
    assert_eq!(len(&seg), log.size_bytes(), "no runway: the batch alone");
    let b = log.append(batch("b")).expect("append");
    assert!(len(&seg) > log.size_bytes(), "the next group lays one");
    assert_eq!((a.base_offset, b.base_offset), (0, 1));
    assert_eq!(values(&log), ["a", "b"]);
}
