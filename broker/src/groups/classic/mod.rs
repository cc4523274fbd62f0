//! Kafka's classic consumer-group protocol: the state machine of one group
//! whose members run the assignment themselves (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), in plain Rust types so no wire format leaks in.
//!
//! A group moves through Kafka's states:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all rejoined / rebalance timeout──▶
//!   CompletingRebalance ──leader's SyncGroup──▶ Stable ──join/leave/expiry──▶
//!   PreparingRebalance ...        (no member left: back to Empty)
//! ```
//!
//! - **Join is a long poll.** Each member's JoinGroup waits (on a oneshot
//!   channel) until every known member has rejoined and no member id handed
//!   out with MEMBER_ID_REQUIRED is still outstanding, or until the group's
//!   rebalance timeout (the largest of its members', capped at
//!   [`REBALANCE_TIMEOUT_MS_MAX`]) passes; members that did not rejoin by then
//!   are removed. The new generation then picks a protocol every member
//!   supports, keeps or elects the leader, and answers every waiting join; the
//!   leader's answer carries every member's metadata.
//! - **Sync is a long poll** too: followers wait until the leader's SyncGroup
//!   brings the assignments; the group is then Stable and every member gets
//!   its own assignment. A rebalance that starts meanwhile answers waiting
//!   syncs with REBALANCE_IN_PROGRESS.
//! - Members waiting in a join or a sync cannot heartbeat, so they are never
//!   expired while waiting; every other member is removed once its session
//!   timeout passes without a heartbeat (the coordinator's sweep calls
//!   [`ClassicGroup::expire`]).
//! - Errors follow Kafka's rules and order: an unknown member before a wrong
//!   generation, REBALANCE_IN_PROGRESS to heartbeats while a rebalance is
//!   being prepared, UNKNOWN_MEMBER_ID from an Empty group.
//!
//! Invariants: a member is in `members` or in `pending`, never both; every
//! waiting sender is answered exactly once (or dropped with the coordinator);
//! `members.len() + pending.len() <= group_members_max`; every stored
//! metadata and assignment is within its byte limit, so a group's memory is
//! bounded by its member limit.
//!
//! Static membership (`group.instance.id`) is not implemented: the id is kept
//! and shown, but such members are handled as dynamic ones.

pub mod consumer_protocol;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{GroupError, GroupKind};

/// Most protocols (assignors) one member may offer. The Java client offers
/// two by default (range and cooperative-sticky); 16 leaves room for any
/// real configuration while bounding the per-member list.
pub const PROTOCOLS_PER_MEMBER_MAX: usize = 16;
/// Longest protocol type or protocol name, in bytes.
pub const PROTOCOL_NAME_BYTES_MAX: usize = 255;
/// Most metadata one member may send, summed over its protocols, in bytes.
/// A consumer's subscription lists its topics and, for cooperative-sticky,
/// its owned partitions (4 bytes each, plus each topic's name once):
/// 256 KiB covers tens of thousands of partitions, and bounds a group's
/// metadata by `group_members_max` × 256 KiB.
pub const MEMBER_METADATA_BYTES_MAX: usize = 256 * 1024;
/// Largest assignment the leader may hand one member, in bytes (same
/// reasoning as [`MEMBER_METADATA_BYTES_MAX`]).
pub const ASSIGNMENT_BYTES_MAX: usize = 256 * 1024;
/// Longest `group.instance.id` accepted, and longest client id kept (a
/// longer one is cut), in bytes: Kafka's own limit for instance ids is 249.
pub const MEMBER_NAME_BYTES_MAX: usize = 255;
/// Longest rebalance timeout applied, in milliseconds; longer requests are
/// clamped. It bounds how long one dead member can hold up a rebalance of
/// its group. 5 minutes is the Java client's default `max.poll.interval.ms`.
pub const REBALANCE_TIMEOUT_MS_MAX: u32 = 300_000;

const _: () = assert!(PROTOCOL_NAME_BYTES_MAX <= MEMBER_METADATA_BYTES_MAX);
const _: () = assert!(MEMBER_NAME_BYTES_MAX >= 249);
const _: () = assert!(REBALANCE_TIMEOUT_MS_MAX >= 1000);

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClassicState {
    /// No members (committed offsets may still exist).
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Generation formed; waiting for the leader's assignments.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group does not exist.
    Dead,
}

