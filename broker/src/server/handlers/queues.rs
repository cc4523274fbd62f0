//! Work-queue request handlers: create, alter, delete, list and describe
//! queues, receive (long poll) and settle. The queue logic lives in
//! [`crate::queues`]; these translate between protocol messages and it, and
//! run its blocking work (log reads, fsync'd state, dead-letter appends) on
//! the blocking pool.
//!
//! Rules: a queue is a group for ACLs (one namespace): create needs
//! `create` on the queue and `consume` on its topic; alter `alter`, delete
//! `delete`, describe `describe` on the queue; receive and settle need
//! `consume` on the queue, and receive also on its topic; list shows the
//! queues the session may describe.
//!
//! A member's locks are released when the connection it receives on ends
//! (see `queue_members`).
//!
//! A waiting receive wakes when any partition of the queue's topic gains
//! records (the logs' end-offset watches, as a fetch's long poll), and
//! otherwise looks again every [`QUEUE_POLL_MS`]: locks that expire and
//! backoffs that end make records ready with no append to wake on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{
    AlterQueueRequest, AlterQueueResponse, CreateQueueRequest, CreateQueueResponse,
    DeleteQueueRequest, DeleteQueueResponse, DescribeQueueRequest, DescribeQueueResponse,
    ListQueuesRequest, ListQueuesResponse, Operation, QueueConfig, QueueDelivery, QueueListing,
    QueuePartitionInfo, ReceiveRequest, ReceiveResponse, ResourceKind, SettleAction, SettleRequest,
    SettleResponse, SettleResult, TopicConfig,
};
use tokio::time::Instant;

use super::blocking;
use crate::queues::engine::LogDeadLetterSink;
use crate::queues::store::PendingState;
use crate::queues::{Queue, QueueError, QueueSettings};
use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;
use crate::telemetry::names::{
    QUEUE_DELIVERIES, QUEUE_LOCK_EXPIRIES, QUEUE_REDELIVERIES, QUEUE_SETTLES,
};
use crate::topics::TopicRegistry;

/// Most records one receive hands out: bounds the response and the locks
/// one request takes.
pub(crate) const QUEUE_RECEIVE_RECORDS_MAX: u32 = 1000;
/// How often a waiting receive looks again with no new records (for
/// expired locks and ended backoffs), in ms.
pub(crate) const QUEUE_POLL_MS: u64 = 10;

fn to_u32(field: &'static str, v: Option<u64>) -> Result<Option<u32>, Failure> {
    v.map(|v| {
        u32::try_from(v).map_err(|_| {
            Failure::new(
                ErrorCode::InvalidConfig,
                format!("{field} = {v} is too large"),
            )
        })
    })
    .transpose()
}

/// Applies the given fields of `cfg` to `s` (not the dead-letter topic).
fn apply(s: &mut QueueSettings, cfg: &QueueConfig) -> Result<(), Failure> {
    if let Some(v) = to_u32("lock_ms", cfg.lock_ms)? {
        s.lock_ms = v;
    }
    if let Some(v) = to_u32("max_deliveries", cfg.max_deliveries)? {
        s.max_deliveries = v;
    }
    if let Some(v) = to_u32("backoff_initial_ms", cfg.backoff_initial_ms)? {
        s.backoff.initial_ms = v;
    }
    if let Some(v) = to_u32("backoff_multiplier", cfg.backoff_multiplier)? {
        s.backoff.multiplier = v;
    }
    if let Some(v) = to_u32("backoff_max_ms", cfg.backoff_max_ms)? {
        s.backoff.max_ms = v;
    }
    if let Some(v) = to_u32("window_records", cfg.window_records)? {
        s.window_records = v;
    }
    if let Some(o) = &cfg.ordering {
        s.ordering = o.parse().map_err(QueueError::Settings)?;
    }
    Ok(())
}

fn queue(ctx: &Ctx, name: &str) -> Result<Arc<Queue>, Failure> {
    ctx.queues()
        .get(name)
        .ok_or_else(|| QueueError::NotFound(name.to_owned()).into())
}

/// The dead-letter sink of `queue` over the broker's topics. Without its
/// dead-letter topic (deleted), dead-lettering fails and is retried later.
pub(crate) fn sink(topics: &TopicRegistry, queue: &Queue) -> LogDeadLetterSink {
    let s = queue.settings();
    let logs = |name: &str| {
        topics
            .get(name)
            .map(|t| t.partitions.clone())
            .unwrap_or_default()
    };
    LogDeadLetterSink::new(queue, logs(&s.topic), logs(&s.dead_letter_topic))
}

