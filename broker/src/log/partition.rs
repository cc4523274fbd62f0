//! `PartitionLog`: the append-only, segmented log of one partition.
//!
//! Concurrency: any number of threads or tasks call `submit`, which fixes a
//! batch's place in the queue without blocking and returns an
//! [`AppendTicket`]. One *committer* at a time drains the queue: it takes
//! everything queued, writes it with one `pwritev` at the end of the
//! batches (over the runway's zeros, see `log::runway`), runs one
//! `fdatasync` for the group (under `Durability::Always`), publishes the new
//! visible end and sends every ticket its result (group commit); appends that
//! arrived during that sync form the next group (after at most a short
//! linger, see [`GROUP_LINGER_MAX`], skipped while lingers keep running
//! out, see `log::linger`). The submit that finds no committer
//! running gets the one [`Committer`] token in its ticket and must run it:
//! [`drive`](PartitionLog::drive) loops until the queue is empty (what
//! [`wait`](PartitionLog::wait) does on the calling thread);
//! [`commit_group`](PartitionLog::commit_group) does one group and hands the
//! token back while more is queued (the server runs each group as its own
//! blocking-pool task). Everyone else waits on their ticket's channel (an
//! async task parks no thread). A single token keeps groups in submit
//! order. Threads that append synchronously ([`wait`](PartitionLog::wait))
//! pass the token on once their own append is done and another such thread
//! is waiting, so no thread commits everyone else's appends for long.
//! Readers never take the writer lock: they see a segment map
//! (`RwLock<BTreeMap>`) and per-segment visible limits that move only after
//! the data is durable per the configured mode.
//!
//! Invariants:
//! - Offsets are assigned in commit order, contiguous, starting at the log
//!   end; a batch's bytes are stored as received except its stamped base
//!   offset (not covered by the CRC).
//! - No half-written batch is ever visible: a failed write or sync cuts
//!   the segment back to the end of its batches before the group (the
//!   runway goes too; retried before the next write, roll or close if the
//!   cut itself fails), and fails the whole group. A runway that cannot be
//!   written (a full disk) is skipped, not an error.
//! - A segment is fsynced before its successor is created, so after a crash
//!   only the last segment can hold unsynced bytes.
//! - The visible end never passes the written end (`Writer::next_offset`),
//!   and the written length (`Writer::write_pos`) is where the active
//!   segment's batches end; the file is `Writer::file_len` long, the rest
//!   zeros (the runway, see `runway`; none in a sealed segment); segment
//!   base offsets strictly increase; index entries of a segment strictly
//!   increase in offset and position.
//! - A panic inside a group commit stops the partition (`fail_stop`): the
//!   writer's state may be half-updated, so no later append may use it.
//!
//! These are asserted where they can break: `commit` (results and ends),
//! `write_run` (contiguous offsets, lengths, index order) and `roll` (base
//! offsets, synced length). Checks that cost a comparison or two per group
//! are `assert!` (a group costs a write syscall at least, so they are free
//! in comparison, and a broken invariant here loses data: better to stop);
//! checks that need a syscall (file length) or a walk over the index are
//! `debug_assert!`.
//!
//! All methods but `submit`, `try_commit_inline` (page-cache writes only,
//! never waiting for a lock held across I/O) and [`AppendTicket::outcome`]
//! are blocking (file I/O, fsync, lock waits): call them from
//! `tokio::task::spawn_blocking` or a dedicated thread, never on an async
//! worker thread.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_protocol::batch::{self, BatchHeader, ValidBatch};
use tokio::sync::{oneshot, watch};

use super::durability::Durability;
use super::error::LogError;
use super::index::IndexEntry;
use super::linger::LingerBackoff;
use super::producers::{self, ProducerStates};
use super::recovery::{self, CLEAN_SHUTDOWN_MARKER, RecoveryReport};
use super::retention::{self, SegmentStats};
use super::runway;
use super::segment::{ReadMode, Segment, is_would_block, would_block};
use super::{LogConfig, sync_dir};
use crate::clock::AtomicInstant;
use crate::poison::{self, lock};

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset stamped on the batch (its first record).
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
}

/// The result of one append, as sent to its ticket.
type Outcome = Result<AppendInfo, LogError>;

/// A batch's place in the commit queue, from [`PartitionLog::submit`]. If
/// it holds the [`Committer`] ([`take_committer`](Self::take_committer)),
/// that must be run with [`PartitionLog::drive`] or the queue never moves
/// ([`PartitionLog::wait`] does both); [`outcome`](Self::outcome) (async)
/// or `wait` (blocking) gives the result.
#[must_use = "a submitted batch is answered through outcome() or wait(), and its committer must run"]
#[derive(Debug)]
pub struct AppendTicket {
    outcome: oneshot::Receiver<Outcome>,
    committer: Option<Committer>,
}

impl AppendTicket {
    /// The right to commit the queue, if this submit found no committer
    /// running: run it with [`PartitionLog::drive`] on a thread that may
    /// block, before or while awaiting [`outcome`](Self::outcome).
    pub fn take_committer(&mut self) -> Option<Committer> {
        self.committer.take()
    }

    /// Waits for the batch to be durable (per the configured
    /// [`Durability`]) and visible, without blocking a thread.
    pub async fn outcome(self) -> Result<AppendInfo, LogError> {
        debug_assert!(self.committer.is_none(), "the committer must be run");
        self.outcome.await.unwrap_or(Err(LogError::Closed))
    }
}

/// The right to drain one log's commit queue: at most one exists per log at
/// a time (so groups are written in submit order), handed out by
/// [`PartitionLog::submit`] and used up by [`PartitionLog::drive`] on the
/// same log.
#[must_use = "the queue stalls until the committer is run with PartitionLog::drive"]
#[derive(Debug)]
pub struct Committer(());

