//! The coordinator's calls for Kafka's classic groups: JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, DescribeGroups and
//! ListGroups, over the [`ClassicGroup`] state machine.
//!
//! Each call takes the registry lock once, so the check that a group has no
//! skiff members and the change to the Kafka group are one step; join and
//! sync hand back a [`Waiting`] answer, resolved later under the same lock
//! by another member's call or by the expiry sweep, so no caller blocks a
//! thread while a rebalance forms. A commit is checked and submitted to the
//! offset store under the lock, as skiff commits are.
//!
//! A classic group's entry is dropped once it has neither members nor
//! member ids outstanding; its committed offsets stay in the offset store.

use std::collections::{BTreeMap, BTreeSet};

use skiff_protocol::messages::{GroupListing, GroupState, MemberDescription, TopicPartition};
use tokio::time::Instant;

use super::{GroupCoordinator, GroupDescription, Registry};
use crate::groups::classic::{
    ClassicDescription, ClassicGroup, ClassicJoin, ClassicLimits, ClassicMemberDescription,
    ClassicState, ClassicSync, JoinResponse, SyncResponse, Waiting, consumer_protocol,
};
use crate::groups::offsets::OffsetUpdate;
use crate::groups::{GroupError, GroupKind, validate_group_name};

/// A group as Kafka's ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaGroupListing {
    /// Group name.
    pub group: String,
    /// Protocol type of its Kafka members (empty for skiff groups and
    /// groups with only committed offsets).
    pub protocol_type: String,
    /// Its state in Kafka's terms.
    pub state: ClassicState,
}

fn native_state(state: ClassicState) -> GroupState {
    match state {
        ClassicState::Stable => GroupState::Stable,
        ClassicState::PreparingRebalance | ClassicState::CompletingRebalance => {
            GroupState::Rebalancing
        }
        _ => GroupState::Empty,
    }
}

fn kafka_state(state: GroupState) -> ClassicState {
    match state {
        GroupState::Stable => ClassicState::Stable,
        GroupState::Rebalancing => ClassicState::PreparingRebalance,
        _ => ClassicState::Empty,
    }
}

fn generation_u32(generation: i32) -> u32 {
    u32::try_from(generation).unwrap_or(0)
}

/// A Kafka group in skiff's listing.
pub(super) fn listing(name: &str, g: &ClassicGroup) -> GroupListing {
    GroupListing {
        group: name.to_owned(),
        state: native_state(g.state()),
        members: g.member_count() as u32,
        generation: generation_u32(g.generation()),
    }
}

/// A Kafka group as `skiff group describe` shows it: a `consumer` group's
/// subscriptions and assignments are decoded into topics and partitions.
pub(super) fn native_description(
    g: &ClassicGroup,
    committed: BTreeMap<TopicPartition, u64>,
) -> GroupDescription {
    let d = g.describe();
    let consumer = d.protocol_type == consumer_protocol::PROTOCOL_TYPE;
    let mut owners = BTreeMap::new();
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let (topics, owned) = if consumer {
                (
                    consumer_protocol::subscription_topics(&m.metadata).unwrap_or_default(),
                    consumer_protocol::assignment_partitions(&m.assignment).unwrap_or_default(),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            for tp in &owned {
                owners.insert(tp.clone(), m.member_id.clone());
            }
            MemberDescription {
                member_id: m.member_id,
                client_id: m.client_id,
                host: m.host,
                topics,
                owned,
                revoking: Vec::new(),
            }
        })
        .collect();
    let topics: BTreeSet<String> = g.subscribed_topics();
    GroupDescription {
        state: native_state(g.state()),
        generation: generation_u32(g.generation()),
        members,
        owners,
        topics,
        committed,
        waiting: BTreeMap::new(),
    }
}

/// Runs the expiry of every Kafka group and drops the unused ones; returns
/// how many members were removed.
pub(super) fn expire(groups: &mut Registry, now: Instant) -> usize {
    let removed = groups
        .classic
        .values_mut()
        .map(|g| g.expire(now).len())
        .sum();
    groups.classic.retain(|_, g| !g.is_unused());
    removed
}

