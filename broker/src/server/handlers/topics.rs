//! Topic handlers: create, delete, list, describe and alter. Create,
//! delete and alter write `topic.json` and fsync (and create or remove
//! files), so they run on the blocking pool; list and describe read memory.

use skiff_protocol::messages::{
    AlterTopicRequest, AlterTopicResponse, CreateTopicRequest, CreateTopicResponse,
    DeleteTopicRequest, DeleteTopicResponse, DescribeTopicRequest, DescribeTopicResponse,
    ListTopicsRequest, ListTopicsResponse, Operation, PartitionDescription, ResourceKind,
    TopicListing,
};

use super::blocking;
use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;

impl Handler for CreateTopicRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().topic(Operation::Create, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<CreateTopicResponse, Failure> {
        blocking(move || {
            ctx.topics().create(&self.name, &self.config)?;
            tracing::info!(topic = %self.name, partitions = self.config.partitions, "created topic");
            Ok(CreateTopicResponse)
        })
        .await
    }
}

impl Handler for DeleteTopicRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().topic(Operation::Delete, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<DeleteTopicResponse, Failure> {
        blocking(move || {
            delete_topic(&ctx, &self.name)?;
            tracing::info!(topic = %self.name, "deleted topic");
            Ok(DeleteTopicResponse)
        })
        .await
    }
}

/// Deletes topic `name` (either protocol's DeleteTopics) and drops the
/// decoded records the queues over it cached: a topic created again under
/// the name reuses the offsets, and a cached record must never stand in for
/// a new one. Blocking.
pub(crate) fn delete_topic(ctx: &Ctx, name: &str) -> Result<(), Failure> {
    ctx.topics().delete(name)?;
    for queue in ctx.queues().list() {
        if queue.settings().topic == name {
            queue.cache().clear();
        }
    }
    Ok(())
}

impl Handler for AlterTopicRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().topic(Operation::Alter, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<AlterTopicResponse, Failure> {
        blocking(move || {
            let topic = ctx.topics().alter(&self)?;
            let config = topic.meta.config();
            tracing::info!(topic = %self.name, ?config, "altered topic");
            Ok(AlterTopicResponse { config })
        })
        .await
    }
}

/// Lists only the topics the session may describe.
impl Handler for ListTopicsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().session()
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ListTopicsResponse, Failure> {
        let auth = ctx.authorizer();
        let topics = ctx
            .topics()
            .list()
            .iter()
            .filter(|t| auth.visible(ResourceKind::Topic, &t.meta.name))
            .map(|t| TopicListing {
                name: t.meta.name.clone(),
                partitions: t.meta.partitions,
            })
            .collect();
        Ok(ListTopicsResponse { topics })
    }
}

impl Handler for DescribeTopicRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().topic(Operation::Describe, &self.name)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<DescribeTopicResponse, Failure> {
        let topic = ctx.topics().require(&self.name)?;
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, log)| PartitionDescription {
                partition: i as u32,
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
                size_bytes: log.size_bytes(),
            })
            .collect();
        Ok(DescribeTopicResponse {
            name: topic.meta.name.clone(),
            config: topic.meta.config(),
            partitions,
        })
    }
}
