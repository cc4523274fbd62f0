//! Consumer-group membership, the half of a group [`Consumer`](crate::Consumer)
//! that talks to the coordinator: join, a background heartbeat task, commits
//! with their retry rule, and leave.
//!
//! The broker assigns partitions and rebalances incrementally (see the
//! broker's `groups/coordinator.rs`): every heartbeat answer carries the
//! member's full ownership, the subset it must revoke and whether it must
//! rejoin. The heartbeat task only records that answer in [`Shared`] and
//! bumps a version; the consumer reconciles its fetch assignment with it on
//! its own task (inside `next()`, which waits on that version alongside its
//! fetches), so fetch positions never need a lock.
//!
//! Assignments are pushed: the heartbeat task keeps one long-polled
//! heartbeat (Heartbeat v1) outstanding, carrying the member's view
//! (generation, partitions owned); the broker answers it the moment that
//! view is out of date (a rebalance, a revocation, a partition released to
//! this member) or after one heartbeat interval. A release cuts the poll
//! short: the task sends it at once in a heartbeat answered without
//! waiting, then polls again.
//!
//! Invariants:
//! - A revoked partition is reported `released` only after the consumer
//!   stopped fetching it and committed (or failed to commit) the position of
//!   the records it delivered; the release rides on the next heartbeat,
//!   which the consumer triggers at once.
//! - A released partition is forgotten from `released` only when a
//!   heartbeat carrying it was answered, so a lost heartbeat cannot strand
//!   it.
//! - A commit refused as `StaleGeneration`, `NotPartitionOwner` or
//!   `UnknownMember` is retried after one heartbeat (which refreshes the
//!   generation and ownership), only for partitions still owned, at most
//!   [`COMMIT_ATTEMPTS_MAX`] times.
//! - After a `rejoin` answer the task joins again with the old member id;
//!   the member owns only what that join returned, and the consumer treats
//!   everything it read before as lost (restarting from committed offsets),
//!   since another member may have consumed and committed meanwhile.
//! - A rejoin once sent is never abandoned: cancelling the task lets it
//!   finish and record the member id it got, and leave (or drop) waits for
//!   the task before leaving with that id. Otherwise a join still on the
//!   wire when the member leaves would create a member nobody leaves, which
//!   holds partitions until its session times out.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use skiff_protocol::ErrorCode;
use skiff_protocol::group_name::validate_group_name;
use skiff_protocol::messages::{
    CommitOffsetsRequest, HEARTBEAT_VERSION_LONG_POLL, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, OffsetCommit, Request, TopicPartition,
};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::consumer::{ConsumerConfig, StartFrom};
use crate::error::{Error, Result};

/// Default auto-commit interval: 5 s. Bounds how much a crashed member's
/// successor re-reads, at one small durable write per interval.
pub const AUTO_COMMIT_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Most attempts of one commit refused for a stale generation or lost
/// ownership; each retry waits for one heartbeat first. Three covers a
/// rebalance racing a commit twice in a row.
pub const COMMIT_ATTEMPTS_MAX: u32 = 3;

/// When a group consumer commits what it has delivered.
///
/// ```
/// use std::time::Duration;
/// use skiff_client::{AutoCommit, GroupConfig};
///
/// let config = GroupConfig::new("billing", ["orders"]).auto_commit(AutoCommit::Manual);
/// assert_eq!(config.auto_commit, AutoCommit::Manual);
/// assert_eq!(AutoCommit::default(), AutoCommit::Interval(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCommit {
    /// Commit the delivered positions at most this often, from inside
    /// [`Consumer::next`](crate::Consumer::next) (so a record counts as
    /// processed once the application asks for the next one).
    Interval(Duration),
    /// Only [`Consumer::commit`](crate::Consumer::commit), revocations and
    /// [`Consumer::close`](crate::Consumer::close) commit.
    Manual,
}

impl Default for AutoCommit {
    fn default() -> Self {
        AutoCommit::Interval(Duration::from_millis(AUTO_COMMIT_INTERVAL_MS_DEFAULT))
    }
}

