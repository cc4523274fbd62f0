//! Storage fault injection for the log's own tests: the append path calls
//! [`on_write`] before writing a commit group and [`on_sync`] before its
//! fdatasync, every directory fsync calls [`on_dir_sync`] first, every successful fdatasync of a segment reports the length
//! it covered to [`on_synced`], and every cached-only (`RWF_NOWAIT`) read
//! calls [`on_cached_read`] first. Outside `cfg(test)` they do nothing and
//! compile away.
//!
//! In tests, a fault is armed per thread (a thread that appends through
//! `PartitionLog::append` runs the committer itself when the queue was idle,
//! so a single-threaded test hits its own fault): the next `count` calls
//! fail with the given OS error.
//!
//! What the tests pin down:
//! - a failed fsync fails every append of its group; none of them becomes
//!   visible or readable, and none is acknowledged later by a successful
//!   fsync (the bytes are cut back, so nothing is "retried" as success);
//! - a full disk (ENOSPC) fails appends with `StorageFull`, reads keep
//!   working, and appends succeed again once space is back;
//! - a machine crash, simulated by cutting every segment back to the length
//!   its last successful fdatasync covered (what the disk is sure to hold;
//!   also a torn cut inside the unsynced tail), loses under
//!   `Durability::Always` only appends that were not acknowledged and that
//!   no reader could have seen (a sync is stalled at the crash), and under
//!   `Durability::Interval` only batches acknowledged after the last sync;
//!   recovery cuts the torn tail at a batch boundary and appends resume
//!   right after it.

use std::io;
use std::path::Path;

#[cfg(test)]
use std::cell::Cell;

#[cfg(test)]
thread_local! {
    /// (OS error, calls left) for writes and for syncs.
    static WRITE_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    static SYNC_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    /// (OS error, calls to let pass first): one directory fsync fails.
    static DIR_SYNC_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    /// (OS error, calls left): cached-only reads that find nothing cached.
    static CACHED_READ_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    /// (reached, release): the next sync announces itself and waits.
    static SYNC_STALL: std::cell::RefCell<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Per segment file, the length covered by its last successful fdatasync.
/// Keyed by path, so tests in their own temporary directories never meet.
#[cfg(test)]
static SYNCED: std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(test)]
fn take(slot: &'static std::thread::LocalKey<Cell<Option<(i32, u32)>>>) -> io::Result<()> {
    slot.with(|c| match c.get() {
        Some((errno, left)) if left > 0 => {
            c.set((left > 1).then_some((errno, left - 1)));
            Err(io::Error::from_raw_os_error(errno))
        }
        _ => Ok(()),
    })
}

/// Called before a commit group's write.
#[inline]
pub(crate) fn on_write() -> io::Result<()> {
    #[cfg(test)]
    take(&WRITE_FAULT)?;
    Ok(())
}

/// Called before a commit group's fdatasync.
#[inline]
pub(crate) fn on_sync() -> io::Result<()> {
    #[cfg(test)]
    {
        take(&SYNC_FAULT)?;
        if let Some((reached, release)) = SYNC_STALL.with(|s| s.borrow_mut().take()) {
            let _ = reached.send(());
            let _ = release.recv();
        }
    }
    Ok(())
}

/// Called before an fsync of the partition directory (segment create and
/// delete, snapshot rename).
#[inline]
pub(crate) fn on_dir_sync() -> io::Result<()> {
    #[cfg(test)]
    DIR_SYNC_FAULT.with(|c| match c.get() {
        Some((errno, 0)) => {
            c.set(None);
            Err(io::Error::from_raw_os_error(errno))
        }
        Some((errno, pass)) => {
            c.set(Some((errno, pass - 1)));
            Ok(())
        }
        None => Ok(()),
    })?;
    Ok(())
}

/// Called before each cached-only (`RWF_NOWAIT`) read of segment data; an
/// error makes the read report that it would block (nothing cached).
#[inline]
pub(crate) fn on_cached_read() -> io::Result<()> {
    #[cfg(test)]
    take(&CACHED_READ_FAULT)?;
    Ok(())
}

