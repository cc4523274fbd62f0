//! The group coordinator: the state machine of every consumer group.
//!
//! A group has members (each with its topics, session timeout and last
//! heartbeat), a generation, a *target* assignment (who should own each
//! partition, from [`assign`]) and the *actual* owners (who may consume each
//! partition now). Rebalances are incremental:
//!
//! 1. A membership change (join, leave, expiry, a rejoin with other topics)
//!    bumps the generation and recomputes the target, sticky to the old one.
//! 2. A partition whose owner is not its target stays with its owner, which
//!    is told to revoke it (heartbeat `revoke`): commit, stop consuming,
//!    report it `released` in the next heartbeat.
//! 3. A partition with no owner (released, or its owner left or expired)
//!    goes to its target at once. Members keep consuming everything they
//!    keep throughout.
//!
//! Changes are pushed: every group has a change counter (a tokio `watch`),
//! bumped whenever its generation or an ownership changes. A long-polled
//! heartbeat ([`GroupCoordinator::heartbeat_watch`]) answers at once when
//! the member's view is out of date and otherwise waits on that counter, so
//! the old owner hears of a revocation, and the new owner of its partition,
//! within a round trip rather than at their next heartbeat.
//!
//! Each partition on its way to a new owner has a [`Handover`] record:
//! since when it waits (revocation asked, or its owner gone), when it was
//! released, and it ends when the new owner starts it (reads its committed
//! offset). `describe` shows the wait; the durations go to the
//! `skiff_group_revoke_seconds` and `skiff_group_handover_start_seconds`
//! histograms.
//!
//! Invariants:
//! - A partition has at most one owner: owners are one map keyed by
//!   partition.
//! - A partition reaches its new owner only after the old owner released it,
//!   left, or was expired.
//! - Commits are accepted only from a current member, at the current
//!   generation, for partitions it owns now; the check and the hand-off to
//!   the offset store happen under one lock, so a commit accepted before an
//!   ownership change is stored before any commit of the new owner.
//! - A member that stops heartbeating for its session timeout is removed by
//!   [`GroupCoordinator::expire`] (driven by [`GroupCoordinator::run_expiry`]
//!   or directly by tests with an explicit `now`). A member that holds a
//!   revoked partition for longer than `revoke_timeout_ms` loses that
//!   partition only (the same sweep takes it); it stays a member.
//! - A long-polled heartbeat waits at most the member's heartbeat interval,
//!   so a member's liveness is judged as with plain heartbeats.
//!
//! Kafka's classic groups ([`super::classic`]) live in the same registry,
//! under the same lock, so one group name has members of one
//! [`GroupKind`] at a time (the later kind gets [`GroupError::OtherKind`]),
//! and `groups_max`, listing, describing, resets, deletes and expiry cover
//! both kinds; their coordinator methods are in [`classic`].
//!
//! Every method takes the current time as an argument where time matters,
//! using `tokio::time::Instant` so paused-time tests work too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use skiff_protocol::messages::{GroupListing, GroupState, MemberDescription, TopicPartition};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::assignment::assign;
use super::classic::ClassicGroup;
use super::offsets::{OffsetRecovery, OffsetStore, OffsetStoreOptions, OffsetUpdate};
use super::{GroupError, GroupKind, validate_group_name};

mod classic;

pub use classic::KafkaGroupListing;

/// The broker's group limits (from `BrokerConfig`).
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// Most members one group may have.
    pub group_members_max: usize,
    /// Most groups the broker keeps (with members or with offsets).
    pub groups_max: usize,
    /// Shortest session timeout a member may ask for, in milliseconds.
    pub session_timeout_ms_min: u32,
    /// Longest session timeout a member may ask for, in milliseconds.
    pub session_timeout_ms_max: u32,
    /// Session timeout of members that ask for 0, in milliseconds.
    pub session_timeout_ms_default: u32,
    /// Heartbeat interval told to members, in milliseconds (capped at a
    /// third of the member's session timeout).
    pub heartbeat_interval_ms: u32,
    /// How long a member may hold a partition it was told to revoke before
    /// the broker takes that partition from it, in milliseconds.
    pub revoke_timeout_ms: u32,
}

/// Bounds of the expiry sweep period (a quarter of the shortest session
/// timeout within them): never busier than every 10 ms, and never lazier
/// than every 50 ms, so a crashed member's partitions move at most 50 ms
/// after its session ran out (the hand-over a crash costs is its session
/// timeout plus this plus one fetch). A sweep is one pass over the groups
/// under the coordinator's lock.
const SWEEP_INTERVAL_MS_MIN: u64 = 10;
const SWEEP_INTERVAL_MS_MAX: u64 = 50;
/// Longest client id kept in a member id, in bytes.
const MEMBER_ID_CLIENT_BYTES_MAX: usize = 64;

/// A join request, with its topics already resolved to partition counts.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// The group.
    pub group: String,
    /// Topics and their partition counts.
    pub topics: Vec<(String, u32)>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Requested session timeout (0: the default), in milliseconds.
    pub session_timeout_ms: u32,
    /// The id of an earlier join, to rejoin as the same member.
    pub member_id: Option<String>,
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    /// The member's id.
    pub member_id: String,
    /// The group's generation.
    pub generation: u32,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u32,
    /// The applied session timeout, in milliseconds.
    pub session_timeout_ms: u32,
    /// Partitions the member owns now.
    pub assignment: Vec<TopicPartition>,
}

/// The answer to a heartbeat: a member's current ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The group's generation.
    pub generation: u32,
    /// Partitions the member owns (may consume).
    pub owned: Vec<TopicPartition>,
    /// Owned partitions it must release.
    pub revoke: Vec<TopicPartition>,
    /// The member is unknown and must join again.
    pub rejoin: bool,
}

