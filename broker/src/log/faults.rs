//! Storage fault injection for the log's own tests: the append path calls
//! [`on_write`] before writing a commit group and [`on_sync`] before its
//! fdatasync. Outside `cfg(test)` both are `Ok(())` and compile away.
//!
//! In tests, a fault is armed per thread (the thread that appends is the
//! group-commit leader when it appends alone, so a single-threaded test
//! hits its own fault): the next `count` calls fail with the given OS error.
//!
//! What the tests pin down:
//! - a failed fsync fails every append of its group; none of them becomes
//!   visible or readable, and none is acknowledged later by a successful
//!   fsync (the bytes are cut back, so nothing is "retried" as success);
//! - a full disk (ENOSPC) fails appends with `StorageFull`, reads keep
//!   working, and appends succeed again once space is back.

use std::io;

#[cfg(test)]
use std::cell::Cell;

#[cfg(test)]
thread_local! {
    /// (OS error, calls left) for writes and for syncs.
    static WRITE_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    static SYNC_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
}

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
    take(&SYNC_FAULT)?;
    Ok(())
}

#[cfg(test)]
pub(crate) fn fail_writes(errno: i32, count: u32) {
    WRITE_FAULT.with(|c| c.set(Some((errno, count))));
}

#[cfg(test)]
pub(crate) fn fail_syncs(errno: i32, count: u32) {
    SYNC_FAULT.with(|c| c.set(Some((errno, count))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Durability, LogConfig, LogError, PartitionLog};
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
        let config = LogConfig {
            durability: Durability::Always,
            ..LogConfig::default()
        };
        PartitionLog::open(dir, config).expect("open").0
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
}
