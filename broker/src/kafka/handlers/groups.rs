//! Kafka's consumer-group APIs over the broker's one
//! [`GroupCoordinator`](crate::groups::GroupCoordinator): FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups and DeleteGroups. The group logic lives in
//! [`crate::groups::classic`]; these handlers translate Kafka's messages
//! into its plain types and its [`GroupError`]s into Kafka's error codes.
//!
//! - This broker is every group's coordinator.
//! - JoinGroup and SyncGroup are long polls: they run as their own tasks
//!   and wait on the coordinator's answer, so neither a worker thread nor
//!   the connection's reading of further requests waits with them (Kafka
//!   answers a connection's requests in order, so later answers queue).
//! - Offsets go to the offset store skiff groups use: `skiff group
//!   list/describe/reset-offsets/delete` see Kafka groups. Commit metadata
//!   strings are not stored (OffsetFetch answers an empty one).
//!
//! Rules, as for skiff groups: members (join, sync, heartbeat, leave,
//! commit) need `consume` on the group (GROUP_AUTHORIZATION_FAILED), and a
//! commit `consume` on each topic (TOPIC_AUTHORIZATION_FAILED per
//! partition); FindCoordinator, OffsetFetch and DescribeGroups need
//! `describe` on the group, OffsetFetch shows only topics the session may
//! describe; DeleteGroups needs `delete`; ListGroups shows only the groups
//! the session may describe.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use skiff_protocol::messages::{ApiKey as SkiffApi, Operation, ResourceKind, TopicPartition};
use tokio::time::Instant;

use super::{kstr, ktopic};
use crate::groups::classic::{ClassicJoin, ClassicSync};
use crate::groups::{GroupError, GroupKind, OffsetStoreError, validate_group_name};
use crate::kafka::api::{KafkaApi, Reply};
use crate::kafka::{Advertised, NODE_ID, errors};
use crate::server::api::{Ctx, Runs};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// "No offset" in OffsetFetch, and "no leader epoch".
const NO_OFFSET: i64 = -1;
const NO_LEADER_EPOCH: i32 = -1;
/// DescribeGroups' "authorized operations not asked for".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// ListGroups v5 group type of classic groups.
const GROUP_TYPE_CLASSIC: &str = "classic";

/// Kafka's error code for a group failure.
pub(crate) fn group_code(e: &GroupError) -> i16 {
    match e {
        GroupError::UnknownGroup(_) => errors::GROUP_ID_NOT_FOUND,
        GroupError::UnknownMember { .. } | GroupError::NotPartitionOwner { .. } => {
            errors::UNKNOWN_MEMBER_ID
        }
        GroupError::StaleGeneration { .. } | GroupError::IllegalGeneration { .. } => {
            errors::ILLEGAL_GENERATION
        }
        GroupError::GroupNotEmpty { .. } => errors::NON_EMPTY_GROUP,
        GroupError::MemberLimitReached { .. } => errors::GROUP_MAX_SIZE_REACHED,
        GroupError::InvalidSessionTimeout { .. } => errors::INVALID_SESSION_TIMEOUT,
        GroupError::Invalid(_) => errors::INVALID_REQUEST,
        GroupError::OtherKind { .. } | GroupError::InconsistentProtocol { .. } => {
            errors::INCONSISTENT_GROUP_PROTOCOL
        }
        GroupError::MemberIdRequired { .. } => errors::MEMBER_ID_REQUIRED,
        GroupError::RebalanceInProgress { .. } => errors::REBALANCE_IN_PROGRESS,
        GroupError::Closed | GroupError::Store(OffsetStoreError::Closed) => {
            errors::COORDINATOR_NOT_AVAILABLE
        }
        GroupError::Store(_) => errors::KAFKA_STORAGE_ERROR,
        _ => errors::UNKNOWN_SERVER_ERROR,
    }
}

/// The code for `e`, logged with its message (most group responses have
/// no message field, so the broker's log is where the reason shows).
fn refused(api: &str, group: &str, e: &GroupError) -> i16 {
    let code = group_code(e);
    match e {
        GroupError::MemberIdRequired { .. } | GroupError::RebalanceInProgress { .. } => {
            tracing::debug!(api, group, error = %e, code, "kafka group request answered with an error");
        }
        _ => tracing::info!(api, group, error = %e, code, "kafka group request refused"),
    }
    code
}

