//! Consumer-group request handlers: join, heartbeat, leave, commit and fetch
//! offsets, list, describe, reset offsets and delete. The group logic lives
//! in [`crate::groups`]; these functions resolve topics, add log offsets and
//! translate between protocol messages and the coordinator.
//!
//! Join, heartbeat, leave, fetch-offsets, list and describe only touch
//! memory and answer inline; commit, reset and delete wait for an fsync (on
//! the offset store's writer thread) and run as their own tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use skiff_protocol::messages::{
    CommitOffsetsRequest, CommitOffsetsResponse, CommittedOffset, DeleteGroupRequest,
    DeleteGroupResponse, DescribeGroupRequest, DescribeGroupResponse, FetchOffsetsRequest,
    FetchOffsetsResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsResponse, PartitionProgress,
    ResetOffsetsRequest, ResetOffsetsResponse, ResetTo, TopicPartition,
};
use tokio::time::Instant;

use super::Shared;
use super::failure::Failure;
use super::handlers::blocking;
use crate::groups::JoinParams;

pub(crate) fn join_group(
    shared: &Shared,
    req: JoinGroupRequest,
    peer: SocketAddr,
) -> Result<JoinGroupResponse, Failure> {
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut seen = BTreeSet::new();
    for name in &req.topics {
        if seen.insert(name.as_str()) {
            let topic = shared.topics.require(name)?;
            topics.push((name.clone(), topic.meta.partitions));
        }
    }
    let outcome = shared.groups.join(
        JoinParams {
            group: req.group,
            topics,
            client_id: req.client_id,
            host: peer.to_string(),
            session_timeout_ms: req.session_timeout_ms,
            member_id: req.member_id,
        },
        Instant::now(),
    )?;
    Ok(JoinGroupResponse {
        member_id: outcome.member_id,
        generation: outcome.generation,
        heartbeat_interval_ms: outcome.heartbeat_interval_ms,
        session_timeout_ms: outcome.session_timeout_ms,
        assignment: outcome.assignment,
    })
}

pub(crate) fn heartbeat(shared: &Shared, req: HeartbeatRequest) -> HeartbeatResponse {
    let state = shared
        .groups
        .heartbeat(&req.group, &req.member_id, &req.released, Instant::now());
    HeartbeatResponse {
        generation: state.generation,
        owned: state.owned,
        revoke: state.revoke,
        rejoin: state.rejoin,
    }
}

pub(crate) fn leave_group(
    shared: &Shared,
    req: LeaveGroupRequest,
) -> Result<LeaveGroupResponse, Failure> {
    shared
        .groups
        .leave(&req.group, &req.member_id, Instant::now())?;
    Ok(LeaveGroupResponse)
}

pub(crate) async fn commit_offsets(
    shared: Arc<Shared>,
    req: CommitOffsetsRequest,
) -> Result<CommitOffsetsResponse, Failure> {
    let offsets = req
        .offsets
        .into_iter()
        .map(|c| (c.partition, c.offset))
        .collect();
    shared
        .groups
        .commit(&req.group, &req.member_id, req.generation, offsets)
        .await?;
    Ok(CommitOffsetsResponse)
}

/// The group's committed offsets, on the topics `visible` accepts only
/// (describing a group does not give a look at topics one may not
/// describe).
pub(crate) fn fetch_offsets(
    shared: &Shared,
    req: FetchOffsetsRequest,
    visible: impl Fn(&str) -> bool,
) -> FetchOffsetsResponse {
    FetchOffsetsResponse {
        offsets: shared
            .groups
            .fetch_offsets(&req.group, &req.partitions)
            .into_iter()
            .filter(|(partition, _)| visible(&partition.topic))
            .map(|(partition, offset)| CommittedOffset { partition, offset })
            .collect(),
    }
}

pub(crate) fn list_groups(shared: &Shared) -> ListGroupsResponse {
    ListGroupsResponse {
        groups: shared.groups.list(),
    }
}