/// Settings of a group consumer ([`Consumer::with_group`](crate::Consumer::with_group)).
///
/// ```
/// use skiff_client::{AutoCommit, ConsumerConfig, GroupConfig, StartFrom};
///
/// let config = GroupConfig::new("billing", ["orders", "refunds"])
///     .session_timeout_ms(10_000)
///     .reset(StartFrom::Latest)
///     .consumer(ConsumerConfig::default().max_wait_ms(200));
/// assert_eq!(config.topics.len(), 2);
/// assert_eq!(config.reset, StartFrom::Latest);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GroupConfig {
    /// The group to join.
    pub group: String,
    /// Topics to consume (at least one; each must exist).
    pub topics: Vec<String>,
    /// How long the broker keeps this member without a heartbeat, in
    /// milliseconds; 0 takes the broker's default. Heartbeats go out at the
    /// interval the broker answers (at most a third of this).
    pub session_timeout_ms: u32,
    /// When to commit.
    pub auto_commit: AutoCommit,
    /// Where a partition starts when the group has no committed offset for
    /// it (default: the earliest stored offset).
    pub reset: StartFrom,
    /// Fetch settings.
    pub consumer: ConsumerConfig,
    /// Keep a long-polled heartbeat outstanding so the broker pushes
    /// assignment changes at once (default). Off: heartbeat every interval
    /// and learn of changes then, as clients before Heartbeat v1 did (for
    /// comparisons such as `skiff bench rebalance --no-push`).
    pub push_assignments: bool,
}

impl GroupConfig {
    /// A member of `group` consuming `topics`, with defaults otherwise.
    pub fn new(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        GroupConfig {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            session_timeout_ms: 0,
            auto_commit: AutoCommit::default(),
            reset: StartFrom::Earliest,
            consumer: ConsumerConfig::default(),
            push_assignments: true,
        }
    }
    /// Sets whether assignment changes are pushed (a long-polled heartbeat,
    /// the default) or learnt at each heartbeat interval.
    pub fn push_assignments(mut self, push: bool) -> Self {
        self.push_assignments = push;
        self
    }
    /// Sets the session timeout, in milliseconds (0: the broker's default).
    pub fn session_timeout_ms(mut self, ms: u32) -> Self {
        self.session_timeout_ms = ms;
        self
    }
    /// Sets the commit policy.
    pub fn auto_commit(mut self, auto_commit: AutoCommit) -> Self {
        self.auto_commit = auto_commit;
        self
    }
    /// Sets where partitions without a committed offset start.
    pub fn reset(mut self, from: StartFrom) -> Self {
        self.reset = from;
        self
    }
    /// Sets the fetch settings.
    pub fn consumer(mut self, config: ConsumerConfig) -> Self {
        self.consumer = config;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        // The broker's own rule, so a name it would refuse fails here,
        // before a connection is made.
        validate_group_name(&self.group).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if self.topics.is_empty() {
            return Err(Error::InvalidArgument(
                "a group consumer needs at least one topic".to_owned(),
            ));
        }
        for topic in &self.topics {
            skiff_protocol::topic_name::validate_topic_name(topic)?;
        }
        Ok(())
    }
}

/// A change of a group consumer's partitions, in the order it happened
/// (from [`Consumer::rebalance_events`](crate::Consumer::rebalance_events)).
///
/// ```no_run
/// use skiff_client::RebalanceEvent;
///
/// # async fn run(consumer: &mut skiff_client::Consumer) {
/// let mut events = consumer.rebalance_events();
/// tokio::spawn(async move {
///     while let Some(event) = events.recv().await {
///         match event {
///             RebalanceEvent::Assigned(tps) => println!("now reading {tps:?}"),
///             RebalanceEvent::Revoked(tps) => println!("committed and handed over {tps:?}"),
///             RebalanceEvent::Lost(tps) => println!("lost without a commit {tps:?}"),
///             _ => {}
///         }
///     }
/// });
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebalanceEvent {
    /// These partitions are now read by this member, from their committed
    /// offset (or the configured reset).
    Assigned(Vec<TopicPartition>),
    /// These partitions were revoked: their delivered positions were
    /// committed and they are released to their new owner.
    Revoked(Vec<TopicPartition>),
    /// These partitions were taken away without a clean hand-over (the
    /// session expired, or the broker forgot the member); records delivered
    /// since the last commit may be delivered again to the new owner.
    Lost(Vec<TopicPartition>),
}

