//! [`Consumer`]: reads assigned partitions, long-polling at the end of each.
//!
//! Partitions are assigned by hand ([`Consumer::assign`]) or by the broker
//! to a member of a consumer group ([`Consumer::with_group`]); both fill the
//! same assignment, so everything after it (fetching, positions, seeking) is
//! shared. A group consumer reconciles its assignment with the coordinator's
//! latest answer (kept by [`crate::group`]'s heartbeat task) at the top of
//! every [`Consumer::next`]: lost partitions are dropped, revoked ones are
//! dropped, committed and released, new ones start at their committed
//! offset or [`GroupConfig::reset`].
//!
//! Each assigned partition has at most one fetch in flight, all pipelined on
//! the client's one connection, and a buffer holding what its last fetch
//! returned; a partition is fetched again only once its buffer is empty, so
//! memory stays below about `fetch_bytes_max` (plus one batch) per partition.
//!
//! Invariants:
//! - `position` is the offset of the next record [`Consumer::next`] returns
//!   for a partition, i.e. one past the last record handed to the
//!   application; a group consumer commits exactly `position`, never more,
//!   so what is committed has been delivered (at-least-once). Records below the offset a fetch asked for are
//!   skipped: the broker returns whole batches, and the first may start
//!   earlier.
//! - Every batch is length- and CRC-checked before its records are used
//!   ([`decode_records`]); a corrupt batch is an [`Error::CorruptBatch`] and
//!   stops that partition until [`Consumer::seek`].
//! - A fetch answered after a `seek` or re-`assign` of its partition is
//!   discarded (each partition carries an epoch, unique across the
//!   consumer, so an answer for a partition that was unassigned and
//!   assigned again is discarded too).
//! - An offset outside the log follows [`OffsetReset`]: by default the error
//!   is returned and the partition stops until `seek`.
//! - A connection that breaks under a fetch is retried once at once (the
//!   [`Client`] reconnects with backoff); failures after that are returned
//!   as errors, and the partition is fetched again after `retry_backoff_ms`.
//!   The stream goes on after an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered, StreamExt};
use skiff_protocol::ErrorCode;
use skiff_protocol::batch::{BatchIter, Header, decode_records};
use skiff_protocol::messages::{
    DescribeTopicRequest, FETCH_VERSION_KAFKA_RECORDS, FetchOffsetsRequest, FetchRequest,
    FetchResponse, ListOffsetsRequest, OffsetQuery, Request, TopicPartition,
};
use skiff_protocol::topic_name::validate_topic_name;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::admin::{in_partition, in_topic};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::group::{AutoCommit, GroupConfig, Membership, RebalanceEvent};

/// Default long-poll wait: 500 ms. Bounds how long an idle fetch holds a
/// broker slot, and how stale a quiet partition's lag can be.
pub const MAX_WAIT_MS_DEFAULT: u32 = 500;
/// Default soft cap on one fetch's record bytes, per partition: 1 MiB.
pub const FETCH_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
/// Default wait before fetching a partition again after an error: 200 ms.
pub const RETRY_BACKOFF_MS_DEFAULT: u64 = 200;

const _: () = assert!(
    (FETCH_BYTES_MAX_DEFAULT as usize) < skiff_protocol::FRAME_BYTES_MAX_DEFAULT,
    "a default fetch must fit in a default frame"
);

/// Where a newly assigned partition starts.
///
/// ```no_run
/// use skiff_client::{Consumer, StartFrom};
///
/// # async fn run(consumer: &mut Consumer) -> Result<(), skiff_client::Error> {
/// // Everything from an hour ago on.
/// let an_hour_ago = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .map_or(0, |d| d.as_millis() as i64 - 3_600_000);
/// consumer.assign_all("orders", StartFrom::Timestamp(an_hour_ago)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The first offset still stored.
    Earliest,
    /// The end of the log: only records produced from now on.
    Latest,
    /// This offset.
    Offset(u64),
    /// The first record at or after this Unix time in milliseconds (the end
    /// of the log when there is none).
    Timestamp(i64),
}

/// What to do when a fetch offset is outside the partition's log (deleted by
/// retention, or never written).
///
/// ```
/// use skiff_client::{ConsumerConfig, OffsetReset};
///
/// // Skip what retention deleted instead of stopping.
/// let config = ConsumerConfig::default().offset_reset(OffsetReset::Earliest);
/// assert_eq!(config.offset_reset, OffsetReset::Earliest);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// Return [`Error::OffsetOutOfRange`] and stop the partition until
    /// [`Consumer::seek`]. Nothing is skipped or re-read silently.
    #[default]
    Error,
    /// Move to the first offset still stored (records in between were
    /// deleted and are skipped).
    Earliest,
    /// Move to the end of the log.
    Latest,
}