/// GROUP_AUTHORIZATION_FAILED unless the session may do `op` on `group`.
fn authorize_group(ctx: &Ctx, op: Operation, group: &str) -> Result<(), i16> {
    ctx.authorizer()
        .group(op, group)
        .map_err(|_| errors::GROUP_AUTHORIZATION_FAILED)
}

/// INVALID_GROUP_ID for a name skiff does not accept.
fn check_group_name(group: &str) -> Result<(), i16> {
    validate_group_name(group).map_err(|e| {
        tracing::info!(group, error = %e, "kafka group request with an invalid group id");
        errors::INVALID_GROUP_ID
    })
}

fn advertised(ctx: &Ctx) -> Advertised {
    // Only a Kafka listener's connections get here.
    ctx.kafka().cloned().unwrap_or(Advertised {
        host: String::new(),
        port: 0,
    })
}

/// A non-negative i32 as u32 (negative: 0, which every range check refuses).
fn non_negative(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// This node, for one key.
fn coordinator_for(ctx: &Ctx, key_type: i8, key: &str) -> Result<Advertised, (i16, String)> {
    match key_type {
        KEY_TYPE_GROUP => {
            authorize_group(ctx, Operation::Describe, key)
                .map_err(|code| (code, format!("not authorized to describe group {key:?}")))?;
            Ok(advertised(ctx))
        }
        KEY_TYPE_TRANSACTION => Err((
            errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "transactions are not supported by skiff".to_owned(),
        )),
        other => Err((
            errors::INVALID_REQUEST,
            format!("coordinator key type {other} is not served (0: group)"),
        )),
    }
}

/// This broker coordinates every group. v4+ batches keys.
impl KafkaApi for FindCoordinatorRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::DescribeGroup;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<FindCoordinatorResponse> {
        if version >= 4 {
            let coordinators = self
                .coordinator_keys
                .iter()
                .map(
                    |key| match coordinator_for(&ctx, self.key_type, key.as_str()) {
                        Ok(a) => Coordinator::default()
                            .with_key(key.clone())
                            .with_node_id(BrokerId(NODE_ID))
                            .with_host(kstr(a.host))
                            .with_port(a.port),
                        Err((code, message)) => Coordinator::default()
                            .with_key(key.clone())
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code)
                            .with_error_message(Some(kstr(message))),
                    },
                )
                .collect();
            return Reply::Respond(
                FindCoordinatorResponse::default().with_coordinators(coordinators),
            );
        }
        let key_type = if version >= 1 {
            self.key_type
        } else {
            KEY_TYPE_GROUP
        };
        let response = match coordinator_for(&ctx, key_type, self.key.as_str()) {
            Ok(a) => FindCoordinatorResponse::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(kstr(a.host))
                .with_port(a.port),
            Err((code, message)) => {
                let r = FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code);
                if version >= 1 {
                    r.with_error_message(Some(kstr(message)))
                } else {
                    r
                }
            }
        };
        Reply::Respond(response)
    }
}

/// A long poll's answer, or [`GroupError::Closed`] (COORDINATOR_NOT_AVAILABLE:
/// the client finds the coordinator again) once the broker shuts down, so
/// a join waiting for a rebalance never holds shutdown up.
async fn until_shutdown<T>(
    ctx: &Ctx,
    answer: impl std::future::Future<Output = Result<T, GroupError>>,
) -> Result<T, GroupError> {
    tokio::select! {
        answer = answer => answer,
        () = ctx.shutdown().cancelled() => Err(GroupError::Closed),
    }
}

fn join_error(code: i16, member_id: StrBytes) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(member_id)
}