impl GroupCoordinator {
    fn classic_limits(&self) -> ClassicLimits {
        ClassicLimits {
            group_members_max: self.limits.group_members_max,
            session_timeout_ms_min: self.limits.session_timeout_ms_min,
            session_timeout_ms_max: self.limits.session_timeout_ms_max,
        }
    }

    /// Kafka's JoinGroup: answers at once (an error, MEMBER_ID_REQUIRED, or
    /// the current generation for a member that lost its answer) or when
    /// the next generation forms.
    pub fn kafka_join(&self, req: ClassicJoin, now: Instant) -> Waiting<JoinResponse> {
        if let Err(e) = validate_group_name(&req.group) {
            return Waiting::ready(Err(e));
        }
        let mut groups = self.lock();
        if let Err(e) = self
            .check_new_group(&groups, &req.group)
            .and_then(|()| groups.claim(&req.group, GroupKind::Kafka))
        {
            return Waiting::ready(Err(e));
        }
        let name = req.group.clone();
        let limits = self.classic_limits();
        let group = groups
            .classic
            .entry(name.clone())
            .or_insert_with(|| ClassicGroup::new(&name));
        let waiting = group.join(req, &limits, |client| self.new_member_id(client), now);
        if group.is_unused() {
            groups.classic.remove(&name);
        }
        waiting
    }

    /// Kafka's SyncGroup: the leader's call stores the assignments; every
    /// member's call resolves with its own assignment once they are there.
    pub fn kafka_sync(&self, req: ClassicSync, now: Instant) -> Waiting<SyncResponse> {
        let mut groups = self.lock();
        match groups.classic.get_mut(&req.group) {
            Some(g) => g.sync(req, now),
            None => Waiting::ready(Err(GroupError::UnknownMember {
                group: req.group,
                member_id: req.member_id,
            })),
        }
    }