/// One append waiting in the commit queue.
struct Pending {
    id: u64,
    batch: Bytes,
    header: BatchHeader,
}

/// The group-commit queue: appends waiting for the committer, and where
/// each one's result goes.
#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    replies: Vec<(u64, oneshot::Sender<Outcome>)>,
    /// A committer is draining the queue (see [`PartitionLog::drive`]).
    driving: bool,
    next_id: u64,
    /// Appends seen in the last commit cycle (the group plus those that
    /// queued during it): how many a lingering committer waits for.
    linger_target: usize,
    /// How long the committer may linger (0 = never).
    linger_budget: Duration,
    /// The committer is waiting on `linger_cv` for more appends.
    lingering: bool,
    /// Whether lingering has paid off lately (see `linger`).
    linger_backoff: LingerBackoff,
    /// A committer left by a synchronous [`PartitionLog::wait`] whose own
    /// append is done, for a synchronous waiter to take over (set only while
    /// one waits, so asynchronous tickets are never left without one).
    parked: Option<Committer>,
    /// Threads blocked in [`PartitionLog::wait`] on `handoff_cv`.
    sync_waiters: usize,
}

/// Longest the committer waits for more appends before it writes a group.
/// Like PostgreSQL's `commit_delay` / MySQL's `binlog_group_commit_sync_delay`:
/// appenders whose group just synced re-append within microseconds, and
/// waiting for them lets one fsync cover all of them instead of splitting
/// them over two alternating groups. Also capped at half the last fsync time,
/// so fast disks never wait longer than they save.
const GROUP_LINGER_MAX: Duration = Duration::from_micros(200);

/// Most bytes [`PartitionLog::try_commit_inline`] writes on the caller's
/// thread: about 50 µs of copying into the page cache; larger groups go to
/// a thread that may block.
const INLINE_COMMIT_BYTES_MAX: u64 = 256 * 1024;

/// State only the writer (the committer, or a roll/retention/flush
/// holding the writer lock) touches.
struct Writer {
    active: Arc<Segment>,
    /// Where the active segment's batches end (all of it is written).
    write_pos: u64,
    /// Length of the active segment file: `write_pos` plus the runway of
    /// zeros ahead of it.
    file_len: u64,
    /// Offset the next batch gets.
    next_offset: u64,
    bytes_since_index: u64,
    /// Largest batch timestamp in the active segment.
    max_timestamp_ms: i64,
    /// Written since the last fdatasync.
    dirty: bool,
    last_sync: Instant,
    /// Cutting the file back to `write_pos` failed (after a failed write
    /// or sync): retry before the next write, roll or close.
    needs_truncate: bool,
    closed: bool,
    /// Idempotent producers' sequences and recent batches (see `producers`).
    producers: ProducerStates,
}

impl Writer {
    /// Cuts the active file back to the end of its batches (`write_pos`)
    /// when anything lies past them: a failed write's bytes (after
    /// `needs_truncate` was set) or the runway. Before a roll seals the
    /// segment and before a clean close, so sealed files end at their last
    /// batch; before a write, after a cut that failed. On failure
    /// `needs_truncate` stays set, so the next write, roll or close tries
    /// again. The caller syncs.
    fn cut_to_batches(&mut self) -> Result<(), LogError> {
        if !self.needs_truncate && self.file_len == self.write_pos {
            return Ok(());
        }
        self.needs_truncate = true;
        crate::fsio::set_len(&self.active.file, &self.active.log_path, self.write_pos)
            .map_err(|e| LogError::io("cut back to the last batch", &self.active.log_path, e))?;
        self.file_len = self.write_pos;
        self.needs_truncate = false;
        Ok(())
    }
}

/// The log of one partition. `Send + Sync`, shared as `Arc<PartitionLog>`;
/// every method takes `&self` and blocks (see the module doc).
pub struct PartitionLog {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    queue: Mutex<Queue>,
    linger_cv: Condvar,
    /// Wakes synchronous waiters after each group and when a committer is
    /// parked for them.
    handoff_cv: Condvar,
    start_offset: AtomicU64,
    visible_end: AtomicU64,
    end_tx: watch::Sender<u64>,
    /// When the visible end last moved (for the fetch wake-up timing).
    end_moved_at: AtomicInstant,
    closed: AtomicBool,
    stats: Counters,
    /// A runway pays off on this directory's filesystem (not copy-on-write).
    runway_pays_off: bool,
}