/// Describes a group, showing only topics `visible` accepts (in the
/// partitions' progress and in the members' topics and partitions).
pub(crate) fn describe_group(
    shared: &Shared,
    req: DescribeGroupRequest,
    visible: impl Fn(&str) -> bool,
) -> Result<DescribeGroupResponse, Failure> {
    let mut d = shared.groups.describe(&req.group)?;
    d.committed.retain(|tp, _| visible(&tp.topic));
    for m in &mut d.members {
        m.topics.retain(|t| visible(t));
        m.owned.retain(|tp| visible(&tp.topic));
        m.revoking.retain(|tp| visible(&tp.topic));
    }
    let mut topics: BTreeSet<String> = d.topics.iter().filter(|t| visible(t)).cloned().collect();
    topics.extend(d.committed.keys().map(|tp| tp.topic.clone()));
    let mut progress: BTreeMap<TopicPartition, PartitionProgress> = BTreeMap::new();
    for name in &topics {
        let Some(topic) = shared.topics.get(name) else {
            continue;
        };
        for (p, log) in topic.partitions.iter().enumerate() {
            let tp = TopicPartition::new(name.as_str(), p as u32);
            let committed = d.committed.get(&tp).copied();
            let log_end_offset = log.log_end_offset();
            progress.insert(
                tp.clone(),
                PartitionProgress {
                    owner: d.owners.get(&tp).cloned(),
                    committed,
                    log_end_offset,
                    lag: committed.map(|c| log_end_offset.saturating_sub(c)),
                    partition: tp,
                },
            );
        }
    }
    // Offsets of partitions whose topic is gone (or shrank) still show.
    for (tp, committed) in &d.committed {
        progress
            .entry(tp.clone())
            .or_insert_with(|| PartitionProgress {
                partition: tp.clone(),
                owner: d.owners.get(tp).cloned(),
                committed: Some(*committed),
                log_end_offset: 0,
                lag: None,
            });
    }
    Ok(DescribeGroupResponse {
        group: req.group,
        state: d.state,
        generation: d.generation,
        members: d.members,
        partitions: progress.into_values().collect(),
    })
}

pub(crate) async fn reset_offsets(
    shared: Arc<Shared>,
    req: ResetOffsetsRequest,
) -> Result<ResetOffsetsResponse, Failure> {
    // Fail fast before any disk lookup; the coordinator checks again under
    // its lock when it stores the offsets.
    let members = shared.groups.member_count(&req.group);
    if members > 0 {
        return Err(crate::groups::GroupError::GroupNotEmpty {
            group: req.group,
            members,
        }
        .into());
    }
    let topic = shared.topics.require(&req.topic)?;
    let to = req.to;
    let logs = topic.partitions.clone();
    let offsets: Vec<u64> = blocking(move || {
        logs.iter()
            .map(|log| {
                let start = log.log_start_offset();
                let end = log.log_end_offset();
                Ok(match to {
                    ResetTo::Earliest => start,
                    ResetTo::Latest => end,
                    ResetTo::Offset(o) => o.clamp(start, end),
                    ResetTo::Timestamp(ts) => log.offset_for_timestamp(ts)?.unwrap_or(end),
                })
            })
            .collect::<Result<_, Failure>>()
    })
    .await?;
    let offsets: Vec<(TopicPartition, u64)> = offsets
        .into_iter()
        .enumerate()
        .map(|(p, o)| (TopicPartition::new(req.topic.as_str(), p as u32), o))
        .collect();
    shared
        .groups
        .reset_offsets(&req.group, offsets.clone())
        .await?;
    tracing::info!(group = %req.group, topic = %req.topic, to = ?to, "reset group offsets");
    Ok(ResetOffsetsResponse { offsets })
}

pub(crate) async fn delete_group(
    shared: Arc<Shared>,
    req: DeleteGroupRequest,
) -> Result<DeleteGroupResponse, Failure> {
    shared.groups.delete(&req.group).await?;
    tracing::info!(group = %req.group, "deleted group");
    Ok(DeleteGroupResponse)
}
