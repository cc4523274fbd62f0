//! The durable state of one queue: an append-only, checksummed, fsync'd
//! state log `<queue dir>/state.log`, with the durable view of every
//! partition in memory, and the dead-lettering protocol that survives a
//! crash.
//!
//! Record format (little-endian), one per submitted batch of updates:
//!
//! ```text
//! record := fsio::frame (body_len u32 | crc u32 | body)
//! body   := count u32, then count × entry
//! entry  := partition u32 | kind u8 | payload
//!   kind 1 delivered: offset u64, deliveries u32
//!   kind 2 delayed:   offset u64, until_ms i64, deliveries u32
//!   kind 3 done:      offset u64
//!   kind 4 floor:     floor u64
//!   kind 5 dead-letter intent: offset u64, deliveries u32,
//!                     dlq_partition u32, dlq_from u64, reason (u16 len, UTF-8)
//! ```
//!
//! Invariants (the pattern of the group offset store,
//! `groups/offsets.rs`):
//! - An update is answered only after its record is written and
//!   fdatasync'd, and the in-memory view changes after that same fsync.
//! - One writer thread owns the file and syncs every queued update at once
//!   (group commit); once a write or fsync fails the store refuses every
//!   later update until a restart re-reads the disk.
//! - Recovery reads records up to the first short, corrupt or undecodable
//!   one, truncates the file there and fsyncs.
//! - The view is bounded: per partition only what lies between the floor
//!   and the window's end (a `Floor` entry drops everything below it), so
//!   compaction (a snapshot written to a temporary file, fsynced, renamed
//!   over the log, directory fsynced) keeps the file bounded too.
//! - Dead-lettering is: intent durable (with the dead-letter partition's
//!   end offset at that moment), then the append to the dead-letter topic,
//!   then `Done`. Recovery looks for each unfinished intent's dead letter
//!   from that offset on, appends it only if it is not there, then records
//!   `Done`: a record is never lost and never dead-lettered twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;

use bytes::{Buf, BufMut, BytesMut};
use tokio::sync::oneshot;

use super::partition::{DeadLetter, PartitionDurable, Transition};
use crate::fsio::{self, frame};

/// The state log inside a queue's directory.
pub const STATE_FILE: &str = "state.log";
/// The snapshot being written during compaction.
const COMPACT_TMP_FILE: &str = "state.log.compact";

/// Entries per record at most: a large batch or snapshot is split, so a
/// record stays below [`RECORD_BODY_BYTES_MAX`].
const RECORD_ENTRIES_MAX: usize = 4096;
/// Largest entry: an intent with a reason of `REASON_BYTES_MAX` bytes.
const ENTRY_BYTES_MAX: usize = 4 + 1 + 8 + 4 + 4 + 8 + 2 + super::settings::REASON_BYTES_MAX;
/// Largest record body accepted on recovery, in bytes.
const RECORD_BODY_BYTES_MAX: usize = 4 + RECORD_ENTRIES_MAX * ENTRY_BYTES_MAX;
/// Smallest entry (a `done` or `floor`): a lying count fails against it.
const ENTRY_BYTES_MIN: usize = 4 + 1 + 8;
/// Update batches written (and synced) together at most.
const BATCH_JOBS_MAX: usize = 4096;

const _: () = assert!(RECORD_BODY_BYTES_MAX < u32::MAX as usize);

const KIND_DELIVERED: u8 = 1;
const KIND_DELAYED: u8 = 2;
const KIND_DONE: u8 = 3;
const KIND_FLOOR: u8 = 4;
const KIND_INTENT: u8 = 5;

/// When the store compacts its file.
#[derive(Debug, Clone, Copy)]
pub struct QueueStoreOptions {
    /// Never compact a file smaller than this, in bytes.
    pub compact_bytes_min: u64,
    /// Compact when the file is more than this many times the live data.
    pub compact_ratio: u64,
}

impl Default for QueueStoreOptions {
    fn default() -> Self {
        // As the offset store: a small file is cheap to read whole; at 4×
        // compaction costs at most a third of the write I/O.
        Self {
            compact_bytes_min: 4 * 1024 * 1024,
            compact_ratio: 4,
        }
    }
}

/// Why the queue store failed. Cloneable because one failed fsync fails
/// every update of its batch.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueueStoreError {
    /// A file operation failed.
    #[error("queue state: cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: Arc<std::io::Error>,
    },
    /// An earlier write or fsync failed; no more updates until a restart.
    #[error("queue state refuses writes after an earlier failure: {0}")]
    Failed(String),
    /// The store is closed.
    #[error("queue state store is closed")]
    Closed,
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> QueueStoreError {
    QueueStoreError::Io {
        op,
        path: path.to_owned(),
        source: Arc::new(source),
    }
}

