//! Consumer-group request handlers: join, heartbeat, leave, commit and fetch
//! offsets, list, describe, reset offsets and delete. The group logic lives
//! in [`crate::groups`]; these functions resolve topics, add log offsets and
//! translate between protocol messages and the coordinator.
//!
//! Join, leave, fetch-offsets, list and describe only touch memory and
//! answer inline; commit, reset and delete wait for an fsync (on the offset
//! store's writer thread) and heartbeats may be long polls (version 1:
//! held until the member's assignment changes, at most its heartbeat
//! interval), so these run as their own tasks.
//!
//! Rules: members (join, heartbeat, leave, commit) need `consume` on the
//! group, and join and commit also on each topic they name; fetch-offsets
//! and describe need `describe` on the group and show only topics the
//! session may describe; reset needs `alter` on the group and `describe`
//! on the topic; delete needs `delete` on the group; list shows only the
//! groups the session may describe.

use std::collections::{BTreeMap, BTreeSet};

use skiff_protocol::messages::{
    CommitOffsetsRequest, CommitOffsetsResponse, CommittedOffset, DeleteGroupRequest,
    DeleteGroupResponse, DescribeGroupRequest, DescribeGroupResponse, FetchOffsetsRequest,
    FetchOffsetsResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, Operation,
    PartitionProgress, ResetOffsetsRequest, ResetOffsetsResponse, ResetTo, ResourceKind,
    TopicPartition,
};
use std::time::Duration;

use tokio::time::Instant;

use super::blocking;
use crate::groups::{JoinParams, MemberState, MemberView};
use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;

impl Handler for JoinGroupRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        let auth = ctx.authorizer();
        auth.group(Operation::Consume, &self.group)?;
        for topic in &self.topics {
            auth.topic(Operation::Consume, topic)?;
        }
        Ok(())
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<JoinGroupResponse, Failure> {
        join_group(&ctx, self)
    }
}

fn join_group(ctx: &Ctx, req: JoinGroupRequest) -> Result<JoinGroupResponse, Failure> {
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut seen = BTreeSet::new();
    for name in &req.topics {
        if seen.insert(name.as_str()) {
            let topic = ctx.topics().require(name)?;
            topics.push((name.clone(), topic.meta.partitions));
        }
    }
    let outcome = ctx.groups().join(
        JoinParams {
            group: req.group,
            topics,
            client_id: req.client_id,
            host: ctx.peer().to_string(),
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

impl Handler for HeartbeatRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Consume, &self.group)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<HeartbeatResponse, Failure> {
        let state = heartbeat(&ctx, self).await;
        Ok(HeartbeatResponse {
            generation: state.generation,
            owned: state.owned,
            revoke: state.revoke,
            rejoin: state.rejoin,
        })
    }
}

/// Records the heartbeat; with `max_wait_ms` (version 1) holds the answer
/// until the member's state is news to it (see [`MemberView`]), the wait
/// ends (at most its heartbeat interval) or the broker shuts down.
async fn heartbeat(ctx: &Ctx, req: HeartbeatRequest) -> MemberState {
    let groups = ctx.groups();
    let now = Instant::now();
    if req.max_wait_ms == 0 {
        return groups.heartbeat(&req.group, &req.member_id, &req.released, now);
    }
    let mut owned = req.owned;
    owned.sort_unstable();
    owned.dedup();
    let view = MemberView {
        generation: req.generation,
        owned,
    };
    let mut watched = groups.heartbeat_watch(&req.group, &req.member_id, &req.released, &view, now);
    let Some((_, wait_max)) = &watched.wait else {
        return watched.state;
    };
    let deadline = now + Duration::from_millis(u64::from(req.max_wait_ms)).min(*wait_max);
    while let Some((mut changes, _)) = watched.wait {
        tokio::select! {
            // An error means the group was dropped: the state says so.
            _ = changes.changed() => {}
            () = tokio::time::sleep_until(deadline) => return watched.state,
            () = ctx.shutdown().cancelled() => return watched.state,
        }
        watched = groups.watch(&req.group, &req.member_id, &view);
    }
    watched.state
}

impl Handler for LeaveGroupRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Consume, &self.group)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<LeaveGroupResponse, Failure> {
        ctx.groups()
            .leave(&self.group, &self.member_id, Instant::now())?;
        Ok(LeaveGroupResponse)
    }
}