/// The coordinator's latest answer, as the heartbeat task saw it.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub member_id: String,
    pub generation: u32,
    pub owned: BTreeSet<TopicPartition>,
    pub revoke: BTreeSet<TopicPartition>,
    /// Released partitions not yet carried by an answered heartbeat.
    pub released: BTreeSet<TopicPartition>,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    /// Joins so far (1 after the first): a change means the member was
    /// forgotten and joined again, so nothing it held carries over.
    pub joins: u64,
}

impl Shared {
    fn from_join(resp: JoinGroupResponse, joins: u64) -> Shared {
        Shared {
            joins,
            member_id: resp.member_id,
            generation: resp.generation,
            owned: resp.assignment.into_iter().collect(),
            revoke: BTreeSet::new(),
            released: BTreeSet::new(),
            heartbeat_interval: Duration::from_millis(u64::from(resp.heartbeat_interval_ms.max(1))),
            session_timeout: Duration::from_millis(u64::from(resp.session_timeout_ms.max(1))),
        }
    }
}

/// What the heartbeat task needs.
struct Ctx {
    client: Client,
    join: JoinGroupRequest,
    shared: Mutex<Shared>,
    version: watch::Sender<u64>,
    heartbeat_now: Notify,
    cancel: CancellationToken,
    /// [`GroupConfig::push_assignments`].
    push: bool,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This process's membership of one group.
pub(crate) struct Membership {
    ctx: Arc<Ctx>,
    /// The heartbeat task; taken (and awaited) by leave or drop.
    task: Option<JoinHandle<()>>,
    /// The consumer's view of the version: changed means reconcile.
    version: watch::Receiver<u64>,
    left: bool,
}

impl Membership {
    /// Joins the group and starts heartbeating.
    pub(crate) async fn join(client: Client, config: &GroupConfig) -> Result<Membership> {
        config.validate()?;
        let join = JoinGroupRequest {
            group: config.group.clone(),
            topics: config.topics.clone(),
            client_id: client.config().client_id.clone(),
            session_timeout_ms: config.session_timeout_ms,
            member_id: None,
        };
        let resp = client.send(join.clone()).await?;
        tracing::debug!(group = %join.group, member = %resp.member_id, generation = resp.generation, "joined");
        let (tx, rx) = watch::channel(0u64);
        let ctx = Arc::new(Ctx {
            client,
            join,
            shared: Mutex::new(Shared::from_join(resp, 1)),
            version: tx,
            heartbeat_now: Notify::new(),
            cancel: CancellationToken::new(),
            push: config.push_assignments,
        });
        let task = tokio::spawn(heartbeat_loop(Arc::clone(&ctx)));
        let mut version = rx;
        // The join itself is news for the consumer.
        version.mark_changed();
        Ok(Membership {
            ctx,
            task: Some(task),
            version,
            left: false,
        })
    }

    pub(crate) fn group(&self) -> &str {
        &self.ctx.join.group
    }

    /// A copy of the latest state, marking it seen.
    pub(crate) fn snapshot(&mut self) -> Shared {
        self.version.borrow_and_update();
        self.ctx.lock().clone()
    }

    /// A copy of the latest state, without marking it seen.
    pub(crate) fn current(&self) -> Shared {
        self.ctx.lock().clone()
    }

    /// Whether the state changed since the last [`Membership::snapshot`].
    pub(crate) fn has_changed(&self) -> bool {
        self.version.has_changed().unwrap_or(false)
    }

    /// Resolves when the state changes (cancel-safe).
    pub(crate) async fn changed(&mut self) {
        if self.version.changed().await.is_err() {
            // The sender lives in `ctx`, which we hold: cannot happen.
            std::future::pending::<()>().await;
        }
    }