/// A dead-lettering begun: durable before the dead letter is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterIntent {
    /// The record, its count and the reason.
    pub dead_letter: DeadLetter,
    /// The dead-letter topic's partition it goes to.
    pub dlq_partition: u32,
    /// That partition's end offset before the append: the dead letter, if
    /// written, is at or after it.
    pub dlq_from: u64,
}

/// One change to a queue's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateUpdate {
    /// A state-machine transition of a partition.
    Transition {
        /// The partition.
        partition: u32,
        /// The transition.
        transition: Transition,
    },
    /// A dead-lettering begun.
    Intent {
        /// The partition of the record.
        partition: u32,
        /// The intent.
        intent: DeadLetterIntent,
    },
}

/// A partition's durable view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionRecord {
    /// Floor, finished records, counts and delays.
    pub durable: PartitionDurable,
    /// Dead-letterings begun and not known to be finished, by offset.
    pub intents: BTreeMap<u64, DeadLetterIntent>,
}

impl PartitionRecord {
    fn apply(&mut self, update: &StateUpdate) {
        let d = &mut self.durable;
        match update {
            StateUpdate::Transition { transition, .. } => match *transition {
                Transition::Delivered { offset, deliveries } => {
                    if offset >= d.floor && !d.done.contains(&offset) {
                        let c = d.deliveries.entry(offset).or_default();
                        *c = (*c).max(deliveries);
                    }
                }
                Transition::Delayed {
                    offset,
                    until_ms,
                    deliveries,
                } => {
                    if offset >= d.floor && !d.done.contains(&offset) {
                        d.delayed.insert(offset, until_ms);
                        let c = d.deliveries.entry(offset).or_default();
                        *c = (*c).max(deliveries);
                    }
                }
                Transition::Done { offset } => {
                    if offset >= d.floor {
                        d.done.insert(offset);
                    }
                    d.deliveries.remove(&offset);
                    d.delayed.remove(&offset);
                    self.intents.remove(&offset);
                }
                Transition::Floor { floor } => {
                    if floor > d.floor {
                        d.floor = floor;
                        d.done = d.done.split_off(&floor);
                        d.deliveries = d.deliveries.split_off(&floor);
                        d.delayed = d.delayed.split_off(&floor);
                        self.intents = self.intents.split_off(&floor);
                    }
                }
            },
            StateUpdate::Intent { intent, .. } => {
                let offset = intent.dead_letter.offset;
                if offset >= d.floor && !d.done.contains(&offset) {
                    d.delayed.remove(&offset);
                    self.intents.insert(offset, intent.clone());
                }
            }
        }
    }

    /// The updates that rebuild this view from nothing.
    fn snapshot(&self, partition: u32) -> Vec<StateUpdate> {
        let t = |transition| StateUpdate::Transition {
            partition,
            transition,
        };
        let d = &self.durable;
        let mut out = vec![t(Transition::Floor { floor: d.floor })];
        out.extend(d.done.iter().map(|&offset| t(Transition::Done { offset })));
        for (&offset, &deliveries) in &d.deliveries {
            out.push(t(match d.delayed.get(&offset) {
                Some(&until_ms) => Transition::Delayed {
                    offset,
                    until_ms,
                    deliveries,
                },
                None => Transition::Delivered { offset, deliveries },
            }));
        }
        for (&offset, &until_ms) in &d.delayed {
            if !d.deliveries.contains_key(&offset) {
                out.push(t(Transition::Delayed {
                    offset,
                    until_ms,
                    deliveries: 0,
                }));
            }
        }
        out.extend(self.intents.values().map(|intent| StateUpdate::Intent {
            partition,
            intent: intent.clone(),
        }));
        out
    }
}

type View = BTreeMap<u32, PartitionRecord>;

fn apply(view: &mut View, update: &StateUpdate) {
    let partition = match update {
        StateUpdate::Transition { partition, .. } | StateUpdate::Intent { partition, .. } => {
            *partition
        }
    };
    view.entry(partition).or_default().apply(update);
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateRecovery {
    /// Valid records read.
    pub records: u64,
    /// Bytes cut from the end of the file (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Dead-letterings to finish (see [`finish_dead_letters`]).
    pub intents: usize,
}

/// An update batch waiting for its fsync.
#[derive(Debug)]
pub struct PendingState(oneshot::Receiver<Result<(), QueueStoreError>>);

impl PendingState {
    /// Waits until the updates are durable.
    pub async fn wait(self) -> Result<(), QueueStoreError> {
        self.0.await.unwrap_or(Err(QueueStoreError::Closed))
    }

    /// Waits from a blocking context (never from an async worker).
    pub fn wait_blocking(self) -> Result<(), QueueStoreError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(QueueStoreError::Closed))
    }
}

