//! Operations handlers: AlterTopic (live changes to a topic's log settings)
//! and Status (version, uptime, counts, disk usage). Status reads only
//! in-memory figures, so probes may call it often.

use std::sync::Arc;

use skiff_protocol::messages::{
    AlterTopicRequest, AlterTopicResponse, StatusRequest, StatusResponse,
};

use super::Shared;
use super::failure::Failure;
use super::handlers::blocking;

pub(crate) async fn alter_topic(
    shared: Arc<Shared>,
    req: AlterTopicRequest,
) -> Result<AlterTopicResponse, Failure> {
    blocking(move || {
        let topic = shared.topics.alter(&req)?;
        let config = topic.meta.config();
        tracing::info!(topic = %req.name, ?config, "altered topic");
        Ok(AlterTopicResponse { config })
    })
    .await
}

/// Connections open now: the permits the listener has handed out.
pub(crate) fn connections_open(shared: &Shared) -> usize {
    shared
        .config
        .connections_max
        .saturating_sub(shared.connections.available_permits())
}

pub(crate) fn status(shared: &Shared, _req: StatusRequest) -> StatusResponse {
    let topics = shared.topics.list();
    let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
    let log_bytes: u64 = topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|log| log.size_bytes())
        .sum();
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    StatusResponse {
        broker_version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_ms: u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        data_dir: shared.config.data_dir.display().to_string(),
        topics: clamp(topics.len()),
        partitions: clamp(partitions),
        connections: clamp(connections_open(shared)),
        connections_max: clamp(shared.config.connections_max),
        groups: clamp(shared.groups.list().len()),
        log_bytes,
    }
}