/// Consumer settings.
///
/// ```
/// use skiff_client::{ConsumerConfig, OffsetReset};
///
/// let config = ConsumerConfig::default().max_wait_ms(100).offset_reset(OffsetReset::Earliest);
/// assert_eq!(config.max_wait_ms, 100);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// How long the broker holds a fetch at the end of the log, in ms.
    pub max_wait_ms: u32,
    /// Soft cap on one fetch's record bytes per partition (at least one
    /// whole batch is returned even if larger).
    pub fetch_bytes_max: u32,
    /// Policy for an offset outside the log.
    pub offset_reset: OffsetReset,
    /// Wait before fetching a partition again after an error, in ms.
    pub retry_backoff_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait_ms: MAX_WAIT_MS_DEFAULT,
            fetch_bytes_max: FETCH_BYTES_MAX_DEFAULT,
            offset_reset: OffsetReset::Error,
            retry_backoff_ms: RETRY_BACKOFF_MS_DEFAULT,
        }
    }
}

impl ConsumerConfig {
    /// Sets the long-poll wait, in milliseconds.
    pub fn max_wait_ms(mut self, ms: u32) -> Self {
        self.max_wait_ms = ms;
        self
    }
    /// Sets the per-partition fetch size cap, in bytes.
    pub fn fetch_bytes_max(mut self, bytes: u32) -> Self {
        self.fetch_bytes_max = bytes.max(1);
        self
    }
    /// Sets the out-of-range policy.
    pub fn offset_reset(mut self, policy: OffsetReset) -> Self {
        self.offset_reset = policy;
        self
    }
    /// Sets the wait after an error, in milliseconds.
    pub fn retry_backoff_ms(mut self, ms: u64) -> Self {
        self.retry_backoff_ms = ms;
        self
    }
}

/// A record read from a partition; key, value and header values share the
/// fetched buffer (no copy).
///
/// ```no_run
/// # async fn run(consumer: &mut skiff_client::Consumer) -> Result<(), skiff_client::Error> {
/// if let Some(record) = consumer.next().await {
///     let record = record?;
///     let text = String::from_utf8_lossy(&record.value);
///     println!("{}/{}@{} {text}", record.topic, record.partition, record.offset);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its timestamp (Unix ms).
    pub timestamp_ms: i64,
    /// Its key, if any.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Bytes,
    /// Its headers, in order.
    pub headers: Vec<Header>,
}

struct PartitionState {
    topic: Arc<str>,
    partition: u32,
    /// Next offset to return.
    position: u64,
    /// Next offset to fetch (ahead of `position` while records are buffered).
    fetch_offset: u64,
    buffered: std::collections::VecDeque<ConsumedRecord>,
    in_flight: bool,
    /// Bumped by seek/assign so stale fetch answers are dropped.
    epoch: u64,
    /// Stopped by an error that needs the caller (seek) to resolve.
    stopped: bool,
    /// Consecutive failed fetches.
    failures: u32,
    /// The log end offset from the last fetch.
    log_end_offset: Option<u64>,
    /// After a start by timestamp: skip records older than this until the
    /// first one at or after it (the broker may answer with the start of
    /// the batch holding it).
    skip_before_ts: Option<i64>,
}

struct FetchOutcome {
    topic: Arc<str>,
    partition: u32,
    epoch: u64,
    offset: u64,
    result: Result<FetchResponse>,
}

/// Reads records from assigned partitions.
///
/// ```no_run
/// use futures::StreamExt;
/// use skiff_client::{Client, ClientConfig, Consumer, ConsumerConfig, StartFrom};
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let client = Client::connect(ClientConfig::default()).await?;
/// let mut consumer = Consumer::new(client, ConsumerConfig::default());
/// consumer.assign("orders", [0, 1], StartFrom::Offset(0)).await?;
/// let mut stream = consumer.stream();
/// while let Some(record) = stream.next().await {
///     let record = record?;
///     println!("{}/{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    partitions: Vec<PartitionState>,
    /// Index of the partition records are being taken from.
    cursor: usize,
    fetches: FuturesUnordered<BoxFuture<'static, FetchOutcome>>,
    /// The Fetch version to send: the newest, lowered once to the one
    /// before magic-2 batches if the broker predates them (its data has
    /// none).
    fetch_version: Arc<AtomicU16>,
    /// Last epoch handed to a partition state.
    epochs: u64,
    /// Set for a group member ([`Consumer::with_group`]).
    group: Option<GroupMember>,
}

/// A group consumer's side of the membership.
struct GroupMember {
    membership: Membership,
    auto_commit: AutoCommit,
    reset: StartFrom,
    /// When the next auto-commit is due.
    next_commit: Instant,
    /// Last committed position per assigned partition.
    committed: HashMap<TopicPartition, u64>,
    /// Revoked partitions, already unassigned, whose positions still have to
    /// be committed before they are released.
    releasing: Vec<(TopicPartition, u64)>,
    /// The assignment differs from the coordinator's latest answer (set on
    /// every change, cleared only once a reconcile completed, so a cancelled
    /// `next` picks it up again).
    stale: bool,
    /// The membership's join count this assignment belongs to.
    joins: u64,
    events: Option<mpsc::UnboundedSender<RebalanceEvent>>,
}

