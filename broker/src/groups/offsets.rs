//! The durable offset store: every group's committed offsets, in one
//! append-only file `<data_dir>/groups/offsets.log`, with an in-memory map
//! for reads.
//!
//! Record format (little-endian), one per commit, reset or delete:
//!
//! ```text
//! record := body_len u32 | crc u32 (crc32fast of body) | body
//! body   := kind u8 | group (u16 len, UTF-8) | payload
//!   kind 1 (commit): count u32, then count × (topic (u16 len, UTF-8), partition u32, offset u64)
//!   kind 2 (delete group): nothing
//! ```
//!
//! Invariants:
//! - A commit is acknowledged only after its record is written and
//!   fdatasync'd; the in-memory map is updated after that same fsync, so a
//!   reader never sees an offset a crash could take back.
//! - One dedicated writer thread owns the file. Updates queue on a channel;
//!   the writer takes everything queued, writes it in one `write`, syncs once
//!   and answers every waiter (group commit), so thousands of commits a second
//!   cost a few fsyncs each, and no async worker ever blocks on the disk.
//! - Once a write or fsync fails, the store refuses every later update (the
//!   page cache may have dropped dirty pages; retrying could ack lost data).
//!   A restart re-reads what really is on disk.
//! - Recovery reads records until the first one that is short, fails its
//!   CRC or does not decode, truncates the file there (a torn tail from a
//!   crash mid-write) and fsyncs.
//! - The file never grows without bound: when it exceeds
//!   `compact_ratio` × the live data (and `compact_bytes_min`), the writer
//!   writes a snapshot (one record per group) to a temporary file, fsyncs it,
//!   renames it over the log and fsyncs the directory. A crash at any point
//!   leaves either the old or the new file whole.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;

use bytes::{Buf, BufMut, BytesMut};
use skiff_protocol::messages::TopicPartition;
use tokio::sync::oneshot;

use crate::fsio;

/// The offsets file inside the groups directory.
pub const OFFSETS_FILE: &str = "offsets.log";
/// The snapshot being written during compaction.
const COMPACT_TMP_FILE: &str = "offsets.log.compact";

/// Largest record body accepted on recovery, in bytes. A commit record is
/// bounded by the request frame (16 MiB by default); a snapshot record holds
/// one group's offsets, ~30 bytes each, so this allows millions of partitions
/// per group while keeping a corrupt length from being believed.
const RECORD_BODY_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Updates written (and synced) together at most. Bounds the latency of the
/// last waiter in a batch and the writer's buffer.
const BATCH_UPDATES_MAX: usize = 4096;

const KIND_COMMIT: u8 = 1;
const KIND_DELETE_GROUP: u8 = 2;

/// When the store compacts its file.
#[derive(Debug, Clone, Copy)]
pub struct OffsetStoreOptions {
    /// Never compact a file smaller than this, in bytes.
    pub compact_bytes_min: u64,
    /// Compact when the file is more than this many times the live data.
    pub compact_ratio: u64,
}

impl Default for OffsetStoreOptions {
    fn default() -> Self {
        Self {
            // 8 MiB: a rewrite of a small file costs little, and below this
            // recovery reads the whole file in milliseconds anyway.
            compact_bytes_min: 8 * 1024 * 1024,
            // 4×: each live byte is rewritten once per three bytes of new
            // commits, so compaction costs at most a third of the write I/O.
            compact_ratio: 4,
        }
    }
}

/// Why the offset store failed. Cloneable because one failed fsync fails
/// every update of its batch.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetStoreError {
    /// A file operation failed.
    #[error("offset store: cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: Arc<std::io::Error>,
    },
    /// An earlier write or fsync failed; the store takes no more updates
    /// until the broker restarts.
    #[error("offset store refuses writes after an earlier failure: {0}")]
    Failed(String),
    /// The store is closed (broker shutting down).
    #[error("offset store is closed")]
    Closed,
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> OffsetStoreError {
    OffsetStoreError::Io {
        op,
        path: path.to_owned(),
        source: Arc::new(source),
    }
}

/// One change to the stored offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetUpdate {
    /// Sets offsets of a group (commit or reset).
    Commit {
        /// The group.
        group: String,
        /// The new offsets.
        offsets: Vec<(TopicPartition, u64)>,
    },
    /// Forgets a group and all its offsets.
    DeleteGroup {
        /// The group.
        group: String,
    },
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetRecovery {
    /// Valid records read.
    pub records: u64,
    /// Bytes cut from the end of the file (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Groups with offsets after recovery.
    pub groups: usize,
}