impl Handler for CreateQueueRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        let auth = ctx.authorizer();
        auth.group(Operation::Create, &self.name)?;
        auth.topic(Operation::Consume, &self.topic)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<CreateQueueResponse, Failure> {
        blocking(move || {
            let source = ctx.topics().require(&self.topic)?;
            let mut settings = QueueSettings::new(&self.name, &self.topic);
            apply(&mut settings, &self.config)?;
            if let Some(dlq) = &self.config.dead_letter_topic {
                settings.dead_letter_topic = dlq.clone();
            }
            let dlq = settings.dead_letter_topic.clone();
            ctx.queues()
                .create(&self.name, settings, ctx.groups(), |t| {
                    ctx.topics().get(t).is_some()
                })?;
            let config = TopicConfig {
                partitions: source.meta.partitions,
                ..TopicConfig::default()
            };
            if let Err(e) = ctx.topics().create(&dlq, &config) {
                // No queue without its dead-letter topic.
                if let Err(undo) = ctx.queues().delete(&self.name, ctx.groups()) {
                    tracing::error!(queue = %self.name, error = %undo, "queue: cannot undo a failed creation");
                }
                return Err(e.into());
            }
            Ok(CreateQueueResponse {
                dead_letter_topic: dlq,
            })
        })
        .await
    }
}

impl Handler for AlterQueueRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Alter, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<AlterQueueResponse, Failure> {
        blocking(move || {
            if self.config.dead_letter_topic.is_some() {
                return Err(QueueError::Immutable("the dead-letter topic").into());
            }
            let mut refused = None;
            let settings = ctx.queues().alter(&self.name, |s| {
                refused = apply(s, &self.config).err();
            })?;
            if let Some(f) = refused {
                return Err(f);
            }
            Ok(AlterQueueResponse {
                settings: settings.info(),
            })
        })
        .await
    }
}

impl Handler for DeleteQueueRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Delete, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<DeleteQueueResponse, Failure> {
        blocking(move || {
            ctx.queues().delete(&self.name, ctx.groups())?;
            Ok(DeleteQueueResponse)
        })
        .await
    }
}

impl Handler for ListQueuesRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().session()
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ListQueuesResponse, Failure> {
        let auth = ctx.authorizer();
        let queues = ctx
            .queues()
            .list()
            .into_iter()
            .filter(|q| auth.visible(ResourceKind::Group, q.name()))
            .map(|q| QueueListing {
                name: q.name().to_owned(),
                topic: q.settings().topic,
            })
            .collect();
        Ok(ListQueuesResponse { queues })
    }
}

impl Handler for DescribeQueueRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Describe, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<DescribeQueueResponse, Failure> {
        blocking(move || {
            let queue = queue(&ctx, &self.name)?;
            let settings = queue.settings();
            let topic = ctx.topics().require(&settings.topic)?;
            let now_ms = crate::clock::now_ms();
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for (p, log) in (0u32..).zip(topic.partitions.iter()) {
                queue.fill(p, log).map_err(engine_failure)?;
                let (stats, _) = queue.with_partition(p, 0, |q| {
                    q.expire(now_ms);
                    q.stats()
                });
                let oldest = if stats.floor < log.log_end_offset() {
                    queue
                        .read_records(p, log, &[stats.floor])
                        .map_err(engine_failure)?
                        .first()
                        .map_or(0, |r| u64::try_from(now_ms - r.timestamp_ms).unwrap_or(0))
                } else {
                    0
                };
                partitions.push(QueuePartitionInfo {
                    partition: p,
                    floor: stats.floor,
                    log_end: log.log_end_offset(),
                    available: stats.available + (log.log_end_offset().saturating_sub(stats.end)),
                    in_flight: stats.in_flight,
                    delayed: stats.delayed,
                    dead_lettered: stats.dead_lettered_total,
                    acked: stats.acked_total,
                    lock_expiries: stats.lock_expiries_total,
                    oldest_unacked_age_ms: oldest,
                });
            }
            Ok(DescribeQueueResponse {
                settings: settings.info(),
                partitions,
            })
        })
        .await
    }
}

fn engine_failure(e: crate::queues::engine::EngineError) -> Failure {
    Failure::new(ErrorCode::StorageError, e.to_string())
}

