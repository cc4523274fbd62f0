//! CreateTopics, DeleteTopics, DescribeConfigs and CreatePartitions over
//! the topic registry
//! (creation and deletion touch disk, so they run on the blocking pool).
//! skiff keeps one copy of each partition: a replication factor other than
//! 1 (or -1, the default) and explicit replica assignments are refused.
//! The topic configs skiff has are mapped to Kafka's names:
//! `retention.ms`, `retention.bytes`, `segment.bytes`, `segment.ms`,
//! `cleanup.policy` (only `delete`) and `compression.type` (only
//! `producer`: batches keep the producer's codec, which is what skiff
//! does); any other config is refused with INVALID_CONFIG.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
};
use skiff_protocol::messages::{ApiKey as SkiffApi, Operation, TopicConfig};

use super::{kstr, ktopic};
use crate::kafka::api::{KafkaApi, Reply};
use crate::kafka::errors;
use crate::server::api::{Ctx, Runs};
use crate::server::handlers::blocking;

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// DescribeConfigs config types.
const TYPE_STRING: i8 = 2;
const TYPE_LONG: i8 = 5;

/// A Kafka error with its message.
type Refusal = (i16, String);

/// Reads a Kafka topic config value as skiff's optional limit (-1: none).
fn limit(name: &str, value: &str) -> Result<Option<u64>, Refusal> {
    match value.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(v) if v >= 0 => Ok(Some(v as u64)),
        _ => Err((
            errors::INVALID_CONFIG,
            format!("{name} = {value:?} is not a number of at least -1"),
        )),
    }
}

/// The skiff topic config for a CreateTopics entry.
fn topic_config(
    partitions: u32,
    configs: &[(String, Option<String>)],
) -> Result<TopicConfig, Refusal> {
    let mut config = TopicConfig {
        partitions,
        ..TopicConfig::default()
    };
    for (name, value) in configs {
        let Some(value) = value else { continue };
        match name.as_str() {
            "retention.ms" => config.retention_ms = limit(name, value)?,
            "retention.bytes" => config.retention_bytes = limit(name, value)?,
            "segment.bytes" => config.segment_bytes = limit(name, value)?,
            "segment.ms" => config.segment_ms = limit(name, value)?,
            "cleanup.policy" if value == "delete" => {}
            "compression.type" if value == "producer" => {}
            _ => {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("skiff does not support the topic config {name} = {value:?}"),
                ));
            }
        }
    }
    Ok(config)
}

/// Needs `create` on each topic.
impl KafkaApi for CreateTopicsRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::CreateTopic;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<CreateTopicsResponse> {
        let mut results = Vec::new();
        for t in self.topics {
            let name = t.name.0.as_str().to_owned();
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.as_str().to_owned(),
                        c.value.as_ref().map(|v| v.as_str().to_owned()),
                    )
                })
                .collect();
            let partitions = match t.num_partitions {
                -1 => Ok(ctx.config().default_partitions),
                n if n >= 1 => Ok(n as u32),
                n => Err((
                    errors::INVALID_PARTITIONS,
                    format!("{n} partitions: at least 1"),
                )),
            };
            let outcome = async {
                let partitions = partitions?;
                if ![-1, 1].contains(&t.replication_factor) {
                    return Err((
                        errors::INVALID_REPLICATION_FACTOR,
                        format!(
                            "replication factor {}: skiff keeps one copy (1)",
                            t.replication_factor
                        ),
                    ));
                }
                if !t.assignments.is_empty() {
                    return Err((
                        errors::INVALID_REPLICA_ASSIGNMENT,
                        "skiff has one broker: no replica assignments".to_owned(),
                    ));
                }
                let config = topic_config(partitions, &configs)?;
                ctx.authorizer()
                    .topic(Operation::Create, &name)
                    .map_err(|f| (errors::topic_code(&f), f.message))?;
                if self.validate_only {
                    if ctx.topics().get(&name).is_some() {
                        return Err((
                            errors::TOPIC_ALREADY_EXISTS,
                            format!("topic {name:?} already exists"),
                        ));
                    }
                    return Ok(partitions);
                }
                let creating = ctx.clone();
                let topic = name.clone();
                blocking(move || Ok(creating.topics().create(&topic, &config)?))
                    .await
                    .map_err(|f| (errors::topic_code(&f), f.message))?;
                Ok(partitions)
            }
            .await;
            let mut result = CreatableTopicResult::default().with_name(ktopic(name));
            match outcome {
                Ok(partitions) => {
                    if version >= 5 {
                        result = result
                            .with_num_partitions(partitions as i32)
                            .with_replication_factor(1);
                    }
                }
                Err((code, message)) => {
                    result = result
                        .with_error_code(code)
                        .with_error_message(Some(kstr(message)));
                }
            }
            results.push(result);
        }
        Reply::Respond(CreateTopicsResponse::default().with_topics(results))
    }
}

