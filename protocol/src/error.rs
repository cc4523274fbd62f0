//! Error codes: the closed set of failures a broker reports in a response
//! header. Shared by broker and client; a code's number never changes once
//! released, and unknown numbers decode to [`ErrorCode::Unknown`] so an old
//! client still shows a newer broker's error message.

use std::fmt;

/// A response's error code. `None` (0) means success; every other code comes
/// with a human-readable message in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Success.
    None = 0,
    /// An error the broker could not classify (also any code this client does
    /// not know).
    Unknown = 1,
    /// The request frame or body could not be decoded.
    MalformedRequest = 2,
    /// The API key is not one this broker serves.
    UnsupportedApi = 3,
    /// The API version is not one this broker serves for that key.
    UnsupportedVersion = 4,
    /// The frame is larger than the broker's `frame_bytes_max`.
    FrameTooLarge = 5,
    /// The named topic does not exist.
    UnknownTopic = 6,
    /// A topic with that name already exists.
    TopicAlreadyExists = 7,
    /// The topic name breaks the naming rules.
    InvalidTopicName = 8,
    /// The partition does not exist in the topic.
    UnknownPartition = 9,
    /// A create request asked for an invalid partition count or config.
    InvalidConfig = 10,
    /// A produced batch failed its length, magic or CRC checks.
    CorruptBatch = 11,
    /// The requested offset is outside the partition's log.
    OffsetOutOfRange = 12,
    /// The disk is full: the append was not written.
    StorageFull = 13,
    /// Another storage failure: the append was not acknowledged.
    StorageError = 14,
    /// Data on disk failed its checksum on read.
    CorruptData = 15,
    /// The broker is shutting down and takes no new work.
    ShuttingDown = 16,
    /// The request arrived before a handshake, or the handshake was invalid.
    HandshakeRequired = 17,
    /// A request field is outside its allowed range.
    InvalidRequest = 18,
    /// The named consumer group does not exist.
    UnknownGroup = 19,
    /// The group does not know this member id (it left, timed out, or the broker restarted): join again.
    UnknownMember = 20,
    /// The request carries an old generation of the group: heartbeat to learn the current one.
    StaleGeneration = 21,
    /// The member does not own the partition it tried to commit.
    NotPartitionOwner = 22,
    /// The operation needs a group without members, and this one has some.
    GroupNotEmpty = 23,
    /// The broker already has `groups_max` groups.
    GroupLimitReached = 24,
    /// The group already has `group_members_max` members.
    MemberLimitReached = 25,
    /// The requested session timeout is outside the broker's bounds.
    InvalidSessionTimeout = 26,
    /// An idempotent producer's batch does not continue its sequence for the
    /// partition (a gap or a reorder): nothing was written.
    OutOfOrderSequence = 27,
    /// An idempotent producer's batch repeats a sequence older than the
    /// batches the broker remembers: it was stored before, but its offsets
    /// are no longer known. Nothing was written.
    DuplicateSequence = 28,
    /// The producer epoch is older than one the partition has seen: another
    /// producer instance took over this producer id.
    ProducerFenced = 29,
    /// The handshake's credentials were missing, unknown or wrong (the
    /// message never says which, so it cannot be used to probe for users).
    AuthenticationFailed = 30,
    /// The authenticated user may not do this operation on this resource;
    /// the message names the user, the operation and the resource.
    NotAuthorized = 31,
    /// The group has members of the other protocol (Kafka members for a
    /// skiff join, or the reverse): one group name cannot have both.
    GroupKindConflict = 32,
}

impl ErrorCode {
    /// Every defined code, in numeric order.
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::None,
        ErrorCode::Unknown,
        ErrorCode::MalformedRequest,
        ErrorCode::UnsupportedApi,
        ErrorCode::UnsupportedVersion,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownTopic,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidTopicName,
        ErrorCode::UnknownPartition,
        ErrorCode::InvalidConfig,
        ErrorCode::CorruptBatch,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::StorageFull,
        ErrorCode::StorageError,
        ErrorCode::CorruptData,
        ErrorCode::ShuttingDown,
        ErrorCode::HandshakeRequired,
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownGroup,
        ErrorCode::UnknownMember,
        ErrorCode::StaleGeneration,
        ErrorCode::NotPartitionOwner,
        ErrorCode::GroupNotEmpty,
        ErrorCode::GroupLimitReached,
        ErrorCode::MemberLimitReached,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::OutOfOrderSequence,
        ErrorCode::DuplicateSequence,
        ErrorCode::ProducerFenced,
        ErrorCode::AuthenticationFailed,
        ErrorCode::NotAuthorized,
        ErrorCode::GroupKindConflict,
    ];

    /// The code's number on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// Maps a wire number to a code; numbers this side does not know become
    /// [`ErrorCode::Unknown`].
    pub fn from_u16(v: u16) -> ErrorCode {
        ErrorCode::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(ErrorCode::Unknown)
    }

    /// A short stable name, e.g. `unknown_topic`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "none",
            ErrorCode::Unknown => "unknown",
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::UnsupportedApi => "unsupported_api",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownTopic => "unknown_topic",
            ErrorCode::TopicAlreadyExists => "topic_already_exists",
            ErrorCode::InvalidTopicName => "invalid_topic_name",
            ErrorCode::UnknownPartition => "unknown_partition",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::CorruptBatch => "corrupt_batch",
            ErrorCode::OffsetOutOfRange => "offset_out_of_range",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::CorruptData => "corrupt_data",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::HandshakeRequired => "handshake_required",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownGroup => "unknown_group",
            ErrorCode::UnknownMember => "unknown_member",
            ErrorCode::StaleGeneration => "stale_generation",
            ErrorCode::NotPartitionOwner => "not_partition_owner",
            ErrorCode::GroupNotEmpty => "group_not_empty",
            ErrorCode::GroupLimitReached => "group_limit_reached",
            ErrorCode::MemberLimitReached => "member_limit_reached",
            ErrorCode::InvalidSessionTimeout => "invalid_session_timeout",
            ErrorCode::OutOfOrderSequence => "out_of_order_sequence",
            ErrorCode::DuplicateSequence => "duplicate_sequence",
            ErrorCode::ProducerFenced => "producer_fenced",
            ErrorCode::AuthenticationFailed => "authentication_failed",
            ErrorCode::NotAuthorized => "not_authorized",
            ErrorCode::GroupKindConflict => "group_kind_conflict",
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::StorageFull | ErrorCode::StorageError | ErrorCode::ShuttingDown
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_numbered_in_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.as_u16() as usize, i);
            assert_eq!(ErrorCode::from_u16(code.as_u16()), *code);
        }
        assert_eq!(ErrorCode::from_u16(9999), ErrorCode::Unknown);
    }
}
