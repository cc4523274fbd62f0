//! The filesystem calls that make something durable, in one place.
//!
//! Every fsync/fdatasync of a file, every fsync of a directory, every
//! directory creation that must survive a power cut and every positional
//! write (one that may overwrite bytes an earlier sync made durable) goes
//! through this module, so a power-loss model can watch them: with
//! `cfg(test)` or the `testing` feature, [`power`] records, per file, the
//! bytes its last completed sync covered and the bytes overwritten since,
//! per directory, the entries its last completed fsync covered, and can cut
//! power under a running broker (see its header). In normal builds the hooks
//! compile away and these are the plain calls.
//!
//! Invariants the callers keep (the power-loss tests check them):
//! - a file's sync goes through [`sync_data`] or [`sync_all`] with the path
//!   the file was opened at;
//! - a write below a file's end goes through [`write_all_at`], and a cut
//!   of a file that may later be written below its end again through
//!   [`set_len`] (appends to a file never cut need not: what they add is
//!   past every sync's length);
//! - after a file or directory is created, renamed or removed, its parent
//!   directory is fsynced ([`sync_dir`]) before anything depending on it is
//!   acknowledged;
//! - a directory that must exist after a power cut is created with
//!   [`create_dir_all`], which fsyncs the parent of every directory it
//!   creates.

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};

pub mod frame;
#[cfg(any(test, feature = "testing"))]
pub mod power;

/// fdatasync: the file's data (and the size needed to read it) is durable.
pub fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(any(test, feature = "testing"))]
    let started = power::before_file_sync(file, path)?;
    #[cfg(not(any(test, feature = "testing")))]
    let _ = path;
    file.sync_data()?;
    #[cfg(any(test, feature = "testing"))]
    power::after_file_sync(file, path, started)?;
    Ok(())
}

/// fsync: the file's data and metadata are durable.
pub fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(any(test, feature = "testing"))]
    let started = power::before_file_sync(file, path)?;
    #[cfg(not(any(test, feature = "testing")))]
    let _ = path;
    file.sync_all()?;
    #[cfg(any(test, feature = "testing"))]
    power::after_file_sync(file, path, started)?;
    Ok(())
}

/// Writes all of `bufs` at byte `pos` of `file` (not opened `O_APPEND`,
/// where Linux ignores the position), looping over short and interrupted
/// writes; the file grows if the bytes go past its end. `pwritev`, so one
/// syscall for a whole commit group in the usual case.
pub fn write_all_at(
    file: &File,
    path: &Path,
    mut bufs: &mut [IoSlice<'_>],
    mut pos: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    #[cfg(any(test, feature = "testing"))]
    {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        power::before_write(file, path, pos, len)?;
    }
    #[cfg(not(any(test, feature = "testing")))]
    let _ = path;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let offset = libc::off_t::try_from(pos).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write position {pos} past the largest file offset"),
            )
        })?;
        // A call takes at most IOV_MAX slices; the loop writes the rest.
        let count = bufs.len().min(IOV_SLICES_MAX);
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix, and the
        // first `count` slices are valid for reads for the whole call; the
        // descriptor is `file`'s, open while `file` is borrowed.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                offset,
            )
        };
        match usize::try_from(n) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwritev wrote 0 bytes",
                ));
            }
            Ok(n) => {
                IoSlice::advance_slices(&mut bufs, n);
                pos += n as u64;
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// `ftruncate`: sets the file's length (not durable until a sync).
pub fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    #[cfg(any(test, feature = "testing"))]
    power::after_set_len(file, path, len)?;
    #[cfg(not(any(test, feature = "testing")))]
    let _ = path;
    Ok(())
}

/// Slices one `pwritev` call takes (Linux's `IOV_MAX`).
const IOV_SLICES_MAX: usize = 1024;

/// Fsyncs a directory, making the creation, rename or removal of its entries
/// durable. Needed after every such change: fsyncing a file does not persist
/// its directory entry.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(any(test, feature = "testing"))]
    let before = power::before_dir_sync(dir)?;
    File::open(dir)?.sync_all()?;
    #[cfg(any(test, feature = "testing"))]
    power::after_dir_sync(dir, before)?;
    Ok(())
}

/// `create_dir_all` that makes every directory it creates durable: each new
/// directory's parent is fsynced after the creation (a new directory is only
/// an entry in its parent until then). Existing directories are left alone.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => {}
        // Raced with another creator: it syncs its own parent, but syncing
        // again is harmless and keeps the contract without knowing who won.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(e),
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old or the
/// new file whole: writes `dir/name.tmp`, fsyncs it, renames it over `name`
/// and fsyncs `dir`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    sync_all(&file, &tmp)?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// A failed [`replace_log`]: the step (`op`), the path it acted on, the
/// error, and whether the rename had happened. Once it has, the old file
/// is unlinked and anything appended to it would be lost, so the caller
/// must stop writing.
#[derive(Debug)]
pub struct ReplaceLogError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
    pub renamed: bool,
}

/// Compacts an append-only record file: writes `snapshot` to
/// `dir/tmp_name`, fsyncs it, renames it over `path` (in `dir`), reopens
/// `path` for appending and fsyncs `dir`. A crash leaves the old file or
/// the snapshot whole. Shared by the offset store and the queue store.
pub fn replace_log(
    dir: &Path,
    tmp_name: &str,
    path: &Path,
    snapshot: &[u8],
) -> Result<File, ReplaceLogError> {
    use std::fs::OpenOptions;
    use std::io::Write;
    fn fail(
        op: &'static str,
        path: &Path,
        renamed: bool,
    ) -> impl FnOnce(io::Error) -> ReplaceLogError {
        let path = path.to_owned();
        move |source| ReplaceLogError {
            op,
            path,
            source,
            renamed,
        }
    }
    let tmp = dir.join(tmp_name);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(fail("create", &tmp, false))?;
    file.write_all(snapshot)
        .map_err(fail("write", &tmp, false))?;
    sync_all(&file, &tmp).map_err(fail("fsync", &tmp, false))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail("rename over", path, false))?;
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(fail("reopen", path, true))?;
    sync_dir(dir).map_err(fail("fsync directory", dir, true))?;
    Ok(file)
}

/// File name of the data-directory lock.
pub const DATA_DIR_LOCK_FILE: &str = ".lock";

/// Takes an exclusive, non-blocking `flock` on `<dir>/.lock`, so two brokers
/// can never open one data directory (the log's memory maps and its single
/// writer per partition assume they are alone). The lock lives as long as
/// the returned file and dies with the process, even on SIGKILL. Fails with
/// `ErrorKind::WouldBlock` when another process holds it.
pub fn lock_dir(dir: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(DATA_DIR_LOCK_FILE))?;
    // SAFETY: plain FFI call on a descriptor `file` owns; no Rust memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(file)
    } else {
        Err(io::Error::last_os_error())
    }
}