    /// Reports partitions released and heartbeats at once.
    pub(crate) fn release(&self, tps: impl IntoIterator<Item = TopicPartition>) {
        self.ctx.lock().released.extend(tps);
        self.ctx.heartbeat_now.notify_one();
    }

    /// Heartbeats now and waits for the answer (at most a session timeout).
    async fn heartbeat_round(&self) {
        let mut rx = self.ctx.version.subscribe();
        let timeout = self.ctx.lock().session_timeout;
        self.ctx.heartbeat_now.notify_one();
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
    }

    /// Commits `offsets` (next offset to read per partition) under the
    /// retry rule in the module docs; returns the ones committed (all but
    /// partitions found no longer owned).
    pub(crate) async fn commit(
        &self,
        mut offsets: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<(TopicPartition, u64)>> {
        let mut attempt = 1;
        loop {
            if offsets.is_empty() {
                return Ok(offsets);
            }
            let (member_id, generation) = {
                let s = self.ctx.lock();
                (s.member_id.clone(), s.generation)
            };
            let request = CommitOffsetsRequest {
                group: self.ctx.join.group.clone(),
                member_id,
                generation,
                offsets: offsets
                    .iter()
                    .map(|(tp, o)| OffsetCommit {
                        partition: tp.clone(),
                        offset: *o,
                    })
                    .collect(),
            };
            match self.ctx.client.send(request).await {
                Ok(_) => return Ok(offsets),
                Err(e) if attempt < COMMIT_ATTEMPTS_MAX && refreshable(&e) => {
                    tracing::debug!(group = %self.ctx.join.group, error = %e, attempt, "commit refused; retrying after a heartbeat");
                    self.heartbeat_round().await;
                    let owned = self.ctx.lock().owned.clone();
                    offsets.retain(|(tp, _)| owned.contains(tp));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops heartbeating and leaves the group (its partitions move to the
    /// other members at once).
    pub(crate) async fn leave(&mut self) -> Result<()> {
        self.ctx.cancel.cancel();
        if self.left {
            return Ok(());
        }
        self.left = true;
        leave_after(Arc::clone(&self.ctx), self.task.take()).await
    }
}

/// Waits for the heartbeat task (already cancelled) to end, so a rejoin it
/// had in flight has recorded its member id, then leaves as that member.
async fn leave_after(ctx: Arc<Ctx>, task: Option<JoinHandle<()>>) -> Result<()> {
    if let Some(task) = task {
        // A panicked task left the state as it was; leave with that.
        let _ = task.await;
    }
    let member_id = ctx.lock().member_id.clone();
    let result = ctx
        .client
        .send(LeaveGroupRequest {
            group: ctx.join.group.clone(),
            member_id,
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        // Already gone (expired, broker restarted): nothing to leave.
        Err(e) if e.code() == Some(ErrorCode::UnknownMember) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for Membership {
    /// Best effort: stop heartbeating and, inside a runtime, send a leave
    /// in the background so the partitions move without waiting for the
    /// session timeout.
    fn drop(&mut self) {
        self.ctx.cancel.cancel();
        if self.left {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let ctx = Arc::clone(&self.ctx);
            let task = self.task.take();
            runtime.spawn(async move {
                if let Err(e) = leave_after(ctx, task).await {
                    tracing::debug!(error = %e, "leave on drop failed");
                }
            });
        }
    }
}

/// Whether a refused commit may succeed after one heartbeat.
fn refreshable(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::StaleGeneration | ErrorCode::NotPartitionOwner | ErrorCode::UnknownMember)
    )
}

/// What the heartbeat task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Long-poll: the broker holds the heartbeat until news (or one
    /// heartbeat interval).
    Poll,
    /// A heartbeat answered at once (releases to report, a commit to
    /// retry).
    Now,
    /// Wait one heartbeat interval first (after a failure), or less if a
    /// heartbeat is asked for.
    Pause,
}

/// Keeps one long-polled heartbeat outstanding (see the module docs),
/// records each answer and rejoins when told to; ends on cancel.
async fn heartbeat_loop(ctx: Arc<Ctx>) {
    // Lowered to v0 if the broker predates the long poll.
    let mut version = HeartbeatRequest::API_VERSION;
    // Without push (or with a v0 broker), every heartbeat waits an
    // interval first, as before v1.
    let polled = |version: u16| {
        if ctx.push && version >= HEARTBEAT_VERSION_LONG_POLL {
            Next::Poll
        } else {
            Next::Pause
        }
    };
    let mut next = polled(version);
    loop {
        let (interval, session_timeout) = {
            let s = ctx.lock();
            (s.heartbeat_interval, s.session_timeout)
        };
        if next == Next::Pause {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
                _ = ctx.heartbeat_now.notified() => {}
            }
            next = Next::Now;
        }
        let (request, sent) = {
            let s = ctx.lock();
            let released: Vec<TopicPartition> = s.released.iter().cloned().collect();
            let max_wait_ms = match next {
                Next::Poll => u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
                Next::Now | Next::Pause => 0,
            };
            (
                HeartbeatRequest {
                    group: ctx.join.group.clone(),
                    member_id: s.member_id.clone(),
                    generation: s.generation,
                    released: released.clone(),
                    max_wait_ms,
                    owned: s.owned.difference(&s.released).cloned().collect(),
                },
                released,
            )
        };
        let result = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            // Something to say now: drop the poll (the broker answers it
            // into the void) and send a heartbeat answered at once.
            _ = ctx.heartbeat_now.notified(), if next == Next::Poll => {
                next = Next::Now;
                continue;
            }
            r = ctx.client.send_version_with_timeout(request, version, session_timeout) => r,
        };
        if version >= HEARTBEAT_VERSION_LONG_POLL
            && result
                .as_ref()
                .is_err_and(|e| e.code() == Some(ErrorCode::UnsupportedVersion))
        {
            // A broker from before Heartbeat v1: heartbeat every interval
            // in v0 and learn of changes then, as clients did before.
            tracing::info!(group = %ctx.join.group, "broker has no pushed assignments (Heartbeat v0 only); polling every heartbeat interval");
            version = HEARTBEAT_VERSION_LONG_POLL - 1;
            next = Next::Now;
            continue;
        }
        next = if result.is_ok() {
            polled(version)
        } else {
            Next::Pause
        };
        match result {
            Ok(resp) if resp.rejoin => {
                let old = ctx.lock().member_id.clone();
                tracing::info!(group = %ctx.join.group, member = %old, "broker forgot this member; rejoining");
                let join = JoinGroupRequest {
                    member_id: Some(old),
                    ..ctx.join.clone()
                };
                // Not cut short by cancel: see the module docs.
                let joined = ctx.client.send(join).await;
                match joined {
                    Ok(resp) => {
                        let mut s = ctx.lock();
                        *s = Shared::from_join(resp, s.joins + 1);
                    }
                    Err(e) => {
                        tracing::warn!(group = %ctx.join.group, error = %e, "rejoin failed; retrying");
                        next = Next::Pause;
                        // Owns nothing until a join succeeds.
                        let mut s = ctx.lock();
                        s.owned.clear();
                        s.revoke.clear();
                        s.released.clear();
                    }
                }
            }
            Ok(resp) => {
                let mut s = ctx.lock();
                s.generation = resp.generation;
                s.owned = resp.owned.into_iter().collect();
                s.revoke = resp.revoke.into_iter().collect();
                for tp in &sent {
                    s.released.remove(tp);
                }
            }
            Err(e) => {
                tracing::debug!(group = %ctx.join.group, error = %e, "heartbeat failed");
            }
        }
        ctx.version.send_modify(|v| *v += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_brokers_rule() {
        let valid = |group: &str| GroupConfig::new(group, ["t"]).validate();
        assert!(valid("billing").is_ok());
        assert!(valid("team a/billing ünïcode").is_ok());
        // The broker's limit, not a stricter one of the client's own.
        assert!(valid(&"g".repeat(crate::GROUP_NAME_BYTES_MAX)).is_ok());
        for bad in [
            String::new(),
            "g".repeat(crate::GROUP_NAME_BYTES_MAX + 1),
            "a\nb".to_owned(),
        ] {
            assert!(
                matches!(valid(&bad), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }
}