/// A long poll: answered when the generation forms.
impl KafkaApi for JoinGroupRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::JoinGroup;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<JoinGroupResponse> {
        let group = self.group_id.0.as_str().to_owned();
        if let Err(code) = check_group_name(&group)
            .and_then(|()| authorize_group(&ctx, Operation::Consume, &group))
        {
            return Reply::Respond(join_error(code, self.member_id));
        }
        let rebalance_timeout_ms = if version >= 1 {
            self.rebalance_timeout_ms
        } else {
            self.session_timeout_ms
        };
        let req = ClassicJoin {
            group: group.clone(),
            member_id: self.member_id.as_str().to_owned(),
            group_instance_id: self.group_instance_id.map(|s| s.as_str().to_owned()),
            client_id: ctx.client_id().to_owned(),
            host: format!("/{}", ctx.peer().ip()),
            session_timeout_ms: non_negative(self.session_timeout_ms),
            rebalance_timeout_ms: non_negative(rebalance_timeout_ms),
            protocol_type: self.protocol_type.as_str().to_owned(),
            protocols: self
                .protocols
                .into_iter()
                .map(|p| (p.name.as_str().to_owned(), p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
        };
        let waiting = ctx.groups().kafka_join(req, Instant::now());
        let response = match until_shutdown(&ctx, waiting.wait()).await {
            Ok(r) => {
                let members = r
                    .members
                    .into_iter()
                    .map(|m| {
                        let member = JoinGroupResponseMember::default()
                            .with_member_id(kstr(m.member_id))
                            .with_metadata(m.metadata);
                        if version >= 5 {
                            member.with_group_instance_id(m.group_instance_id.map(kstr))
                        } else {
                            member
                        }
                    })
                    .collect();
                let response = JoinGroupResponse::default()
                    .with_generation_id(r.generation)
                    .with_protocol_name(Some(kstr(r.protocol_name)))
                    .with_leader(kstr(r.leader))
                    .with_member_id(kstr(r.member_id))
                    .with_members(members);
                if version >= 7 {
                    response.with_protocol_type(Some(kstr(r.protocol_type)))
                } else {
                    response
                }
            }
            Err(GroupError::MemberIdRequired { member_id, .. }) => {
                join_error(errors::MEMBER_ID_REQUIRED, kstr(member_id))
            }
            Err(e) => join_error(refused("JoinGroup", &group, &e), self.member_id),
        };
        Reply::Respond(response)
    }
}

/// A long poll for followers: answered when the leader's assignments come.
impl KafkaApi for SyncGroupRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::JoinGroup;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<SyncGroupResponse> {
        let group = self.group_id.0.as_str().to_owned();
        if let Err(code) = authorize_group(&ctx, Operation::Consume, &group) {
            return Reply::Respond(SyncGroupResponse::default().with_error_code(code));
        }
        let req = ClassicSync {
            group: group.clone(),
            member_id: self.member_id.as_str().to_owned(),
            generation: self.generation_id,
            protocol_type: self.protocol_type.map(|s| s.as_str().to_owned()),
            protocol_name: self.protocol_name.map(|s| s.as_str().to_owned()),
            assignments: self
                .assignments
                .into_iter()
                .map(|a| (a.member_id.as_str().to_owned(), a.assignment))
                .collect(),
        };
        let waiting = ctx.groups().kafka_sync(req, Instant::now());
        let response = match until_shutdown(&ctx, waiting.wait()).await {
            Ok(r) => {
                let response = SyncGroupResponse::default().with_assignment(r.assignment);
                if version >= 5 {
                    response
                        .with_protocol_type(Some(kstr(r.protocol_type)))
                        .with_protocol_name(Some(kstr(r.protocol_name)))
                } else {
                    response
                }
            }
            Err(e) => SyncGroupResponse::default()
                .with_error_code(refused("SyncGroup", &group, &e))
                .with_assignment(Bytes::new()),
        };
        Reply::Respond(response)
    }
}

impl KafkaApi for HeartbeatRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::Heartbeat;

    async fn handle(self, _version: i16, ctx: Ctx) -> Reply<HeartbeatResponse> {
        let group = self.group_id.0.as_str();
        let code = match authorize_group(&ctx, Operation::Consume, group) {
            Err(code) => code,
            Ok(()) => match ctx.groups().kafka_heartbeat(
                group,
                self.member_id.as_str(),
                self.generation_id,
                Instant::now(),
            ) {
                Ok(()) => errors::NONE,
                Err(e) => refused("Heartbeat", group, &e),
            },
        };
        Reply::Respond(HeartbeatResponse::default().with_error_code(code))
    }
}

