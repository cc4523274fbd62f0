//! skiff-broker: the broker as a library, with `skiffd` as a thin main.
//!
//! # Public face
//!
//! Embedders and `skiffd` use only what this file re-exports:
//!
//! - [`Broker`], [`BrokerHandle`], [`BrokerConfig`] and [`TempBroker`]: start
//!   a broker (`Broker::start_temp().await?` starts one on port 0 in a
//!   temporary directory it removes afterwards; or [`Broker::start`] with
//!   your own config), connect to [`BrokerHandle::local_addr`], call
//!   [`BrokerHandle::shutdown`].
//! - [`Durability`]: the `fsync` setting of [`BrokerConfig`].
//! - [`BootstrapUser`], [`PhcHash`], [`hash_password`], [`verify_password`]:
//!   users created at start (`[[users]]`, `skiffd hash-password`).
//! - The errors those return ([`BrokerError`] and what it wraps).
//! - [`PRODUCER_BATCHES_REMEMBERED`] and the segment limits, which clients
//!   and operators rely on.
//!
//! Everything else (the partition log, topics, groups, the server) is
//! private to the crate. The internals:
//!
//! - `log`: the partition log, an append-only, segmented, checksummed log
//!   on disk (group commit, recovery, retention, fault hooks for tests).
//! - `topics`: the topic registry and its persisted metadata.
//! - `groups`: consumer groups (assignment, rebalances, session expiry) and
//!   the durable committed-offset store.
//! - `queues`: work queues (per-record locks, acks, redelivery, dead
//!   letters) over topics, with their durable state logs.
//! - `server`: listener (plaintext or TLS), connections, request handlers,
//!   shutdown.
//! - `kafka`: the Kafka wire protocol on a second listener (`kafka_listen`),
//!   over the same services; record batches translated at the edge.
//! - `telemetry`: metric names and the Prometheus endpoint.
//! - `config`: one [`BrokerConfig`] from file, environment and flags.
//! - `poison`: the one lock-poisoning policy.
//!
//! # The `testing` feature
//!
//! Test seams, like fjall's `__internal_whitebox`: with `features =
//! ["testing"]` (this crate's own tests and the workspace's benches and
//! black-box tests enable it as a dev-dependency; normal builds never do),
//! the modules [`log`] (the partition log itself, and `log::faults`: storage
//! fault injection, armed per thread, which otherwise compiles away) and
//! [`groups`] (the offset store) are public, and `scram_client_final` (the
//! client side of a SCRAM login) is exported. Nothing in them is a stable API.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod clock;
mod config;
mod embedded;
// With `testing`, `fsio::power` (simulated power loss) is public.
#[cfg(feature = "testing")]
pub mod fsio;
#[cfg(not(feature = "testing"))]
mod fsio;
#[cfg(feature = "testing")]
pub mod groups;
// Without `testing`, the items only tests and benches use look unused.
#[cfg(not(feature = "testing"))]
#[allow(dead_code, unused_imports)]
mod groups;
#[cfg(feature = "testing")]
pub mod log;
#[cfg(not(feature = "testing"))]
#[allow(dead_code, unused_imports)]
mod log;
// With `testing`, `kafka::records` (the batch translation) is public for
// the benches.
#[cfg(feature = "testing")]
pub mod kafka;
#[cfg(not(feature = "testing"))]
mod kafka;
mod poison;
mod producer_ids;
#[cfg(feature = "testing")]
pub mod queues;
// Without `testing`, the items only tests use look unused.
#[cfg(not(feature = "testing"))]
#[allow(dead_code, unused_imports)]
mod queues;
mod server;
mod telemetry;
mod topics;

pub use auth::{
    BootstrapUser, HashError, PhcHash, SecurityError, StoreError, hash_password,
    password::verify_password,
};
// With `testing`, the client side of a SCRAM login (raw-protocol tests).
#[cfg(feature = "testing")]
pub use auth::scram::{ScramMechanism, client_final_message as scram_client_final};
pub use config::{BrokerConfig, ConfigError, ENV_NOT_KEYS, ENV_PREFIX, KEYS, env_var_name};
pub use embedded::TempBroker;
pub use groups::GroupError;
pub use log::limits::{
    AGE_MS_MAX, AGE_MS_MIN, LimitError, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
pub use log::{Durability, LogError, PRODUCER_BATCHES_REMEMBERED, ParseDurabilityError};
pub use producer_ids::ProducerIdError;
pub use server::{Broker, BrokerError, BrokerHandle, TlsError};
pub use telemetry::TelemetryError;
pub use topics::TopicError;