impl Handler for ReceiveRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Consume, &self.queue)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ReceiveResponse, Failure> {
        let queue = queue(&ctx, &self.queue)?;
        ctx.authorizer()
            .topic(Operation::Consume, &queue.settings().topic)?;
        let member_id = match self.member_id {
            0 => ctx.queues().new_member_id(),
            id => id,
        };
        // Its locks are released when this connection ends.
        let closing = match ctx.queue_members() {
            Some(members) => {
                members.note(&self.queue, member_id)?;
                members.closing().clone()
            }
            None => tokio_util::sync::CancellationToken::new(),
        };
        let max = self.max_records.clamp(1, QUEUE_RECEIVE_RECORDS_MAX) as usize;
        let wait =
            Duration::from_millis(u64::from(self.max_wait_ms).min(ctx.config().fetch_wait_ms_max));
        let deadline = Instant::now() + wait;
        let mut ends: Vec<_> = ctx
            .topics()
            .require(&queue.settings().topic)?
            .partitions
            .iter()
            .map(|log| log.watch_end())
            .collect();
        loop {
            for end in &mut ends {
                end.borrow_and_update();
            }
            let (ctx2, queue2) = (ctx.clone(), Arc::clone(&queue));
            let deliveries = blocking(move || receive_once(&ctx2, &queue2, member_id, max)).await?;
            let now = Instant::now();
            if !deliveries.is_empty()
                || now >= deadline
                || ctx.shutdown().is_cancelled()
                || closing.is_cancelled()
            {
                return Ok(ReceiveResponse {
                    member_id,
                    deliveries,
                });
            }
            let pause = Duration::from_millis(QUEUE_POLL_MS).min(deadline - now);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = any_changed(&mut ends) => {}
                () = ctx.shutdown().cancelled() => {}
                () = closing.cancelled() => {}
            }
        }
    }
}

/// Resolves when any of `ends` changes (records appended); never when there
/// are none, or once a log is gone (the poll timer still runs).
async fn any_changed(ends: &mut [tokio::sync::watch::Receiver<u64>]) {
    if ends.is_empty() {
        return std::future::pending().await;
    }
    let changes = ends.iter_mut().map(|end| Box::pin(end.changed()));
    match futures::future::select_all(changes).await {
        (Ok(()), _, _) => {}
        (Err(_), _, _) => std::future::pending().await,
    }
}

fn count(name: &'static str, queue: &Queue, n: u64) {
    if n > 0 {
        metrics::counter!(name, "queue" => queue.name().to_owned()).increment(n);
    }
}

/// One pass over the queue's partitions: fill, hand out, dead-letter what
/// ran out of deliveries, read the records. Blocking.
fn receive_once(
    ctx: &Ctx,
    queue: &Queue,
    member: u64,
    max: usize,
) -> Result<Vec<QueueDelivery>, Failure> {
    let topic = ctx.topics().require(&queue.settings().topic)?;
    let n = u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX);
    let now_ms = crate::clock::now_ms();
    let mut out = Vec::new();
    let mut sink = sink(ctx.topics(), queue);
    // Members start at different partitions, so none is always served last.
    let first = u32::try_from(member % u64::from(n.max(1))).unwrap_or(0);
    for i in 0..n {
        if out.len() >= max {
            break;
        }
        let p = (first + i) % n;
        let Some(log) = topic.partitions.get(p as usize) else {
            continue;
        };
        queue.fill(p, log).map_err(engine_failure)?;
        let ((handed, expired), _delivered) = queue.with_partition(p, 0, |q| {
            let before = q.lock_expiries_total();
            let handed = q.hand_out(member, max - out.len(), now_ms);
            (handed, q.lock_expiries_total() - before)
        });
        count(QUEUE_LOCK_EXPIRIES, queue, expired);
        count(QUEUE_DELIVERIES, queue, handed.len() as u64);
        let again = handed.iter().filter(|d| d.deliveries > 1).count();
        count(QUEUE_REDELIVERIES, queue, again as u64);
        if let Err(e) = queue.dead_letter(p, &mut sink) {
            tracing::warn!(queue = %queue.name(), partition = p, error = %e, "queue: dead-lettering failed; retried later");
        }
        if handed.is_empty() {
            continue;
        }
        let offsets: Vec<u64> = handed.iter().map(|d| d.offset).collect();
        let records = queue
            .take_handed_out(p, log, &offsets)
            .map_err(engine_failure)?;
        let by_offset: BTreeMap<u64, _> = records.into_iter().map(|r| (r.offset, r)).collect();
        for d in handed {
            // A record retention removed meanwhile is not sent; its lock
            // runs out and the floor passes it.
            if let Some(r) = by_offset.get(&d.offset) {
                out.push(QueueDelivery {
                    partition: p,
                    offset: d.offset,
                    deliveries: d.deliveries,
                    lock_deadline_ms: d.lock_deadline_ms,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r.headers.clone(),
                });
            }
        }
    }
    Ok(out)
}