/// v0-2 name one member; v3+ a batch, answered per member.
impl KafkaApi for LeaveGroupRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::LeaveGroup;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<LeaveGroupResponse> {
        let group = self.group_id.0.as_str();
        if let Err(code) = authorize_group(&ctx, Operation::Consume, group) {
            return Reply::Respond(LeaveGroupResponse::default().with_error_code(code));
        }
        let ids: Vec<String> = if version >= 3 {
            self.members
                .iter()
                .map(|m| m.member_id.as_str().to_owned())
                .collect()
        } else {
            vec![self.member_id.as_str().to_owned()]
        };
        let results = ctx.groups().kafka_leave(group, &ids, Instant::now());
        if version < 3 {
            let code = results
                .first()
                .and_then(|(_, r)| r.as_ref().err())
                .map_or(errors::NONE, |e| refused("LeaveGroup", group, e));
            return Reply::Respond(LeaveGroupResponse::default().with_error_code(code));
        }
        let members = results
            .into_iter()
            .zip(self.members)
            .map(|((_, result), m)| {
                let code = match &result {
                    Ok(()) => errors::NONE,
                    Err(e) => refused("LeaveGroup", group, e),
                };
                MemberResponse::default()
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
                    .with_error_code(code)
            })
            .collect();
        Reply::Respond(LeaveGroupResponse::default().with_members(members))
    }
}