struct Job {
    updates: Vec<StateUpdate>,
    done: oneshot::Sender<Result<(), QueueStoreError>>,
}

/// One queue's durable state. See the module docs.
#[derive(Debug)]
pub struct QueueStore {
    view: Arc<RwLock<View>>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("updates", &self.updates.len())
            .finish()
    }
}

impl QueueStore {
    /// Opens (creating if needed) the state in `dir`, recovering the file
    /// and starting the writer thread. Blocking.
    pub fn open(
        dir: &Path,
        options: QueueStoreOptions,
    ) -> Result<(Self, StateRecovery), QueueStoreError> {
        let mut view = View::new();
        let opened = frame::open_log(
            dir,
            STATE_FILE,
            COMPACT_TMP_FILE,
            RECORD_BODY_BYTES_MAX,
            |body| {
                let Some(updates) = decode_body(body) else {
                    return false;
                };
                for update in &updates {
                    apply(&mut view, update);
                }
                true
            },
        )
        .map_err(|e| io_err(e.op, &e.path, e.source))?;
        let mut report = StateRecovery {
            records: opened.records,
            truncated_bytes: opened.truncated_bytes,
            intents: 0,
        };
        let (file, path, valid_len) = (opened.file, opened.path, opened.valid_bytes);
        report.intents = view.values().map(|p| p.intents.len()).sum();
        let view = Arc::new(RwLock::new(view));
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            dir: dir.to_owned(),
            path,
            file,
            file_len: valid_len,
            next_compaction_check: options.compact_bytes_min,
            options,
            view: Arc::clone(&view),
            failed: None,
            buf: BytesMut::new(),
        };
        let handle = std::thread::Builder::new()
            .name("skiff-queue-state".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io_err("start writer thread for", dir, e))?;
        Ok((
            Self {
                view,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
            },
            report,
        ))
    }

    /// Queues updates, in order; they are durable (and in the view) when
    /// the returned [`PendingState`] resolves to `Ok`. Never blocks.
    pub fn submit(&self, updates: Vec<StateUpdate>) -> PendingState {
        let (done, rx) = oneshot::channel();
        if updates.is_empty() {
            // Nothing to make durable: no write, no fsync.
            let _ = done.send(Ok(()));
            return PendingState(rx);
        }
        let tx = crate::poison::lock(&self.tx);
        match tx.as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(job)) = tx.send(Job { updates, done }) {
                    let _ = job.done.send(Err(QueueStoreError::Closed));
                }
            }
            None => {
                let _ = done.send(Err(QueueStoreError::Closed));
            }
        }
        PendingState(rx)
    }

    /// Queues a partition's transitions (as taken from its state machine).
    pub fn submit_transitions(&self, partition: u32, transitions: Vec<Transition>) -> PendingState {
        self.submit(
            transitions
                .into_iter()
                .map(|transition| StateUpdate::Transition {
                    partition,
                    transition,
                })
                .collect(),
        )
    }

    /// A partition's durable view (empty if nothing was recorded).
    pub fn partition(&self, partition: u32) -> PartitionRecord {
        crate::poison::read(&self.view)
            .get(&partition)
            .cloned()
            .unwrap_or_default()
    }

    /// Every partition with recorded state.
    pub fn partitions(&self) -> Vec<u32> {
        crate::poison::read(&self.view).keys().copied().collect()
    }

    /// Stops taking updates, lets the writer finish what is queued and
    /// waits for it. Blocking.
    pub fn close(&self) {
        drop(crate::poison::lock(&self.tx).take());
        let handle = crate::poison::lock(&self.writer).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("queue state writer thread panicked");
            }
        }
    }
}

impl Drop for QueueStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn decode_body(mut body: &[u8]) -> Option<Vec<StateUpdate>> {
    if body.remaining() < 4 {
        return None;
    }
    let count = body.get_u32_le() as usize;
    if count > RECORD_ENTRIES_MAX || body.remaining() < count.checked_mul(ENTRY_BYTES_MIN)? {
        return None;
    }
    let mut updates = Vec::with_capacity(count);
    for _ in 0..count {
        updates.push(decode_entry(&mut body)?);
    }
    body.is_empty().then_some(updates)
}