/// An update waiting for its fsync.
#[derive(Debug)]
pub struct PendingUpdate(oneshot::Receiver<Result<(), OffsetStoreError>>);

impl PendingUpdate {
    /// Waits until the update is durable.
    pub async fn wait(self) -> Result<(), OffsetStoreError> {
        self.0.await.unwrap_or(Err(OffsetStoreError::Closed))
    }

    /// Waits from a blocking context (never from an async worker).
    pub fn wait_blocking(self) -> Result<(), OffsetStoreError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(OffsetStoreError::Closed))
    }
}

type OffsetMap = HashMap<String, BTreeMap<TopicPartition, u64>>;

struct Job {
    update: OffsetUpdate,
    done: oneshot::Sender<Result<(), OffsetStoreError>>,
}

/// The durable offset store. See the module docs for the format and
/// guarantees.
#[derive(Debug)]
pub struct OffsetStore {
    committed: Arc<RwLock<OffsetMap>>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("update", &self.update).finish()
    }
}

impl OffsetStore {
    /// Opens (creating if needed) the store in `dir`, recovering the file and
    /// starting the writer thread. Blocking: call from a blocking context.
    pub fn open(
        dir: &Path,
        options: OffsetStoreOptions,
    ) -> Result<(Self, OffsetRecovery), OffsetStoreError> {
        let mut map = OffsetMap::new();
        let opened = fsio::frame::open_log(
            dir,
            OFFSETS_FILE,
            COMPACT_TMP_FILE,
            RECORD_BODY_BYTES_MAX,
            |body| match decode_body(body) {
                Some(update) => {
                    apply(&mut map, update);
                    true
                }
                None => false,
            },
        )
        .map_err(|e| io_err(e.op, &e.path, e.source))?;
        let mut report = OffsetRecovery {
            records: opened.records,
            truncated_bytes: opened.truncated_bytes,
            ..OffsetRecovery::default()
        };
        let (file, path, valid_len) = (opened.file, opened.path, opened.valid_bytes);
        report.groups = map.len();
        let committed = Arc::new(RwLock::new(map));
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            dir: dir.to_owned(),
            path,
            file,
            file_len: valid_len,
            next_compaction_check: options.compact_bytes_min,
            options,
            committed: Arc::clone(&committed),
            failed: None,
            buf: BytesMut::new(),
        };
        let handle = std::thread::Builder::new()
            .name("skiff-offsets".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io_err("start writer thread for", dir, e))?;
        Ok((
            Self {
                committed,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
            },
            report,
        ))
    }

    /// Queues an update; it is durable (and visible to readers) when the
    /// returned [`PendingUpdate`] resolves to `Ok`. Never blocks, so callers
    /// may hold a lock while submitting to fix the order of updates.
    pub fn submit(&self, update: OffsetUpdate) -> PendingUpdate {
        let (done, rx) = oneshot::channel();
        let tx = crate::poison::lock(&self.tx);
        match tx.as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(Job { update, done }) {
                    let _ = job.done.send(Err(OffsetStoreError::Closed));
                }
            }
            None => {
                let _ = done.send(Err(OffsetStoreError::Closed));
            }
        }
        PendingUpdate(rx)
    }

    /// A group's committed offset for one partition.
    pub fn committed(&self, group: &str, tp: &TopicPartition) -> Option<u64> {
        self.read()
            .get(group)
            .and_then(|offsets| offsets.get(tp).copied())
    }

    /// All of a group's committed offsets.
    pub fn group_offsets(&self, group: &str) -> BTreeMap<TopicPartition, u64> {
        self.read().get(group).cloned().unwrap_or_default()
    }

    /// Whether the group has any committed offset.
    pub fn has_group(&self, group: &str) -> bool {
        self.read().contains_key(group)
    }

    /// Every group with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, OffsetMap> {
        crate::poison::read(&self.committed)
    }

    /// Stops taking updates, lets the writer finish everything queued and
    /// waits for it. Blocking: call from a blocking context.
    pub fn close(&self) {
        drop(crate::poison::lock(&self.tx).take());
        let handle = crate::poison::lock(&self.writer).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("offset store writer thread panicked");
            }
        }
    }
}

