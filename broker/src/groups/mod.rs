//! Consumer groups: membership, server-side partition assignment with
//! incremental (cooperative) rebalances, and the durable offset store.
//!
//! - [`coordinator`]: [`GroupCoordinator`], the group state machine: members,
//!   generations, session expiry, the hand-over of partitions, and the
//!   checks that make a stale member's commit impossible.
//! - [`assignment`]: the pure, sticky and even assignment strategy.
//! - [`offsets`]: [`OffsetStore`], committed offsets in an append-only,
//!   checksummed, fsync'd file with group commit and compaction.
//! - [`classic`]: Kafka's classic group protocol (client-side assignment),
//!   whose groups live in the same coordinator, registry and offset store,
//!   so one group name has members of one [`GroupKind`] at a time and the
//!   skiff tools list, describe, reset and delete Kafka groups too.
//!
//! Membership lives in memory only: after a broker restart every member is
//! unknown and rejoins (its heartbeat answers `rejoin`). Committed offsets
//! are durable.

pub mod assignment;
pub mod classic;
pub mod coordinator;
pub mod offsets;

use skiff_protocol::messages::TopicPartition;

pub use coordinator::{
    GroupCoordinator, GroupLimits, JoinOutcome, JoinParams, KafkaGroupListing, MemberState,
    MemberView, Watched,
};
pub use offsets::{
    OffsetRecovery, OffsetStore, OffsetStoreError, OffsetStoreOptions, OffsetUpdate,
};

/// Longest group name, in bytes (the rule lives in
/// [`skiff_protocol::group_name`], shared with the client and the CLI).
pub use skiff_protocol::group_name::GROUP_NAME_BYTES_MAX;

/// Which protocol a group's members speak. A group name has members of one
/// kind at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupKind {
    /// skiff's own protocol: server-side assignment.
    Skiff,
    /// Kafka's classic group protocol: client-side assignment.
    Kafka,
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GroupKind::Skiff => "skiff",
            GroupKind::Kafka => "Kafka",
        })
    }
}

/// Why a group operation was refused or failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// No group has that name.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// The group does not know the member (it left, timed out, or the broker
    /// restarted).
    #[error("group {group:?} has no member {member_id:?} (it left or timed out): join again")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id sent.
        member_id: String,
    },
    /// The request's generation is not the group's current one.
    #[error(
        "group {group:?} is at generation {current}, the request carries generation {generation}: heartbeat and retry"
    )]
    StaleGeneration {
        /// The group.
        group: String,
        /// The generation sent.
        generation: u32,
        /// The group's generation.
        current: u32,
    },
    /// The member committed a partition it does not own.
    #[error("member {member_id:?} of group {group:?} does not own {partition} (owner: {})", owner.as_deref().unwrap_or("none"))]
    NotPartitionOwner {
        /// The group.
        group: String,
        /// The committing member.
        member_id: String,
        /// The partition.
        partition: TopicPartition,
        /// Its owner now, if any.
        owner: Option<String>,
    },
    /// The operation needs a group without members.
    #[error("group {group:?} has {members} member(s); stop its consumers first")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
    /// The broker has `groups_max` groups already.
    #[error("the broker already has {max} groups (groups_max)")]
    GroupLimitReached {
        /// The limit.
        max: usize,
    },
    /// The group has `group_members_max` members already.
    #[error("group {group:?} already has {max} members (group_members_max)")]
    MemberLimitReached {
        /// The group.
        group: String,
        /// The limit.
        max: usize,
    },
    /// The requested session timeout is outside the broker's bounds.
    #[error(
        "session timeout {requested_ms} ms is outside {min_ms}..={max_ms} ms (session_timeout_ms_min/max)"
    )]
    InvalidSessionTimeout {
        /// Requested.
        requested_ms: u32,
        /// Lower bound.
        min_ms: u32,
        /// Upper bound.
        max_ms: u32,
    },
    /// The request is malformed in a group-specific way (no topics, a bad
    /// group name).
    #[error("invalid group request: {0}")]
    Invalid(String),
    /// The name belongs to a work queue (groups and queues share names).
    #[error("{0:?} is a work queue, not a consumer group")]
    NameIsQueue(String),
    /// The name belongs to a consumer group (groups and queues share names).
    #[error("{0:?} is already a consumer group (with members or committed offsets)")]
    NameIsGroup(String),
    /// Storing offsets failed.
    #[error(transparent)]
    Store(#[from] OffsetStoreError),
    /// The group has members of the other protocol: one group name cannot
    /// have skiff and Kafka members at once.
    #[error(
        "group {group:?} has {members} {kind} member(s); a group cannot have skiff and Kafka members at once: use another group name or stop those members first"
    )]
    OtherKind {
        /// The group.
        group: String,
        /// The kind of the members it has.
        kind: GroupKind,
        /// How many there are.
        members: usize,
    },
    /// A new Kafka member must join again with the member id it was given
    /// (Kafka's MEMBER_ID_REQUIRED, JoinGroup v4+).
    #[error("group {group:?}: join again with member id {member_id:?}")]
    MemberIdRequired {
        /// The group.
        group: String,
        /// The id handed out.
        member_id: String,
    },
    /// The Kafka group is rebalancing: the member must rejoin.
    #[error("group {group:?} is rebalancing: join again")]
    RebalanceInProgress {
        /// The group.
        group: String,
    },
    /// A Kafka member's generation is not the group's (Kafka's
    /// ILLEGAL_GENERATION).
    #[error(
        "group {group:?} is at generation {current}, the request carries generation {generation}: join again"
    )]
    IllegalGeneration {
        /// The group.
        group: String,
        /// The generation sent.
        generation: i32,
        /// The group's generation.
        current: i32,
    },
    /// A Kafka member's protocol type or protocols do not fit the group's.
    #[error("group {group:?}: inconsistent group protocol: {reason}")]
    InconsistentProtocol {
        /// The group.
        group: String,
        /// What does not fit.
        reason: String,
    },
    /// The coordinator stopped (broker shutdown) before answering.
    #[error("the group coordinator is shutting down")]
    Closed,
}

/// Checks a group name against [`skiff_protocol::group_name`]'s rule (1 to
/// [`GROUP_NAME_BYTES_MAX`] bytes, no control characters); a bad name is an
/// invalid request.
pub fn validate_group_name(name: &str) -> Result<(), GroupError> {
    skiff_protocol::group_name::validate_group_name(name)
        .map_err(|e| GroupError::Invalid(e.to_string()))
}
