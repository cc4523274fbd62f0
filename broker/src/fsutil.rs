//! Small filesystem helpers shared by the log, topics and broker state.

use std::fs::File;
use std::io;
use std::path::Path;

/// Fsyncs a directory, making the creation, rename or removal of its entries
/// durable. Needed after every such change: fsyncing a file does not persist
/// its directory entry.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
