//! Partition log: `try_read_cached`, the page-cache-only read a fetch tries
//! on its async worker before the blocking pool. It must return what `read`
//! returns (bytes and errors) or `None`, never anything else.
//!
//! The deterministic "not cached" case (a fault hook) is tested inside the
//! crate (`log::faults` and `server::handlers`); here the kernel decides.
//! Linux with glibc only: elsewhere there is no `RWF_NOWAIT` and every
//! cached read is None.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod log_support;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use bytes::Bytes;
use log_support::*;
use skiff_broker::log::{Durability, LogConfig, LogError, PartitionLog};

/// A log over several small segments, its pages freshly written (cached).
fn fresh_log(dir: &std::path::Path) -> (PartitionLog, u64) {
    let (log, _) = open(dir, small_config(Durability::Never));
    for tag in 0..120u64 {
        log.append(batch(tag, 1 + tag as usize % 5, 40, tag as i64))
            .expect("append");
    }
    assert!(
        log.segment_base_offsets().len() > 3,
        "small segments rolled"
    );
    let end = log.log_end_offset();
    (log, end)
}

fn cached(log: &PartitionLog, offset: u64, max_bytes: usize) -> Result<Option<Bytes>, LogError> {
    log.try_read_cached(offset, max_bytes, usize::MAX)
}

/// Base offset of the newest segment: the only one read inline.
fn newest_base(log: &PartitionLog) -> u64 {
    *log.segment_base_offsets().last().expect("a segment")
}

/// A log in one large segment, with no index entries when `indexed` is
/// false (every read then walks the headers from the segment start).
fn one_segment_log(dir: &std::path::Path, batches: u64, indexed: bool) -> PartitionLog {
    let mut config = LogConfig {
        durability: Durability::Never,
        ..LogConfig::default()
    };
    if !indexed {
        config.index_interval_bytes = u32::MAX;
    }
    let (log, _) = open(dir, config);
    for tag in 0..batches {
        log.append(batch(tag, 1 + tag as usize % 5, 40, tag as i64))
            .expect("append");
    }
    assert_eq!(log.segment_base_offsets().len(), 1);
    log
}

#[test]
fn cached_read_returns_the_bytes_read_returns_in_the_newest_segment_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, end) = fresh_log(dir.path());
    let newest = newest_base(&log);
    assert!(newest > 0 && newest < end);
    for offset in 0..end {
        for max in [0, 1, 300, 700, 5_000, 1 << 20] {
            let want = log.read(offset, max).expect("read");
            assert!(!want.is_empty());
            let got = cached(&log, offset, max).expect("cached read");
            if offset >= newest {
                assert_eq!(got, Some(want), "offset {offset}, max_bytes {max}");
            } else {
                assert_eq!(got, None, "offset {offset} is in an older segment");
            }
        }
    }
    // `read_bytes_max` caps both the same way.
    let first = log.read(newest, 0).expect("read").len();
    log.set_config(LogConfig {
        read_bytes_max: first * 2 + 1,
        ..small_config(Durability::Never)
    })
    .expect("valid config");
    let want = log.read(newest, usize::MAX).expect("read");
    assert!((first..=first * 2 + 1).contains(&want.len()));
    assert_eq!(
        cached(&log, newest, usize::MAX).expect("cached"),
        Some(want)
    );
}

#[test]
fn cached_read_is_empty_at_the_end_and_out_of_range_outside_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, end) = fresh_log(dir.path());
    assert_eq!(cached(&log, end, 100).expect("at end"), Some(Bytes::new()));
    assert!(matches!(
        cached(&log, end + 1, 100),
        Err(LogError::OffsetOutOfRange { offset, start: 0, end: e }) if offset == end + 1 && e == end
    ));
    // Below the log start, once retention moved it.
    let mut config = small_config(Durability::Never);
    config.retention_bytes = Some(log.size_bytes() / 2);
    log.set_config(config).expect("valid config");
    assert!(log.enforce_retention(0).expect("retention") >= 1);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(matches!(
        cached(&log, start - 1, 100),
        Err(LogError::OffsetOutOfRange { offset, start: s, .. }) if offset == start - 1 && s == start
    ));
}

#[test]
fn cached_read_over_its_byte_budget_is_left_to_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = one_segment_log(dir.path(), 60, true);
    // The budget is on the bytes read (then cut back to whole batches):
    // `max_bytes`, or what is visible when that is less.
    let want = log.read(0, 2_000).expect("read");
    assert!(want.len() < 2_000);
    assert_eq!(
        log.try_read_cached(0, 2_000, 2_000).expect("cached"),
        Some(want)
    );
    assert_eq!(log.try_read_cached(0, 2_000, 1_999).expect("cached"), None);
    let last = log.log_end_offset() - 1;
    let tail = log.read(last, 1 << 20).expect("read");
    assert_eq!(
        log.try_read_cached(last, 1 << 20, 8 * 1024)
            .expect("cached"),
        Some(tail),
        "at the tail only the visible bytes count"
    );
    // The first batch is returned whole whatever `max_bytes` says, so a
    // budget below it is None even for max_bytes 0.
    let first = log.read(0, 0).expect("read").len();
    assert_eq!(log.try_read_cached(0, 0, first - 1).expect("cached"), None);
}

