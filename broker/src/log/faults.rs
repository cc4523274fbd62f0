//! Storage fault injection for the log's tests: the append path calls
//! [`on_write`] before writing a commit group, [`on_runway_write`] before
//! writing a runway of zeros after it, and [`on_sync`] before its
//! fdatasync, every directory fsync calls [`on_dir_sync`] first, every successful fdatasync of a segment reports the length
//! it covered to [`on_synced`], and every cached-only (`RWF_NOWAIT`) read
//! calls [`on_cached_read`] first. Outside `cfg(test)` and the `testing`
//! feature they do nothing and compile away; with the feature, the arming
//! functions are public (`skiff_broker::log::faults`) for the tests in
//! `broker/tests/log_faults.rs`.
//!
//! In tests, a fault is armed per thread, thread-local (a thread that
//! appends through `PartitionLog::append` runs the committer itself when the
//! queue was idle, so a single-threaded test, unit or integration, hits its
//! own fault): the next `count` calls fail with the given OS error.
//! [`panic_next_write`] makes the next commit-group write panic instead (a
//! bug inside the commit), to show that such a panic stops the partition.
//!
//! What the tests pin down:
//! - a failed fsync fails every append of its group; none of them becomes
//!   visible or readable, and none is acknowledged later by a successful
//!   fsync (the bytes are cut back, so nothing is "retried" as success);
//! - a full disk (ENOSPC) fails appends with `StorageFull`, reads keep
//!   working, and appends succeed again once space is back; a runway that
//!   does not fit fails nothing (the group goes on without one);
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

#[cfg(any(test, feature = "testing"))]
use std::cell::Cell;

#[cfg(any(test, feature = "testing"))]
thread_local! {
    /// (OS error, calls left) for writes and for syncs.
    static WRITE_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    /// The next commit-group write panics.
    static WRITE_PANIC: Cell<bool> = const { Cell::new(false) };
    static SYNC_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
    /// (OS error, calls left) for runway writes.
    static RUNWAY_FAULT: Cell<Option<(i32, u32)>> = const { Cell::new(None) };
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
#[cfg(any(test, feature = "testing"))]
static SYNCED: std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(any(test, feature = "testing"))]
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
    #[cfg(any(test, feature = "testing"))]
    {
        if WRITE_PANIC.with(|p| p.replace(false)) {
            panic!("injected panic in a group commit (faults::panic_next_write)");
        }
        take(&WRITE_FAULT)?;
    }
    Ok(())
}

/// Called before a runway of zeros is written (see `log::runway`).
#[inline]
pub(crate) fn on_runway_write() -> io::Result<()> {
    #[cfg(any(test, feature = "testing"))]
    take(&RUNWAY_FAULT)?;
    Ok(())
}

/// Called before a commit group's fdatasync.
#[inline]
pub(crate) fn on_sync() -> io::Result<()> {
    #[cfg(any(test, feature = "testing"))]
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
    #[cfg(any(test, feature = "testing"))]
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
    #[cfg(any(test, feature = "testing"))]
    take(&CACHED_READ_FAULT)?;
    Ok(())
}

/// Called after an fdatasync of the segment at `path` succeeded with `len`
/// bytes written: the disk holds at least those bytes.
#[inline]
pub(crate) fn on_synced(path: &Path, len: u64) {
    #[cfg(any(test, feature = "testing"))]
    crate::poison::lock(&SYNCED).insert(path.to_path_buf(), len);
    #[cfg(not(any(test, feature = "testing")))]
    let _ = (path, len);
}

/// The length covered by the last successful fdatasync of `path`.
#[cfg(any(test, feature = "testing"))]
pub fn synced_len(path: &Path) -> Option<u64> {
    crate::poison::lock(&SYNCED).get(path).copied()
}

/// The next sync on this thread sends on `reached` (its group is written,
/// not yet synced) and waits for `release` before syncing.
#[cfg(any(test, feature = "testing"))]
pub fn stall_next_sync(
    reached: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
) {
    SYNC_STALL.with(|s| *s.borrow_mut() = Some((reached, release)));
}

/// The next commit-group write on this thread panics (a bug inside the
/// commit, with the writer lock held).
#[cfg(any(test, feature = "testing"))]
pub fn panic_next_write() {
    WRITE_PANIC.with(|p| p.set(true));
}

/// The next `count` commit-group writes on this thread fail with `errno`.
#[cfg(any(test, feature = "testing"))]
pub fn fail_writes(errno: i32, count: u32) {
    WRITE_FAULT.with(|c| c.set(Some((errno, count))));
}

/// The next `count` runway writes on this thread fail with `errno`.
#[cfg(any(test, feature = "testing"))]
pub fn fail_runway_writes(errno: i32, count: u32) {
    RUNWAY_FAULT.with(|c| c.set(Some((errno, count))));
}

/// The next `count` commit-group fdatasyncs on this thread fail with
/// `errno`.
#[cfg(any(test, feature = "testing"))]
pub fn fail_syncs(errno: i32, count: u32) {
    SYNC_FAULT.with(|c| c.set(Some((errno, count))));
}

/// The next `count` cached-only reads on this thread find nothing cached,
/// as if the segment's pages had been evicted (deterministic, unlike
/// `POSIX_FADV_DONTNEED`, which the kernel may ignore).
#[cfg(any(test, feature = "testing"))]
pub fn evict_cached_reads(count: u32) {
    CACHED_READ_FAULT.with(|c| c.set(Some((libc::EAGAIN, count))));
}

/// How many cached-only reads on this thread [`evict_cached_reads`] still
/// has to fail (0 once it failed all it was armed for, or was never armed).
#[cfg(any(test, feature = "testing"))]
pub fn evicted_reads_left() -> u32 {
    CACHED_READ_FAULT.with(|c| c.get().map_or(0, |(_, left)| left))
}

/// After `pass` directory fsyncs on this thread succeed, the next fails.
#[cfg(any(test, feature = "testing"))]
pub fn fail_dir_sync_after(pass: u32, errno: i32) {
    DIR_SYNC_FAULT.with(|c| c.set(Some((errno, pass))));
}
