//! skiff-client: the async Rust client for the skiff broker.
//!
//! - [`Client`]: a reconnecting handle to one broker; every other type is
//!   built on it. [`Connection`] is the single pipelined socket underneath.
//! - [`Admin`]: create, delete, list and describe topics; list, describe,
//!   reset and delete consumer groups.
//! - [`Producer`]: batches records per partition and sends them with several
//!   requests in flight; each [`Producer::send`] resolves to the record's
//!   partition and offset.
//! - [`Consumer`]: reads assigned partitions from a starting point, as a
//!   [`futures::Stream`] of [`ConsumedRecord`]s; or, with
//!   [`Consumer::with_group`], shares a topic's partitions with the other
//!   members of a consumer group, committing what it delivered
//!   (at-least-once).
//!
//! TLS: a `skiffs://host:port` address or [`ClientConfig::tls_ca_file`]
//! connects with TLS, verifying the broker against that CA file only;
//! [`ClientConfig::tls_client_cert`] adds a client certificate (mutual TLS).
//!
//! Every error is a typed [`Error`].
//!
//! ```no_run
//! use futures::StreamExt;
//! use skiff_client::{Client, ClientConfig, Consumer, ConsumerConfig, Producer,
//!                    ProducerConfig, ProducerRecord, StartFrom, TopicConfig};
//!
//! # async fn run() -> Result<(), skiff_client::Error> {
//! let client = Client::connect(ClientConfig::new("127.0.0.1:9400")).await?;
//! client.admin().create_topic("orders", TopicConfig { partitions: 3, ..Default::default() }).await?;
//!
//! let producer = Producer::new(client.clone(), ProducerConfig::default());
//! let ack = producer.send(ProducerRecord::new("orders", "hello").key("customer-7")).await?;
//! println!("stored at {}/{}", ack.partition, ack.offset);
//!
//! let mut consumer = Consumer::new(client, ConsumerConfig::default());
//! consumer.assign_all("orders", StartFrom::Earliest).await?;
//! while let Some(record) = consumer.next().await {
//!     let record = record?;
//!     println!("{}: {:?}", record.offset, record.value);
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(rustdoc::missing_crate_level_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![deny(rustdoc::private_intra_doc_links)]

mod admin;
mod client;
mod config;
mod connection;
mod consumer;
mod error;
mod group;
mod producer;
mod queue;
mod security;
mod tls;

pub use admin::Admin;
pub use client::Client;
pub use config::{
    BROKER_DEFAULT, CONNECT_TIMEOUT_MS_DEFAULT, ClientConfig, RECONNECT_ATTEMPTS_MAX_DEFAULT,
    RECONNECT_BACKOFF_INITIAL_MS_DEFAULT, RECONNECT_BACKOFF_MAX_MS_DEFAULT,
    REQUEST_TIMEOUT_MS_DEFAULT, RESPONSE_FRAME_HEADROOM_BYTES,
};
pub use connection::{Connection, PendingResponse};
pub use consumer::{
    ConsumedRecord, Consumer, ConsumerConfig, FETCH_BYTES_MAX_DEFAULT, MAX_WAIT_MS_DEFAULT,
    OffsetReset, StartFrom,
};
pub use error::{Error, Result};
pub use group::{
    AUTO_COMMIT_INTERVAL_MS_DEFAULT, AutoCommit, COMMIT_ATTEMPTS_MAX, GroupConfig, RebalanceEvent,
};
pub use producer::{
    Ack, BATCH_BYTES_MAX_DEFAULT, BUFFER_BYTES_MAX_DEFAULT, IDEMPOTENT_IN_FLIGHT_MAX,
    IN_FLIGHT_MAX_DEFAULT, LINGER_MS_DEFAULT, Producer, ProducerConfig, ProducerRecord,
    RECORD_BYTES_MAX, RETRIES_MAX_DEFAULT, SendFuture,
};
pub use queue::{
    Delivery, QUEUE_RECEIVE_RECORDS_DEFAULT, QUEUE_RECEIVE_WAIT_MS_DEFAULT, QueueConsumer,
    QueueConsumerConfig,
};
pub use security::SecurityAdmin;
pub use tls::{SCHEME_PLAIN, SCHEME_TLS};

/// The wire contract, for [`Connection`]-level use.
pub use skiff_protocol as protocol;
pub use skiff_protocol::ErrorCode;
pub use skiff_protocol::Secret;
pub use skiff_protocol::batch::Header;
/// Batch compression settings for [`ProducerConfig`].
pub use skiff_protocol::compression::{Compression, Level as CompressionLevel};
/// Longest group name, in bytes: the broker's limit, from
/// [`protocol::group_name`].
pub use skiff_protocol::group_name::GROUP_NAME_BYTES_MAX;
pub use skiff_protocol::messages::{
    AclEntry, Credentials, Operation, Operations, ResourceKind, ResourcePattern, UserListing,
};
pub use skiff_protocol::messages::{
    AlterTopicRequest, ConfigChange, DescribeGroupResponse, DescribeTopicResponse, GroupListing,
    GroupState, MemberDescription, PartitionDescription, PartitionProgress, ResetTo,
    StatusResponse, TopicCompression, TopicConfig, TopicListing, TopicPartition,
    UnknownTopicCompression,
};
