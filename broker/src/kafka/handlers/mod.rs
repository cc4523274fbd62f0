//! The Kafka front end's handlers, one [`KafkaApi`](super::api::KafkaApi)
//! per API of the table, grouped by the service they use:
//!
//! - `api_versions`: the served ranges, from the table;
//! - `metadata`: brokers, topics and partitions (auto-creation), and
//!   DescribeCluster;
//! - `produce`: Produce (batches translated, then the ordered pipeline)
//!   and InitProducerId;
//! - `fetch`: Fetch (long poll, batches translated back) and ListOffsets;
//! - `topics`: CreateTopics, DeleteTopics, DescribeConfigs, and
//!   CreatePartitions (refused: partition counts are fixed);
//! - `groups`: FindCoordinator and the consumer-group APIs (JoinGroup,
//!   SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//!   ListGroups, DescribeGroups, DeleteGroups) over the group coordinator.

pub(crate) mod api_versions;
mod fetch;
mod groups;
mod metadata;
mod produce;
mod topics;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// A Kafka string from a Rust one.
pub(crate) fn kstr(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A Kafka topic name from a Rust string.
pub(crate) fn ktopic(s: impl Into<String>) -> TopicName {
    TopicName(kstr(s))
}