impl ClassicState {
    /// The state's name as Kafka spells it in DescribeGroups and ListGroups.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request in plain terms.
#[derive(Debug, Clone)]
pub struct ClassicJoin {
    /// The group.
    pub group: String,
    /// The member id of an earlier join; empty for a new member.
    pub member_id: String,
    /// `group.instance.id` (kept and shown; handled as a dynamic member).
    pub group_instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Requested session timeout, in milliseconds.
    pub session_timeout_ms: u32,
    /// Requested rebalance timeout, in milliseconds (clamped to
    /// [`REBALANCE_TIMEOUT_MS_MAX`]).
    pub rebalance_timeout_ms: u32,
    /// The protocol type (`consumer` for consumers).
    pub protocol_type: String,
    /// The protocols (assignors) the member supports, most preferred first,
    /// each with its metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// A new member first gets MEMBER_ID_REQUIRED with its id (JoinGroup v4+).
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Its `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A completed join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// The new generation.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: String,
    /// The protocol chosen for this generation.
    pub protocol_name: String,
    /// The leader's member id.
    pub leader: String,
    /// The answered member's id.
    pub member_id: String,
    /// Every member with its metadata for the leader; empty for followers.
    pub members: Vec<JoinedMember>,
}

/// A SyncGroup request in plain terms.
#[derive(Debug, Clone)]
pub struct ClassicSync {
    /// The group.
    pub group: String,
    /// The member.
    pub member_id: String,
    /// The generation the member joined.
    pub generation: i32,
    /// The protocol type, if the request carries it (v5+).
    pub protocol_type: Option<String>,
    /// The protocol name, if the request carries it (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignments per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A completed sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The group's protocol type.
    pub protocol_type: String,
    /// The generation's protocol.
    pub protocol_name: String,
    /// This member's assignment.
    pub assignment: Bytes,
}

/// One member in a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Its `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub host: String,
    /// Metadata for the group's protocol (empty while none is chosen).
    pub metadata: Bytes,
    /// The assignment from the last sync (empty until the leader's sync).
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicDescription {
    /// State.
    pub state: ClassicState,
    /// Which protocol family the group's members speak.
    pub kind: GroupKind,
    /// Protocol type (empty for a group with no classic members).
    pub protocol_type: String,
    /// The protocol of the current generation (empty if none).
    pub protocol_name: String,
    /// Members, sorted by id.
    pub members: Vec<ClassicMemberDescription>,
}

/// Where a long-polling join or sync gets its answer.
#[derive(Debug)]
pub struct Waiting<T>(oneshot::Receiver<Result<T, GroupError>>);

impl<T> Waiting<T> {
    pub(crate) fn ready(result: Result<T, GroupError>) -> Self {
        let (tx, rx) = oneshot::channel();
        // The receiver is alive right here, so the send cannot fail.
        let _ = tx.send(result);
        Self(rx)
    }

    /// Waits for the answer. The coordinator answers every waiter; if it
    /// stops first (broker shutdown) the answer is [`GroupError::Closed`].
    pub async fn wait(self) -> Result<T, GroupError> {
        self.0.await.unwrap_or(Err(GroupError::Closed))
    }

    /// The answer if it is there already (tests check what still waits).
    #[cfg(test)]
    pub(crate) fn try_now(&mut self) -> Option<Result<T, GroupError>> {
        self.0.try_recv().ok()
    }
}

type JoinSender = oneshot::Sender<Result<JoinResponse, GroupError>>;
type SyncSender = oneshot::Sender<Result<SyncResponse, GroupError>>;

#[derive(Debug)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    /// Order of joining: the first-joined member becomes leader when the
    /// group needs a new one.
    joined_seq: u64,
    awaiting_join: Option<JoinSender>,
    awaiting_sync: Option<SyncSender>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }
}

