//! Every memory map of the log lives here (index files only; segment data is
//! read with `pread` or `preadv2`).
//!
//! # Safety
//!
//! A memory map turns a later change of the file's length into undefined
//! behaviour for whoever holds the map (SIGBUS on access past the new end, or
//! a slice whose contents change under a `&[u8]`). The contract every caller
//! in `log/` keeps:
//!
//! 1. A mapped file is never truncated or shrunk while mapped. Index files
//!    are resized only by [`MapMut::create`] before mapping, and truncated to
//!    their used length only after the map was dropped (`SegmentIndex::seal`).
//! 2. Only this process writes the files of a partition directory while the
//!    log is open (one broker per data directory), and only through
//!    [`MapMut`], which requires `&mut` to write.
//! 3. Readers only read entries below the published entry count, which only
//!    grows while the map exists; an entry is written before the count that
//!    covers it is published (under the index's `RwLock`).
//!
//! Deleting (unlinking) a mapped file is fine: the pages stay valid until the
//! map is dropped.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// A read-only map of a whole file that is not modified while mapped.
#[derive(Debug)]
pub(crate) struct MapRead {
    map: Mmap,
}

impl MapRead {
    /// Maps `file` (its current length, which must be non-zero).
    pub(crate) fn open(file: &File) -> io::Result<MapRead> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty file",
            ));
        }
        // SAFETY: per the module contract the file is never truncated while
        // this map lives and nobody writes it through another handle.
        let map = unsafe { MmapOptions::new().len(len as usize).map(file)? };
        Ok(MapRead { map })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Reserves disk blocks for the first `len` bytes of `file`. `set_len` alone
/// makes a sparse file: the first store to an unbacked page of the map on a
/// full disk would then raise SIGBUS and kill the broker instead of failing
/// one append with ENOSPC. With the blocks reserved, a full disk surfaces
/// here, as an `io::Error`.
fn reserve_blocks(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "map length too large"))?;
    // SAFETY: plain FFI call on a descriptor `file` owns for the call's
    // duration; it touches no Rust memory.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// A writable map of a file preallocated to a fixed length.
#[derive(Debug)]
pub(crate) struct MapMut {
    map: MmapMut,
}

impl MapMut {
    /// Sets the length of `file` to `len` (non-zero) and maps it read-write.
    pub(crate) fn create(file: &File, len: u64) -> io::Result<MapMut> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty file",
            ));
        }
        file.set_len(len)?;
        reserve_blocks(file, len)?;
        // SAFETY: the length was just set and, per the module contract, is not
        // changed again until this map is dropped; only this map writes it.
        let map = unsafe { MmapOptions::new().len(len as usize).map_mut(file)? };
        Ok(MapMut { map })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Copies `data` to `position`. Returns false (writing nothing) if it does
    /// not fit.
    pub(crate) fn write_at(&mut self, position: usize, data: &[u8]) -> bool {
        match position.checked_add(data.len()) {
            Some(end) if end <= self.map.len() => {
                self.map[position..end].copy_from_slice(data);
                true
            }
            _ => false,
        }
    }

    /// Writes dirty pages back to the file (msync).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}