impl Drop for OffsetStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Parses one record at the front of `data`: the update and the record's
/// length, or `None` if it is incomplete, corrupt or undecodable.
fn parse_record(data: &[u8]) -> Option<(OffsetUpdate, usize)> {
    let (body, len) = fsio::frame::parse(data, RECORD_BODY_BYTES_MAX)?;
    Some((decode_body(body)?, len))
}

fn take_string(body: &mut &[u8]) -> Option<String> {
    if body.remaining() < 2 {
        return None;
    }
    let len = body.get_u16_le() as usize;
    if body.remaining() < len {
        return None;
    }
    let s = std::str::from_utf8(&body[..len]).ok()?.to_owned();
    body.advance(len);
    Some(s)
}

fn decode_body(mut body: &[u8]) -> Option<OffsetUpdate> {
    if body.remaining() < 1 {
        return None;
    }
    let kind = body.get_u8();
    let group = take_string(&mut body)?;
    let update = match kind {
        KIND_COMMIT => {
            if body.remaining() < 4 {
                return None;
            }
            let count = body.get_u32_le() as usize;
            // Each entry is at least 2 + 4 + 8 bytes: a lying count fails here.
            if body.remaining() < count.checked_mul(14)? {
                return None;
            }
            let mut offsets = Vec::with_capacity(count);
            for _ in 0..count {
                let topic = take_string(&mut body)?;
                if body.remaining() < 12 {
                    return None;
                }
                let partition = body.get_u32_le();
                let offset = body.get_u64_le();
                offsets.push((TopicPartition { topic, partition }, offset));
            }
            OffsetUpdate::Commit { group, offsets }
        }
        KIND_DELETE_GROUP => OffsetUpdate::DeleteGroup { group },
        _ => return None,
    };
    body.is_empty().then_some(update)
}