/// Cuts `s` to at most `bytes_max` bytes, at a character boundary.
fn truncate_at_char(s: &mut String, bytes_max: usize) {
    if s.len() > bytes_max {
        let mut end = bytes_max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Limits a group applies to its members (from the broker's
/// [`super::GroupLimits`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassicLimits {
    pub group_members_max: usize,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
}

/// One classic group. See the module docs.
#[derive(Debug)]
pub(crate) struct ClassicGroup {
    name: String,
    state: ClassicState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline by
    /// which they must join.
    pending: BTreeMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    join_seq: u64,
}

/// Member ids removed by an expiry sweep.
pub(crate) type Removed = Vec<String>;

impl ClassicGroup {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline: None,
            join_seq: 0,
        }
    }

    pub(crate) fn state(&self) -> ClassicState {
        self.state
    }

    pub(crate) fn generation(&self) -> i32 {
        self.generation
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Members plus member ids handed out and not yet used.
    pub(crate) fn occupied(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    pub(crate) fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// Whether the group holds nothing worth keeping in memory.
    pub(crate) fn is_unused(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    pub(crate) fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    fn unknown_member(&self, member_id: &str) -> GroupError {
        GroupError::UnknownMember {
            group: self.name.clone(),
            member_id: member_id.to_owned(),
        }
    }

    fn illegal_generation(&self, generation: i32) -> GroupError {
        GroupError::IllegalGeneration {
            group: self.name.clone(),
            generation,
            current: self.generation,
        }
    }

    fn rebalance_in_progress(&self) -> GroupError {
        GroupError::RebalanceInProgress {
            group: self.name.clone(),
        }
    }

    fn inconsistent(&self, reason: String) -> GroupError {
        GroupError::InconsistentProtocol {
            group: self.name.clone(),
            reason,
        }
    }

    /// Checks the sizes of a join and clamps its timeouts.
    fn check_join(
        &self,
        req: &ClassicJoin,
        limits: &ClassicLimits,
    ) -> Result<(Duration, Duration), GroupError> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(self.inconsistent(
                "a join needs a protocol type and at least one protocol".to_owned(),
            ));
        }
        if req.protocols.len() > PROTOCOLS_PER_MEMBER_MAX {
            return Err(GroupError::Invalid(format!(
                "join of group {:?} offers {} protocols, at most {PROTOCOLS_PER_MEMBER_MAX} are accepted",
                self.name,
                req.protocols.len()
            )));
        }
        let long_name = std::iter::once(&req.protocol_type)
            .chain(req.protocols.iter().map(|(n, _)| n))
            .find(|n| n.len() > PROTOCOL_NAME_BYTES_MAX);
        if let Some(name) = long_name {
            return Err(GroupError::Invalid(format!(
                "protocol name of {} bytes in a join of group {:?} (at most {PROTOCOL_NAME_BYTES_MAX})",
                name.len(),
                self.name
            )));
        }
        if let Some(id) = req
            .group_instance_id
            .as_ref()
            .filter(|id| id.len() > MEMBER_NAME_BYTES_MAX)
        {
            return Err(GroupError::Invalid(format!(
                "group.instance.id of {} bytes in a join of group {:?} (at most {MEMBER_NAME_BYTES_MAX})",
                id.len(),
                self.name
            )));
        }
        let metadata_bytes: usize = req.protocols.iter().map(|(_, m)| m.len()).sum();
        if metadata_bytes > MEMBER_METADATA_BYTES_MAX {
            return Err(GroupError::Invalid(format!(
                "join of group {:?} carries {metadata_bytes} bytes of protocol metadata, at most {MEMBER_METADATA_BYTES_MAX}",
                self.name
            )));
        }
        let ms = req.session_timeout_ms;
        if !(limits.session_timeout_ms_min..=limits.session_timeout_ms_max).contains(&ms) {
            return Err(GroupError::InvalidSessionTimeout {
                requested_ms: ms,
                min_ms: limits.session_timeout_ms_min,
                max_ms: limits.session_timeout_ms_max,
            });
        }
        let rebalance_ms = req.rebalance_timeout_ms.min(REBALANCE_TIMEOUT_MS_MAX);
        Ok((
            Duration::from_millis(u64::from(ms)),
            Duration::from_millis(u64::from(rebalance_ms)),
        ))
    }

    /// Whether a member offering `protocols` of `protocol_type` fits the
    /// other members: same type, and at least one protocol all support.
    fn fits(&self, member_id: &str, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        let mut others = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .map(|(_, m)| m)
            .peekable();
        let Some(first) = others.peek() else {
            return true;
        };
        if first.protocol_type != protocol_type {
            return false;
        }
        let others: Vec<&Member> = others.collect();
        protocols
            .iter()
            .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// Handles a JoinGroup; `new_member_id` makes an id for a new member.
    pub(crate) fn join(
        &mut self,
        req: ClassicJoin,
        limits: &ClassicLimits,
        new_member_id: impl FnOnce(&str) -> String,
        now: Instant,
    ) -> Waiting<JoinResponse> {
        match self.try_join(req, limits, new_member_id, now) {
            Ok(waiting) => waiting,
            Err(e) => Waiting::ready(Err(e)),
        }
    }

    fn try_join(
        &mut self,
        mut req: ClassicJoin,
        limits: &ClassicLimits,
        new_member_id: impl FnOnce(&str) -> String,
        now: Instant,
    ) -> Result<Waiting<JoinResponse>, GroupError> {
        let (session_timeout, rebalance_timeout) = self.check_join(&req, limits)?;
        truncate_at_char(&mut req.client_id, MEMBER_NAME_BYTES_MAX);
        if !self.fits(&req.member_id, &req.protocol_type, &req.protocols) {
            let group_type = self
                .members
                .values()
                .next()
                .map(|m| m.protocol_type.clone());
            return Err(self.inconsistent(format!(
                "member offers protocol type {:?} with protocols {:?}, but the group's members use type {:?} and none of those protocols is supported by all",
                req.protocol_type,
                req.protocols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                group_type.unwrap_or_default()
            )));
        }
        let member_id = if req.member_id.is_empty() {
            if self.occupied() >= limits.group_members_max {
                return Err(GroupError::MemberLimitReached {
                    group: self.name.clone(),
                    max: limits.group_members_max,
                });
            }
            let id = new_member_id(&req.client_id);
            if req.require_known_member_id {
                self.pending.insert(id.clone(), now + session_timeout);
                return Err(GroupError::MemberIdRequired {
                    group: self.name.clone(),
                    member_id: id,
                });
            }
            id
        } else if self.pending.remove(&req.member_id).is_some() {
            req.member_id.clone()
        } else if self.members.contains_key(&req.member_id) {
            return Ok(self.rejoin(req, session_timeout, rebalance_timeout, now));
        } else {
            return Err(self.unknown_member(&req.member_id));
        };

        let (tx, rx) = oneshot::channel();
        self.join_seq += 1;
        tracing::info!(group = %self.name, member = %member_id, host = %req.host, "Kafka member joins");
        self.members.insert(
            member_id,
            Member {
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                host: req.host,
                session_timeout,
                rebalance_timeout,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_seen: now,
                joined_seq: self.join_seq,
                awaiting_join: Some(tx),
                awaiting_sync: None,
            },
        );
        if self.state != ClassicState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now);
        Ok(Waiting(rx))
    }

    /// A join from a current member.
    fn rejoin(
        &mut self,
        req: ClassicJoin,
        session_timeout: Duration,
        rebalance_timeout: Duration,
        now: Instant,
    ) -> Waiting<JoinResponse> {
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let generation = self.generation;
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let protocol_name = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let state = self.state;
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return Waiting::ready(Err(self.unknown_member(&req.member_id)));
        };
        member.last_seen = now;
        member.client_id = req.client_id;
        member.host = req.host;
        member.session_timeout = session_timeout;
        member.rebalance_timeout = rebalance_timeout;
        let same = member.protocol_type == req.protocol_type && member.protocols == req.protocols;
        // Kafka's rule: a follower with unchanged metadata that rejoins a
        // formed generation (it lost the answer) gets that generation back;
        // the leader, or any member whose metadata changed, starts a
        // rebalance (the leader so it can react to topic changes).
        let current = match state {
            ClassicState::CompletingRebalance => same,
            ClassicState::Stable => same && !is_leader,
            _ => false,
        };
        if current {
            let members = if is_leader {
                self.joined_members(&protocol_name)
            } else {
                Vec::new()
            };
            return Waiting::ready(Ok(JoinResponse {
                generation,
                protocol_type,
                protocol_name,
                leader,
                member_id: req.member_id,
                members,
            }));
        }
        member.protocol_type = req.protocol_type;
        member.protocols = req.protocols;
        let (tx, rx) = oneshot::channel();
        if let Some(old) = member.awaiting_join.replace(tx) {
            // A retried join replaces the earlier one of the same member.
            let _ = old.send(Err(GroupError::RebalanceInProgress {
                group: self.name.clone(),
            }));
        }
        if self.state != ClassicState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now);
        Waiting(rx)
    }

    fn joined_members(&self, protocol: &str) -> Vec<JoinedMember> {
        self.members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    /// Starts a rebalance: waiting syncs learn it, the join deadline is set.
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == ClassicState::CompletingRebalance {
            let err = self.rebalance_in_progress();
            for m in self.members.values_mut() {
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.send(Err(err.clone()));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = ClassicState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
        tracing::info!(group = %self.name, generation = self.generation, "Kafka group rebalancing");
    }

    fn try_complete_join(&mut self, now: Instant) {
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some());
        if self.state == ClassicState::PreparingRebalance && all_joined && self.pending.is_empty() {
            self.complete_join(now);
        }
    }

    /// Forms the next generation from the members that rejoined.
    fn complete_join(&mut self, now: Instant) {
        let late: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &late {
            tracing::info!(group = %self.name, member = %id, "Kafka member removed: it did not rejoin within the rebalance timeout");
            self.members.remove(id);
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalance_deadline = None;
        if self
            .leader
            .as_ref()
            .is_some_and(|l| !self.members.contains_key(l))
        {
            self.leader = None;
        }
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol_name = None;
            self.leader = None;
            return;
        }
        let protocol = self.select_protocol();
        let leader = match &self.leader {
            Some(l) => l.clone(),
            None => self
                .members
                .iter()
                .min_by_key(|(_, m)| m.joined_seq)
                .map(|(id, _)| id.clone())
                .unwrap_or_default(),
        };
        let protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone())
            .unwrap_or_default();
        self.protocol_type = Some(protocol_type.clone());
        self.protocol_name = Some(protocol.clone());
        self.leader = Some(leader.clone());
        self.state = ClassicState::CompletingRebalance;
        let all = self.joined_members(&protocol);
        for (id, m) in &mut self.members {
            m.last_seen = now;
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_join.take() {
                let members = if *id == leader {
                    all.clone()
                } else {
                    Vec::new()
                };
                let _ = tx.send(Ok(JoinResponse {
                    generation: self.generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members,
                }));
            }
        }
        tracing::info!(
            group = %self.name,
            generation = self.generation,
            protocol = %protocol,
            leader = %leader,
            members = self.members.len(),
            "Kafka group generation formed"
        );
    }

    /// Kafka's choice: among the protocols every member supports, the one
    /// most members list first among those; ties go to the earlier one in
    /// the first-joined member's list.
    fn select_protocol(&self) -> String {
        let Some(first) = self.members.values().min_by_key(|m| m.joined_seq) else {
            return String::new();
        };
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            let choice = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| c == n));
            if let Some(i) = choice {
                votes[i] += 1;
            }
        }
        let best = (0..candidates.len()).rev().max_by_key(|i| votes[*i]);
        // Every join checks that the group keeps a protocol in common, so
        // `candidates` is never empty; the first member's first protocol is
        // the answer if it somehow were.
        best.map(|i| candidates[i].to_owned())
            .or_else(|| first.protocols.first().map(|(n, _)| n.clone()))
            .unwrap_or_default()
    }

    /// Handles a SyncGroup.
    pub(crate) fn sync(&mut self, req: ClassicSync, now: Instant) -> Waiting<SyncResponse> {
        match self.try_sync(req, now) {
            Ok(w) => w,
            Err(e) => Waiting::ready(Err(e)),
        }
    }

    fn try_sync(
        &mut self,
        req: ClassicSync,
        now: Instant,
    ) -> Result<Waiting<SyncResponse>, GroupError> {
        if !self.members.contains_key(&req.member_id) {
            return Err(self.unknown_member(&req.member_id));
        }
        if req.generation != self.generation {
            return Err(self.illegal_generation(req.generation));
        }
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let protocol_name = self.protocol_name.clone().unwrap_or_default();
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| *t != protocol_type)
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| *n != protocol_name)
        {
            return Err(self.inconsistent(format!(
                "sync names protocol {:?}/{:?}, the generation uses {protocol_type:?}/{protocol_name:?}",
                req.protocol_type.unwrap_or_default(),
                req.protocol_name.unwrap_or_default()
            )));
        }
        match self.state {
            ClassicState::Empty | ClassicState::Dead => Err(self.unknown_member(&req.member_id)),
            ClassicState::PreparingRebalance => Err(self.rebalance_in_progress()),
            ClassicState::Stable => {
                self.touch(&req.member_id, now);
                let assignment = self
                    .members
                    .get(&req.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Ok(Waiting::ready(Ok(SyncResponse {
                    protocol_type,
                    protocol_name,
                    assignment,
                })))
            }
            ClassicState::CompletingRebalance => {
                let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
                if is_leader {
                    if let Some((id, a)) = req
                        .assignments
                        .iter()
                        .find(|(_, a)| a.len() > ASSIGNMENT_BYTES_MAX)
                    {
                        return Err(GroupError::Invalid(format!(
                            "assignment of {} bytes for member {id:?} of group {:?} (at most {ASSIGNMENT_BYTES_MAX})",
                            a.len(),
                            self.name
                        )));
                    }
                }
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(&req.member_id) {
                    member.last_seen = now;
                    if let Some(old) = member.awaiting_sync.replace(tx) {
                        let _ = old.send(Err(GroupError::RebalanceInProgress {
                            group: self.name.clone(),
                        }));
                    }
                }
                if is_leader {
                    self.complete_sync(req.assignments);
                }
                Ok(Waiting(rx))
            }
        }
    }

    /// Stores the leader's assignments and answers every waiting sync.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>) {
        let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let protocol_name = self.protocol_name.clone().unwrap_or_default();
        for (id, m) in &mut self.members {
            m.assignment = assignments.remove(id).unwrap_or_default();
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(Ok(SyncResponse {
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: m.assignment.clone(),
                }));
            }
        }
        self.state = ClassicState::Stable;
        tracing::info!(group = %self.name, generation = self.generation, "Kafka group stable");
    }

    /// Handles a Heartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Empty {
            return Err(self.unknown_member(member_id));
        }
        if !self.members.contains_key(member_id) {
            return Err(self.unknown_member(member_id));
        }
        if generation != self.generation {
            return Err(self.illegal_generation(generation));
        }
        self.touch(member_id, now);
        match self.state {
            ClassicState::PreparingRebalance => Err(self.rebalance_in_progress()),
            _ => Ok(()),
        }
    }

    /// Removes members (LeaveGroup); answers per member id.
    pub(crate) fn leave(
        &mut self,
        member_ids: &[String],
        now: Instant,
    ) -> Vec<(String, Result<(), GroupError>)> {
        let mut out = Vec::with_capacity(member_ids.len());
        let mut removed = Vec::new();
        for id in member_ids {
            if self.pending.remove(id).is_some() {
                out.push((id.clone(), Ok(())));
            } else if self.members.contains_key(id) {
                removed.push(id.clone());
                out.push((id.clone(), Ok(())));
            } else {
                out.push((id.clone(), Err(self.unknown_member(id))));
            }
        }
        for id in &removed {
            tracing::info!(group = %self.name, member = %id, "Kafka member left");
        }
        self.remove_members(&removed, now);
        out
    }

    /// Removes members and starts (or finishes) the rebalance that follows.
    fn remove_members(&mut self, ids: &[String], now: Instant) {
        let mut any = false;
        for id in ids {
            if let Some(m) = self.members.remove(id) {
                any = true;
                let err = self.unknown_member(id);
                if let Some(tx) = m.awaiting_join {
                    let _ = tx.send(Err(err.clone()));
                }
                if let Some(tx) = m.awaiting_sync {
                    let _ = tx.send(Err(err));
                }
            }
        }
        if !any {
            self.try_complete_join(now);
            return;
        }
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => self.prepare_rebalance(now),
            _ => {}
        }
        self.try_complete_join(now);
    }

    /// Drops members whose session ran out and member ids not used in time,
    /// and forms the generation if the rebalance timeout passed. Returns the
    /// removed members.
    pub(crate) fn expire(&mut self, now: Instant) -> Removed {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| now < *deadline);
        let pending_dropped = self.pending.len() != before;
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.awaiting_join.is_none()
                    && m.awaiting_sync.is_none()
                    && now >= m.last_seen + m.session_timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.name, member = %id, "Kafka member expired (session timeout)");
        }
        if !expired.is_empty() || pending_dropped {
            self.remove_members(&expired, now);
        }
        if self.state == ClassicState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| now >= d)
        {
            self.complete_join(now);
        }
        expired
    }

    /// Records a sign of life from a member (a valid offset commit).
    pub(crate) fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
    }

    /// The group for DescribeGroups.
    pub(crate) fn describe(&self) -> ClassicDescription {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        ClassicDescription {
            state: self.state,
            kind: GroupKind::Kafka,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| ClassicMemberDescription {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Topics the members subscribe to (decoded from `consumer` metadata).
    pub(crate) fn subscribed_topics(&self) -> BTreeSet<String> {
        let mut topics = BTreeSet::new();
        if self.protocol_type.as_deref() != Some(consumer_protocol::PROTOCOL_TYPE) {
            return topics;
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        for m in self.members.values() {
            if let Some(t) = consumer_protocol::subscription_topics(&m.metadata_for(&protocol)) {
                topics.extend(t);
            }
        }
        topics
    }
}