/// Monotonic counters of the write path (for metrics and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches appended (acknowledged).
    pub appends: u64,
    /// Commit groups written (one vectored write each, per segment).
    pub groups: u64,
    /// `fdatasync` calls on segment files.
    pub syncs: u64,
    /// Commit cycles in which the committer lingered for more appends.
    pub lingers: u64,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    groups: AtomicU64,
    syncs: AtomicU64,
    lingers: AtomicU64,
    /// Duration of the last append-path fdatasync, in nanoseconds.
    last_sync_ns: AtomicU64,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("start_offset", &self.log_start_offset())
            .field("end_offset", &self.log_end_offset())
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    /// Opens the partition log in `dir` (created if missing), recovering it
    /// (see `recovery`). The report says what was found and cut.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(PartitionLog, RecoveryReport), LogError> {
        config.validate()?;
        let rec = recovery::recover(dir, &config)?;
        let start = rec.segments.keys().next().copied().unwrap_or(0);
        let active =
            rec.segments
                .values()
                .next_back()
                .cloned()
                .ok_or_else(|| LogError::BadDirectory {
                    path: dir.to_owned(),
                    reason: "recovery left no segment".to_owned(),
                })?;
        let producers = producers::rebuild(
            dir,
            &active,
            rec.write_pos,
            rec.next_offset,
            config.producers_max,
        )?;
        let writer = Writer {
            producers,
            active,
            write_pos: rec.write_pos,
            file_len: rec.write_pos,
            next_offset: rec.next_offset,
            bytes_since_index: rec.bytes_since_index,
            max_timestamp_ms: rec.max_timestamp_ms,
            dirty: false,
            last_sync: Instant::now(),
            needs_truncate: false,
            closed: false,
        };
        let (end_tx, _) = watch::channel(rec.next_offset);
        let log = PartitionLog {
            dir: dir.to_owned(),
            config: RwLock::new(config),
            segments: RwLock::new(rec.segments),
            writer: Mutex::new(writer),
            queue: Mutex::new(Queue::default()),
            linger_cv: Condvar::new(),
            handoff_cv: Condvar::new(),
            start_offset: AtomicU64::new(start),
            visible_end: AtomicU64::new(rec.next_offset),
            end_tx,
            end_moved_at: AtomicInstant::now(),
            closed: AtomicBool::new(false),
            stats: Counters::default(),
            runway_pays_off: runway::pays_off(dir),
        };
        Ok((log, rec.report))
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A copy of the current configuration.
    pub fn config(&self) -> LogConfig {
        poison::read(&self.config).clone()
    }

    /// Replaces the configuration (retention, segment size and age,
    /// durability, read limit). Takes effect at the next append, roll or
    /// retention run; the active segment's index keeps its capacity. An
    /// out-of-range setting is refused ([`LogError::InvalidConfig`]) and the
    /// configuration stays as it was.
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        *poison::write(&self.config) = config;
        Ok(())
    }

    /// Appends one producer batch: validates it (refused => nothing written),
    /// stamps its base offset, writes it together with the appends queued at
    /// the same time, and returns once it is durable per the configured
    /// [`Durability`], at which point readers can see it. Same as
    /// [`submit`](Self::submit) then [`wait`](Self::wait).
    pub fn append(&self, batch: Bytes) -> Result<AppendInfo, LogError> {
        let ticket = self.submit(batch)?;
        self.wait(ticket)
    }

    /// Validates a batch and queues it for the next group commit without
    /// waiting: its place in the log (relative to other submits) is fixed
    /// here, so a caller that submits in order and waits concurrently keeps
    /// its order and lets its batches share one write and one fsync. Does not
    /// block on I/O: a short queue lock and [`batch::validate`] (the CRC and
    /// every record; a compressed batch's records are inflated for that, at
    /// most `DECOMPRESSED_BATCH_BYTES_MAX`, and a batch that does not inflate
    /// or whose inner records are bad is refused as
    /// [`LogError::InvalidBatch`], nothing queued). If the
    /// ticket holds the [`Committer`], its holder must run it (see
    /// [`drive`](Self::drive)) or call [`wait`](Self::wait).
    pub fn submit(&self, batch: Bytes) -> Result<AppendTicket, LogError> {
        self.submit_valid(ValidBatch::check(batch)?)
    }

    /// [`submit`](Self::submit) for a batch already checked
    /// ([`ValidBatch::check`], e.g. on the blocking pool because it is
    /// compressed): queued without checking or inflating it again. Never
    /// blocks on I/O or CPU-heavy work: a short queue lock.
    pub fn submit_valid(&self, batch: ValidBatch) -> Result<AppendTicket, LogError> {
        let (batch, header) = batch.into_parts();
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let (reply, outcome) = oneshot::channel();
        let mut q = lock(&self.queue);
        let id = q.next_id;
        q.next_id += 1;
        q.pending.push(Pending { id, batch, header });
        q.replies.push((id, reply));
        if q.lingering && q.pending.len() >= q.linger_target {
            self.linger_cv.notify_one();
        }
        let committer = (!q.driving).then_some(Committer(()));
        q.driving = true;
        Ok(AppendTicket { outcome, committer })
    }

    /// Waits for a submitted batch to be durable (per the configured
    /// [`Durability`]) and visible, running the committer while it holds it.
    /// Blocking. Fair between threads: once its own append is answered, a
    /// thread that still holds the committer parks it for another blocked
    /// `wait` (if any) instead of committing everyone else's appends while
    /// its own next ones cannot be submitted.
    pub fn wait(&self, ticket: AppendTicket) -> Result<AppendInfo, LogError> {
        let AppendTicket {
            mut outcome,
            mut committer,
        } = ticket;
        let mut answer = None;
        loop {
            if answer.is_none() {
                answer = match outcome.try_recv() {
                    Ok(result) => Some(result),
                    Err(oneshot::error::TryRecvError::Closed) => Some(Err(LogError::Closed)),
                    Err(oneshot::error::TryRecvError::Empty) => None,
                };
            }
            if let Some(held) = committer.take() {
                let Some(next) = self.commit_group(held) else {
                    continue;
                };
                let mut q = lock(&self.queue);
                let answered = answer.is_some() || !outcome.is_empty();
                if answered && q.sync_waiters > 0 {
                    q.parked = Some(next);
                    self.handoff_cv.notify_all();
                } else {
                    committer = Some(next);
                }
                continue;
            }
            if let Some(result) = answer.take() {
                // A committer parked for waiters that all turned out to be
                // answered must not be left behind (async tickets need it).
                let mut q = lock(&self.queue);
                match q.parked.take() {
                    Some(parked) if q.sync_waiters == 0 => {
                        committer = Some(parked);
                        answer = Some(result);
                        continue;
                    }
                    other => {
                        q.parked = other;
                        return result;
                    }
                }
            }
            let mut q = lock(&self.queue);
            if let Some(parked) = q.parked.take() {
                committer = Some(parked);
                continue;
            }
            // Checked under the queue lock: a committer answers, then takes
            // this lock to notify, so the answer cannot slip in unseen.
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(LogError::Closed),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            q.sync_waiters += 1;
            let mut q = poison::wait(&self.handoff_cv, q);
            q.sync_waiters -= 1;
        }
    }

    /// The committer: commits queued appends group after group (each group
    /// is everything queued when the previous one finished) and answers
    /// their tickets, until the queue is empty; the next submit then gets a
    /// new [`Committer`]. Blocking. `committer` must come from a ticket of
    /// this log.
    pub fn drive(&self, committer: Committer) {
        let mut next = Some(committer);
        while let Some(committer) = next {
            next = self.commit_group(committer);
        }
    }

    /// One step of [`drive`](Self::drive): commits the appends queued now
    /// (after a short linger) and answers their tickets. Returns the
    /// committer if more appends queued meanwhile (run it again, from this
    /// thread or another), None once the queue is empty. Blocking.
    pub fn commit_group(&self, committer: Committer) -> Option<Committer> {
        let (group, replies) = {
            let q = lock(&self.queue);
            if q.pending.is_empty() {
                let mut q = q;
                q.driving = false;
                return None;
            }
            let mut q = self.linger(q);
            (
                std::mem::take(&mut q.pending),
                std::mem::take(&mut q.replies),
            )
        };
        let w = lock(&self.writer);
        self.commit_and_answer(w, group, replies, committer)
    }

    /// Commits the queued appends on the calling thread if that cannot
    /// block it for long, so an async worker may call it (the broker's
    /// produce path does, sparing the hand-off to the blocking pool and
    /// back): durability `never` (`interval` may find its sync due between
    /// this check and the write, so it goes to the pool), no segment roll,
    /// nobody else holding the
    /// writer (a flush or retention run), and at most
    /// [`INLINE_COMMIT_BYTES_MAX`] queued. What remains is a write into the
    /// page cache and the index's memory map. Otherwise hands `committer`
    /// back untouched (`Err`): run [`commit_group`](Self::commit_group) on a
    /// thread that may block. `Ok` as `commit_group` returns.
    pub fn try_commit_inline(&self, committer: Committer) -> Result<Option<Committer>, Committer> {
        let config = self.config();
        let Some(w) = poison::try_lock(&self.writer) else {
            return Err(committer);
        };
        let may_sync = config.durability != Durability::Never;
        if may_sync || w.closed || w.needs_truncate {
            return Err(committer);
        }
        // Lock order: writer, then queue (nothing takes the writer while
        // holding the queue).
        let (group, replies) = {
            let mut q = lock(&self.queue);
            if q.pending.is_empty() {
                q.driving = false;
                return Ok(None);
            }
            let bytes: u64 = q.pending.iter().map(|p| p.batch.len() as u64).sum();
            let newest_ms = q
                .pending
                .iter()
                .map(|p| p.header.max_timestamp_ms)
                .max()
                .unwrap_or(i64::MIN);
            let roll = w.write_pos > 0
                && (w.write_pos + bytes > config.segment_bytes
                    || retention::roll_due(
                        w.active.first_batch_timestamp_ms(),
                        config.segment_ms,
                        newest_ms,
                    ));
            if bytes > INLINE_COMMIT_BYTES_MAX || roll {
                return Err(committer);
            }
            (
                std::mem::take(&mut q.pending),
                std::mem::take(&mut q.replies),
            )
        };
        Ok(self.commit_and_answer(w, group, replies, committer))
    }

    /// Commits `group` under the writer lock `w`, answers every reply, and
    /// returns the committer if more appends queued meanwhile.
    fn commit_and_answer(
        &self,
        mut w: MutexGuard<'_, Writer>,
        group: Vec<Pending>,
        replies: Vec<(u64, oneshot::Sender<Outcome>)>,
        committer: Committer,
    ) -> Option<Committer> {
        let group_len = group.len();
        let ids: Vec<u64> = group.iter().map(|p| p.id).collect();
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(&mut w, group)))
                .unwrap_or_else(|_| {
                    // The writer may be half-updated (bytes written, offsets not
                    // moved): stop the partition so no later append reuses it.
                    let cause = io::Error::other(
                        "group commit panicked; the partition is stopped until restart",
                    );
                    self.fail_stop(&mut w, &cause);
                    ids.iter()
                        .map(|&id| {
                            let source = io::Error::other(
                                "group commit panicked; the partition is stopped until restart",
                            );
                            (id, Err(LogError::io("commit", &self.dir, source)))
                        })
                        .collect()
                });
        drop(w);
        // Not an `assert!`: a panic out here (outside the `catch_unwind`)
        // would leave `driving` set and the queue stalled for good. A
        // missing result is answered with an error below instead.
        debug_assert_eq!(
            results.len(),
            group_len,
            "one result per append of the group"
        );
        // The cycle's size (this group and what queued during it) is taken
        // before the answers go out, so re-appends they trigger do not count.
        {
            let mut q = lock(&self.queue);
            q.linger_target = group_len + q.pending.len();
            q.linger_budget = match poison::read(&self.config).durability {
                Durability::Always => {
                    let last_sync =
                        Duration::from_nanos(self.stats.last_sync_ns.load(Ordering::Relaxed));
                    GROUP_LINGER_MAX.min(last_sync / 2)
                }
                _ => Duration::ZERO,
            };
        }
        let mut results: HashMap<u64, Outcome> = results.into_iter().collect();
        for (id, reply) in replies {
            let outcome = results.remove(&id).unwrap_or_else(|| {
                let source = io::Error::other("group commit gave no result");
                Err(LogError::io("commit", &self.dir, source))
            });
            // A dropped ticket (its request was cancelled) needs no answer.
            let _ = reply.send(outcome);
        }
        let mut q = lock(&self.queue);
        if q.sync_waiters > 0 {
            self.handoff_cv.notify_all();
        }
        if q.pending.is_empty() {
            q.driving = false;
            None
        } else {
            Some(committer)
        }
    }

    /// Waits (briefly, see [`GROUP_LINGER_MAX`]) until as many appends are
    /// queued as took part in the last commit cycle. Never waits with a
    /// single appender or outside `Durability::Always`, nor while lingering
    /// keeps running out (an open-loop stream, see [`LingerBackoff`]).
    fn linger<'a>(&self, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        if q.linger_target <= 1 || q.linger_budget.is_zero() || q.pending.len() >= q.linger_target {
            return q;
        }
        if !q.linger_backoff.may_linger() {
            return q;
        }
        self.stats.lingers.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + q.linger_budget;
        q.lingering = true;
        while q.pending.len() < q.linger_target {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = poison::wait_timeout(&self.linger_cv, q, deadline - now).0;
        }
        q.lingering = false;
        let gathered = q.pending.len() >= q.linger_target;
        q.linger_backoff.record(gathered);
        q
    }

    /// Writes one group; returns a result per pending id.
    fn commit(
        &self,
        w: &mut Writer,
        group: Vec<Pending>,
    ) -> Vec<(u64, Result<AppendInfo, LogError>)> {
        let config = self.config();
        let mut results = Vec::with_capacity(group.len());
        let fail_rest = |results: &mut Vec<_>, rest: &[Pending], e: &LogError| {
            results.extend(rest.iter().map(|p| (p.id, Err(e.duplicate()))));
        };
        if w.closed {
            fail_rest(&mut results, &group, &LogError::Closed);
            return results;
        }
        // Only a failed cut is retried here: the runway past `write_pos`
        // is what the next write overwrites.
        if w.needs_truncate
            && let Err(e) = w.cut_to_batches()
        {
            fail_rest(&mut results, &group, &e);
            return results;
        }
        // Idempotent producers: retries are answered with their original
        // offsets, gaps refused, in queue order, before anything is written.
        let (group, screened) = w.producers.screen(group, |p| &p.header);
        results.extend(screened.into_iter().map(|(p, r)| (p.id, r)));
        let mut i = 0;
        while i < group.len() {
            let first_len = group[i].batch.len() as u64;
            let full = w.write_pos > 0 && w.write_pos + first_len > config.segment_bytes;
            // Age is measured in batch time, like Kafka: the incoming batch's
            // timestamp against the segment's first batch, so producers with
            // old clocks do not roll a segment per append.
            let old = retention::roll_due(
                w.active.first_batch_timestamp_ms(),
                config.segment_ms,
                group[i].header.max_timestamp_ms,
            );
            if (full || old)
                && w.write_pos > 0
                && let Err(e) = self.roll(w, &config)
            {
                fail_rest(&mut results, &group[i..], &e);
                return results;
            }
            // The run: as many batches as fit the segment (at least one).
            let mut end = i + 1;
            let mut run_bytes = first_len;
            while end < group.len()
                && w.write_pos + run_bytes + group[end].batch.len() as u64 <= config.segment_bytes
            {
                run_bytes += group[end].batch.len() as u64;
                end += 1;
            }
            match self.write_run(w, &group[i..end], &config) {
                Ok(infos) => {
                    for (p, info) in group[i..end].iter().zip(&infos) {
                        w.producers.record(&p.header, *info);
                    }
                    results.extend(
                        group[i..end]
                            .iter()
                            .map(|p| p.id)
                            .zip(infos.into_iter().map(Ok)),
                    );
                }
                Err(e) => {
                    fail_rest(&mut results, &group[i..], &e);
                    return results;
                }
            }
            i = end;
        }
        assert!(
            self.log_end_offset() <= w.next_offset,
            "the visible end never passes the written end"
        );
        results
    }

    /// Writes, syncs (per durability), indexes and publishes one run of
    /// batches into the active segment.
    fn write_run(
        &self,
        w: &mut Writer,
        run: &[Pending],
        config: &LogConfig,
    ) -> Result<Vec<AppendInfo>, LogError> {
        assert!(!run.is_empty(), "a run holds at least one batch");
        assert!(
            w.active.base_offset <= w.next_offset,
            "the active segment starts at or below the log end"
        );
        debug_assert_eq!(
            w.active.file.metadata().map(|m| m.len()).ok(),
            Some(w.file_len),
            "the active file is as long as the writer thinks"
        );
        let start_pos = w.write_pos;
        let mut stamps = Vec::with_capacity(run.len());
        let mut infos = Vec::with_capacity(run.len());
        let mut next = w.next_offset;
        for p in run {
            stamps.push(next.to_le_bytes());
            let last = next + u64::from(p.header.last_offset_delta);
            infos.push(AppendInfo {
                base_offset: next,
                last_offset: last,
            });
            next = last + 1;
        }
        debug_assert!(
            infos
                .windows(2)
                .all(|p| p[1].base_offset == p[0].last_offset + 1),
            "offsets are contiguous"
        );
        let mut slices = Vec::with_capacity(run.len() * 2);
        for (p, stamp) in run.iter().zip(&stamps) {
            slices.push(IoSlice::new(stamp));
            slices.push(IoSlice::new(&p.batch[8..]));
        }
        let active = Arc::clone(&w.active);
        // The runway goes too: what the failed write left in it is not zeros.
        let undo = |w: &mut Writer| {
            w.needs_truncate = true;
            // A failure leaves `needs_truncate` set: retried later.
            let _ = w.cut_to_batches();
        };
        if let Err(e) = super::faults::on_write().and_then(|()| {
            crate::fsio::write_all_at(&active.file, &active.log_path, &mut slices, start_pos)
        }) {
            undo(w);
            return Err(LogError::io("write", &active.log_path, e));
        }
        let run_bytes = run.iter().map(|p| p.batch.len() as u64).sum::<u64>();
        let end_pos = start_pos + run_bytes;
        w.file_len = w.file_len.max(end_pos);
        let runway = if self.runway_pays_off {
            runway::due(
                &config.durability,
                run_bytes,
                end_pos,
                w.file_len,
                config.segment_bytes,
            )
        } else {
            None
        };
        if let Some(range) = runway {
            let end = range.end;
            match runway::lay(&active.file, &active.log_path, range) {
                Ok(()) => w.file_len = end,
                // Only an optimisation: the group goes on without one (a
                // full disk may still take the batches). What the failed
                // write left past them goes first.
                Err(e) => {
                    tracing::debug!(segment = %active.log_path.display(), error = %e, "no runway laid");
                    if let Err(e) = crate::fsio::set_len(&active.file, &active.log_path, end_pos) {
                        undo(w);
                        return Err(LogError::io("cut a failed runway", &active.log_path, e));
                    }
                    w.file_len = end_pos;
                }
            }
        }
        active.set_size(end_pos);
        let sync_now = match config.durability {
            Durability::Always => true,
            Durability::Interval(every) => w.last_sync.elapsed() >= every,
            Durability::Never => false,
        };
        if sync_now {
            let sync_started = Instant::now();
            if let Err(e) = super::faults::on_sync()
                .and_then(|()| crate::fsio::sync_data(&active.file, &active.log_path))
            {
                undo(w);
                active.set_size(start_pos);
                if w.dirty {
                    // Earlier groups were acknowledged unsynced (interval
                    // mode) and the kernel may have dropped their pages.
                    self.fail_stop(w, &e);
                }
                return Err(LogError::io("fdatasync", &active.log_path, e));
            }
            super::faults::on_synced(&active.log_path, end_pos);
            w.dirty = false;
            w.last_sync = Instant::now();
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
            let took = sync_started.elapsed();
            config.observer.fsynced(took, run.len());
            let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            self.stats.last_sync_ns.store(took, Ordering::Relaxed);
        } else {
            w.dirty = true;
        }
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats
            .appends
            .fetch_add(run.len() as u64, Ordering::Relaxed);
        // Index the new batches, then publish.
        let interval = u64::from(config.index_interval_bytes);
        let mut pos = start_pos;
        {
            let mut index = poison::write(&active.index);
            for (p, info) in run.iter().zip(&infos) {
                if w.bytes_since_index >= interval
                    && let (Ok(rel), Ok(position)) = (
                        u32::try_from(info.base_offset - active.base_offset),
                        u32::try_from(pos),
                    )
                {
                    let entry = IndexEntry {
                        rel_offset: rel,
                        position,
                        max_ts_before: w.max_timestamp_ms,
                    };
                    assert!(
                        index
                            .last()
                            .is_none_or(|last| last.rel_offset < entry.rel_offset
                                && last.position < entry.position),
                        "index entries strictly increase"
                    );
                    index.push(entry);
                    w.bytes_since_index = 0;
                }
                let len = p.batch.len() as u64;
                w.bytes_since_index += len;
                w.max_timestamp_ms = w.max_timestamp_ms.max(p.header.max_timestamp_ms);
                pos += len;
            }
        }
        assert_eq!(pos, end_pos, "every batch of the run was indexed");
        assert_eq!(
            infos.last().map(|i| i.last_offset + 1),
            Some(next),
            "the run ends at the new log end"
        );
        assert!(
            self.log_end_offset() <= w.next_offset,
            "the visible end never passes the written end"
        );
        w.write_pos = end_pos;
        w.next_offset = next;
        active.publish(end_pos, next, w.max_timestamp_ms);
        self.visible_end.store(next, Ordering::Release);
        self.end_moved_at.store_now();
        self.end_tx.send_replace(next);
        Ok(infos)
    }

    /// Starts a new active segment at the log end. The old one is fsynced
    /// first (whatever the durability mode), so recovery only ever needs to
    /// scan the last segment.
    fn roll(&self, w: &mut Writer, config: &LogConfig) -> Result<(), LogError> {
        let old = Arc::clone(&w.active);
        assert!(
            w.next_offset > old.base_offset,
            "a roll leaves a non-empty segment: base offsets strictly increase"
        );
        w.cut_to_batches()?;
        crate::fsio::sync_data(&old.file, &old.log_path)
            .map_err(|e| LogError::io("fdatasync", &old.log_path, e))?;
        super::faults::on_synced(&old.log_path, w.write_pos);
        debug_assert!(
            old.file.metadata().is_ok_and(|m| w.write_pos == m.len()),
            "a sealed segment ends at its last batch"
        );
        w.dirty = false;
        w.last_sync = Instant::now();
        // Producer state as of the new segment's base: recovery rebuilds it
        // from this plus the new segment's batch headers.
        w.producers.write_snapshot(&self.dir, w.next_offset)?;
        let seg = Arc::new(Segment::create(
            &self.dir,
            w.next_offset,
            recovery::index_capacity(config),
        )?);
        if let Err(e) = sync_dir(&self.dir) {
            // Leave no segment the log does not know of: the next roll
            // creates the same files again.
            if let Err(cleanup) = seg.remove_files() {
                tracing::warn!(segment = %seg.log_path.display(), error = %cleanup, "removing a segment whose roll failed");
            }
            return Err(e);
        }
        if let Err(e) = poison::write(&old.index).seal() {
            // The index is only an accelerator; recovery rebuilds it.
            tracing::warn!(segment = %old.log_path.display(), error = %e, "sealing segment index failed");
        }
        {
            let mut segments = poison::write(&self.segments);
            assert!(
                segments
                    .keys()
                    .next_back()
                    .is_none_or(|&newest| newest < seg.base_offset),
                "segment base offsets strictly increase"
            );
            segments.insert(seg.base_offset, Arc::clone(&seg));
        }
        w.active = seg;
        w.write_pos = 0;
        w.file_len = 0;
        w.bytes_since_index = 0;
        w.max_timestamp_ms = i64::MIN;
        Ok(())
    }

    /// Whole batches starting with the one that holds `offset`, at most
    /// `max_bytes` (capped by `read_bytes_max`) but always at least one whole
    /// batch when any is visible, so a consumer always progresses. Reads stop
    /// at a segment boundary. Returns empty `Bytes` at the visible end and
    /// `OffsetOutOfRange` outside `[log_start_offset, log_end_offset]`. Every
    /// batch returned passed its length, CRC and offset check; bad data is
    /// `Corrupt`, never returned.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Bytes, LogError> {
        self.read_in(offset, max_bytes, ReadMode::Blocking)
    }

    /// [`read`](Self::read) for a caller that must not wait for the disk (an
    /// async worker thread): the same bytes and errors, or `Ok(None)` when
    /// a byte it needs is not in the page cache or the read would copy more
    /// than `bytes_max` bytes; the caller then uses `read` where blocking is
    /// fine. Only the newest segment is read this way (a tail read; older
    /// segments' memory-mapped indexes may be paged out): an offset in an
    /// older one is `Ok(None)`, as is an index lock held by a roll. Every
    /// read of segment data is `preadv2` with `RWF_NOWAIT` (Linux with glibc;
    /// elsewhere this is always `Ok(None)`), and the header walk from the
    /// index entry reads at most `bytes_max` too. It still takes the log's
    /// short-held locks and reads the newest segment's memory-mapped index
    /// (written by this process, so resident unless memory is short).
    pub fn try_read_cached(
        &self,
        offset: u64,
        max_bytes: usize,
        bytes_max: usize,
    ) -> Result<Option<Bytes>, LogError> {
        match self.read_in(offset, max_bytes, ReadMode::CachedOnly { bytes_max }) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(LogError::Io { source, .. }) if is_would_block(&source) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_in(&self, offset: u64, max_bytes: usize, mode: ReadMode) -> Result<Bytes, LogError> {
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        if offset == end {
            return Ok(Bytes::new());
        }
        let max_bytes = max_bytes.min(poison::read(&self.config).read_bytes_max);
        // The newest segment's base, taken with the lookup (one lock). A
        // segment that a roll sealed after this is still read as the newest:
        // the sealing holds its index lock, which a cached read does not
        // wait for, and its index was just written (resident).
        let (mut seg, newest_base) = {
            let map = poison::read(&self.segments);
            let newest_base = map.keys().next_back().copied();
            match map.range(..=offset).next_back() {
                Some((_, s)) => (Arc::clone(s), newest_base),
                None => {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        start: self.log_start_offset(),
                        end,
                    });
                }
            }
        };
        while offset >= seg.visible_next_offset() {
            let next = poison::read(&self.segments)
                .range(seg.base_offset + 1..)
                .next()
                .map(|(_, s)| Arc::clone(s));
            match next {
                Some(s) if s.base_offset <= offset => seg = s,
                // A gap between segments: the older one lost its tail.
                Some(_) => {
                    return Err(LogError::Corrupt {
                        segment: seg.log_path.clone(),
                        position: seg.visible_bytes(),
                    });
                }
                None => return Ok(Bytes::new()),
            }
        }
        if matches!(mode, ReadMode::CachedOnly { .. }) && Some(seg.base_offset) < newest_base {
            // Older segments' memory-mapped indexes may be paged out, and
            // a page fault would block: only tail reads are served inline.
            return Err(LogError::io("read", &seg.log_path, would_block()));
        }
        seg.read(offset, max_bytes, mode)
    }

    /// The offset of the first record (in offset order) whose timestamp is at
    /// or after `timestamp_ms`, or None if no record is that new. The sparse
    /// time index finds the batch; that one batch is then decoded to find the
    /// record.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        let segs: Vec<Arc<Segment>> = poison::read(&self.segments).values().cloned().collect();
        for seg in segs {
            if seg.visible_bytes() == 0 || seg.max_timestamp_ms() < timestamp_ms {
                continue;
            }
            if let Some(batch_offset) = seg.find_timestamp(timestamp_ms)? {
                return self
                    .first_record_at_or_after(batch_offset, timestamp_ms)
                    .map(Some);
            }
        }
        Ok(None)
    }

    /// Narrows a batch-granular timestamp lookup to the record: the first
    /// record of the batch at `batch_offset` whose timestamp is at or after
    /// `timestamp_ms` (record timestamps inside a batch need not be ordered).
    fn first_record_at_or_after(
        &self,
        batch_offset: u64,
        timestamp_ms: i64,
    ) -> Result<u64, LogError> {
        let bytes = self.read(batch_offset, 1)?;
        let Some(first) = batch::BatchIter::new(bytes).next() else {
            return Ok(batch_offset);
        };
        let records = batch::decode_records(&first?)?;
        Ok(records
            .iter()
            .find(|r| r.timestamp_ms >= timestamp_ms)
            .map_or(batch_offset, |r| r.offset))
    }

    /// Oldest offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.start_offset.load(Ordering::Acquire)
    }

    /// Visible (acknowledged) end: the offset the next batch will get.
    pub fn log_end_offset(&self) -> u64 {
        self.visible_end.load(Ordering::Acquire)
    }

    /// Bytes of batches in all segment files (a runway's zeros not
    /// counted).
    pub fn size_bytes(&self) -> u64 {
        poison::read(&self.segments)
            .values()
            .map(|s| s.size_bytes())
            .sum()
    }

    /// A receiver that changes whenever the visible end moves (for
    /// long-polling fetches).
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        self.end_tx.subscribe()
    }

    /// When the visible end last moved: a fetch woken by [`Self::watch_end`]
    /// measures its wake-up from here.
    pub fn end_moved_at(&self) -> Instant {
        self.end_moved_at.load()
    }

    /// Rolls the active segment if it is `segment_ms` old, then deletes the
    /// oldest segments that break `retention_bytes` or `retention_ms`
    /// (whole segments only; an active segment whose data all expired is
    /// rolled first so it can go). Moves the log start. Returns the number of
    /// segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<u64, LogError> {
        let config = self.config();
        let mut w = lock(&self.writer);
        if w.closed {
            return Ok(0);
        }
        let expired = config.retention_ms.is_some_and(|ms| {
            w.active.max_timestamp_ms()
                < now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
        });
        let old = retention::roll_due(
            w.active.first_batch_timestamp_ms(),
            config.segment_ms,
            now_ms,
        );
        if w.write_pos > 0 && (old || expired) {
            self.roll(&mut w, &config)?;
        }
        let segs: Vec<Arc<Segment>> = poison::read(&self.segments).values().cloned().collect();
        let stats: Vec<SegmentStats> = segs
            .iter()
            .map(|s| SegmentStats {
                size_bytes: s.size_bytes(),
                max_timestamp_ms: s.max_timestamp_ms(),
            })
            .collect();
        let n = retention::segments_to_delete(
            &stats,
            config.retention_bytes,
            config.retention_ms,
            now_ms,
        );
        if n == 0 {
            return Ok(0);
        }
        {
            let mut map = poison::write(&self.segments);
            for seg in &segs[..n] {
                map.remove(&seg.base_offset);
            }
            let start = map.keys().next().copied().unwrap_or(w.next_offset);
            self.start_offset.store(start, Ordering::Release);
        }
        drop(w);
        for seg in &segs[..n] {
            tracing::info!(segment = %seg.log_path.display(), bytes = seg.size_bytes(), "retention deleting segment");
            seg.remove_files()?;
        }
        sync_dir(&self.dir)?;
        Ok(n as u64)
    }

    /// fdatasyncs everything written. Under `Durability::Interval` the broker
    /// calls this on a timer with the interval's period; also used at
    /// shutdown.
    pub fn flush(&self) -> Result<(), LogError> {
        let mut w = lock(&self.writer);
        if w.dirty {
            if let Err(e) = crate::fsio::sync_data(&w.active.file, &w.active.log_path) {
                self.fail_stop(&mut w, &e);
                return Err(LogError::io("fdatasync", &w.active.log_path, e));
            }
            super::faults::on_synced(&w.active.log_path, w.write_pos);
            w.dirty = false;
            w.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Stops the log after an fdatasync failed over batches that were
    /// already acknowledged unsynced (`interval`/`never`), or after a panic
    /// in a group commit left the writer in an unknown state. Linux may have
    /// dropped those dirty pages and would report the next fsync as a
    /// success, so retrying would turn a loss into a silent one: instead all
    /// later appends fail, and no clean-shutdown marker is written, so the
    /// next start scans and cuts whatever did not reach the disk.
    fn fail_stop(&self, w: &mut Writer, cause: &io::Error) {
        tracing::error!(
            dir = %self.dir.display(),
            error = %cause,
            "partition stopped (fdatasync failed over acknowledged batches, or a group commit panicked); it takes no more appends until restart"
        );
        w.closed = true;
        self.closed.store(true, Ordering::Release);
    }

    /// Flushes, seals the active index and writes the clean-shutdown marker;
    /// later appends fail with `Closed`. Reads keep working. Idempotent.
    pub fn close(&self) -> Result<(), LogError> {
        let mut w = lock(&self.writer);
        if w.closed {
            return Ok(());
        }
        self.closed.store(true, Ordering::Release);
        w.closed = true;
        // A failed write's bytes still in the file must go before the clean
        // marker says the file ends at a batch boundary; if they cannot, no
        // marker, so recovery scans the tail and cuts them.
        w.cut_to_batches()?;
        let active = Arc::clone(&w.active);
        crate::fsio::sync_data(&active.file, &active.log_path)
            .map_err(|e| LogError::io("fdatasync", &active.log_path, e))?;
        super::faults::on_synced(&active.log_path, w.write_pos);
        w.dirty = false;
        w.producers.write_snapshot(&self.dir, w.next_offset)?;
        poison::write(&active.index)
            .seal()
            .map_err(|e| LogError::io("seal index", &active.index_path, e))?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_MARKER);
        let f = std::fs::File::create(&marker)
            .map_err(|e| LogError::io("write clean-shutdown marker", &marker, e))?;
        crate::fsio::sync_all(&f, &marker)
            .map_err(|e| LogError::io("fsync clean-shutdown marker", &marker, e))?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Write-path counters since open.
    pub fn stats(&self) -> LogStats {
        LogStats {
            appends: self.stats.appends.load(Ordering::Relaxed),
            groups: self.stats.groups.load(Ordering::Relaxed),
            syncs: self.stats.syncs.load(Ordering::Relaxed),
            lingers: self.stats.lingers.load(Ordering::Relaxed),
        }
    }

    /// Segment base offsets, oldest first (for tests and tools).
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        poison::read(&self.segments).keys().copied().collect()
    }
}