/// Per partition: the checks that do not need the group (the topic exists
/// and may be consumed, the offset is one skiff can store).
fn commit_partition_check(ctx: &Ctx, topic: &str, partition: i32, offset: i64) -> Result<(), i16> {
    if !ctx.authorizer().topic_allows(Operation::Consume, topic) {
        // Counted and logged as a refusal.
        let _ = ctx.authorizer().topic(Operation::Consume, topic);
        return Err(errors::TOPIC_AUTHORIZATION_FAILED);
    }
    let known = ctx
        .topics()
        .get(topic)
        .is_some_and(|t| u32::try_from(partition).is_ok_and(|p| p < t.meta.partitions));
    if !known {
        return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if offset < 0 {
        return Err(errors::INVALID_COMMIT_OFFSET_SIZE);
    }
    Ok(())
}

/// Kafka's commit rules are the coordinator's
/// ([`GroupCoordinator::kafka_commit`](crate::groups::GroupCoordinator::kafka_commit));
/// partitions refused on their own (topic grant, unknown partition,
/// negative offset) get their error and the rest is committed.
impl KafkaApi for OffsetCommitRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::CommitOffsets;

    async fn handle(self, _version: i16, ctx: Ctx) -> Reply<OffsetCommitResponse> {
        let group = self.group_id.0.as_str().to_owned();
        let group_check = check_group_name(&group)
            .and_then(|()| authorize_group(&ctx, Operation::Consume, &group));
        // Each partition's code, per topic, in request order.
        let mut codes: Vec<Vec<i16>> = Vec::with_capacity(self.topics.len());
        let mut offsets = Vec::new();
        for t in &self.topics {
            let topic = t.name.0.as_str();
            let mut topic_codes = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let check = group_check.and_then(|()| {
                    commit_partition_check(&ctx, topic, p.partition_index, p.committed_offset)
                });
                match check {
                    Ok(()) => {
                        offsets.push((
                            TopicPartition::new(topic, non_negative(p.partition_index)),
                            p.committed_offset as u64,
                        ));
                        topic_codes.push(errors::NONE);
                    }
                    Err(code) => topic_codes.push(code),
                }
            }
            codes.push(topic_codes);
        }
        if group_check.is_ok() && !offsets.is_empty() {
            let committed = ctx
                .groups()
                .kafka_commit(
                    &group,
                    self.member_id.as_str(),
                    self.generation_id_or_member_epoch,
                    offsets,
                    Instant::now(),
                )
                .await;
            if let Err(e) = committed {
                let code = refused("OffsetCommit", &group, &e);
                for c in codes.iter_mut().flatten() {
                    if *c == errors::NONE {
                        *c = code;
                    }
                }
            }
        }
        let topics = self
            .topics
            .into_iter()
            .zip(codes)
            .map(|(t, codes)| {
                let partitions = t
                    .partitions
                    .iter()
                    .zip(codes)
                    .map(|(p, code)| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Reply::Respond(OffsetCommitResponse::default().with_topics(topics))
    }
}

/// One partition's answer in OffsetFetch.
struct Fetched {
    partition: i32,
    offset: i64,
    code: i16,
}

/// One group's committed offsets: of the listed partitions (`None`: every
/// partition with an offset, on topics the session may describe), per
/// topic in request (or name) order; -1 for none.
fn fetch_group(
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<Fetched>)>, i16> {
    check_group_name(group).and_then(|()| authorize_group(ctx, Operation::Describe, group))?;
    let auth = ctx.authorizer();
    let Some(topics) = topics else {
        let mut by_topic: BTreeMap<String, Vec<Fetched>> = BTreeMap::new();
        for (tp, offset) in ctx.groups().fetch_offsets(group, &[]) {
            if !auth.visible(ResourceKind::Topic, &tp.topic) {
                continue;
            }
            let offset = offset
                .and_then(|o| i64::try_from(o).ok())
                .unwrap_or(NO_OFFSET);
            by_topic.entry(tp.topic).or_default().push(Fetched {
                partition: tp.partition as i32,
                offset,
                code: errors::NONE,
            });
        }
        return Ok(by_topic.into_iter().collect());
    };
    Ok(topics
        .into_iter()
        .map(|(topic, partitions)| {
            let visible = auth.visible(ResourceKind::Topic, &topic);
            let answers = partitions
                .into_iter()
                .map(|p| {
                    if !visible {
                        return Fetched {
                            partition: p,
                            offset: NO_OFFSET,
                            code: errors::TOPIC_AUTHORIZATION_FAILED,
                        };
                    }
                    let Ok(partition) = u32::try_from(p) else {
                        return Fetched {
                            partition: p,
                            offset: NO_OFFSET,
                            code: errors::UNKNOWN_TOPIC_OR_PARTITION,
                        };
                    };
                    let tp = TopicPartition::new(topic.as_str(), partition);
                    let offset = ctx
                        .groups()
                        .fetch_offsets(group, std::slice::from_ref(&tp))
                        .into_iter()
                        .next()
                        .and_then(|(_, o)| o)
                        .and_then(|o| i64::try_from(o).ok())
                        .unwrap_or(NO_OFFSET);
                    Fetched {
                        partition: p,
                        offset,
                        code: errors::NONE,
                    }
                })
                .collect();
            (topic, answers)
        })
        .collect())
}

/// v1-7: one group (topics `None` from v2: all); v8+: a batch of groups.
impl KafkaApi for OffsetFetchRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::FetchOffsets;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<OffsetFetchResponse> {
        let empty_metadata = || Some(StrBytes::from_static_str(""));
        if version >= 8 {
            let groups = self
                .groups
                .into_iter()
                .map(|g| {
                    let name = g.group_id.0.as_str().to_owned();
                    let topics = g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes))
                            .collect()
                    });
                    match fetch_group(&ctx, &name, topics) {
                        Ok(found) => OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_topics(
                                found
                                    .into_iter()
                                    .map(|(topic, ps)| {
                                        OffsetFetchResponseTopics::default()
                                            .with_name(ktopic(topic))
                                            .with_partitions(
                                                ps.into_iter()
                                                    .map(|Fetched { partition: p, offset, code }| {
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(offset)
                                                            .with_committed_leader_epoch(
                                                                NO_LEADER_EPOCH,
                                                            )
                                                            .with_metadata(empty_metadata())
                                                            .with_error_code(code)
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            ),
                        Err(code) => OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(code),
                    }
                })
                .collect();
            return Reply::Respond(OffsetFetchResponse::default().with_groups(groups));
        }
        let group = self.group_id.0.as_str().to_owned();
        let topics = self.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes))
                .collect()
        });
        let response =
            match fetch_group(&ctx, &group, topics) {
                Ok(found) => {
                    OffsetFetchResponse::default().with_topics(
                        found
                            .into_iter()
                            .map(|(topic, ps)| {
                                OffsetFetchResponseTopic::default()
                            .with_name(ktopic(topic))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|Fetched { partition: p, offset, code }| {
                                        let partition = OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_metadata(empty_metadata())
                                            .with_error_code(code);
                                        if version >= 5 {
                                            partition.with_committed_leader_epoch(NO_LEADER_EPOCH)
                                        } else {
                                            partition
                                        }
                                    })
                                    .collect(),
                            )
                            })
                            .collect(),
                    )
                }
                // v1 has no group-level error: none of the partitions is
                // answered, which clients see as nothing committed. v2+ say why.
                Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code),
                Err(_) => OffsetFetchResponse::default(),
            };
        Reply::Respond(response)
    }
}