    /// Kafka's Heartbeat.
    pub fn kafka_heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        let mut groups = self.lock();
        match groups.classic.get_mut(group) {
            Some(g) => g.heartbeat(member_id, generation, now),
            None => Err(GroupError::UnknownMember {
                group: group.to_owned(),
                member_id: member_id.to_owned(),
            }),
        }
    }

    /// Kafka's LeaveGroup: removes each listed member; answers per member
    /// (an unknown group makes every member unknown, as in Kafka).
    pub fn kafka_leave(
        &self,
        group: &str,
        member_ids: &[String],
        now: Instant,
    ) -> Vec<(String, Result<(), GroupError>)> {
        let mut groups = self.lock();
        let Some(g) = groups.classic.get_mut(group) else {
            return member_ids
                .iter()
                .map(|id| {
                    let e = GroupError::UnknownMember {
                        group: group.to_owned(),
                        member_id: id.clone(),
                    };
                    (id.clone(), Err(e))
                })
                .collect();
        };
        let out = g.leave(member_ids, now);
        if g.is_unused() {
            groups.classic.remove(group);
        }
        out
    }

    /// Kafka's OffsetCommit, with Kafka's checks: generation < 0 is a
    /// simple commit from outside the group, allowed while it has no
    /// members; otherwise the member must be current, at the current
    /// generation, and the group not waiting for its assignments. Resolves
    /// when the commit is durable.
    pub async fn kafka_commit(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<(TopicPartition, u64)>,
        now: Instant,
    ) -> Result<(), GroupError> {
        validate_group_name(group)?;
        let pending = {
            let mut groups = self.lock();
            if let Some(e) = groups.other_kind(group, GroupKind::Kafka) {
                return Err(e);
            }
            self.check_new_group(&groups, group)?;
            match groups.classic.get_mut(group) {
                None if generation >= 0 => {
                    return Err(GroupError::IllegalGeneration {
                        group: group.to_owned(),
                        generation,
                        current: -1,
                    });
                }
                None => {}
                Some(g) => {
                    let simple = generation < 0 && g.state() == ClassicState::Empty;
                    if !simple {
                        if g.state() == ClassicState::CompletingRebalance {
                            return Err(GroupError::RebalanceInProgress {
                                group: group.to_owned(),
                            });
                        }
                        if !g.has_member(member_id) {
                            return Err(GroupError::UnknownMember {
                                group: group.to_owned(),
                                member_id: member_id.to_owned(),
                            });
                        }
                        if generation != g.generation() {
                            return Err(GroupError::IllegalGeneration {
                                group: group.to_owned(),
                                generation,
                                current: g.generation(),
                            });
                        }
                        g.touch(member_id, now);
                    }
                }
            }
            if offsets.is_empty() {
                return Ok(());
            }
            // Submitted under the lock, like skiff commits.
            self.offsets.submit(OffsetUpdate::Commit {
                group: group.to_owned(),
                offsets,
            })
        };
        Ok(pending.wait().await?)
    }

    /// Kafka's DescribeGroups for one group: a skiff group shows its
    /// members without protocol metadata; an unknown group is `Dead`.
    pub fn kafka_describe(&self, group: &str) -> ClassicDescription {
        let groups = self.lock();
        if let Some(g) = groups.classic.get(group) {
            return g.describe();
        }
        let dead = ClassicDescription {
            state: ClassicState::Dead,
            kind: GroupKind::Kafka,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        };
        match groups.native.get(group) {
            Some(g) => ClassicDescription {
                state: kafka_state(g.state()),
                kind: GroupKind::Skiff,
                members: g
                    .members
                    .iter()
                    .map(|(id, m)| ClassicMemberDescription {
                        member_id: id.clone(),
                        group_instance_id: None,
                        client_id: m.client_id.clone(),
                        host: m.host.clone(),
                        metadata: bytes::Bytes::new(),
                        assignment: bytes::Bytes::new(),
                    })
                    .collect(),
                ..dead
            },
            None if self.offsets.has_group(group) => ClassicDescription {
                state: ClassicState::Empty,
                ..dead
            },
            None => dead,
        }
    }

    /// Every group for Kafka's ListGroups, sorted by name.
    pub fn kafka_list(&self) -> Vec<KafkaGroupListing> {
        let groups = self.lock();
        let mut out: BTreeMap<String, KafkaGroupListing> = BTreeMap::new();
        for (name, g) in &groups.native {
            out.insert(
                name.clone(),
                KafkaGroupListing {
                    group: name.clone(),
                    protocol_type: String::new(),
                    state: kafka_state(g.state()),
                },
            );
        }
        for (name, g) in &groups.classic {
            out.insert(
                name.clone(),
                KafkaGroupListing {
                    group: name.clone(),
                    protocol_type: g.protocol_type().unwrap_or_default().to_owned(),
                    state: g.state(),
                },
            );
        }
        for name in self.offsets.groups() {
            out.entry(name.clone()).or_insert(KafkaGroupListing {
                group: name,
                protocol_type: String::new(),
                state: ClassicState::Empty,
            });
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::groups::JoinParams;
    use crate::groups::classic::consumer_protocol::tests::{assignment, subscription};
    use crate::groups::classic::{
        ASSIGNMENT_BYTES_MAX, MEMBER_METADATA_BYTES_MAX, MEMBER_NAME_BYTES_MAX,
    };
    use crate::groups::coordinator::tests::{LIMITS, coordinator};

    const SESSION_MS: u32 = 1000;
    const REBALANCE_MS: u32 = 2000;

    fn req(group: &str, member_id: &str, protocols: &[&str]) -> ClassicJoin {
        ClassicJoin {
            group: group.into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "app".into(),
            host: "127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(subscription(&["t"]))))
                .collect(),
            require_known_member_id: true,
        }
    }

    /// A new member's two joins (MEMBER_ID_REQUIRED, then with the id); the
    /// second is returned still waiting.
    fn join_new(
        c: &GroupCoordinator,
        group: &str,
        now: Instant,
    ) -> (String, Waiting<JoinResponse>) {
        let mut first = c.kafka_join(req(group, "", &["range"]), now);
        let id = match first.try_now() {
            Some(Err(GroupError::MemberIdRequired { member_id, .. })) => member_id,
            other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
        };
        let w = c.kafka_join(req(group, &id, &["range"]), now);
        (id, w)
    }

    fn ready<T: std::fmt::Debug>(w: &mut Waiting<T>) -> Result<T, GroupError> {
        w.try_now().expect("answered")
    }

    fn sync(
        c: &GroupCoordinator,
        group: &str,
        id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Waiting<SyncResponse> {
        c.kafka_sync(
            ClassicSync {
                group: group.into(),
                member_id: id.into(),
                generation,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments,
            },
            now,
        )
    }

    /// Two members: a alone (generation 1), then b joins; returns their ids
    /// once generation 2 is stable with partitions 0,1 for a and 2,3 for b.
    fn stable_pair(c: &GroupCoordinator, now: Instant) -> (String, String) {
        let (a, mut wa) = join_new(c, "g", now);
        let ja = ready(&mut wa).unwrap();
        assert_eq!((ja.generation, ja.leader.as_str()), (1, a.as_str()));
        let mut sa = sync(
            c,
            "g",
            &a,
            1,
            vec![(a.clone(), assignment("t", &[0, 1, 2, 3]).into())],
            now,
        );
        assert!(ready(&mut sa).is_ok());

        let (b, mut wb) = join_new(c, "g", now);
        assert!(wb.try_now().is_none(), "b waits for a to rejoin");
        assert!(matches!(
            c.kafka_heartbeat("g", &a, 1, now),
            Err(GroupError::RebalanceInProgress { .. })
        ));
        let mut wa = c.kafka_join(req("g", &a, &["range"]), now);
        let ja = ready(&mut wa).unwrap();
        let jb = ready(&mut wb).unwrap();
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a, "the leader stays");
        assert_eq!(ja.members.len(), 2, "the leader sees every member");
        assert!(jb.members.is_empty(), "followers see none");

        let mut sb = sync(c, "g", &b, 2, vec![], now);
        assert!(sb.try_now().is_none(), "a follower waits for the leader");
        let mut sa = sync(
            c,
            "g",
            &a,
            2,
            vec![
                (a.clone(), assignment("t", &[0, 1]).into()),
                (b.clone(), assignment("t", &[2, 3]).into()),
            ],
            now,
        );
        assert_eq!(
            ready(&mut sa).unwrap().assignment,
            Bytes::from(assignment("t", &[0, 1]))
        );
        assert_eq!(
            ready(&mut sb).unwrap().assignment,
            Bytes::from(assignment("t", &[2, 3]))
        );
        (a, b)
    }

    #[test]
    fn a_rebalance_hands_each_member_its_own_assignment() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        let (a, b) = stable_pair(&c, now);
        c.kafka_heartbeat("g", &a, 2, now).unwrap();
        c.kafka_heartbeat("g", &b, 2, now).unwrap();

        let d = c.kafka_describe("g");
        assert_eq!(d.state, ClassicState::Stable);
        assert_eq!(
            (d.protocol_type.as_str(), d.protocol_name.as_str()),
            ("consumer", "range")
        );
        assert_eq!(d.members.len(), 2);
        // skiff's describe decodes the consumer protocol.
        let native = c.describe("g").unwrap();
        assert_eq!(native.state, GroupState::Stable);
        assert_eq!(native.generation, 2);
        let owned_by_b: Vec<_> = native
            .members
            .iter()
            .find(|m| m.member_id == b)
            .unwrap()
            .owned
            .clone();
        assert_eq!(
            owned_by_b,
            vec![TopicPartition::new("t", 2), TopicPartition::new("t", 3)]
        );
        assert_eq!(native.topics, BTreeSet::from(["t".to_owned()]));
        assert_eq!(c.list()[0].members, 2);
        assert_eq!(c.kafka_list()[0].protocol_type, "consumer");
    }

    #[test]
    fn errors_follow_kafka_rules() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        assert!(matches!(
            c.kafka_heartbeat("nope", "m", 1, now),
            Err(GroupError::UnknownMember { .. })
        ));
        let (a, _b) = stable_pair(&c, now);
        assert!(matches!(
            c.kafka_heartbeat("g", "ghost", 2, now),
            Err(GroupError::UnknownMember { .. })
        ));
        assert!(matches!(
            c.kafka_heartbeat("g", &a, 1, now),
            Err(GroupError::IllegalGeneration {
                generation: 1,
                current: 2,
                ..
            })
        ));
        assert!(matches!(
            ready(&mut sync(&c, "g", &a, 7, vec![], now)),
            Err(GroupError::IllegalGeneration { .. })
        ));
        // A join with an id the group never gave out.
        assert!(matches!(
            ready(&mut c.kafka_join(req("g", "ghost", &["range"]), now)),
            Err(GroupError::UnknownMember { .. })
        ));
        // A member that does not share a protocol, or another type.
        assert!(matches!(
            ready(&mut c.kafka_join(req("g", "", &["roundrobin"]), now)),
            Err(GroupError::InconsistentProtocol { .. })
        ));
        let mut other_type = req("g", "", &["range"]);
        other_type.protocol_type = "connect".into();
        assert!(matches!(
            ready(&mut c.kafka_join(other_type, now)),
            Err(GroupError::InconsistentProtocol { .. })
        ));
        // The leader rejoins: a rebalance; a sync now is refused.
        let mut wa = c.kafka_join(req("g", &a, &["range"]), now);
        assert!(wa.try_now().is_none());
        assert!(matches!(
            ready(&mut sync(&c, "g", &a, 2, vec![], now)),
            Err(GroupError::RebalanceInProgress { .. })
        ));
    }

    #[test]
    fn rejoins_while_stable_follow_kafka() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        let (a, b) = stable_pair(&c, now);
        // A follower with unchanged metadata (it lost the answer) gets the
        // current generation back, without a rebalance.
        let mut wb = c.kafka_join(req("g", &b, &["range"]), now);
        assert_eq!(ready(&mut wb).unwrap().generation, 2);
        c.kafka_heartbeat("g", &a, 2, now).unwrap();
        // A follower whose metadata changed (cooperative-sticky reports its
        // owned partitions) starts a rebalance.
        let mut changed = req("g", &b, &["range"]);
        changed.protocols[0].1 = Bytes::from(subscription(&["t", "u"]));
        let mut wb = c.kafka_join(changed, now);
        assert!(wb.try_now().is_none());
        assert!(matches!(
            c.kafka_heartbeat("g", &a, 2, now),
            Err(GroupError::RebalanceInProgress { .. })
        ));
        let mut wa = c.kafka_join(req("g", &a, &["range"]), now);
        assert_eq!(ready(&mut wa).unwrap().generation, 3);
        assert_eq!(ready(&mut wb).unwrap().generation, 3);
        assert_eq!(
            c.describe("g").unwrap().topics,
            BTreeSet::from(["t".to_owned(), "u".to_owned()])
        );
    }

    #[test]
    fn the_protocol_is_one_every_member_supports() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        let mut j = req("g", "", &["range", "cooperative-sticky"]);
        j.require_known_member_id = false;
        let mut wa = c.kafka_join(j, now);
        let ja = ready(&mut wa).unwrap();
        assert_eq!(ja.protocol_name, "range");
        let mut j = req("g", "", &["cooperative-sticky"]);
        j.require_known_member_id = false;
        let mut wb = c.kafka_join(j, now);
        let mut wa = c.kafka_join(
            req("g", &ja.member_id, &["range", "cooperative-sticky"]),
            now,
        );
        let ja = ready(&mut wa).unwrap();
        assert_eq!(ja.protocol_name, "cooperative-sticky");
        assert_eq!(ready(&mut wb).unwrap().protocol_name, "cooperative-sticky");
    }

    #[test]
    fn leaving_and_expiry_start_rebalances_and_answer_waiting_syncs() {
        let (_dir, c) = coordinator();
        let t0 = Instant::now();
        let (a, b) = stable_pair(&c, t0);
        // A third member joins; a and b rejoin; b syncs, then leaves before
        // the leader's sync: b's waiting sync... is answered by the leave,
        // and a learns of the rebalance.
        let (x, mut wx) = join_new(&c, "g", t0);
        let mut wa = c.kafka_join(req("g", &a, &["range"]), t0);
        let mut wb = c.kafka_join(req("g", &b, &["range"]), t0);
        assert_eq!(ready(&mut wx).unwrap().generation, 3);
        assert!(ready(&mut wa).is_ok() && ready(&mut wb).is_ok());
        let mut sx = sync(&c, "g", &x, 3, vec![], t0);
        let out = c.kafka_leave("g", &[b.clone(), "ghost".into()], t0);
        assert!(out[0].1.is_ok());
        assert!(matches!(out[1].1, Err(GroupError::UnknownMember { .. })));
        assert!(matches!(
            ready(&mut sx),
            Err(GroupError::RebalanceInProgress { .. })
        ));
        let mut wa = c.kafka_join(req("g", &a, &["range"]), t0);
        let mut wx = c.kafka_join(req("g", &x, &["range"]), t0);
        let ja = ready(&mut wa).unwrap();
        assert_eq!((ja.generation, ja.members.len()), (4, 2));
        assert!(ready(&mut wx).is_ok());

        // x stops heartbeating: after its session timeout the sweep removes
        // it and a is told to rejoin; alone, a forms generation 5.
        let mut sa = sync(&c, "g", &a, 4, vec![], t0);
        let mut sx = sync(&c, "g", &x, 4, vec![], t0);
        assert!(ready(&mut sa).is_ok() && ready(&mut sx).is_ok());
        let later = t0 + Duration::from_millis(u64::from(SESSION_MS) * 3 / 4);
        c.kafka_heartbeat("g", &a, 4, later).unwrap();
        assert_eq!(
            c.expire(t0 + Duration::from_millis(u64::from(SESSION_MS))),
            1
        );
        assert!(matches!(
            c.kafka_heartbeat("g", &x, 4, later),
            Err(GroupError::UnknownMember { .. })
        ));
        assert!(matches!(
            c.kafka_heartbeat("g", &a, 4, later),
            Err(GroupError::RebalanceInProgress { .. })
        ));
        let mut wa = c.kafka_join(req("g", &a, &["range"]), later);
        assert_eq!(ready(&mut wa).unwrap().generation, 5);

        // The last member leaves: the group is gone (no offsets kept).
        assert!(c.kafka_leave("g", &[a], later)[0].1.is_ok());
        assert!(c.list().is_empty());
        assert_eq!(c.kafka_describe("g").state, ClassicState::Dead);
    }

    /// The join long poll under the real sweeper and paused time: a member
    /// that never rejoins holds the rebalance up for the rebalance timeout,
    /// not longer; then it is removed and the others' joins complete.
    #[tokio::test(start_paused = true)]
    async fn the_rebalance_timeout_completes_a_waiting_join() {
        let (_dir, c) = coordinator();
        let c = Arc::new(c);
        let shutdown = CancellationToken::new();
        let sweeper = tokio::spawn({
            let c = Arc::clone(&c);
            let shutdown = shutdown.clone();
            async move { c.run_expiry(shutdown).await }
        });
        let t0 = Instant::now();
        let (a, b) = stable_pair(&c, t0);
        // b keeps heartbeating but never rejoins (a slow poll loop).
        let (_x, wx) = join_new(&c, "g", t0);
        let joined = tokio::spawn(async move { (wx.wait().await, Instant::now()) });
        let mut wa = c.kafka_join(req("g", &a, &["range"]), t0);
        for _ in 0..((REBALANCE_MS + 1000) / 200) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = c.kafka_heartbeat("g", &b, 2, Instant::now());
        }
        let (jx, at) = joined.await.unwrap();
        let jx = jx.unwrap();
        assert_eq!(jx.generation, 3);
        let waited = at - t0;
        let timeout = Duration::from_millis(u64::from(REBALANCE_MS));
        assert!(waited >= timeout, "completed after {waited:?}");
        assert!(waited <= timeout + c.sweep_interval() + Duration::from_millis(200));
        assert_eq!(ready(&mut wa).unwrap().members.len(), 2, "a and x, not b");
        assert!(matches!(
            c.kafka_heartbeat("g", &b, 2, Instant::now()),
            Err(GroupError::UnknownMember { .. })
        ));
        shutdown.cancel();
        sweeper.await.unwrap();
    }

    #[tokio::test]
    async fn commits_follow_kafka_rules() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        let tp = |p| vec![(TopicPartition::new("t", p), 5)];
        // A simple commit from outside any group management.
        c.kafka_commit("solo", "", -1, tp(0), now).await.unwrap();
        assert_eq!(
            c.fetch_offsets("solo", &[]),
            vec![(TopicPartition::new("t", 0), Some(5))]
        );
        assert!(matches!(
            c.kafka_commit("nogroup", "m", 3, tp(0), now).await,
            Err(GroupError::IllegalGeneration { .. })
        ));

        let (a, mut wa) = join_new(&c, "g", now);
        ready(&mut wa).unwrap();
        // CompletingRebalance: the assignment is not there yet.
        assert!(matches!(
            c.kafka_commit("g", &a, 1, tp(0), now).await,
            Err(GroupError::RebalanceInProgress { .. })
        ));
        assert!(ready(&mut sync(&c, "g", &a, 1, vec![], now)).is_ok());
        c.kafka_commit("g", &a, 1, tp(0), now).await.unwrap();
        assert!(matches!(
            c.kafka_commit("g", &a, 0, tp(0), now).await,
            Err(GroupError::IllegalGeneration {
                generation: 0,
                current: 1,
                ..
            })
        ));
        // A simple commit while the group has members is not allowed.
        assert!(matches!(
            c.kafka_commit("g", "", -1, tp(1), now).await,
            Err(GroupError::UnknownMember { .. })
        ));
        assert_eq!(c.describe("g").unwrap().committed.len(), 1);
        // Empty again: simple commits and skiff's reset work.
        c.kafka_leave("g", &[a], now);
        c.kafka_commit("g", "", -1, tp(1), now).await.unwrap();
        c.reset_offsets("g", tp(2)).await.unwrap();
        assert_eq!(c.fetch_offsets("g", &[]).len(), 3);
        assert_eq!(c.kafka_list().iter().filter(|g| g.group == "g").count(), 1);
        c.delete("g").await.unwrap();
        assert!(c.fetch_offsets("g", &[]).is_empty());
    }

    #[tokio::test]
    async fn one_group_name_has_members_of_one_kind() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        let native = |group: &str| JoinParams {
            group: group.into(),
            topics: vec![("t".into(), 4)],
            client_id: "svc".into(),
            host: "h".into(),
            session_timeout_ms: 0,
            member_id: None,
        };
        let s = c.join(native("skiff-g"), now).unwrap();
        let err = ready(&mut c.kafka_join(req("skiff-g", "", &["range"]), now)).unwrap_err();
        assert!(
            matches!(
                err,
                GroupError::OtherKind {
                    kind: GroupKind::Skiff,
                    members: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            c.kafka_commit(
                "skiff-g",
                "",
                -1,
                vec![(TopicPartition::new("t", 0), 1)],
                now
            )
            .await,
            Err(GroupError::OtherKind { .. })
        ));
        assert_eq!(c.kafka_describe("skiff-g").kind, GroupKind::Skiff);

        let (k, mut wk) = join_new(&c, "kafka-g", now);
        ready(&mut wk).unwrap();
        let err = c.join(native("kafka-g"), now).unwrap_err();
        assert!(
            matches!(
                err,
                GroupError::OtherKind {
                    kind: GroupKind::Kafka,
                    members: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("Kafka member"), "{err}");
        assert!(matches!(
            c.commit("kafka-g", "x", 1, vec![]).await,
            Err(GroupError::OtherKind { .. })
        ));
        assert!(matches!(
            c.reset_offsets("kafka-g", vec![(TopicPartition::new("t", 0), 1)])
                .await,
            Err(GroupError::GroupNotEmpty { members: 1, .. })
        ));
        assert!(matches!(
            c.delete("kafka-g").await,
            Err(GroupError::GroupNotEmpty { .. })
        ));
        // A member id handed out (MEMBER_ID_REQUIRED) holds the name too.
        let mut pending = c.kafka_join(req("pending-g", "", &["range"]), now);
        assert!(matches!(
            ready(&mut pending),
            Err(GroupError::MemberIdRequired { .. })
        ));
        assert!(matches!(
            c.join(native("pending-g"), now),
            Err(GroupError::OtherKind { .. })
        ));

        // Once the members leave, the name takes the other kind.
        c.leave("skiff-g", &s.member_id, now).unwrap();
        let (_, mut w) = join_new(&c, "skiff-g", now);
        assert_eq!(ready(&mut w).unwrap().generation, 1);
        c.kafka_leave("kafka-g", &[k], now);
        c.join(native("kafka-g"), now).unwrap();
        assert_eq!(c.list().len(), 3);
    }

    #[test]
    fn hostile_joins_and_syncs_hit_named_limits() {
        let (_dir, c) = coordinator();
        let now = Instant::now();
        let mut big = req("g", "", &["range"]);
        big.protocols[0].1 = Bytes::from(vec![0u8; MEMBER_METADATA_BYTES_MAX + 1]);
        assert!(matches!(
            ready(&mut c.kafka_join(big, now)),
            Err(GroupError::Invalid(_))
        ));
        let mut long_instance = req("g", "", &["range"]);
        long_instance.group_instance_id = Some("i".repeat(MEMBER_NAME_BYTES_MAX + 1));
        assert!(matches!(
            ready(&mut c.kafka_join(long_instance, now)),
            Err(GroupError::Invalid(_))
        ));
        let names: Vec<String> = (0..=crate::groups::classic::PROTOCOLS_PER_MEMBER_MAX)
            .map(|i| format!("p{i}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(matches!(
            ready(&mut c.kafka_join(req("g", "", &names), now)),
            Err(GroupError::Invalid(_))
        ));
        let mut slow = req("g", "", &["range"]);
        slow.session_timeout_ms = LIMITS.session_timeout_ms_max + 1;
        assert!(matches!(
            ready(&mut c.kafka_join(slow, now)),
            Err(GroupError::InvalidSessionTimeout { .. })
        ));
        assert!(
            c.kafka_list().is_empty(),
            "refused joins leave nothing behind"
        );

        // group_members_max counts member ids handed out, too.
        for _ in 0..LIMITS.group_members_max {
            let mut w = c.kafka_join(req("g", "", &["range"]), now);
            assert!(matches!(
                ready(&mut w),
                Err(GroupError::MemberIdRequired { .. })
            ));
        }
        assert!(matches!(
            ready(&mut c.kafka_join(req("g", "", &["range"]), now)),
            Err(GroupError::MemberLimitReached { max: 4, .. })
        ));

        let (_dir, c) = coordinator();
        // A long client id is cut (at a character boundary), not refused.
        let mut long_client = req("g", "", &["range"]);
        long_client.client_id = "é".repeat(MEMBER_NAME_BYTES_MAX);
        long_client.require_known_member_id = false;
        let a = ready(&mut c.kafka_join(long_client, now))
            .unwrap()
            .member_id;
        let kept = c.kafka_describe("g").members[0].client_id.clone();
        assert_eq!(kept, "é".repeat(MEMBER_NAME_BYTES_MAX / 2));
        let huge = vec![(a.clone(), Bytes::from(vec![0u8; ASSIGNMENT_BYTES_MAX + 1]))];
        assert!(matches!(
            ready(&mut sync(&c, "g", &a, 1, huge, now)),
            Err(GroupError::Invalid(_))
        ));
    }
}