impl MemberState {
    fn rejoin(generation: u32) -> MemberState {
        MemberState {
            generation,
            owned: Vec::new(),
            revoke: Vec::new(),
            rejoin: true,
        }
    }
}

/// What a long-polling member believes: the generation and the partitions
/// it owns (after what it releases with this heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The generation of its last answer.
    pub generation: u32,
    /// What it owns, sorted (as answers list them).
    pub owned: Vec<TopicPartition>,
}

impl MemberView {
    /// Whether `state` is news to this member. Revocations need no check of
    /// their own: only a rebalance asks for one, and it bumps the
    /// generation.
    pub fn is_stale(&self, state: &MemberState) -> bool {
        state.rejoin || state.generation != self.generation || state.owned != self.owned
    }
}

/// The answer to a long-polled heartbeat.
#[derive(Debug)]
pub struct Watched {
    /// The member's state now.
    pub state: MemberState,
    /// Set when the state is no news: the group's change counter to wait
    /// on, and the longest the member may be held (its heartbeat interval).
    pub wait: Option<(watch::Receiver<u64>, Duration)>,
}

impl GroupLimits {
    /// The heartbeat interval of a member with this session timeout, in
    /// milliseconds: the configured one, at most a third of the session.
    pub fn heartbeat_interval_ms(&self, session_timeout: Duration) -> u32 {
        let third = u32::try_from(session_timeout.as_millis() / 3).unwrap_or(u32::MAX);
        self.heartbeat_interval_ms.min(third).max(1)
    }
}

/// A group's state for `describe`; log end offsets are added by the caller.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State.
    pub state: GroupState,
    /// Generation.
    pub generation: u32,
    /// Members, sorted by id.
    pub members: Vec<MemberDescription>,
    /// Current owner per partition.
    pub owners: BTreeMap<TopicPartition, String>,
    /// Topics the members consume.
    pub topics: BTreeSet<String>,
    /// Committed offsets.
    pub committed: BTreeMap<TopicPartition, u64>,
    /// How long each partition on its way to a new owner has waited (since
    /// its revocation was asked, or its owner left).
    pub waiting: BTreeMap<TopicPartition, Duration>,
}

#[derive(Debug)]
struct Member {
    client_id: String,
    host: String,
    topics: BTreeSet<String>,
    session_timeout: Duration,
    last_seen: Instant,
}

/// A partition on its way to a new owner.
#[derive(Debug, Clone, Copy)]
struct Handover {
    /// Since when it waits for its new owner: the revocation was asked, or
    /// its owner left or expired.
    since: Instant,
    /// When its old owner let go (released it, left, expired, or lost it to
    /// `revoke_timeout_ms`) and it went to its new owner.
    released: Option<Instant>,
}

/// A group's change counter: bumped on every change of generation or
/// ownership; long-polled heartbeats wait on it.
#[derive(Debug)]
struct Changes(watch::Sender<u64>);

impl Default for Changes {
    fn default() -> Self {
        Changes(watch::channel(0).0)
    }
}

impl Changes {
    fn bump(&self) {
        // `send_modify` updates the value even with no receiver.
        self.0.send_modify(|v| *v = v.wrapping_add(1));
    }
}

#[derive(Debug, Default)]
struct Group {
    generation: u32,
    members: BTreeMap<String, Member>,
    partition_counts: BTreeMap<String, u32>,
    target: BTreeMap<TopicPartition, String>,
    owners: BTreeMap<TopicPartition, String>,
    /// Partitions waiting for their new owner (see the module docs).
    handovers: BTreeMap<TopicPartition, Handover>,
    changes: Changes,
}

impl Group {
    /// A membership change: new generation, new target, then hand out what
    /// is free.
    fn rebalance(&mut self, now: Instant) {
        self.generation = self.generation.wrapping_add(1);
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        self.partition_counts.retain(|t, _| subscribed.contains(t));
        let members = &self.members;
        let handovers = &mut self.handovers;
        self.owners.retain(|tp, m| {
            let kept = members.contains_key(m);
            if !kept {
                // Its owner left or expired: free now, waiting since its
                // revocation if it was being revoked, else from now.
                handovers
                    .entry(tp.clone())
                    .or_insert(Handover {
                        since: now,
                        released: None,
                    })
                    .released
                    .get_or_insert(now);
            }
            kept
        });
        let subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = assign(&subscriptions, &self.partition_counts, &self.target);
        self.grant(now);
        self.changes.bump();
    }

    /// Gives every partition without an owner to its target, and keeps the
    /// hand-over records in step: a partition whose owner is not its target
    /// waits (since now if it did not already); one granted after a release
    /// waits for its new owner to start it; any other record ends. Bumps
    /// the change counter when an owner changed.
    fn grant(&mut self, now: Instant) {
        let mut granted = false;
        for (tp, member) in &self.target {
            if !self.owners.contains_key(tp) {
                self.owners.insert(tp.clone(), member.clone());
                // Only a move has a record: a partition's first owner
                // (a new group, a new topic) is no hand-over.
                if let Some(handover) = self.handovers.get_mut(tp) {
                    handover.released.get_or_insert(now);
                }
                granted = true;
            }
        }
        for (tp, owner) in &self.owners {
            if self.target.get(tp) != Some(owner) {
                self.handovers.entry(tp.clone()).or_insert(Handover {
                    since: now,
                    released: None,
                });
            }
        }
        let (owners, target) = (&self.owners, &self.target);
        self.handovers.retain(|tp, h| {
            let revoking = owners.contains_key(tp) && owners.get(tp) != target.get(tp);
            revoking || (h.released.is_some() && target.contains_key(tp))
        });
        if granted {
            self.changes.bump();
        }
    }