/// Needs `delete` on each topic.
impl KafkaApi for DeleteTopicsRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::DeleteTopic;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<DeleteTopicsResponse> {
        let names: Vec<Option<String>> = if version >= 6 {
            self.topics
                .iter()
                .map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
                .collect()
        } else {
            self.topic_names
                .iter()
                .map(|n| Some(n.0.as_str().to_owned()))
                .collect()
        };
        let mut results = Vec::new();
        for name in names {
            let Some(name) = name else {
                // Topic ids: skiff's topics have none.
                results.push(
                    DeletableTopicResult::default()
                        .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                );
                continue;
            };
            let outcome = match ctx.authorizer().topic(Operation::Delete, &name) {
                Err(f) => Err(f),
                Ok(()) => {
                    let deleting = ctx.clone();
                    let topic = name.clone();
                    blocking(move || {
                        crate::server::handlers::topics::delete_topic(&deleting, &topic)
                    })
                    .await
                }
            };
            let mut result = DeletableTopicResult::default().with_name(Some(ktopic(name)));
            if let Err(f) = outcome {
                result = result.with_error_code(errors::topic_code(&f));
                if version >= 5 {
                    result = result.with_error_message(Some(kstr(f.message)));
                }
            }
            results.push(result);
        }
        Reply::Respond(DeleteTopicsResponse::default().with_responses(results))
    }
}

/// Refuses every topic (see the module comment), with Kafka's error for
/// each: TOPIC_AUTHORIZATION_FAILED without `alter` on it,
/// UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS for a count not above
/// the current one (Kafka's own messages) and for growth. `validate_only`
/// gets the same answers: the change would fail.
impl KafkaApi for CreatePartitionsRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::AlterTopic;

    async fn handle(self, _version: i16, ctx: Ctx) -> Reply<CreatePartitionsResponse> {
        let results = self
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str();
                let (code, message) = create_partitions_refusal(&ctx, name, t.count);
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code)
                    .with_error_message(Some(kstr(message)))
            })
            .collect();
        Reply::Respond(CreatePartitionsResponse::default().with_results(results))
    }
}

fn create_partitions_refusal(ctx: &Ctx, name: &str, count: i32) -> Refusal {
    if let Err(f) = ctx.authorizer().topic(Operation::Alter, name) {
        return (errors::topic_code(&f), f.message);
    }
    let Some(topic) = ctx.topics().get(name) else {
        return (
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        );
    };
    let current = i64::from(topic.meta.partitions);
    let message = match i64::from(count) {
        c if c == current => format!("Topic already has {current} partitions."),
        c if c < current => format!(
            "Topic currently has {current} partitions, which is higher than the requested {c}."
        ),
        c => format!(
            "skiff cannot add partitions to a topic (it has {current}, {c} requested): \
             keys already hashed to a partition would move; create a new topic with \
             {c} partitions instead"
        ),
    };
    (errors::INVALID_PARTITIONS, message)
}

/// One config entry: name, value, source, type.
fn entry(
    version: i16,
    name: &str,
    value: String,
    source: i8,
    kind: i8,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(kstr(name))
        .with_value(Some(kstr(value)))
        .with_config_source(source);
    if version >= 3 {
        e = e.with_config_type(kind);
    }
    e
}

/// A topic setting: its own value, else the broker's, else Kafka's "none".
fn setting(own: Option<u64>, broker: Option<u64>, none: &str) -> (String, i8) {
    match (own, broker) {
        (Some(v), _) => (v.to_string(), SOURCE_TOPIC),
        (None, Some(v)) => (v.to_string(), SOURCE_BROKER),
        (None, None) => (none.to_owned(), SOURCE_DEFAULT),
    }
}

/// Needs `describe` on each topic; broker resources are answered with no
/// configs.
impl KafkaApi for DescribeConfigsRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::DescribeTopic;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<DescribeConfigsResponse> {
        let config = ctx.config();
        let mut results = Vec::new();
        for r in self.resources {
            let name = r.resource_name.as_str().to_owned();
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(kstr(name.clone()));
            // No keys (null, or an empty list): every config.
            let wanted = |key: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == key))
            };
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let found = ctx
                        .authorizer()
                        .topic(Operation::Describe, &name)
                        .and_then(|()| Ok(ctx.topics().require(&name)?));
                    match found {
                        Err(f) => {
                            result = result
                                .with_error_code(errors::topic_code(&f))
                                .with_error_message(Some(kstr(f.message)));
                        }
                        Ok(topic) => {
                            let m = &topic.meta;
                            let never = i64::MAX.to_string();
                            let all = [
                                (
                                    "retention.ms",
                                    setting(m.retention_ms, config.retention_ms, "-1"),
                                    TYPE_LONG,
                                ),
                                (
                                    "retention.bytes",
                                    setting(m.retention_bytes, config.retention_bytes, "-1"),
                                    TYPE_LONG,
                                ),
                                (
                                    "segment.bytes",
                                    setting(m.segment_bytes, Some(config.segment_bytes), "-1"),
                                    TYPE_LONG,
                                ),
                                (
                                    "segment.ms",
                                    setting(m.segment_ms, config.segment_ms, &never),
                                    TYPE_LONG,
                                ),
                                (
                                    "cleanup.policy",
                                    ("delete".to_owned(), SOURCE_DEFAULT),
                                    TYPE_STRING,
                                ),
                                (
                                    "compression.type",
                                    ("producer".to_owned(), SOURCE_DEFAULT),
                                    TYPE_STRING,
                                ),
                            ];
                            result.configs = all
                                .into_iter()
                                .filter(|(key, _, _)| wanted(key))
                                .map(|(key, (value, source), kind)| {
                                    entry(version, key, value, source, kind)
                                })
                                .collect();
                        }
                    }
                }
                RESOURCE_BROKER => {}
                other => {
                    result = result
                        .with_error_code(errors::INVALID_REQUEST)
                        .with_error_message(Some(kstr(format!(
                            "resource type {other} is not served (topics: 2, brokers: 4)"
                        ))));
                }
            }
            results.push(result);
        }
        Reply::Respond(DescribeConfigsResponse::default().with_results(results))
    }
}