fn put_str(buf: &mut BytesMut, s: &str) {
    // Group and topic names are validated far below u16::MAX bytes by the
    // protocol (u16 length prefix), so the cast cannot truncate.
    buf.put_u16_le(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

/// Appends one record for `update` to `buf`.
fn encode_record(buf: &mut BytesMut, update: &OffsetUpdate) {
    let start = fsio::frame::begin(buf);
    match update {
        OffsetUpdate::Commit { group, offsets } => {
            buf.put_u8(KIND_COMMIT);
            put_str(buf, group);
            buf.put_u32_le(offsets.len() as u32);
            for (tp, offset) in offsets {
                put_str(buf, &tp.topic);
                buf.put_u32_le(tp.partition);
                buf.put_u64_le(*offset);
            }
        }
        OffsetUpdate::DeleteGroup { group } => {
            buf.put_u8(KIND_DELETE_GROUP);
            put_str(buf, group);
        }
    }
    fsio::frame::end(buf, start);
    debug_assert!(parse_record(&buf[start..]).is_some_and(|(u, _)| &u == update));
}

fn apply(map: &mut OffsetMap, update: OffsetUpdate) {
    match update {
        OffsetUpdate::Commit { group, offsets } => {
            if offsets.is_empty() {
                return;
            }
            let entry = map.entry(group).or_default();
            for (tp, offset) in offsets {
                entry.insert(tp, offset);
            }
        }
        OffsetUpdate::DeleteGroup { group } => {
            map.remove(&group);
        }
    }
}

/// The writer thread's state: the only code touching the file after open.
struct Writer {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    file_len: u64,
    next_compaction_check: u64,
    options: OffsetStoreOptions,
    committed: Arc<RwLock<OffsetMap>>,
    failed: Option<String>,
    buf: BytesMut,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::new();
        // Ends when every sender is dropped and the queue is drained.
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < BATCH_UPDATES_MAX {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch);
            let updates = batch.len();
            for job in batch.drain(..) {
                let _ = job.done.send(result.clone());
            }
            metrics::counter!(crate::telemetry::names::OFFSET_COMMITS).increment(updates as u64);
            if result.is_ok() {
                if let Err(e) = self.maybe_compact() {
                    // The log is still whole; compaction is retried later.
                    tracing::error!(error = %e, "offset store compaction failed");
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[Job]) -> Result<(), OffsetStoreError> {
        if let Some(reason) = &self.failed {
            return Err(OffsetStoreError::Failed(reason.clone()));
        }
        self.buf.clear();
        for job in batch {
            encode_record(&mut self.buf, &job.update);
        }
        let written = self
            .file
            .write_all(&self.buf)
            .map_err(|e| io_err("write", &self.path, e))
            .and_then(|()| {
                fsio::sync_data(&self.file, &self.path)
                    .map_err(|e| io_err("fdatasync", &self.path, e))
            });
        if let Err(e) = written {
            tracing::error!(error = %e, "offset store write failed; refusing further commits");
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.file_len += self.buf.len() as u64;
        let mut map = crate::poison::write(&self.committed);
        for job in batch {
            apply(&mut map, job.update.clone());
        }
        Ok(())
    }

    /// Rewrites the file as a snapshot when it has grown well past the live
    /// data.
    fn maybe_compact(&mut self) -> Result<(), OffsetStoreError> {
        if self.file_len < self.next_compaction_check {
            return Ok(());
        }
        let snapshot = {
            let map = crate::poison::read(&self.committed);
            let mut buf = BytesMut::new();
            let mut groups: Vec<_> = map.iter().collect();
            groups.sort_by(|a, b| a.0.cmp(b.0));
            for (group, offsets) in groups {
                encode_record(
                    &mut buf,
                    &OffsetUpdate::Commit {
                        group: group.clone(),
                        offsets: offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
                    },
                );
            }
            buf
        };
        let live = snapshot.len() as u64;
        let ratio = self.options.compact_ratio.max(2);
        if self.file_len <= live.saturating_mul(ratio) {
            self.next_compaction_check = self
                .options
                .compact_bytes_min
                .max(live.saturating_mul(ratio))
                .max(self.file_len + live.max(1));
            return Ok(());
        }
        // Once the rename is done the snapshot is the log: a later failure
        // stops the store (appending to the unlinked old file would lose
        // updates).
        self.file = match fsio::replace_log(&self.dir, COMPACT_TMP_FILE, &self.path, &snapshot) {
            Ok(file) => file,
            Err(e) => {
                let err = io_err(e.op, &e.path, e.source);
                if e.renamed {
                    self.failed = Some(err.to_string());
                }
                return Err(err);
            }
        };
        tracing::debug!(
            before_bytes = self.file_len,
            after_bytes = live,
            "offset store compacted"
        );
        self.file_len = live;
        self.next_compaction_check = self
            .options
            .compact_bytes_min
            .max(live.saturating_mul(ratio));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn commit(store: &OffsetStore, group: &str, p: u32, offset: u64) {
        store
            .submit(OffsetUpdate::Commit {
                group: group.into(),
                offsets: vec![(tp(p), offset)],
            })
            .wait_blocking()
            .expect("commit");
    }

    fn open(dir: &Path, options: OffsetStoreOptions) -> (OffsetStore, OffsetRecovery) {
        OffsetStore::open(dir, options).expect("open")
    }

    #[test]
    fn commits_survive_reopen_and_delete_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (store, report) = open(dir.path(), OffsetStoreOptions::default());
        assert_eq!(report, OffsetRecovery::default());
        commit(&store, "a", 0, 5);
        commit(&store, "a", 1, 7);
        commit(&store, "a", 0, 9);
        commit(&store, "b", 0, 1);
        store
            .submit(OffsetUpdate::DeleteGroup { group: "b".into() })
            .wait_blocking()
            .unwrap();
        assert_eq!(store.committed("a", &tp(0)), Some(9));
        drop(store);

        let (store, report) = open(dir.path(), OffsetStoreOptions::default());
        assert_eq!(report.records, 5);
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(store.committed("a", &tp(0)), Some(9));
        assert_eq!(store.committed("a", &tp(1)), Some(7));
        assert_eq!(store.committed("a", &tp(2)), None);
        assert!(!store.has_group("b"));
        assert_eq!(store.groups(), vec!["a".to_owned()]);
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut_and_the_rest_survives() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path(), OffsetStoreOptions::default());
        for i in 0..10 {
            commit(&store, "g", i, u64::from(i) * 10);
        }
        drop(store);
        let path = dir.path().join(OFFSETS_FILE);
        let whole = std::fs::read(&path).unwrap();
        let record_len = whole.len() / 10;

        // A torn last record: every cut inside it loses only that record.
        for cut in 1..record_len {
            std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
            let (store, report) = open(dir.path(), OffsetStoreOptions::default());
            assert_eq!(report.records, 9, "cut {cut}");
            assert_eq!(report.truncated_bytes, (record_len - cut) as u64);
            assert_eq!(store.committed("g", &tp(8)), Some(80));
            assert_eq!(store.committed("g", &tp(9)), None);
            // The store keeps working after the cut, and the new record
            // follows the valid prefix.
            commit(&store, "g", 9, 99);
            drop(store);
            let (store, report) = open(dir.path(), OffsetStoreOptions::default());
            assert_eq!((report.records, report.truncated_bytes), (10, 0));
            assert_eq!(store.committed("g", &tp(9)), Some(99));
            drop(store);
        }

        // A flipped bit in the 6th record: records 0..5 survive.
        let mut flipped = whole.clone();
        flipped[5 * record_len + fsio::frame::FRAME_HEADER_BYTES + 2] ^= 0x10;
        std::fs::write(&path, &flipped).unwrap();
        let (store, report) = open(dir.path(), OffsetStoreOptions::default());
        assert_eq!(report.records, 5);
        assert_eq!(store.committed("g", &tp(4)), Some(40));
        assert_eq!(store.committed("g", &tp(5)), None);
        drop(store);

        // Garbage appended after valid records.
        let mut garbage = whole.clone();
        garbage.extend_from_slice(&[0xff; 37]);
        std::fs::write(&path, &garbage).unwrap();
        let (store, report) = open(dir.path(), OffsetStoreOptions::default());
        assert_eq!((report.records, report.truncated_bytes), (10, 37));
        assert_eq!(store.committed("g", &tp(9)), Some(90));
    }

    #[test]
    fn compaction_bounds_the_file_and_keeps_the_latest_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let options = OffsetStoreOptions {
            compact_bytes_min: 4096,
            compact_ratio: 4,
        };
        let (store, _) = open(dir.path(), options);
        let path = dir.path().join(OFFSETS_FILE);
        let mut max_len = 0;
        for round in 0..2000u64 {
            commit(
                &store,
                &format!("g{}", round % 3),
                (round % 4) as u32,
                round,
            );
            max_len = max_len.max(std::fs::metadata(&path).unwrap().len());
        }
        // 12 live offsets are ~200 bytes: without compaction 2000 commits
        // would be ~70 KB.
        assert!(max_len < 8 * 1024, "file grew to {max_len} bytes");
        let expected: Vec<_> = (0..3)
            .map(|g| store.group_offsets(&format!("g{g}")))
            .collect();
        drop(store);
        assert!(!dir.path().join(COMPACT_TMP_FILE).exists());
        let (store, report) = open(dir.path(), options);
        assert_eq!(report.truncated_bytes, 0);
        for (g, offsets) in expected.iter().enumerate() {
            assert_eq!(&store.group_offsets(&format!("g{g}")), offsets);
            assert_eq!(offsets.len(), 4);
        }
        assert_eq!(store.committed("g1", &tp(3)), Some(1999));
    }

    #[test]
    fn a_leftover_compaction_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path(), OffsetStoreOptions::default());
        commit(&store, "g", 0, 3);
        drop(store);
        std::fs::write(dir.path().join(COMPACT_TMP_FILE), b"half a snapshot").unwrap();
        let (store, _) = open(dir.path(), OffsetStoreOptions::default());
        assert_eq!(store.committed("g", &tp(0)), Some(3));
        assert!(!dir.path().join(COMPACT_TMP_FILE).exists());
    }

    #[test]
    fn concurrent_commits_are_grouped_and_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path(), OffsetStoreOptions::default());
        let pending: Vec<_> = (0..500u32)
            .map(|i| {
                store.submit(OffsetUpdate::Commit {
                    group: format!("g{}", i % 50),
                    offsets: vec![(tp(i % 7), u64::from(i))],
                })
            })
            .collect();
        for p in pending {
            p.wait_blocking().unwrap();
        }
        assert_eq!(store.committed("g49", &tp(499 % 7)), Some(499));
        store.close();
        assert!(matches!(
            store
                .submit(OffsetUpdate::DeleteGroup { group: "g1".into() })
                .wait_blocking(),
            Err(OffsetStoreError::Closed)
        ));
    }
}