impl GroupMember {
    fn emit(
        &mut self,
        event: impl FnOnce(Vec<TopicPartition>) -> RebalanceEvent,
        tps: Vec<TopicPartition>,
    ) {
        if tps.is_empty() {
            return;
        }
        if let Some(tx) = &self.events {
            if tx.send(event(tps)).is_err() {
                self.events = None;
            }
        }
    }
}

/// What woke a waiting group consumer.
enum Wake {
    Fetched(Option<FetchOutcome>),
    GroupChanged,
    CommitDue,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("assignment", &self.assignment())
            .field("fetches_in_flight", &self.fetches.len())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer with nothing assigned.
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            partitions: Vec::new(),
            cursor: 0,
            fetches: FuturesUnordered::new(),
            fetch_version: Arc::new(AtomicU16::new(FetchRequest::API_VERSION)),
            epochs: 0,
            group: None,
        }
    }

    /// Joins `config.group` as a new member and consumes the partitions the
    /// broker assigns, following rebalances: heartbeats run in the
    /// background at the broker's interval; revoked partitions are
    /// committed (up to what was delivered) and handed over; new ones start
    /// at the group's committed offset, or at [`GroupConfig::reset`].
    /// Commits happen on [`GroupConfig::auto_commit`], on [`Consumer::commit`]
    /// and on [`Consumer::close`], which also leaves the group (dropping the
    /// consumer leaves too, best effort, without committing).
    ///
    /// Delivery is at-least-once: only positions of records already returned
    /// by [`Consumer::next`] are committed; after a crash the next owner
    /// resumes from the last commit.
    ///
    /// Rebalances are acted on inside `next()`: call it at least once per
    /// session timeout, or a partition this member was asked to give up
    /// stays with it until the broker expires the member (the heartbeats
    /// themselves run in the background regardless).
    ///
    /// ```no_run
    /// use skiff_client::{Client, ClientConfig, Consumer, GroupConfig};
    ///
    /// # async fn run() -> Result<(), skiff_client::Error> {
    /// let client = Client::connect(ClientConfig::default()).await?;
    /// let mut consumer = Consumer::with_group(client, GroupConfig::new("billing", ["orders"])).await?;
    /// while let Some(record) = consumer.next().await {
    ///     let record = record?;
    ///     println!("{}/{}@{}", record.topic, record.partition, record.offset);
    ///     # break;
    /// }
    /// consumer.close().await?; // commit what was delivered, leave the group
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_group(client: Client, config: GroupConfig) -> Result<Consumer> {
        let membership = Membership::join(client.clone(), &config).await?;
        let mut consumer = Consumer::new(client, config.consumer.clone());
        let first_commit = match config.auto_commit {
            AutoCommit::Interval(every) => Instant::now() + every,
            AutoCommit::Manual => Instant::now(),
        };
        consumer.group = Some(GroupMember {
            membership,
            auto_commit: config.auto_commit,
            reset: config.reset,
            next_commit: first_commit,
            committed: HashMap::new(),
            releasing: Vec::new(),
            stale: true,
            joins: 1,
            events: None,
        });
        Ok(consumer)
    }

    /// The group this consumer is a member of, if any.
    pub fn group(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.membership.group())
    }

    /// A channel of this group consumer's [`RebalanceEvent`]s from now on
    /// (replacing any earlier channel). Events are sent from inside
    /// [`Consumer::next`], when the consumer acts on a rebalance. A consumer
    /// without a group never sends any.
    ///
    /// ```no_run
    /// # async fn run(consumer: &mut skiff_client::Consumer) {
    /// let mut events = consumer.rebalance_events();
    /// // ... consumer.next().await ...
    /// while let Ok(event) = events.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn rebalance_events(&mut self) -> mpsc::UnboundedReceiver<RebalanceEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(g) = self.group.as_mut() {
            g.events = Some(tx);
        }
        rx
    }

    /// Commits, for every partition this group consumer reads, the position
    /// after the last record [`Consumer::next`] returned (nothing beyond).
    /// A commit refused for a stale generation is retried after one
    /// heartbeat. Errors with [`Error::InvalidArgument`] without a group.
    ///
    /// ```no_run
    /// use skiff_client::{AutoCommit, Client, ClientConfig, Consumer, GroupConfig};
    ///
    /// # async fn run(client: Client) -> Result<(), skiff_client::Error> {
    /// let config = GroupConfig::new("billing", ["orders"]).auto_commit(AutoCommit::Manual);
    /// let mut consumer = Consumer::with_group(client, config).await?;
    /// while let Some(record) = consumer.next().await {
    ///     let _record = record?; // ... process it ...
    ///     consumer.commit().await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit(&mut self) -> Result<()> {
        if self.group.is_none() {
            return Err(Error::InvalidArgument(
                "commit needs a group consumer (Consumer::with_group)".to_owned(),
            ));
        }
        self.finish_releases().await;
        self.commit_assigned().await
    }

    /// Commits what was delivered and leaves the group, so its partitions
    /// move to the other members at once. A consumer without a group just
    /// stops. The group is left even when the commit fails (the commit's
    /// error is returned).
    ///
    /// ```no_run
    /// # async fn run(consumer: skiff_client::Consumer) -> Result<(), skiff_client::Error> {
    /// consumer.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(mut self) -> Result<()> {
        if self.group.is_none() {
            return Ok(());
        }
        self.finish_releases().await;
        let committed = self.commit_assigned().await;
        let left = match self.group.as_mut() {
            Some(g) => g.membership.leave().await,
            None => Ok(()),
        };
        committed.and(left)
    }

    /// Commits the positions of assigned partitions that moved since their
    /// last commit.
    async fn commit_assigned(&mut self) -> Result<()> {
        let Some(g) = self.group.as_ref() else {
            return Ok(());
        };
        let offsets: Vec<(TopicPartition, u64)> = self
            .partitions
            .iter()
            .map(|p| (TopicPartition::new(&*p.topic, p.partition), p.position))
            .filter(|(tp, pos)| g.committed.get(tp) != Some(pos))
            .collect();
        let done = g.membership.commit(offsets).await?;
        let g = self.group.as_mut().expect("checked above");
        g.committed.extend(done);
        Ok(())
    }

    /// Commits and releases revoked partitions (best effort: a failed commit
    /// is logged, and the partition released anyway, since holding it would
    /// only get this member expired; its new owner re-reads from the last
    /// commit).
    async fn finish_releases(&mut self) {
        let Some(g) = self.group.as_mut() else {
            return;
        };
        if g.releasing.is_empty() {
            return;
        }
        let offsets: Vec<(TopicPartition, u64)> = g
            .releasing
            .iter()
            .filter(|(tp, pos)| g.committed.get(tp) != Some(pos))
            .cloned()
            .collect();
        if let Err(e) = g.membership.commit(offsets).await {
            tracing::warn!(group = g.membership.group(), error = %e, "commit of revoked partitions failed; releasing them anyway");
        }
        let tps: Vec<TopicPartition> = g.releasing.drain(..).map(|(tp, _)| tp).collect();
        for tp in &tps {
            g.committed.remove(tp);
        }
        g.membership.release(tps.iter().cloned());
        g.emit(RebalanceEvent::Revoked, tps);
    }

    /// Brings the assignment in line with the coordinator's latest answer
    /// and runs a due auto-commit. Cancel-safe: state changes happen before
    /// each await, or are redone next time.
    async fn maintain_group(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if g.membership.has_changed() {
            g.stale = true;
        }
        if g.stale {
            let state = g.membership.snapshot();
            let rejoined = state.joins != g.joins;
            if rejoined {
                // Forgotten and joined again: whatever was held may have
                // been consumed and committed by others meanwhile.
                g.joins = state.joins;
                g.releasing.clear();
                g.committed.clear();
            }
            let mut lost = Vec::new();
            for p in &self.partitions {
                let tp = TopicPartition::new(&*p.topic, p.partition);
                if rejoined || !state.owned.contains(&tp) {
                    lost.push(tp.clone());
                } else if state.revoke.contains(&tp) {
                    g.releasing.push((tp, p.position));
                }
            }
            let revoked: Vec<TopicPartition> =
                g.releasing.iter().map(|(tp, _)| tp.clone()).collect();
            for tp in &lost {
                g.committed.remove(tp);
            }
            g.emit(RebalanceEvent::Lost, lost.clone());
            for tp in lost.iter().chain(&revoked) {
                self.partitions
                    .retain(|p| !(*p.topic == *tp.topic && p.partition == tp.partition));
            }
            self.cursor = 0;
            self.finish_releases().await;

            let g = self.group.as_mut().expect("group consumer");
            // Not marked seen: a change since the first snapshot (whose
            // revocations were acted on) must trigger another reconcile.
            let state = g.membership.current();
            let new: Vec<TopicPartition> = state
                .owned
                .iter()
                .filter(|tp| !state.revoke.contains(*tp) && !state.released.contains(*tp))
                .filter(|tp| !g.releasing.iter().any(|(r, _)| r == *tp))
                .filter(|tp| {
                    !self
                        .partitions
                        .iter()
                        .any(|p| *p.topic == *tp.topic && p.partition == tp.partition)
                })
                .cloned()
                .collect();
            if !new.is_empty() {
                self.start_partitions(new).await?;
            }
            if let Some(g) = self.group.as_mut() {
                if !g.membership.has_changed() {
                    g.stale = false;
                }
            }
        }
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if let AutoCommit::Interval(every) = g.auto_commit {
            if Instant::now() >= g.next_commit {
                g.next_commit = Instant::now() + every;
                if let Err(e) = self.commit_assigned().await {
                    tracing::warn!(error = %e, "auto-commit failed; retrying at the next interval");
                }
            }
        }
        Ok(())
    }

    /// Starts newly owned partitions at their committed offsets, or at the
    /// reset position.
    async fn start_partitions(&mut self, new: Vec<TopicPartition>) -> Result<()> {
        let Some(g) = self.group.as_ref() else {
            return Ok(());
        };
        let (group, reset) = (g.membership.group().to_owned(), g.reset);
        let resp = self
            .client
            .send(FetchOffsetsRequest {
                group,
                partitions: new.clone(),
            })
            .await?;
        let committed: HashMap<TopicPartition, u64> = resp
            .offsets
            .into_iter()
            .filter_map(|c| c.offset.map(|o| (c.partition, o)))
            .collect();
        let mut starts = Vec::with_capacity(new.len());
        for tp in &new {
            let start = match committed.get(tp) {
                Some(&o) => (o, true),
                None => (
                    resolve(&self.client, &tp.topic, tp.partition, reset).await?,
                    false,
                ),
            };
            starts.push(start);
        }
        for (tp, &(offset, was_committed)) in new.iter().zip(&starts) {
            self.set_position(&tp.topic, tp.partition, offset);
            if !was_committed {
                self.set_timestamp_filter(&tp.topic, tp.partition, reset);
            }
        }
        let g = self.group.as_mut().expect("checked above");
        for (tp, &(offset, was_committed)) in new.iter().zip(&starts) {
            if was_committed {
                g.committed.insert(tp.clone(), offset);
            }
        }
        tracing::debug!(group = g.membership.group(), partitions = ?new, "assigned");
        g.emit(RebalanceEvent::Assigned, new);
        Ok(())
    }

    /// Assigns partitions of `topic`, each starting at `from` (resolved now
    /// with ListOffsets). Re-assigning a partition moves it to the new start.
    pub async fn assign(
        &mut self,
        topic: &str,
        partitions: impl IntoIterator<Item = u32>,
        from: StartFrom,
    ) -> Result<()> {
        validate_topic_name(topic)?;
        if self.group.is_some() {
            return Err(Error::InvalidArgument(
                "a group consumer's partitions are assigned by the broker".to_owned(),
            ));
        }
        for partition in partitions {
            let offset = resolve(&self.client, topic, partition, from).await?;
            self.set_position(topic, partition, offset);
            self.set_timestamp_filter(topic, partition, from);
        }
        Ok(())
    }

    /// Assigns every partition of `topic` (from DescribeTopic), each starting
    /// at `from`; returns how many.
    pub async fn assign_all(&mut self, topic: &str, from: StartFrom) -> Result<u32> {
        validate_topic_name(topic)?;
        let described = self
            .client
            .send(DescribeTopicRequest {
                name: topic.to_owned(),
            })
            .await
            .map_err(|e| in_topic(e, topic))?;
        let partitions: Vec<u32> = described.partitions.iter().map(|p| p.partition).collect();
        let count = partitions.len() as u32;
        self.assign(topic, partitions, from).await?;
        Ok(count)
    }

    /// Stops reading a partition; returns whether it was assigned.
    pub fn unassign(&mut self, topic: &str, partition: u32) -> bool {
        let before = self.partitions.len();
        self.partitions
            .retain(|p| !(&*p.topic == topic && p.partition == partition));
        self.cursor = 0;
        before != self.partitions.len()
    }

    /// The assigned `(topic, partition)` pairs.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.partitions
            .iter()
            .map(|p| (p.topic.to_string(), p.partition))
            .collect()
    }

    /// The offset of the next record `next` returns for this partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.find(topic, partition)
            .map(|i| self.partitions[i].position)
    }

    /// Records between the position and the log end seen by the last fetch.
    pub fn lag(&self, topic: &str, partition: u32) -> Option<u64> {
        let p = &self.partitions[self.find(topic, partition)?];
        p.log_end_offset.map(|end| end.saturating_sub(p.position))
    }

    /// Moves an assigned partition to `offset`: buffered records and the
    /// fetch in flight are discarded, and a partition stopped by an error
    /// starts again.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        if self.find(topic, partition).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{topic}/{partition} is not assigned to this consumer"
            )));
        }
        self.set_position(topic, partition, offset);
        Ok(())
    }

    /// Moves an assigned partition to `from`, resolved with ListOffsets (e.g.
    /// `StartFrom::Timestamp` to re-read from a point in time).
    pub async fn seek_to(&mut self, topic: &str, partition: u32, from: StartFrom) -> Result<()> {
        let offset = resolve(&self.client, topic, partition, from).await?;
        self.seek(topic, partition, offset)?;
        self.set_timestamp_filter(topic, partition, from);
        Ok(())
    }

    fn set_timestamp_filter(&mut self, topic: &str, partition: u32, from: StartFrom) {
        if let (Some(i), StartFrom::Timestamp(ts)) = (self.find(topic, partition), from) {
            self.partitions[i].skip_before_ts = Some(ts);
        }
    }

    /// The next record from any assigned partition, waiting for one as long
    /// as it takes; `None` when nothing is assigned or every partition is
    /// stopped by an error. Cancel-safe: dropping the future loses nothing.
    ///
    /// A group consumer also acts on rebalances here, runs due
    /// auto-commits, and never ends: with no partitions it waits for some.
    pub async fn next(&mut self) -> Option<Result<ConsumedRecord>> {
        if self.group.is_some() {
            return Some(self.next_in_group().await);
        }
        loop {
            if let Some(record) = self.pop_buffered() {
                return Some(Ok(record));
            }
            self.start_fetches();
            let outcome = self.fetches.next().await?;
            if let Err(e) = self.apply(outcome).await {
                return Some(Err(e));
            }
        }
    }

    async fn next_in_group(&mut self) -> Result<ConsumedRecord> {
        loop {
            self.maintain_group().await?;
            if let Some(record) = self.pop_buffered() {
                return Ok(record);
            }
            self.start_fetches();
            let Some(g) = self.group.as_mut() else {
                return Err(Error::Closed("consumer group membership"));
            };
            let commit_due = match g.auto_commit {
                AutoCommit::Interval(_) => Some(g.next_commit),
                AutoCommit::Manual => None,
            };
            let fetching = !self.fetches.is_empty();
            let wake = tokio::select! {
                outcome = self.fetches.next(), if fetching => Wake::Fetched(outcome),
                () = g.membership.changed() => Wake::GroupChanged,
                () = sleep_until_opt(commit_due) => Wake::CommitDue,
            };
            match wake {
                Wake::Fetched(Some(outcome)) => self.apply(outcome).await?,
                Wake::GroupChanged => {
                    // `changed()` marked the version seen: remember it here.
                    if let Some(g) = self.group.as_mut() {
                        g.stale = true;
                    }
                }
                Wake::Fetched(None) | Wake::CommitDue => {}
            }
        }
    }

    /// The records as a [`Stream`](futures::Stream) (boxed, so `Unpin`), borrowing the consumer.
    pub fn stream(&mut self) -> BoxStream<'_, Result<ConsumedRecord>> {
        futures::stream::unfold(self, |consumer| async move {
            let item = consumer.next().await?;
            Some((item, consumer))
        })
        .boxed()
    }

    /// The records as a [`Stream`](futures::Stream) that owns the consumer.
    pub fn into_stream(self) -> BoxStream<'static, Result<ConsumedRecord>> {
        futures::stream::unfold(self, |mut consumer| async move {
            let item = consumer.next().await?;
            Some((item, consumer))
        })
        .boxed()
    }

    fn find(&self, topic: &str, partition: u32) -> Option<usize> {
        self.partitions
            .iter()
            .position(|p| &*p.topic == topic && p.partition == partition)
    }

    fn set_position(&mut self, topic: &str, partition: u32, offset: u64) {
        self.epochs += 1;
        let epoch = self.epochs;
        match self.find(topic, partition) {
            Some(i) => {
                let p = &mut self.partitions[i];
                p.position = offset;
                p.fetch_offset = offset;
                p.buffered.clear();
                p.epoch = epoch;
                p.stopped = false;
                p.failures = 0;
                p.skip_before_ts = None;
                // A fetch still in flight will be dropped by its epoch; the
                // next one may start now.
                p.in_flight = false;
            }
            None => self.partitions.push(PartitionState {
                topic: Arc::from(topic),
                partition,
                position: offset,
                fetch_offset: offset,
                buffered: Default::default(),
                in_flight: false,
                epoch,
                stopped: false,
                failures: 0,
                log_end_offset: None,
                skip_before_ts: None,
            }),
        }
    }

    fn pop_buffered(&mut self) -> Option<ConsumedRecord> {
        let n = self.partitions.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if let Some(record) = self.partitions[i].buffered.pop_front() {
                self.cursor = i;
                self.partitions[i].position = record.offset + 1;
                return Some(record);
            }
        }
        None
    }

    fn start_fetches(&mut self) {
        let request_timeout = Duration::from_millis(self.client.config().request_timeout_ms);
        for p in &mut self.partitions {
            if p.in_flight || p.stopped || !p.buffered.is_empty() {
                continue;
            }
            p.in_flight = true;
            let delay =
                (p.failures > 1).then(|| Duration::from_millis(self.config.retry_backoff_ms));
            let request = FetchRequest {
                topic: p.topic.to_string(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: self.config.fetch_bytes_max,
                max_wait_ms: self.config.max_wait_ms,
            };
            let timeout =
                request_timeout + Duration::from_millis(u64::from(self.config.max_wait_ms));
            let client = self.client.clone();
            let version = Arc::clone(&self.fetch_version);
            let (topic, partition, epoch, offset) =
                (Arc::clone(&p.topic), p.partition, p.epoch, p.fetch_offset);
            self.fetches.push(Box::pin(async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let v = version.load(Ordering::Relaxed);
                let mut result = client
                    .send_version_with_timeout(request.clone(), v, timeout)
                    .await;
                let older = FETCH_VERSION_KAFKA_RECORDS - 1;
                if v > older
                    && result
                        .as_ref()
                        .is_err_and(|e| e.code() == Some(ErrorCode::UnsupportedVersion))
                {
                    version.store(older, Ordering::Relaxed);
                    result = client
                        .send_version_with_timeout(request, older, timeout)
                        .await;
                }
                FetchOutcome {
                    topic,
                    partition,
                    epoch,
                    offset,
                    result,
                }
            }));
        }
    }

    /// Takes a fetch answer into its partition's buffer.
    async fn apply(&mut self, outcome: FetchOutcome) -> Result<()> {
        let FetchOutcome {
            topic,
            partition,
            epoch,
            offset,
            result,
        } = outcome;
        let Some(i) = self.find(&topic, partition) else {
            return Ok(()); // unassigned meanwhile
        };
        if self.partitions[i].epoch != epoch {
            return Ok(()); // answered after a seek
        }
        self.partitions[i].in_flight = false;
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => return self.fetch_failed(i, offset, e).await,
        };
        let p = &mut self.partitions[i];
        p.failures = 0;
        p.log_end_offset = Some(resp.log_end_offset);
        let taken = take_records(
            &topic,
            partition,
            offset,
            &mut p.skip_before_ts,
            resp.records,
            &mut p.buffered,
        );
        match taken {
            Ok(next) => {
                p.fetch_offset = p.fetch_offset.max(next);
                Ok(())
            }
            Err((next, e)) => {
                p.fetch_offset = p.fetch_offset.max(next);
                p.stopped = true;
                Err(e)
            }
        }
    }

    async fn fetch_failed(&mut self, i: usize, offset: u64, e: Error) -> Result<()> {
        let (topic, partition) = (
            Arc::clone(&self.partitions[i].topic),
            self.partitions[i].partition,
        );
        let e = in_partition(e, &topic, Some(partition));
        match e.code() {
            Some(ErrorCode::OffsetOutOfRange) => {
                let query = match self.config.offset_reset {
                    OffsetReset::Error => {
                        self.partitions[i].stopped = true;
                        let (start, end) = bounds(&self.client, &topic, partition).await;
                        return Err(Error::OffsetOutOfRange {
                            topic: topic.to_string(),
                            partition,
                            offset,
                            log_start_offset: start,
                            log_end_offset: end,
                        });
                    }
                    OffsetReset::Earliest => OffsetQuery::Earliest,
                    OffsetReset::Latest => OffsetQuery::Latest,
                };
                let reset = list_offset(&self.client, &topic, partition, query).await?;
                tracing::warn!(%topic, partition, from = offset, to = reset, "offset out of range; reset");
                self.set_position(&topic, partition, reset);
                Ok(())
            }
            // Permanent until someone acts (creates the topic, grants
            // consume): retrying the fetch in a loop would only spin.
            Some(
                ErrorCode::UnknownTopic | ErrorCode::UnknownPartition | ErrorCode::NotAuthorized,
            ) => {
                self.partitions[i].stopped = true;
                Err(e)
            }
            _ => {
                let p = &mut self.partitions[i];
                p.failures += 1;
                if e.is_connection_error() && p.failures == 1 {
                    // The client reconnects on the next fetch; only a second
                    // failure in a row is the caller's business.
                    tracing::debug!(%topic, partition, error = %e, "fetch failed; retrying");
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The offset `from` names in a partition.
async fn resolve(client: &Client, topic: &str, partition: u32, from: StartFrom) -> Result<u64> {
    let query = match from {
        StartFrom::Offset(offset) => return Ok(offset),
        StartFrom::Earliest => OffsetQuery::Earliest,
        StartFrom::Latest => OffsetQuery::Latest,
        StartFrom::Timestamp(ts) => OffsetQuery::Timestamp(ts),
    };
    list_offset(client, topic, partition, query).await
}

/// A partition's log bounds, for error messages; zeros when unknown.
async fn bounds(client: &Client, topic: &str, partition: u32) -> (u64, u64) {
    let start = list_offset(client, topic, partition, OffsetQuery::Earliest).await;
    let end = list_offset(client, topic, partition, OffsetQuery::Latest).await;
    (start.unwrap_or(0), end.unwrap_or(0))
}

async fn list_offset(
    client: &Client,
    topic: &str,
    partition: u32,
    query: OffsetQuery,
) -> Result<u64> {
    let resp = client
        .send(ListOffsetsRequest {
            topic: topic.to_owned(),
            partition,
            query,
        })
        .await
        .map_err(|e| in_partition(e, topic, Some(partition)))?;
    Ok(resp.offset)
}

/// Decodes a fetch response's batches into `out`, skipping records below
/// `wanted`, and, while `skip_before_ts` is set, records older than it (it is
/// cleared at the first record at or after it). Returns the offset after the last record seen (at least
/// `wanted`); on a bad batch, that offset and the error (records of earlier
/// batches are kept).
fn take_records(
    topic: &Arc<str>,
    partition: u32,
    wanted: u64,
    skip_before_ts: &mut Option<i64>,
    records: Bytes,
    out: &mut std::collections::VecDeque<ConsumedRecord>,
) -> std::result::Result<u64, (u64, Error)> {
    let mut next = wanted;
    let corrupt = |error| Error::CorruptBatch {
        topic: topic.to_string(),
        partition,
        error,
    };
    for batch in BatchIter::new(records) {
        let batch = batch.map_err(|e| (next, corrupt(e)))?;
        let decoded = decode_records(&batch).map_err(|e| (next, corrupt(e)))?;
        for r in decoded {
            if r.offset < next {
                continue;
            }
            next = r.offset + 1;
            if skip_before_ts.is_some_and(|ts| r.timestamp_ms < ts) {
                continue;
            }
            *skip_before_ts = None;
            out.push_back(ConsumedRecord {
                topic: Arc::clone(topic),
                partition,
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                key: r.key,
                value: r.value,
                headers: r.headers,
            });
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::batch::{BatchBuilder, Record, stamp_base_offset};

    fn batch(base: u64, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for v in values {
            b.push(Record {
                timestamp_ms: 1_000,
                key: None,
                value: Bytes::copy_from_slice(v.as_bytes()),
                headers: vec![],
            });
        }
        let mut bytes = b.build().to_vec();
        stamp_base_offset(&mut bytes, base);
        bytes
    }

    #[test]
    fn records_below_the_wanted_offset_are_skipped() {
        let mut buf = batch(10, &["a", "b", "c"]);
        buf.extend(batch(13, &["d"]));
        let topic: Arc<str> = Arc::from("t");
        let mut out = Default::default();
        let next = take_records(&topic, 0, 11, &mut None, Bytes::from(buf), &mut out).unwrap();
        assert_eq!(next, 14);
        let got: Vec<(u64, &[u8])> = out.iter().map(|r| (r.offset, &r.value[..])).collect();
        assert_eq!(got, vec![(11, &b"b"[..]), (12, b"c"), (13, b"d")]);
    }

    #[test]
    fn compressed_batches_decode_and_records_below_the_wanted_offset_are_skipped() {
        use skiff_protocol::compression::{Compression, Level};
        for codec in Compression::ALL {
            let mut b = BatchBuilder::new();
            for v in ["a", "b", "c", "d"] {
                b.push(Record {
                    timestamp_ms: 1_000,
                    key: Some(Bytes::from(format!("k{v}"))),
                    value: Bytes::from(v),
                    headers: vec![],
                });
            }
            let mut buf = b.build_compressed(codec, Level::Default).unwrap().to_vec();
            stamp_base_offset(&mut buf, 20);
            let topic: Arc<str> = Arc::from("t");
            let mut out = Default::default();
            let next = take_records(&topic, 0, 22, &mut None, Bytes::from(buf), &mut out).unwrap();
            assert_eq!(next, 24, "{codec}");
            let offsets: Vec<u64> = out.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![22, 23], "{codec}");
            let values: Vec<&[u8]> = out.iter().map(|r| &r.value[..]).collect();
            assert_eq!(values, vec![&b"c"[..], b"d"], "{codec}");
            let keys: Vec<Option<&[u8]>> = out.iter().map(|r| r.key.as_deref()).collect();
            assert_eq!(keys, vec![Some(&b"kc"[..]), Some(b"kd")], "{codec}");
        }
    }

    #[test]
    fn corrupt_batches_are_errors_and_earlier_records_are_kept() {
        let mut buf = batch(0, &["a"]);
        let mut bad = batch(1, &["b"]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        buf.extend(bad);
        let topic: Arc<str> = Arc::from("t");
        let mut out = Default::default();
        let (next, err) =
            take_records(&topic, 3, 0, &mut None, Bytes::from(buf), &mut out).unwrap_err();
        assert_eq!(next, 1);
        assert_eq!(out.len(), 1);
        assert!(
            matches!(err, Error::CorruptBatch { partition: 3, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_timestamp_start_skips_older_records_of_the_first_batch() {
        let mut b = BatchBuilder::new();
        for (i, ts) in [10, 20, 30, 15].into_iter().enumerate() {
            b.push(Record {
                timestamp_ms: ts,
                key: None,
                value: Bytes::from(i.to_string()),
                headers: vec![],
            });
        }
        let topic: Arc<str> = Arc::from("t");
        let mut out = std::collections::VecDeque::new();
        let mut filter = Some(20);
        take_records(&topic, 0, 0, &mut filter, b.build(), &mut out).unwrap();
        // From the first record at or after 20 on, everything is kept.
        let offsets: Vec<u64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![1, 2, 3]);
        assert_eq!(filter, None);
    }

    #[test]
    fn an_empty_fetch_keeps_the_offset() {
        let topic: Arc<str> = Arc::from("t");
        let mut out = Default::default();
        assert_eq!(
            take_records(&topic, 0, 42, &mut None, Bytes::new(), &mut out).unwrap(),
            42
        );
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn seek_requires_an_assigned_partition_and_resets_position() {
        let client = Client::lazy(crate::ClientConfig::new("127.0.0.1:1"));
        let mut consumer = Consumer::new(client, ConsumerConfig::default());
        assert!(consumer.seek("t", 0, 5).is_err());
        consumer
            .assign("t", [0, 1], StartFrom::Offset(7))
            .await
            .unwrap();
        assert_eq!(consumer.position("t", 1), Some(7));
        consumer.seek("t", 1, 3).unwrap();
        assert_eq!(consumer.position("t", 1), Some(3));
        assert_eq!(consumer.assignment().len(), 2);
        assert!(consumer.unassign("t", 0));
        assert_eq!(consumer.assignment(), vec![("t".to_owned(), 1)]);
    }
}