    /// Takes from their owners the revoked partitions held past `timeout`
    /// and grants them; returns how many.
    fn take_overdue(&mut self, timeout: Duration, now: Instant) -> usize {
        let overdue: Vec<TopicPartition> = self
            .owners
            .iter()
            .filter(|(tp, owner)| {
                self.target.get(*tp) != Some(*owner)
                    && self
                        .handovers
                        .get(*tp)
                        .is_some_and(|h| now >= h.since + timeout)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &overdue {
            if let Some(owner) = self.owners.remove(tp) {
                tracing::warn!(member = %owner, partition = %tp, "revoked partition not released within revoke_timeout_ms; taken from its owner");
            }
        }
        if !overdue.is_empty() {
            metrics::counter!(crate::telemetry::names::GROUP_REVOKE_TIMEOUTS)
                .increment(overdue.len() as u64);
            self.grant(now);
            self.changes.bump();
        }
        overdue.len()
    }

    fn owned_by(&self, member_id: &str) -> Vec<TopicPartition> {
        self.owners
            .iter()
            .filter(|(_, owner)| owner.as_str() == member_id)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn revoking_by(&self, member_id: &str) -> Vec<TopicPartition> {
        self.owners
            .iter()
            .filter(|(tp, owner)| {
                owner.as_str() == member_id
                    && self.target.get(*tp).map(String::as_str) != Some(member_id)
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.owners == self.target {
            GroupState::Stable
        } else {
            GroupState::Rebalancing
        }
    }

    fn member_state(&self, member_id: &str) -> MemberState {
        MemberState {
            generation: self.generation,
            owned: self.owned_by(member_id),
            revoke: self.revoking_by(member_id),
            rejoin: false,
        }
    }

    /// How long each partition waiting for its new owner has waited.
    fn waiting(&self, now: Instant) -> BTreeMap<TopicPartition, Duration> {
        self.handovers
            .iter()
            .map(|(tp, h)| (tp.clone(), now.saturating_duration_since(h.since)))
            .collect()
    }
}

/// The groups held in memory, by kind. A name is in at most one of the two
/// maps: an entry of one kind is dropped before a member of the other kind
/// creates its own, and only while it has no members.
#[derive(Debug, Default)]
struct Registry {
    native: BTreeMap<String, Group>,
    classic: BTreeMap<String, ClassicGroup>,
}

impl Registry {
    fn contains(&self, group: &str) -> bool {
        self.native.contains_key(group) || self.classic.contains_key(group)
    }

    fn len(&self) -> usize {
        self.native.len() + self.classic.len()
    }

    /// Members of either kind (for a classic group: including member ids
    /// handed out and not yet used).
    fn members(&self, group: &str) -> usize {
        self.native.get(group).map_or(0, |g| g.members.len())
            + self.classic.get(group).map_or(0, ClassicGroup::occupied)
    }

    /// The refusal for a member of kind `kind` while `group` has members of
    /// the other kind.
    fn other_kind(&self, group: &str, kind: GroupKind) -> Option<GroupError> {
        let (members, other) = match kind {
            GroupKind::Skiff => (
                self.classic.get(group).map(ClassicGroup::occupied),
                GroupKind::Kafka,
            ),
            GroupKind::Kafka => (
                self.native.get(group).map(|g| g.members.len()),
                GroupKind::Skiff,
            ),
        };
        members
            .filter(|n| *n > 0)
            .map(|members| GroupError::OtherKind {
                group: group.to_owned(),
                kind: other,
                members,
            })
    }

    /// Makes room for a member of kind `kind` in `group`: refused while the
    /// group has members of the other kind; an idle entry of the other
    /// kind is dropped.
    fn claim(&mut self, group: &str, kind: GroupKind) -> Result<(), GroupError> {
        if let Some(e) = self.other_kind(group, kind) {
            return Err(e);
        }
        if kind == GroupKind::Skiff {
            self.classic.remove(group);
        } else {
            self.native.remove(group);
        }
        Ok(())
    }
}

/// Every group of the broker, and their offsets. See the module docs.
#[derive(Debug)]
pub struct GroupCoordinator {
    limits: GroupLimits,
    groups: Mutex<Registry>,
    offsets: OffsetStore,
    /// Names taken by work queues: groups and queues share one namespace.
    /// Locked after `groups` when both are held.
    queue_names: Mutex<BTreeSet<String>>,
    member_seq: AtomicU64,
    /// Distinguishes member ids of different broker runs.
    incarnation: u64,
}

impl GroupCoordinator {
    /// Opens the offset store in `dir` (recovering it) and starts with no
    /// members. Blocking: call from a blocking context.
    pub fn open(
        dir: &Path,
        limits: GroupLimits,
        options: OffsetStoreOptions,
    ) -> Result<(Self, OffsetRecovery), GroupError> {
        let (offsets, recovery) = OffsetStore::open(dir, options)?;
        // Nanoseconds, so two runs started within the same second (a quick
        // restart) still hand out different member ids: a member of the old
        // run must never pass for one of the new.
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok((
            Self {
                limits,
                groups: Mutex::new(Registry::default()),
                offsets,
                queue_names: Mutex::new(BTreeSet::new()),
                member_seq: AtomicU64::new(1),
                incarnation,
            },
            recovery,
        ))
    }

    /// The limits in force.
    pub fn limits(&self) -> &GroupLimits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        crate::poison::lock(&self.groups)
    }

    /// Groups known: with members or with committed offsets.
    fn group_count(&self, groups: &Registry) -> usize {
        let stored = self.offsets.groups();
        groups.len() + stored.iter().filter(|g| !groups.contains(g)).count()
    }

    fn check_new_group(&self, groups: &Registry, group: &str) -> Result<(), GroupError> {
        if crate::poison::lock(&self.queue_names).contains(group) {
            return Err(GroupError::NameIsQueue(group.to_owned()));
        }
        if !groups.contains(group)
            && !self.offsets.has_group(group)
            && self.group_count(groups) >= self.limits.groups_max
        {
            return Err(GroupError::GroupLimitReached {
                max: self.limits.groups_max,
            });
        }
        Ok(())
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let mut end = client_id.len().min(MEMBER_ID_CLIENT_BYTES_MAX);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        let prefix: String = client_id[..end]
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        let prefix = if prefix.is_empty() { "member" } else { &prefix };
        let seq = self.member_seq.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:x}-{seq}", self.incarnation)
    }

    /// Joins (or rejoins) a member. A new member, or a rejoin with other
    /// topics, starts a rebalance; the member owns at once whatever of its
    /// target was free.
    pub fn join(&self, params: JoinParams, now: Instant) -> Result<JoinOutcome, GroupError> {
        validate_group_name(&params.group)?;
        if params.topics.is_empty() {
            return Err(GroupError::Invalid(format!(
                "join of group {:?} names no topics",
                params.group
            )));
        }
        let limits = &self.limits;
        let session_timeout_ms = match params.session_timeout_ms {
            0 => limits.session_timeout_ms_default,
            ms if (limits.session_timeout_ms_min..=limits.session_timeout_ms_max).contains(&ms) => {
                ms
            }
            ms => {
                return Err(GroupError::InvalidSessionTimeout {
                    requested_ms: ms,
                    min_ms: limits.session_timeout_ms_min,
                    max_ms: limits.session_timeout_ms_max,
                });
            }
        };
        let session_timeout = Duration::from_millis(u64::from(session_timeout_ms));
        let topics: BTreeSet<String> = params.topics.iter().map(|(t, _)| t.clone()).collect();

        let mut groups = self.lock();
        self.check_new_group(&groups, &params.group)?;
        groups.claim(&params.group, GroupKind::Skiff)?;
        let group = groups.native.entry(params.group.clone()).or_default();
        for (topic, count) in &params.topics {
            group.partition_counts.insert(topic.clone(), *count);
        }
        let existing = params
            .member_id
            .as_ref()
            .filter(|id| group.members.contains_key(*id))
            .cloned();
        let member_id = match existing {
            Some(id) => {
                // `existing` was filtered on `contains_key` under the same lock.
                #[allow(clippy::expect_used)]
                let member = group.members.get_mut(&id).expect("checked above");
                member.client_id = params.client_id;
                member.host = params.host;
                member.session_timeout = session_timeout;
                member.last_seen = now;
                if member.topics != topics {
                    member.topics = topics;
                    group.rebalance(now);
                } else {
                    group.grant(now);
                }
                id
            }
            None => {
                if group.members.len() >= limits.group_members_max {
                    let max = limits.group_members_max;
                    let empty = group.members.is_empty();
                    if empty {
                        groups.native.remove(&params.group);
                    }
                    return Err(GroupError::MemberLimitReached {
                        group: params.group,
                        max,
                    });
                }
                let id = self.new_member_id(&params.client_id);
                group.members.insert(
                    id.clone(),
                    Member {
                        client_id: params.client_id,
                        host: params.host.clone(),
                        topics,
                        session_timeout,
                        last_seen: now,
                    },
                );
                group.rebalance(now);
                tracing::info!(
                    group = %params.group,
                    member = %id,
                    host = %params.host,
                    generation = group.generation,
                    members = group.members.len(),
                    "member joined"
                );
                id
            }
        };
        Ok(JoinOutcome {
            generation: group.generation,
            heartbeat_interval_ms: limits.heartbeat_interval_ms(session_timeout),
            session_timeout_ms,
            assignment: group.owned_by(&member_id),
            member_id,
        })
    }

    /// Records a heartbeat and the partitions the member released; answers
    /// its current ownership. An unknown group or member gets `rejoin`.
    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        released: &[TopicPartition],
        now: Instant,
    ) -> MemberState {
        let mut groups = self.lock();
        let Some(g) = groups.native.get_mut(group) else {
            return MemberState {
                generation: 0,
                owned: Vec::new(),
                revoke: Vec::new(),
                rejoin: true,
            };
        };
        let Some(member) = g.members.get_mut(member_id) else {
            return MemberState {
                generation: g.generation,
                owned: Vec::new(),
                revoke: Vec::new(),
                rejoin: true,
            };
        };
        member.last_seen = now;
        let mut any = false;
        for tp in released {
            // Only a partition it owns and should no longer own is released;
            // anything else in the list is ignored.
            let releasable = g.owners.get(tp).map(String::as_str) == Some(member_id)
                && g.target.get(tp).map(String::as_str) != Some(member_id);
            if releasable {
                g.owners.remove(tp);
                any = true;
                if let Some(h) = g.handovers.get(tp) {
                    metrics::histogram!(crate::telemetry::names::GROUP_REVOKE_SECONDS)
                        .record(now.saturating_duration_since(h.since).as_secs_f64());
                }
            }
        }
        g.grant(now);
        if any {
            g.changes.bump();
        }
        g.member_state(member_id)
    }

    /// A heartbeat as [`GroupCoordinator::heartbeat`], for a member that
    /// long-polls with view `view`: see [`GroupCoordinator::watch`].
    pub fn heartbeat_watch(
        &self,
        group: &str,
        member_id: &str,
        released: &[TopicPartition],
        view: &MemberView,
        now: Instant,
    ) -> Watched {
        self.heartbeat(group, member_id, released, now);
        self.watch(group, member_id, view)
    }

    /// The member's state now (without counting as a heartbeat) and, when it
    /// is no news to a member whose view is `view`, a receiver of the
    /// group's change counter subscribed under the same lock the state was
    /// read under (so no change falls between the check and the wait), with
    /// the longest the member may be held: its heartbeat interval.
    pub fn watch(&self, group: &str, member_id: &str, view: &MemberView) -> Watched {
        let groups = self.lock();
        let Some(g) = groups.native.get(group) else {
            return Watched {
                state: MemberState::rejoin(0),
                wait: None,
            };
        };
        let Some(member) = g.members.get(member_id) else {
            return Watched {
                state: MemberState::rejoin(g.generation),
                wait: None,
            };
        };
        let state = g.member_state(member_id);
        let wait = (!view.is_stale(&state)).then(|| {
            let interval_ms = self.limits.heartbeat_interval_ms(member.session_timeout);
            (
                g.changes.0.subscribe(),
                Duration::from_millis(u64::from(interval_ms)),
            )
        });
        Watched { state, wait }
    }

    /// Ends the hand-over of partitions their new owner starts (reads the
    /// committed offsets of, the step before its first fetch), recording
    /// how long they waited since their release.
    pub fn started(&self, group: &str, partitions: &[TopicPartition], now: Instant) {
        let mut groups = self.lock();
        let Some(g) = groups.native.get_mut(group) else {
            return;
        };
        for tp in partitions {
            let granted = g.owners.contains_key(tp) && g.owners.get(tp) == g.target.get(tp);
            if !granted {
                continue;
            }
            if let Some(h) = g.handovers.remove(tp) {
                if let Some(released) = h.released {
                    metrics::histogram!(crate::telemetry::names::GROUP_HANDOVER_START_SECONDS)
                        .record(now.saturating_duration_since(released).as_secs_f64());
                }
            }
        }
    }

    /// Removes a member at once; its partitions go to the others.
    pub fn leave(&self, group: &str, member_id: &str, now: Instant) -> Result<(), GroupError> {
        let mut groups = self.lock();
        let unknown = || GroupError::UnknownMember {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
        };
        let g = groups.native.get_mut(group).ok_or_else(unknown)?;
        g.members.remove(member_id).ok_or_else(unknown)?;
        g.rebalance(now);
        tracing::info!(
            group,
            member = member_id,
            generation = g.generation,
            "member left"
        );
        self.forget_if_unused(&mut groups, group);
        Ok(())
    }

    /// Drops a group's in-memory state when it has neither members nor
    /// offsets (so abandoned groups do not count against `groups_max`).
    fn forget_if_unused(&self, groups: &mut Registry, group: &str) {
        if groups
            .native
            .get(group)
            .is_some_and(|g| g.members.is_empty())
            && !self.offsets.has_group(group)
        {
            groups.native.remove(group);
        }
    }

    /// Commits offsets for a member, checking membership, generation and
    /// ownership; resolves when the commit is durable.
    pub async fn commit(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        offsets: Vec<(TopicPartition, u64)>,
    ) -> Result<(), GroupError> {
        let pending = {
            let groups = self.lock();
            let unknown = || GroupError::UnknownMember {
                group: group.to_owned(),
                member_id: member_id.to_owned(),
            };
            if let Some(e) = groups.other_kind(group, GroupKind::Skiff) {
                return Err(e);
            }
            let g = groups.native.get(group).ok_or_else(unknown)?;
            if !g.members.contains_key(member_id) {
                return Err(unknown());
            }
            if generation != g.generation {
                return Err(GroupError::StaleGeneration {
                    group: group.to_owned(),
                    generation,
                    current: g.generation,
                });
            }
            for (tp, _) in &offsets {
                let owner = g.owners.get(tp);
                if owner.map(String::as_str) != Some(member_id) {
                    return Err(GroupError::NotPartitionOwner {
                        group: group.to_owned(),
                        member_id: member_id.to_owned(),
                        partition: tp.clone(),
                        owner: owner.cloned(),
                    });
                }
            }
            if offsets.is_empty() {
                return Ok(());
            }
            // Submitted under the lock: see the module invariants.
            self.offsets.submit(OffsetUpdate::Commit {
                group: group.to_owned(),
                offsets,
            })
        };
        Ok(pending.wait().await?)
    }

    /// Committed offsets of the given partitions, or of every partition with
    /// one when `partitions` is empty.
    pub fn fetch_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, Option<u64>)> {
        if partitions.is_empty() {
            return self
                .offsets
                .group_offsets(group)
                .into_iter()
                .map(|(tp, o)| (tp, Some(o)))
                .collect();
        }
        partitions
            .iter()
            .map(|tp| (tp.clone(), self.offsets.committed(group, tp)))
            .collect()
    }

    /// Every group with members or offsets, sorted by name.
    pub fn list(&self) -> Vec<GroupListing> {
        let groups = self.lock();
        let mut out: BTreeMap<String, GroupListing> = groups
            .native
            .iter()
            .map(|(name, g)| {
                (
                    name.clone(),
                    GroupListing {
                        group: name.clone(),
                        state: g.state(),
                        members: g.members.len() as u32,
                        generation: g.generation,
                    },
                )
            })
            .collect();
        for (name, g) in &groups.classic {
            out.insert(name.clone(), classic::listing(name, g));
        }
        for name in self.offsets.groups() {
            out.entry(name.clone()).or_insert(GroupListing {
                group: name,
                state: GroupState::Empty,
                members: 0,
                generation: 0,
            });
        }
        out.into_values().collect()
    }

    /// A group's members, owners and committed offsets.
    pub fn describe(&self, group: &str) -> Result<GroupDescription, GroupError> {
        let groups = self.lock();
        let committed = self.offsets.group_offsets(group);
        if let Some(g) = groups.classic.get(group) {
            return Ok(classic::native_description(g, committed));
        }
        let Some(g) = groups.native.get(group) else {
            if committed.is_empty() {
                return Err(GroupError::UnknownGroup(group.to_owned()));
            }
            return Ok(GroupDescription {
                state: GroupState::Empty,
                generation: 0,
                members: Vec::new(),
                owners: BTreeMap::new(),
                topics: BTreeSet::new(),
                committed,
                waiting: BTreeMap::new(),
            });
        };
        let members = g
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                host: m.host.clone(),
                topics: m.topics.iter().cloned().collect(),
                owned: g.owned_by(id),
                revoking: g.revoking_by(id),
            })
            .collect();
        Ok(GroupDescription {
            state: g.state(),
            generation: g.generation,
            members,
            owners: g.owners.clone(),
            topics: g
                .members
                .values()
                .flat_map(|m| m.topics.iter().cloned())
                .collect(),
            committed,
            waiting: g.waiting(Instant::now()),
        })
    }

    /// Sets a member-less group's offsets (creating the group if new);
    /// refused while it has members.
    pub async fn reset_offsets(
        &self,
        group: &str,
        offsets: Vec<(TopicPartition, u64)>,
    ) -> Result<(), GroupError> {
        validate_group_name(group)?;
        let pending = {
            let groups = self.lock();
            let members = groups.members(group);
            if members > 0 {
                return Err(GroupError::GroupNotEmpty {
                    group: group.to_owned(),
                    members,
                });
            }
            self.check_new_group(&groups, group)?;
            self.offsets.submit(OffsetUpdate::Commit {
                group: group.to_owned(),
                offsets,
            })
        };
        Ok(pending.wait().await?)
    }

    /// Whether the group has members now.
    pub fn member_count(&self, group: &str) -> usize {
        self.lock().members(group)
    }

    /// Deletes a member-less group and its offsets (durably).
    pub async fn delete(&self, group: &str) -> Result<(), GroupError> {
        let pending = {
            let mut groups = self.lock();
            let members = groups.members(group);
            if members > 0 {
                return Err(GroupError::GroupNotEmpty {
                    group: group.to_owned(),
                    members,
                });
            }
            let known = groups.native.remove(group).is_some()
                | groups.classic.remove(group).is_some()
                || self.offsets.has_group(group);
            if !known {
                return Err(GroupError::UnknownGroup(group.to_owned()));
            }
            self.offsets.submit(OffsetUpdate::DeleteGroup {
                group: group.to_owned(),
            })
        };
        Ok(pending.wait().await?)
    }

    /// Takes `name` for a work queue: refused while a group of that name has
    /// members or committed offsets; from then on no group of that name can
    /// be joined. Checked and taken under the groups lock, so a join racing
    /// a queue creation either wins or is refused.
    pub fn reserve_queue_name(&self, name: &str) -> Result<(), GroupError> {
        let groups = self.lock();
        if groups.contains(name) || self.offsets.has_group(name) {
            return Err(GroupError::NameIsGroup(name.to_owned()));
        }
        crate::poison::lock(&self.queue_names).insert(name.to_owned());
        Ok(())
    }

    /// Frees a name [`Self::reserve_queue_name`] took (the queue was deleted).
    pub fn release_queue_name(&self, name: &str) {
        let _groups = self.lock();
        crate::poison::lock(&self.queue_names).remove(name);
    }

    /// Removes members whose session ran out (no heartbeat), and takes
    /// revoked partitions held past `revoke_timeout_ms` from their owners;
    /// returns how many members were removed.
    pub fn expire(&self, now: Instant) -> usize {
        let mut groups = self.lock();
        let mut removed = 0;
        let mut emptied = Vec::new();
        let revoke_timeout = Duration::from_millis(u64::from(self.limits.revoke_timeout_ms));
        for (name, g) in groups.native.iter_mut() {
            let taken = g.take_overdue(revoke_timeout, now);
            if taken > 0 {
                tracing::info!(group = %name, partitions = taken, "took revoked partitions past revoke_timeout_ms");
            }
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| now >= m.last_seen + m.session_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                g.members.remove(id);
                tracing::info!(group = %name, member = %id, "member expired (session timeout)");
            }
            removed += expired.len();
            g.rebalance(now);
            if g.members.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.forget_if_unused(&mut groups, &name);
        }
        removed + classic::expire(&mut groups, now)
    }

    /// How often [`GroupCoordinator::run_expiry`] sweeps.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(
            (u64::from(self.limits.session_timeout_ms_min) / 4)
                .clamp(SWEEP_INTERVAL_MS_MIN, SWEEP_INTERVAL_MS_MAX),
        )
    }

    /// Expires members periodically until `shutdown`.
    pub async fn run_expiry(&self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.sweep_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.expire(Instant::now());
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Finishes every queued offset write and stops the store. Blocking.
    pub fn close(&self) {
        self.offsets.close();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const LIMITS: GroupLimits = GroupLimits {
        group_members_max: 4,
        groups_max: 3,
        session_timeout_ms_min: 100,
        session_timeout_ms_max: 10_000,
        session_timeout_ms_default: 1000,
        heartbeat_interval_ms: 300,
        revoke_timeout_ms: 1000,
    };

    pub(crate) fn coordinator() -> (tempfile::TempDir, GroupCoordinator) {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) =
            GroupCoordinator::open(dir.path(), LIMITS, OffsetStoreOptions::default()).unwrap();
        (dir, c)
    }

    fn join(c: &GroupCoordinator, group: &str, now: Instant) -> JoinOutcome {
        c.join(
            JoinParams {
                group: group.into(),
                topics: vec![("t".into(), 6)],
                client_id: "svc".into(),
                host: "127.0.0.1:1".into(),
                session_timeout_ms: 0,
                member_id: None,
            },
            now,
        )
        .unwrap()
    }

    fn tps(ps: &[u32]) -> Vec<TopicPartition> {
        ps.iter().map(|p| TopicPartition::new("t", *p)).collect()
    }

    #[test]
    fn partitions_move_only_after_release() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        assert_eq!(a.assignment, tps(&[0, 1, 2, 3, 4, 5]));
        assert_eq!(a.generation, 1);

        let b = join(&c, "g", t0);
        assert_eq!(b.generation, 2);
        // Everything is still with a: b gets nothing until a releases.
        assert!(b.assignment.is_empty());
        let hb = c.heartbeat("g", &a.member_id, &[], t0);
        assert_eq!(hb.owned.len(), 6);
        assert_eq!(hb.revoke.len(), 3);
        assert_eq!(c.heartbeat("g", &b.member_id, &[], t0).owned, vec![]);
        assert_eq!(c.describe("g").unwrap().state, GroupState::Rebalancing);

        // a releases one: only that one moves.
        c.heartbeat("g", &a.member_id, &hb.revoke[..1], t0);
        let hb_b = c.heartbeat("g", &b.member_id, &[], t0);
        assert_eq!(hb_b.owned, hb.revoke[..1].to_vec());
        c.heartbeat("g", &a.member_id, &hb.revoke[1..], t0);
        let hb_b = c.heartbeat("g", &b.member_id, &[], t0);
        assert_eq!(hb_b.owned, hb.revoke);
        let hb_a = c.heartbeat("g", &a.member_id, &[], t0);
        assert_eq!(hb_a.owned.len(), 3);
        assert!(hb_a.revoke.is_empty() && hb_b.revoke.is_empty());
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    }

    #[test]
    fn silent_members_expire_and_their_partitions_move() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let b = join(&c, "g", t0);
        let revoke = c.heartbeat("g", &a.member_id, &[], t0).revoke;
        c.heartbeat("g", &a.member_id, &revoke, t0);
        assert_eq!(c.heartbeat("g", &b.member_id, &[], t0).owned.len(), 3);

        // a keeps heartbeating, b goes silent.
        let step = Duration::from_millis(400);
        let mut now = t0;
        for _ in 0..3 {
            now += step;
            c.heartbeat("g", &a.member_id, &[], now);
            c.expire(now);
        }
        let hb = c.heartbeat("g", &a.member_id, &[], now);
        assert_eq!(hb.owned, tps(&[0, 1, 2, 3, 4, 5]));
        assert_eq!(hb.generation, 3);
        assert!(c.heartbeat("g", &b.member_id, &[], now).rejoin);
    }

    #[test]
    fn a_member_that_never_releases_loses_only_the_revoked_partitions() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let b = join(&c, "g", t0);
        let revoke = c.heartbeat("g", &a.member_id, &[], t0).revoke;
        assert_eq!(revoke.len(), 3);
        let mut now = t0;
        // Both stay alive; a never releases. Before revoke_timeout_ms (1 s)
        // nothing moves.
        for step in 1..=4 {
            now = t0 + Duration::from_millis(400 * step);
            c.heartbeat("g", &a.member_id, &[], now);
            c.heartbeat("g", &b.member_id, &[], now);
            c.expire(now);
            let moved = c.heartbeat("g", &b.member_id, &[], now).owned;
            if step < 3 {
                assert!(moved.is_empty(), "moved at {step}: {moved:?}");
            }
        }
        let hb_a = c.heartbeat("g", &a.member_id, &[], now);
        assert!(!hb_a.rejoin);
        assert_eq!(hb_a.owned.len(), 3);
        assert!(hb_a.owned.iter().all(|tp| !revoke.contains(tp)));
        assert_eq!(c.heartbeat("g", &b.member_id, &[], now).owned, revoke);
    }

    /// A long-polled heartbeat is told to wait while nothing changes for
    /// its member, and its receiver fires the moment the partition it waits
    /// for is released to it.
    #[tokio::test]
    async fn a_waiting_member_is_woken_when_its_partition_is_released() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let b = join(&c, "g", t0);
        let view_b = MemberView {
            generation: b.generation,
            owned: vec![],
        };
        let watched = c.heartbeat_watch("g", &b.member_id, &[], &view_b, t0);
        let (changes, wait_max) = watched.wait.expect("no news for b yet");
        assert_eq!(wait_max, Duration::from_millis(300));
        // a's own view is news: it has partitions to revoke at a new
        // generation.
        let view_a = MemberView {
            generation: a.generation,
            owned: a.assignment.clone(),
        };
        let hb_a = c.heartbeat_watch("g", &a.member_id, &[], &view_a, t0);
        assert!(hb_a.wait.is_none());
        assert_eq!(hb_a.state.revoke.len(), 3);
        assert!(!changes.has_changed().unwrap());
        c.heartbeat("g", &a.member_id, &hb_a.state.revoke, t0);
        assert!(changes.has_changed().unwrap());
        let now_b = c.watch("g", &b.member_id, &view_b);
        assert!(now_b.wait.is_none());
        assert_eq!(now_b.state.owned, hb_a.state.revoke);
    }

    #[test]
    fn describe_shows_partitions_waiting_for_their_new_owner() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        assert!(c.describe("g").unwrap().waiting.is_empty());
        let _b = join(&c, "g", t0);
        let revoke = c.heartbeat("g", &a.member_id, &[], t0).revoke;
        let waiting = c.describe("g").unwrap().waiting;
        assert_eq!(waiting.keys().cloned().collect::<Vec<_>>(), revoke);
        // Released: still waiting until the new owner starts it.
        c.heartbeat("g", &a.member_id, &revoke[..1], t0);
        assert_eq!(c.describe("g").unwrap().waiting.len(), 3);
        c.started("g", &revoke[..1], t0);
        assert_eq!(c.describe("g").unwrap().waiting.len(), 2);
        // Starting a partition still with its old owner ends nothing.
        c.started("g", &revoke[1..], t0);
        assert_eq!(c.describe("g").unwrap().waiting.len(), 2);
    }

    #[tokio::test]
    async fn commits_need_membership_current_generation_and_ownership() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let offset = |p| vec![(TopicPartition::new("t", p), 10)];
        c.commit("g", &a.member_id, 1, offset(0)).await.unwrap();
        let b = join(&c, "g", t0);
        let err = c.commit("g", &a.member_id, 1, offset(0)).await.unwrap_err();
        assert!(
            matches!(
                err,
                GroupError::StaleGeneration {
                    generation: 1,
                    current: 2,
                    ..
                }
            ),
            "{err}"
        );
        // a still owns partition 0 (not revoked), so it may commit at gen 2.
        c.commit("g", &a.member_id, 2, offset(0)).await.unwrap();
        let err = c.commit("g", &b.member_id, 2, offset(0)).await.unwrap_err();
        assert!(matches!(err, GroupError::NotPartitionOwner { .. }), "{err}");
        let err = c.commit("g", "nobody", 2, offset(0)).await.unwrap_err();
        assert!(matches!(err, GroupError::UnknownMember { .. }), "{err}");
        assert_eq!(
            c.fetch_offsets("g", &tps(&[0, 1])),
            vec![
                (TopicPartition::new("t", 0), Some(10)),
                (TopicPartition::new("t", 1), None)
            ]
        );
    }

    #[tokio::test]
    async fn reset_and_delete_are_refused_while_members_exist() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let reset = vec![(TopicPartition::new("t", 0), 3)];
        assert!(matches!(
            c.reset_offsets("g", reset.clone()).await,
            Err(GroupError::GroupNotEmpty { members: 1, .. })
        ));
        assert!(matches!(
            c.delete("g").await,
            Err(GroupError::GroupNotEmpty { .. })
        ));
        c.leave("g", &a.member_id, t0).unwrap();
        c.reset_offsets("g", reset).await.unwrap();
        assert_eq!(c.list().len(), 1);
        assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
        c.delete("g").await.unwrap();
        assert!(c.list().is_empty());
        assert!(matches!(
            c.delete("g").await,
            Err(GroupError::UnknownGroup(_))
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        for _ in 0..4 {
            join(&c, "g", t0);
        }
        let params = |group: &str, timeout| JoinParams {
            group: group.into(),
            topics: vec![("t".into(), 6)],
            client_id: "svc".into(),
            host: "h".into(),
            session_timeout_ms: timeout,
            member_id: None,
        };
        assert!(matches!(
            c.join(params("g", 0), t0),
            Err(GroupError::MemberLimitReached { max: 4, .. })
        ));
        join(&c, "g2", t0);
        join(&c, "g3", t0);
        assert!(matches!(
            c.join(params("g4", 0), t0),
            Err(GroupError::GroupLimitReached { max: 3 })
        ));
        assert!(matches!(
            c.join(params("g", 50), t0),
            Err(GroupError::InvalidSessionTimeout {
                requested_ms: 50,
                ..
            })
        ));
    }

    /// The real sweeper task under paused tokio time: a silent member goes
    /// after its session timeout, not before, and a live one takes over.
    #[tokio::test(start_paused = true)]
    async fn the_sweeper_expires_silent_members_in_paused_time() {
        let (_dir, c) = coordinator();
        let c = std::sync::Arc::new(c);
        let shutdown = CancellationToken::new();
        let sweeper = tokio::spawn({
            let c = std::sync::Arc::clone(&c);
            let shutdown = shutdown.clone();
            async move { c.run_expiry(shutdown).await }
        });
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let b = join(&c, "g", t0);
        let mut released = Vec::new();
        let mut b_gone_at = None;
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let hb = c.heartbeat("g", &a.member_id, &released, Instant::now());
            released = hb.revoke;
            if b_gone_at.is_none() && c.member_count("g") == 1 {
                b_gone_at = Some(t0.elapsed());
            }
        }
        let gone = b_gone_at.expect("b expired");
        let timeout = Duration::from_millis(u64::from(LIMITS.session_timeout_ms_default));
        assert!(gone >= timeout, "expired after {gone:?}");
        assert!(gone <= timeout + Duration::from_millis(200) + c.sweep_interval());
        assert!(c.heartbeat("g", &b.member_id, &[], Instant::now()).rejoin);
        assert_eq!(
            c.heartbeat("g", &a.member_id, &[], Instant::now())
                .owned
                .len(),
            6
        );
        shutdown.cancel();
        sweeper.await.unwrap();
    }

    #[test]
    fn rejoining_keeps_partitions_and_generation() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let a = join(&c, "g", t0);
        let again = c
            .join(
                JoinParams {
                    group: "g".into(),
                    topics: vec![("t".into(), 6)],
                    client_id: "svc".into(),
                    host: "h".into(),
                    session_timeout_ms: 0,
                    member_id: Some(a.member_id.clone()),
                },
                t0,
            )
            .unwrap();
        assert_eq!(again.member_id, a.member_id);
        assert_eq!(again.generation, a.generation);
        assert_eq!(again.assignment, a.assignment);
    }
}