/// The walk over batch headers to the wanted offset counts against the
/// budget too: without index entries, a tail read walks the whole segment.
#[test]
fn cached_read_whose_header_walk_is_over_budget_is_left_to_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = one_segment_log(dir.path(), 2_000, false);
    assert!(log.size_bytes() > 200 * 1024);
    let last = log.log_end_offset() - 1;
    let tail = log.read(last, 1 << 20).expect("read");
    assert_eq!(
        log.try_read_cached(last, 1 << 20, 64 * 1024)
            .expect("cached"),
        None
    );
    assert_eq!(
        log.try_read_cached(last, 1 << 20, 1 << 20).expect("cached"),
        Some(tail)
    );
}

#[test]
fn cached_read_reports_corruption_like_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    let mut lens = Vec::new();
    for tag in 0..5 {
        let b = batch(tag, 2, 40, 0);
        lens.push(b.len());
        log.append(b).expect("append");
    }
    let seg = files(dir.path(), "log").remove(0);
    let file = OpenOptions::new().write(true).open(&seg).expect("open");
    // A flipped bit in the value of the second batch (offsets 2 and 3).
    let pos = (lens[0] + lens[1] - 3) as u64;
    let mut byte = [0u8];
    std::os::unix::fs::FileExt::read_exact_at(&File::open(&seg).expect("open"), &mut byte, pos)
        .expect("read byte");
    std::os::unix::fs::FileExt::write_at(&file, &[byte[0] ^ 0x10], pos).expect("write");
    for offset in [2, 3] {
        let read = log.read(offset, 1 << 20);
        assert!(
            matches!(&read, Err(LogError::Corrupt { position, .. }) if *position == lens[0] as u64),
            "{read:?}"
        );
        let got = cached(&log, offset, 1 << 20);
        assert!(
            matches!(&got, Err(LogError::Corrupt { segment, position }) if *segment == seg && *position == lens[0] as u64),
            "{got:?}"
        );
    }
    // A read from before the bad batch stops in front of it, as `read` does.
    let prefix = log.read(0, 1 << 20).expect("good prefix");
    assert_eq!(prefix.len(), lens[0]);
    assert_eq!(cached(&log, 0, 1 << 20).expect("cached"), Some(prefix));
    // A bad first header.
    std::os::unix::fs::FileExt::write_at(&file, &[0xee], 0).expect("write");
    assert!(matches!(
        log.read(0, 1 << 20),
        Err(LogError::Corrupt { position: 0, .. })
    ));
    assert!(matches!(
        cached(&log, 0, 1 << 20),
        Err(LogError::Corrupt { position: 0, .. })
    ));
}

/// Drops the page cache of every segment file (after an fsync, so the pages
/// are clean and may go). The kernel may keep some anyway: advice, not an
/// order.
fn drop_page_cache(dir: &std::path::Path) {
    for path in files(dir, "log") {
        let f = File::open(&path).expect("open");
        f.sync_all().expect("fsync");
        // SAFETY: `f` is an open descriptor for the duration of the call.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise");
    }
}

/// Not deterministic: after `POSIX_FADV_DONTNEED` the cached read should be
/// None, but the kernel may keep the pages, so the test accepts None or the
/// same bytes as `read`, never anything else. Once `read` has brought the
/// pages back, the cached read serves them (in the newest segment).
#[test]
fn cached_read_after_dropping_the_page_cache_is_none_or_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, end) = fresh_log(dir.path());
    drop_page_cache(dir.path());
    let offsets: Vec<u64> = (0..end).step_by(7).collect();
    let mut none = 0;
    let got: Vec<_> = offsets
        .iter()
        .map(|&o| cached(&log, o, 1 << 20).expect("cached read"))
        .collect();
    let newest = newest_base(&log);
    for (&offset, got) in offsets.iter().zip(got) {
        let want = log.read(offset, 1 << 20).expect("read");
        match got {
            None => none += 1,
            Some(bytes) => assert_eq!(bytes, want, "offset {offset}"),
        }
        let again = cached(&log, offset, 1 << 20).expect("cached read");
        let expected = (offset >= newest).then_some(want);
        assert_eq!(again, expected, "offset {offset} after read cached it");
    }
    eprintln!(
        "{none} of {} cached reads found their pages dropped",
        offsets.len()
    );
}