fn decode_entry(body: &mut &[u8]) -> Option<StateUpdate> {
    if body.remaining() < 4 + 1 + 8 {
        return None;
    }
    let partition = body.get_u32_le();
    let kind = body.get_u8();
    let offset = body.get_u64_le();
    let t = |transition| {
        Some(StateUpdate::Transition {
            partition,
            transition,
        })
    };
    match kind {
        KIND_DELIVERED => {
            (body.remaining() >= 4).then_some(())?;
            t(Transition::Delivered {
                offset,
                deliveries: body.get_u32_le(),
            })
        }
        KIND_DELAYED => {
            (body.remaining() >= 12).then_some(())?;
            let until_ms = body.get_i64_le();
            t(Transition::Delayed {
                offset,
                until_ms,
                deliveries: body.get_u32_le(),
            })
        }
        KIND_DONE => t(Transition::Done { offset }),
        KIND_FLOOR => t(Transition::Floor { floor: offset }),
        KIND_INTENT => {
            (body.remaining() >= 4 + 4 + 8 + 2).then_some(())?;
            let deliveries = body.get_u32_le();
            let dlq_partition = body.get_u32_le();
            let dlq_from = body.get_u64_le();
            let len = usize::from(body.get_u16_le());
            if len > super::settings::REASON_BYTES_MAX || body.remaining() < len {
                return None;
            }
            let reason = std::str::from_utf8(&body[..len]).ok()?.to_owned();
            body.advance(len);
            Some(StateUpdate::Intent {
                partition,
                intent: DeadLetterIntent {
                    dead_letter: DeadLetter {
                        offset,
                        deliveries,
                        reason,
                    },
                    dlq_partition,
                    dlq_from,
                },
            })
        }
        _ => None,
    }
}

fn encode_entry(buf: &mut BytesMut, update: &StateUpdate) {
    match update {
        StateUpdate::Transition {
            partition,
            transition,
        } => {
            buf.put_u32_le(*partition);
            match *transition {
                Transition::Delivered { offset, deliveries } => {
                    buf.put_u8(KIND_DELIVERED);
                    buf.put_u64_le(offset);
                    buf.put_u32_le(deliveries);
                }
                Transition::Delayed {
                    offset,
                    until_ms,
                    deliveries,
                } => {
                    buf.put_u8(KIND_DELAYED);
                    buf.put_u64_le(offset);
                    buf.put_i64_le(until_ms);
                    buf.put_u32_le(deliveries);
                }
                Transition::Done { offset } => {
                    buf.put_u8(KIND_DONE);
                    buf.put_u64_le(offset);
                }
                Transition::Floor { floor } => {
                    buf.put_u8(KIND_FLOOR);
                    buf.put_u64_le(floor);
                }
            }
        }
        StateUpdate::Intent { partition, intent } => {
            let dl = &intent.dead_letter;
            buf.put_u32_le(*partition);
            buf.put_u8(KIND_INTENT);
            buf.put_u64_le(dl.offset);
            buf.put_u32_le(dl.deliveries);
            buf.put_u32_le(intent.dlq_partition);
            buf.put_u64_le(intent.dlq_from);
            // Reasons are cut to REASON_BYTES_MAX by the state machine; cut
            // again here so a longer one can never write an unreadable entry.
            let mut len = dl.reason.len().min(super::settings::REASON_BYTES_MAX);
            while !dl.reason.is_char_boundary(len) {
                len -= 1;
            }
            buf.put_u16_le(len as u16);
            buf.put_slice(&dl.reason.as_bytes()[..len]);
        }
    }
}

/// Appends `updates` to `buf` as records of at most [`RECORD_ENTRIES_MAX`]
/// entries each.
fn encode_records(buf: &mut BytesMut, updates: &[StateUpdate]) {
    for chunk in updates.chunks(RECORD_ENTRIES_MAX) {
        let start = frame::begin(buf);
        buf.put_u32_le(chunk.len() as u32);
        for update in chunk {
            encode_entry(buf, update);
        }
        frame::end(buf, start);
        debug_assert!(
            frame::parse(&buf[start..], RECORD_BODY_BYTES_MAX)
                .and_then(|(body, _)| decode_body(body))
                .is_some_and(|decoded| decoded.len() == chunk.len())
        );
    }
}

