//! The runway: zeros written (and synced) ahead of the active segment's
//! batches, so that a durable append overwrites blocks already allocated
//! and written, inside the file's size.
//!
//! Why: on ext4 (and XFS), an fdatasync after an append must also commit the
//! journal (the file's new size, its newly allocated blocks); after an
//! overwrite inside the size it flushes only the data. On this project's
//! test machine that is 0.23-0.30 → 0.18-0.25 ms per sync at the median
//! (`skiff bench fsync` against `--prezero`, three runs of
//! `benches/latency.sh`), and a message under `--fsync always` waits
//! about 1.5 syncs (the rest of the one in flight, then its own).
//!
//! When: only under `Durability::Always` (the other modes do not sync per
//! group; a runway laid before a switch to another mode is overwritten
//! unsynced, like any of that mode's writes, and cut at the next roll or
//! close), only behind small runs (a large group's sync is dominated by its
//! data, and writing zeros as well would cost throughput), and only when
//! less than [`RUNWAY_LOW_BYTES`] is left ahead of the batches. The zeros
//! are written in the same group as the run, before its sync, so they cost
//! no sync of their own: that one sync pays for the size change, the
//! [`RUNWAY_BYTES`] / run-size syncs after it do not.
//!
//! A runway that cannot be written (a full disk) is skipped: the group's
//! batches go on without one. On a copy-on-write filesystem (btrfs, ZFS,
//! bcachefs; [`pays_off`]) none is laid: an overwrite there costs what an
//! append does.
//!
//! Invariants: the runway never reaches past the segment's size limit, a
//! roll or a clean close cuts it before the segment's last sync (a sealed
//! segment ends at its last batch), and recovery takes zeros from a batch
//! boundary to the end of the file for the end of the batches (see
//! `segment::scan`). Readers never see the runway: they stop at the
//! visible end.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::path::Path;

use super::Durability;

/// Zeros laid ahead of the batches at once.
pub(crate) const RUNWAY_BYTES: u64 = 256 * 1024;
/// A new runway is laid when less than this is left ahead of the batches.
pub(crate) const RUNWAY_LOW_BYTES: u64 = 64 * 1024;
/// Only runs of at most this many bytes lay a runway.
pub(crate) const RUNWAY_RUN_BYTES_MAX: u64 = 64 * 1024;

/// `statfs` magic numbers of copy-on-write filesystems (btrfs, ZFS,
/// bcachefs): an overwrite there goes to new blocks and commits metadata
/// like an append, so a runway would only double the writes.
const COW_FS_MAGICS: [u64; 3] = [0x9123_683E, 0x2FC1_2FC1, 0xCA45_1A4E];

/// Whether a runway pays off on the filesystem of `dir`: not on a
/// copy-on-write one. When the filesystem cannot be told, it is laid.
pub(crate) fn pays_off(dir: &Path) -> bool {
    filesystem_magic(dir).is_none_or(pays_off_on)
}

/// Whether a runway pays off on a filesystem with `statfs` magic `magic`.
fn pays_off_on(magic: u64) -> bool {
    !COW_FS_MAGICS.contains(&magic)
}

