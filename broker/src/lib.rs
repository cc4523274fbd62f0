//! skiff-broker: the broker as a library, with `skiffd` as a thin main.
//!
//! - [`log`]: the partition log, an append-only, segmented, checksummed log
//!   on disk (group commit, recovery, retention).
//! - [`topics`]: the topic registry and its persisted metadata.
//! - [`groups`]: consumer groups (assignment, rebalances, session expiry)
//!   and the durable committed-offset store.
//! - [`server`]: listener (plaintext or TLS), connections, request handlers,
//!   shutdown.
//! - [`telemetry`]: metric names and the Prometheus endpoint.
//! - [`config`]: one [`BrokerConfig`] from file, environment and flags.
//!
//! Embedding (e.g. in a service's integration tests): one line,
//! `Broker::start_temp().await?`, starts a broker on port 0 in a temporary
//! directory it removes afterwards ([`TempBroker`]); or start one with your
//! own [`BrokerConfig`] through [`Broker::start`], connect to
//! [`BrokerHandle::local_addr`], and call [`BrokerHandle::shutdown`].

pub mod auth;
pub mod clock;
pub mod config;
pub mod embedded;
pub mod fsutil;
pub mod groups;
pub mod log;
mod poison;
pub mod producer_ids;
pub mod server;
pub mod telemetry;
pub mod topics;

pub use config::BrokerConfig;
pub use embedded::TempBroker;
pub use server::{Broker, BrokerError, BrokerHandle, TlsError};