/// The writer thread's state: the only code touching the file after open.
struct Writer {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    file_len: u64,
    next_compaction_check: u64,
    options: QueueStoreOptions,
    view: Arc<RwLock<View>>,
    failed: Option<String>,
    buf: BytesMut,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < BATCH_JOBS_MAX {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch);
            for job in batch.drain(..) {
                let _ = job.done.send(result.clone());
            }
            if result.is_ok() {
                if let Err(e) = self.maybe_compact() {
                    tracing::error!(error = %e, "queue state compaction failed");
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[Job]) -> Result<(), QueueStoreError> {
        if let Some(reason) = &self.failed {
            return Err(QueueStoreError::Failed(reason.clone()));
        }
        self.buf.clear();
        for job in batch {
            encode_records(&mut self.buf, &job.updates);
        }
        if self.buf.is_empty() {
            return Ok(());
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
            tracing::error!(error = %e, "queue state write failed; refusing further updates");
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.file_len += self.buf.len() as u64;
        let mut view = crate::poison::write(&self.view);
        for job in batch {
            for update in &job.updates {
                apply(&mut view, update);
            }
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), QueueStoreError> {
        if self.file_len < self.next_compaction_check {
            return Ok(());
        }
        let snapshot = {
            let view = crate::poison::read(&self.view);
            let mut buf = BytesMut::new();
            for (&partition, record) in view.iter() {
                encode_records(&mut buf, &record.snapshot(partition));
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
        self.file_len = live;
        self.next_compaction_check = self
            .options
            .compact_bytes_min
            .max(live.saturating_mul(ratio));
        Ok(())
    }
}

/// Where dead letters go: the dead-letter topic, seen by the dead-letter
/// protocol. The broker implements it over its partition logs; appends
/// must be durable when they return.
pub trait DeadLetterSink {
    /// The dead-letter partition for records of source `partition`, and its
    /// end offset now.
    fn position(&mut self, partition: u32) -> Result<(u32, u64), SinkError>;
    /// Whether the dead letter of (`partition`, `offset`) of this queue is
    /// in `dlq_partition` at or after `from`.
    fn contains(
        &mut self,
        dlq_partition: u32,
        from: u64,
        partition: u32,
        offset: u64,
    ) -> Result<bool, SinkError>;
    /// Appends the dead letter (record and origin headers) durably.
    fn append(
        &mut self,
        dlq_partition: u32,
        partition: u32,
        dead_letter: &DeadLetter,
    ) -> Result<(), SinkError>;
}

/// Why the dead-letter topic could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("dead-letter topic {topic:?}: {reason}")]
pub struct SinkError {
    /// The dead-letter topic.
    pub topic: String,
    /// What went wrong.
    pub reason: String,
}

/// Why dead-lettering failed. The record stays unfinished: it is retried
/// (and found, if its append did happen) after a restart.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The state log failed.
    #[error(transparent)]
    Store(#[from] QueueStoreError),
    /// The dead-letter topic failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Dead-letters one record of `partition`, up to its append: the intent is
/// made durable first, then the dead letter is appended. The caller then
/// marks the record done (`PartitionQueue::dead_lettered`) and persists
/// that. Blocking.
pub fn append_dead_letter(
    store: &QueueStore,
    sink: &mut impl DeadLetterSink,
    partition: u32,
    dead_letter: &DeadLetter,
) -> Result<(), DeadLetterError> {
    let (dlq_partition, dlq_from) = sink.position(partition)?;
    store
        .submit(vec![StateUpdate::Intent {
            partition,
            intent: DeadLetterIntent {
                dead_letter: dead_letter.clone(),
                dlq_partition,
                dlq_from,
            },
        }])
        .wait_blocking()?;
    sink.append(dlq_partition, partition, dead_letter)?;
    Ok(())
}

/// Finishes every dead-lettering a crash interrupted: appends the dead
/// letter unless it is already in its topic, then records the record done.
/// Run after [`QueueStore::open`], before the queue serves. Returns how many
/// dead letters were appended now. Blocking.
pub fn finish_dead_letters(
    store: &QueueStore,
    sink: &mut impl DeadLetterSink,
) -> Result<usize, DeadLetterError> {
    let mut appended = 0;
    for partition in store.partitions() {
        for intent in store.partition(partition).intents.into_values() {
            let dl = &intent.dead_letter;
            if !sink.contains(intent.dlq_partition, intent.dlq_from, partition, dl.offset)? {
                sink.append(intent.dlq_partition, partition, dl)?;
                appended += 1;
            }
            store
                .submit_transitions(partition, vec![Transition::Done { offset: dl.offset }])
                .wait_blocking()?;
        }
    }
    Ok(appended)
}

#[cfg(test)]
mod tests;
