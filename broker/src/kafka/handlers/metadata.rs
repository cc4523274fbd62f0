//! Metadata and DescribeCluster: this broker is the whole cluster (node
//! [`NODE_ID`], at the advertised address, controller and leader of every
//! partition). Metadata creates a missing topic when the client allows it
//! (v4+; always before), the broker's `auto_create_topics` is on and the
//! session may create it. Topics the session may not describe are refused
//! per topic (TOPIC_AUTHORIZATION_FAILED) or left out of a full listing.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};
use skiff_protocol::messages::{ApiKey as SkiffApi, Operation, ResourceKind};

use super::{kstr, ktopic};
use crate::kafka::api::{KafkaApi, Reply};
use crate::kafka::{Advertised, CLUSTER_ID, NODE_ID, errors};
use crate::server::api::{Ctx, Runs};
use crate::server::handlers::produce::auto_create;
use crate::topics::Topic;

fn advertised(ctx: &Ctx) -> Advertised {
    // Only a Kafka listener's connections get here.
    ctx.kafka().cloned().unwrap_or(Advertised {
        host: String::new(),
        port: 0,
    })
}

fn topic_entry(topic: &Topic) -> MetadataResponseTopic {
    let partitions = (0..topic.meta.partitions as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(NODE_ID))
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(ktopic(topic.meta.name.clone())))
        .with_partitions(partitions)
}

fn topic_error(name: String, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(ktopic(name)))
        .with_error_code(code)
}

/// Needs `describe` per topic (and `create` to auto-create one).
impl KafkaApi for MetadataRequest {
    // Auto-creation writes to disk.
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::ListTopics;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<MetadataResponse> {
        let may_create_any = version < 4 || self.allow_auto_topic_creation;
        let requested: Option<Vec<String>> = match self.topics {
            None => None,
            Some(t) if t.is_empty() && version == 0 => None,
            Some(t) => Some(
                t.into_iter()
                    .map(|t| t.name.map(|n| n.0.as_str().to_owned()).unwrap_or_default())
                    .collect(),
            ),
        };
        let mut topics = Vec::new();
        match requested {
            None => {
                let auth = ctx.authorizer();
                for topic in ctx.topics().list() {
                    if auth.visible(ResourceKind::Topic, &topic.meta.name) {
                        topics.push(topic_entry(&topic));
                    }
                }
            }
            Some(names) => {
                for name in names {
                    topics.push(one_topic(&ctx, name, may_create_any).await);
                }
            }
        }
        let node = advertised(&ctx);
        let mut response = MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(kstr(node.host))
                    .with_port(node.port),
            ])
            .with_topics(topics);
        if version >= 1 {
            response = response.with_controller_id(BrokerId(NODE_ID));
        }
        if version >= 2 {
            response = response.with_cluster_id(Some(kstr(CLUSTER_ID)));
        }
        Reply::Respond(response)
    }
}

async fn one_topic(ctx: &Ctx, name: String, may_create_any: bool) -> MetadataResponseTopic {
    if name.is_empty() {
        return topic_error(name, errors::INVALID_TOPIC_EXCEPTION);
    }
    if let Err(f) = ctx.authorizer().topic(Operation::Describe, &name) {
        return topic_error(name, errors::topic_code(&f));
    }
    if let Some(topic) = ctx.topics().get(&name) {
        return topic_entry(&topic);
    }
    let may_create = may_create_any
        && ctx.config().auto_create_topics
        && ctx.authorizer().topic_allows(Operation::Create, &name);
    if !may_create {
        return topic_error(name, errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match auto_create(ctx, name.clone()).await {
        Ok(topic) => topic_entry(&topic),
        Err(f) => topic_error(name, errors::topic_code(&f)),
    }
}

/// Needs a valid session (any user once authentication is on).
impl KafkaApi for DescribeClusterRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::Status;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<DescribeClusterResponse> {
        let mut response = DescribeClusterResponse::default();
        if version >= 1 {
            response = response.with_endpoint_type(self.endpoint_type);
        }
        if let Err(f) = ctx.authorizer().session() {
            return Reply::Respond(
                response
                    .with_error_code(errors::code_of(f.code, true))
                    .with_error_message(Some(kstr(f.message))),
            );
        }
        let node = advertised(&ctx);
        Reply::Respond(
            response
                .with_cluster_id(kstr(CLUSTER_ID))
                .with_controller_id(BrokerId(NODE_ID))
                .with_brokers(vec![
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(NODE_ID))
                        .with_host(kstr(node.host))
                        .with_port(node.port),
                ]),
        )
    }
}