/// The `statfs` magic number (`f_type`) of the filesystem holding `path`.
#[cfg(target_os = "linux")]
fn filesystem_magic(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statfs` is plain old data, valid when zeroed, and filled by
    // the call; `c_path` is NUL-terminated and outlives the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    // `f_type`'s width and sign differ between targets; magics fit 32 bits.
    (rc == 0).then_some((buf.f_type as u64) & 0xFFFF_FFFF)
}

#[cfg(not(target_os = "linux"))]
fn filesystem_magic(_path: &Path) -> Option<u64> {
    None
}

/// One slice's worth of zeros (a runway is written as several slices of it).
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The bytes of the file to zero after a run of `run_bytes` that ends the
/// batches at `end_pos`, in a file of `file_len` bytes (the runway ahead
/// of it included) whose segment may grow to `segment_bytes`; `None` when
/// no runway is due.
pub(crate) fn due(
    durability: &Durability,
    run_bytes: u64,
    end_pos: u64,
    file_len: u64,
    segment_bytes: u64,
) -> Option<Range<u64>> {
    if *durability != Durability::Always || run_bytes > RUNWAY_RUN_BYTES_MAX {
        return None;
    }
    let file_len = file_len.max(end_pos);
    if file_len - end_pos >= RUNWAY_LOW_BYTES {
        return None;
    }
    let to = end_pos.saturating_add(RUNWAY_BYTES).min(segment_bytes);
    (to > file_len).then_some(file_len..to)
}

/// Writes zeros over `range` of `file` (at its end: the range starts at
/// the file's length). On failure part of it may be written: the caller
/// cuts the file back.
pub(crate) fn lay(file: &File, path: &Path, range: Range<u64>) -> io::Result<()> {
    super::faults::on_runway_write()?;
    debug_assert_eq!(
        file.metadata().map(|m| m.len()).ok(),
        Some(range.start),
        "a runway starts at the end of the file"
    );
    let mut left = range.end.saturating_sub(range.start);
    let mut slices = Vec::new();
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        slices.push(IoSlice::new(&ZEROS[..n]));
        left -= n as u64;
    }
    crate::fsio::write_all_at(file, path, &mut slices, range.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: u64 = 1 << 30;

    #[test]
    fn a_small_run_with_little_runway_left_lays_a_full_one() {
        assert_eq!(
            due(&Durability::Always, 100, 1000, 1000, SEGMENT),
            Some(1000..1000 + RUNWAY_BYTES)
        );
        // Some runway left, but under the low mark: topped up from its end.
        let end = 5000;
        let len = end + RUNWAY_LOW_BYTES - 1;
        assert_eq!(
            due(&Durability::Always, 100, end, len, SEGMENT),
            Some(len..end + RUNWAY_BYTES)
        );
    }

    #[test]
    fn no_runway_when_enough_is_left_or_the_run_is_large_or_syncs_are_rare() {
        let end = 5000;
        assert_eq!(
            due(
                &Durability::Always,
                100,
                end,
                end + RUNWAY_LOW_BYTES,
                SEGMENT
            ),
            None
        );
        assert_eq!(
            due(
                &Durability::Always,
                RUNWAY_RUN_BYTES_MAX + 1,
                end,
                end,
                SEGMENT
            ),
            None
        );
        assert_eq!(due(&Durability::Never, 100, end, end, SEGMENT), None);
        let every = Durability::Interval(std::time::Duration::from_millis(5));
        assert_eq!(due(&every, 100, end, end, SEGMENT), None);
    }

    #[test]
    fn the_runway_stops_at_the_segment_size_limit() {
        assert_eq!(
            due(&Durability::Always, 100, 900, 900, 1024),
            Some(900..1024)
        );
        assert_eq!(due(&Durability::Always, 100, 1024, 1024, 1024), None);
        // A run that went past the limit (a single large batch): no runway.
        assert_eq!(due(&Durability::Always, 100, 2000, 2000, 1024), None);
    }

    #[test]
    fn no_runway_on_copy_on_write_filesystems() {
        const EXT4: u64 = 0xEF53;
        const XFS: u64 = 0x5846_5342;
        const BTRFS: u64 = 0x9123_683E;
        const ZFS: u64 = 0x2FC1_2FC1;
        assert!(pays_off_on(EXT4) && pays_off_on(XFS));
        assert!(!pays_off_on(BTRFS) && !pays_off_on(ZFS));
        // This machine's temporary directory, whatever it is, is read.
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(filesystem_magic(dir.path()).is_some());
    }

    #[test]
    fn lay_writes_zeros_over_the_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        std::fs::write(&path, b"batch").expect("write");
        let n = ZEROS.len() as u64 * 2 + 5;
        lay(&file, &path, 5..5 + n).expect("lay");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len() as u64, 5 + n);
        assert_eq!(&bytes[..5], b"batch");
        assert!(bytes[5..].iter().all(|&b| b == 0));
    }
}
