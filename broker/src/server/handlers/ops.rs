//! Operations: Status (version, uptime, counts, disk usage; any
//! authenticated user). It reads only in-memory figures, so probes may call
//! it often. (AlterTopic lives with the other topic handlers.)

use skiff_protocol::messages::{StatusRequest, StatusResponse};

use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;

impl Handler for StatusRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().any_user()
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<StatusResponse, Failure> {
        let topics = ctx.topics().list();
        let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
        let log_bytes: u64 = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|log| log.size_bytes())
            .sum();
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let config = ctx.config();
        Ok(StatusResponse {
            broker_version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: u64::try_from(ctx.uptime().as_millis()).unwrap_or(u64::MAX),
            data_dir: config.data_dir.display().to_string(),
            topics: clamp(topics.len()),
            partitions: clamp(partitions),
            connections: clamp(ctx.connections_open()),
            connections_max: clamp(config.connections_max),
            groups: clamp(ctx.groups().list().len()),
            log_bytes,
        })
    }
}