impl Handler for SettleRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Consume, &self.queue)
    }

    /// The verdicts are applied here, on the async worker (state-machine
    /// changes under a lock, no I/O), and their fsync is awaited without a
    /// blocking thread; only dead-lettering, which appends to a log, goes
    /// to the blocking pool.
    async fn handle(self, (): (), ctx: Ctx) -> Result<SettleResponse, Failure> {
        let queue = queue(&ctx, &self.queue)?;
        let applied = apply_settle(&ctx, &queue, self)?;
        // Answered only once every verdict is durable.
        for wait in applied.pending {
            wait.wait()
                .await
                .map_err(|e| Failure::new(ErrorCode::StorageError, e.to_string()))?;
        }
        if !applied.to_dead_letter.is_empty() {
            let to_dead_letter = applied.to_dead_letter;
            blocking(move || {
                let mut sink = sink(ctx.topics(), &queue);
                for p in to_dead_letter {
                    queue.dead_letter(p, &mut sink).map_err(engine_failure)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(SettleResponse {
            results: applied.results,
        })
    }
}

/// The metric label of a verdict.
fn action_name(action: &SettleAction) -> &'static str {
    match action {
        SettleAction::Ack => "ack",
        SettleAction::Nack { .. } => "nack",
        SettleAction::Reject { .. } => "reject",
        SettleAction::Extend { .. } => "extend",
        SettleAction::Release => "release",
    }
}

/// Applies one verdict to a partition's state machine; the new lock
/// deadline for an extend, else 0.
fn apply_verdict(
    q: &mut crate::queues::PartitionQueue,
    member: u64,
    item: &skiff_protocol::messages::Settlement,
    now_ms: i64,
) -> Result<i64, crate::queues::QueueStateError> {
    let (o, d) = (item.offset, item.deliveries);
    match &item.action {
        SettleAction::Ack => q.ack(member, o, d, now_ms).map(|()| 0),
        SettleAction::Nack { delay_ms } => q.nack(member, o, d, *delay_ms, now_ms).map(|_| 0),
        SettleAction::Reject { reason } => q.reject(member, o, d, reason, now_ms).map(|()| 0),
        SettleAction::Extend { lock_ms } => q.extend(member, o, d, *lock_ms, now_ms),
        SettleAction::Release => q.release(member, o, d, now_ms).map(|()| 0),
    }
}

/// A settle's verdicts applied to the state machines, not yet durable.
struct AppliedSettle {
    results: Vec<SettleResult>,
    /// The state-log writes to wait for before answering.
    pending: Vec<PendingState>,
    /// Partitions with records that may now go to the dead-letter topic.
    to_dead_letter: Vec<u32>,
}

/// Applies a settle's verdicts: each partition's under one lock, handed
/// to the state log as one update (one write, one fsync shared with every
/// other settle in the same group commit). Never blocks; the caller waits
/// for `pending` before answering.
fn apply_settle(ctx: &Ctx, queue: &Queue, req: SettleRequest) -> Result<AppliedSettle, Failure> {
    let topic = ctx.topics().require(&queue.settings().topic)?;
    let now_ms = crate::clock::now_ms();
    let member = req.member_id;
    let items = req.items;
    // Every item's result is set below: refused here, or applied with its
    // partition.
    let mut results = vec![
        SettleResult {
            error: None,
            lock_deadline_ms: 0,
        };
        items.len()
    ];
    // Item positions by partition, in request order within each.
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.partition as usize >= topic.partitions.len() {
            results[i] = SettleResult {
                error: Some(format!("unknown partition {}", item.partition)),
                lock_deadline_ms: 0,
            };
        } else {
            by_partition.entry(item.partition).or_default().push(i);
        }
    }
    let mut pending = Vec::with_capacity(by_partition.len());
    let mut to_dead_letter = Vec::new();
    let mut applied: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (&p, positions) in &by_partition {
        let (outcomes, wait) = queue.with_partition(p, 0, |q| {
            positions
                .iter()
                .map(|&i| apply_verdict(q, member, &items[i], now_ms))
                .collect::<Vec<_>>()
        });
        pending.push(wait);
        let mut may_dead_letter = false;
        for (&i, outcome) in positions.iter().zip(outcomes) {
            let item = &items[i];
            if outcome.is_ok() {
                *applied.entry(action_name(&item.action)).or_default() += 1;
            }
            may_dead_letter |= matches!(
                item.action,
                SettleAction::Nack { .. } | SettleAction::Reject { .. } | SettleAction::Release
            );
            results[i] = match outcome {
                Ok(lock_deadline_ms) => SettleResult {
                    error: None,
                    lock_deadline_ms,
                },
                Err(e) => SettleResult {
                    error: Some(e.to_string()),
                    lock_deadline_ms: 0,
                },
            };
        }
        if may_dead_letter {
            to_dead_letter.push(p);
        }
    }
    for (action, n) in applied {
        metrics::counter!(QUEUE_SETTLES, "queue" => req.queue.clone(), "action" => action)
            .increment(n);
    }
    Ok(AppliedSettle {
        results,
        pending,
        to_dead_letter,
    })
}