/// Called after an fdatasync of the segment at `path` succeeded with `len`
/// bytes written: the disk holds at least those bytes.
#[inline]
pub(crate) fn on_synced(path: &Path, len: u64) {
    #[cfg(test)]
    crate::poison::lock(&SYNCED).insert(path.to_path_buf(), len);
    #[cfg(not(test))]
    let _ = (path, len);
}

/// The length covered by the last successful fdatasync of `path`.
#[cfg(test)]
pub(crate) fn synced_len(path: &Path) -> Option<u64> {
    crate::poison::lock(&SYNCED).get(path).copied()
}

/// The next sync on this thread sends on `reached` (its group is written,
/// not yet synced) and waits for `release` before syncing.
#[cfg(test)]
pub(crate) fn stall_next_sync(
    reached: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
) {
    SYNC_STALL.with(|s| *s.borrow_mut() = Some((reached, release)));
}

#[cfg(test)]
pub(crate) fn fail_writes(errno: i32, count: u32) {
    WRITE_FAULT.with(|c| c.set(Some((errno, count))));
}

#[cfg(test)]
pub(crate) fn fail_syncs(errno: i32, count: u32) {
    SYNC_FAULT.with(|c| c.set(Some((errno, count))));
}

/// The next `count` cached-only reads on this thread find nothing cached,
/// as if the segment's pages had been evicted (deterministic, unlike
/// `POSIX_FADV_DONTNEED`, which the kernel may ignore).
#[cfg(test)]
pub(crate) fn evict_cached_reads(count: u32) {
    CACHED_READ_FAULT.with(|c| c.set(Some((libc::EAGAIN, count))));
}

/// How many cached-only reads on this thread [`evict_cached_reads`] still
/// has to fail (0 once it failed all it was armed for, or was never armed).
#[cfg(test)]
pub(crate) fn evicted_reads_left() -> u32 {
    CACHED_READ_FAULT.with(|c| c.get().map_or(0, |(_, left)| left))
}

/// After `pass` directory fsyncs on this thread succeed, the next fails.
#[cfg(test)]
pub(crate) fn fail_dir_sync_after(pass: u32, errno: i32) {
    DIR_SYNC_FAULT.with(|c| c.set(Some((errno, pass))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Durability, LogConfig, LogError, PartitionLog, RecoveryReport};
    use bytes::Bytes;
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
    /// every file copied as the page cache holds it, then each segment cut
    /// back to what its last successful fdatasync covered plus `torn` bytes
    /// of its unsynced tail (a crash may keep any prefix of it). Returns the
    /// unsynced bytes of the last segment.
    fn crash_copy(dir: &std::path::Path, to: &std::path::Path, torn: u64) -> u64 {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let from = entry.expect("entry").path();
            std::fs::copy(&from, to.join(from.file_name().expect("name"))).expect("copy");
        }
        let mut unsynced = 0;
        for seg in segment_files(dir) {
            let written = std::fs::metadata(&seg).expect("stat").len();
            let synced = synced_len(&seg).expect("every segment with data was synced once");
            assert!(synced <= written);
            unsynced = written - synced;
            let copy = std::fs::OpenOptions::new()
                .write(true)
                .open(to.join(seg.file_name().expect("name")))
                .expect("open copy");
            copy.set_len(synced + torn.min(unsynced)).expect("cut");
        }
        unsynced
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
            let unsynced = crash_copy(dir.path(), crashed.path(), torn);
            assert_eq!(
                unsynced,
                batch("stalled").len() as u64,
                "the stalled group is on the page cache only"
            );
            let (recovered, report) = open_with(crashed.path(), Durability::Always);
            assert_eq!(report.truncated_bytes, torn, "the torn tail is cut");
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
            let unsynced = crash_copy(dir.path(), crashed.path(), torn);
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
            segment_bytes: crate::log::SEGMENT_BYTES_MIN,
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
}