impl Handler for CommitOffsetsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        let auth = ctx.authorizer();
        auth.group(Operation::Consume, &self.group)?;
        for commit in &self.offsets {
            auth.topic(Operation::Consume, &commit.partition.topic)?;
        }
        Ok(())
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<CommitOffsetsResponse, Failure> {
        let offsets = self
            .offsets
            .into_iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        ctx.groups()
            .commit(&self.group, &self.member_id, self.generation, offsets)
            .await?;
        Ok(CommitOffsetsResponse)
    }
}

/// The group's committed offsets, on the topics the session may describe
/// only (describing a group does not give a look at topics one may not
/// describe).
impl Handler for FetchOffsetsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Describe, &self.group)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<FetchOffsetsResponse, Failure> {
        // A new owner reads its partitions' committed offsets right before
        // fetching them: the end of their hand-over.
        ctx.groups()
            .started(&self.group, &self.partitions, Instant::now());
        let auth = ctx.authorizer();
        let offsets = ctx
            .groups()
            .fetch_offsets(&self.group, &self.partitions)
            .into_iter()
            .filter(|(partition, _)| auth.visible(ResourceKind::Topic, &partition.topic))
            .map(|(partition, offset)| CommittedOffset { partition, offset })
            .collect();
        Ok(FetchOffsetsResponse { offsets })
    }
}

impl Handler for ListGroupsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().session()
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ListGroupsResponse, Failure> {
        let auth = ctx.authorizer();
        let mut groups = ctx.groups().list();
        groups.retain(|g| auth.visible(ResourceKind::Group, &g.group));
        Ok(ListGroupsResponse { groups })
    }
}

impl Handler for DescribeGroupRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Describe, &self.group)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<DescribeGroupResponse, Failure> {
        let auth = ctx.authorizer();
        describe_group(&ctx, self, |t| auth.visible(ResourceKind::Topic, t))
    }
}

/// Describes a group, showing only topics `visible` accepts (in the
/// partitions' progress and in the members' topics and partitions).
fn describe_group(
    ctx: &Ctx,
    req: DescribeGroupRequest,
    visible: impl Fn(&str) -> bool,
) -> Result<DescribeGroupResponse, Failure> {
    let mut d = ctx.groups().describe(&req.group)?;
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
        let Some(topic) = ctx.topics().get(name) else {
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
                    waiting_ms: d.waiting.get(&tp).map(|w| w.as_millis() as u64),
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
                waiting_ms: d.waiting.get(tp).map(|w| w.as_millis() as u64),
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

impl Handler for ResetOffsetsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        let auth = ctx.authorizer();
        auth.group(Operation::Alter, &self.group)?;
        auth.topic(Operation::Describe, &self.topic)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ResetOffsetsResponse, Failure> {
        reset_offsets(&ctx, self).await
    }
}

async fn reset_offsets(
    ctx: &Ctx,
    req: ResetOffsetsRequest,
) -> Result<ResetOffsetsResponse, Failure> {
    // Fail fast before any disk lookup; the coordinator checks again under
    // its lock when it stores the offsets.
    let members = ctx.groups().member_count(&req.group);
    if members > 0 {
        return Err(crate::groups::GroupError::GroupNotEmpty {
            group: req.group,
            members,
        }
        .into());
    }
    let topic = ctx.topics().require(&req.topic)?;
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
    ctx.groups()
        .reset_offsets(&req.group, offsets.clone())
        .await?;
    tracing::info!(group = %req.group, topic = %req.topic, to = ?to, "reset group offsets");
    Ok(ResetOffsetsResponse { offsets })
}

impl Handler for DeleteGroupRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().group(Operation::Delete, &self.group)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<DeleteGroupResponse, Failure> {
        ctx.groups().delete(&self.group).await?;
        tracing::info!(group = %self.group, "deleted group");
        Ok(DeleteGroupResponse)
    }
}
