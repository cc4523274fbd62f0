//! Allocates idempotent-producer ids, unique for the life of a data
//! directory (across restarts and crashes).
//!
//! Invariant: every id handed out is below the number stored in
//! `<data_dir>/producer_ids`. Ids are taken in blocks of
//! [`PRODUCER_ID_BLOCK`]: before the first id of a block is handed out, the
//! block's end is written to a temp file, fsynced, renamed over the file and
//! the directory fsynced. A restart continues at the stored number, so a
//! crash wastes at most one block of ids and never reuses one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::fsio::sync_dir;

/// Ids reserved per durable write: one fsync per 1000 producers, and at most
/// 1000 ids skipped per restart (of 2^64).
pub const PRODUCER_ID_BLOCK: u64 = 1000;
/// File under the data directory holding the next unreserved id (decimal).
pub const PRODUCER_IDS_FILE: &str = "producer_ids";

/// Why an id could not be allocated or the allocator not opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerIdError {
    /// Reading or writing the id file failed.
    #[error("producer id file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The id file does not hold a number.
    #[error("producer id file {} is damaged: {content:?}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What it holds (first bytes).
        content: String,
    },
    /// Every id was handed out.
    #[error("producer ids exhausted")]
    Exhausted,
}

#[derive(Debug)]
struct Block {
    next: u64,
    end: u64,
}

/// The allocator; `Send + Sync`. `allocate` may block on a file write and
/// fsync (once per block): call it off the async workers.
#[derive(Debug)]
pub struct ProducerIds {
    dir: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIds {
    /// Opens the allocator of `data_dir` (which must exist).
    pub fn open(data_dir: &Path) -> Result<ProducerIds, ProducerIdError> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let start = match fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| ProducerIdError::Damaged {
                    path: path.clone(),
                    content: s.chars().take(40).collect(),
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(source) => return Err(ProducerIdError::Io { path, source }),
        };
        Ok(ProducerIds {
            dir: data_dir.to_owned(),
            block: Mutex::new(Block {
                next: start,
                end: start,
            }),
        })
    }

    /// A new producer id, never handed out before by this data directory.
    pub fn allocate(&self) -> Result<u64, ProducerIdError> {
        let mut b = crate::poison::lock(&self.block);
        if b.next == b.end {
            let end = b
                .end
                .checked_add(PRODUCER_ID_BLOCK)
                .filter(|&e| e < skiff_protocol::batch::NO_PRODUCER_ID)
                .ok_or(ProducerIdError::Exhausted)?;
            self.persist(end)?;
            b.end = end;
        }
        let id = b.next;
        b.next += 1;
        Ok(id)
    }

    fn persist(&self, end: u64) -> Result<(), ProducerIdError> {
        let path = self.dir.join(PRODUCER_IDS_FILE);
        let tmp = self.dir.join(format!("{PRODUCER_IDS_FILE}.tmp"));
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            writeln!(f, "{end}")?;
            crate::fsio::sync_all(&f, &tmp)?;
            fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)
        };
        write().map_err(|source| ProducerIdError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let a: Vec<u64> = (0..3).map(|_| ids.allocate().expect("id")).collect();
        assert_eq!(a, vec![0, 1, 2]);
        drop(ids);
        let ids = ProducerIds::open(dir.path()).expect("reopen");
        let b = ids.allocate().expect("id");
        assert_eq!(b, PRODUCER_ID_BLOCK);
        for _ in 0..PRODUCER_ID_BLOCK {
            ids.allocate().expect("id");
        }
        drop(ids);
        let ids = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(ids.allocate().expect("id"), 3 * PRODUCER_ID_BLOCK);
    }

    #[test]
    fn damaged_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(PRODUCER_IDS_FILE), "garbage").expect("write");
        assert!(matches!(
            ProducerIds::open(dir.path()),
            Err(ProducerIdError::Damaged { .. })
        ));
    }
}