/// Every group the session may describe, both kinds (skiff groups with an
/// empty protocol type), filtered by state (v4+) and type (v5+).
impl KafkaApi for ListGroupsRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::ListGroups;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<ListGroupsResponse> {
        if ctx.authorizer().session().is_err() {
            return Reply::Respond(
                ListGroupsResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED),
            );
        }
        let auth = ctx.authorizer();
        let states: Vec<String> = self
            .states_filter
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect();
        // Every group is listed as a classic one.
        let classic_wanted = self.types_filter.is_empty()
            || self
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(GROUP_TYPE_CLASSIC));
        let groups = ctx
            .groups()
            .kafka_list()
            .into_iter()
            .filter(|g| auth.visible(ResourceKind::Group, &g.group))
            .filter(|g| {
                states.is_empty() || states.contains(&g.state.kafka_name().to_ascii_lowercase())
            })
            .filter(|_| classic_wanted)
            .map(|g| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(kstr(g.group)))
                    .with_protocol_type(kstr(g.protocol_type));
                let listed = if version >= 4 {
                    listed.with_group_state(kstr(g.state.kafka_name()))
                } else {
                    listed
                };
                if version >= 5 {
                    listed.with_group_type(kstr(GROUP_TYPE_CLASSIC))
                } else {
                    listed
                }
            })
            .collect();
        Reply::Respond(ListGroupsResponse::default().with_groups(groups))
    }
}

/// Kafka's view of a group: state, protocol, members with metadata and
/// assignment. A skiff group shows its members without either; an unknown
/// group is `Dead`, as in Kafka.
impl KafkaApi for DescribeGroupsRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::DescribeGroup;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<DescribeGroupsResponse> {
        let groups = self
            .groups
            .into_iter()
            .map(|id| {
                let name = id.0.as_str().to_owned();
                let described = DescribedGroup::default().with_group_id(id);
                let described = if version >= 3 {
                    described.with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                } else {
                    described
                };
                if let Err(code) = authorize_group(&ctx, Operation::Describe, &name) {
                    return described.with_error_code(code);
                }
                let d = ctx.groups().kafka_describe(&name);
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let member = DescribedGroupMember::default()
                            .with_member_id(kstr(m.member_id))
                            .with_client_id(kstr(m.client_id))
                            .with_client_host(kstr(m.host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment);
                        if version >= 4 {
                            member.with_group_instance_id(m.group_instance_id.map(kstr))
                        } else {
                            member
                        }
                    })
                    .collect();
                let protocol_type = match d.kind {
                    GroupKind::Skiff => String::new(),
                    _ => d.protocol_type,
                };
                described
                    .with_group_state(kstr(d.state.kafka_name()))
                    .with_protocol_type(kstr(protocol_type))
                    .with_protocol_data(kstr(d.protocol_name))
                    .with_members(members)
            })
            .collect();
        Reply::Respond(DescribeGroupsResponse::default().with_groups(groups))
    }
}

/// Deletes member-less groups and their offsets (NON_EMPTY_GROUP while
/// members of either kind are in).
impl KafkaApi for DeleteGroupsRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::DeleteGroup;

    async fn handle(self, _version: i16, ctx: Ctx) -> Reply<DeleteGroupsResponse> {
        let mut results = Vec::with_capacity(self.groups_names.len());
        for id in self.groups_names {
            let name = id.0.as_str().to_owned();
            let code = match authorize_group(&ctx, Operation::Delete, &name) {
                Err(code) => code,
                Ok(()) => match ctx.groups().delete(&name).await {
                    Ok(()) => {
                        tracing::info!(group = %name, "deleted group (Kafka DeleteGroups)");
                        errors::NONE
                    }
                    Err(e) => refused("DeleteGroups", &name, &e),
                },
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code),
            );
        }
        Reply::Respond(DeleteGroupsResponse::default().with_results(results))
    }
}
