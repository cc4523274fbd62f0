//! Work queues over a topic: any number of members share a partition's
//! records, each record is locked to one member, acknowledged one by one,
//! redelivered after a nack (with a delay) or a lock expiry, and moved to a
//! dead-letter topic after `max_deliveries` or a reject.
//!
//! - [`settings`]: a queue's settings, their bounds and validation.
//! - [`cache`]: decoded records between the window fill and their hand-out,
//!   so each batch is decoded once.
//! - [`engine`]: a queue over real partition logs: window fill (following
//!   retention), reads of handed-out records, the dead-letter topic sink.
//! - [`partition`]: [`PartitionQueue`], the pure state machine of one
//!   (queue, partition): ack floor, bounded window, locks, delays, key
//!   ordering, dead letters, retention. Time is passed in.
//! - [`registry`]: [`QueueRegistry`], every queue's persisted settings and
//!   state, in one namespace with consumer groups.
//! - [`store`]: the durable state log of one queue (checksummed, group
//!   commit, compaction), and the recovery of interrupted dead-lettering.

pub mod cache;
pub mod engine;
pub mod partition;
pub mod registry;
pub mod settings;
pub mod store;

pub use partition::{
    DeadLetter, Delivery, MemberId, NackOutcome, PartitionDurable, PartitionQueue, PartitionStats,
    QueueStateError, Transition,
};
pub use registry::{Queue, QueueError, QueueRegistry};
pub use settings::{Backoff, Ordering, QueueSettings, SettingsError};
pub use store::{
    DeadLetterError, DeadLetterIntent, DeadLetterSink, QueueStore, QueueStoreError,
    QueueStoreOptions, SinkError, StateRecovery, StateUpdate,
};
