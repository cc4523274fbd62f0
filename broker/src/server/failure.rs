//! How a failed request is reported: an error code and a message naming what
//! was wrong, built from the typed errors of the layers below.

use skiff_protocol::ErrorCode;
use skiff_protocol::frame::OutgoingResponse;
use skiff_protocol::primitives::DecodeError;

use crate::groups::{GroupError, OffsetStoreError};
use crate::log::LogError;
use crate::topics::TopicError;

/// A request's failure as the client will see it.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn into_response(self, correlation_id: u32) -> OutgoingResponse {
        OutgoingResponse::error(correlation_id, self.code, &self.message)
    }
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Failure::new(
            ErrorCode::MalformedRequest,
            format!("malformed request: {e}"),
        )
    }
}

impl From<LogError> for Failure {
    fn from(e: LogError) -> Self {
        let code = match &e {
            LogError::InvalidBatch(_) => ErrorCode::CorruptBatch,
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::Corrupt { .. } => ErrorCode::CorruptData,
            LogError::StorageFull { .. } => ErrorCode::StorageFull,
            LogError::Closed => ErrorCode::ShuttingDown,
            LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
            LogError::DuplicateSequence { .. } => ErrorCode::DuplicateSequence,
            LogError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
            _ => ErrorCode::StorageError,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<TopicError> for Failure {
    fn from(e: TopicError) -> Self {
        let e = match e {
            TopicError::Log(inner) => return inner.into(),
            other => other,
        };
        let code = match &e {
            TopicError::InvalidName(_) => ErrorCode::InvalidTopicName,
            TopicError::AlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            TopicError::NotFound(_) => ErrorCode::UnknownTopic,
            TopicError::UnknownPartition { .. } => ErrorCode::UnknownPartition,
            TopicError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            _ => ErrorCode::StorageError,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<GroupError> for Failure {
    fn from(e: GroupError) -> Self {
        let code = match &e {
            GroupError::UnknownGroup(_) => ErrorCode::UnknownGroup,
            GroupError::UnknownMember { .. } => ErrorCode::UnknownMember,
            GroupError::StaleGeneration { .. } => ErrorCode::StaleGeneration,
            GroupError::NotPartitionOwner { .. } => ErrorCode::NotPartitionOwner,
            GroupError::GroupNotEmpty { .. } => ErrorCode::GroupNotEmpty,
            GroupError::GroupLimitReached { .. } => ErrorCode::GroupLimitReached,
            GroupError::MemberLimitReached { .. } => ErrorCode::MemberLimitReached,
            GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
            GroupError::Invalid(_) | GroupError::NameIsQueue(_) | GroupError::NameIsGroup(_) => {
                ErrorCode::InvalidRequest
            }
            GroupError::Store(OffsetStoreError::Closed) | GroupError::Closed => {
                ErrorCode::ShuttingDown
            }
            GroupError::OtherKind { .. } => ErrorCode::GroupKindConflict,
            GroupError::IllegalGeneration { .. } => ErrorCode::StaleGeneration,
            GroupError::MemberIdRequired { .. }
            | GroupError::RebalanceInProgress { .. }
            | GroupError::InconsistentProtocol { .. } => ErrorCode::InvalidRequest,
            _ => ErrorCode::StorageError,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<crate::queues::QueueError> for Failure {
    fn from(e: crate::queues::QueueError) -> Self {
        use crate::queues::QueueError;
        let e = match e {
            QueueError::Group(inner) => return inner.into(),
            other => other,
        };
        let code = match &e {
            QueueError::Settings(_) | QueueError::Immutable(_) => ErrorCode::InvalidConfig,
            QueueError::AlreadyExists(_)
            | QueueError::NotFound(_)
            | QueueError::DeadLetterTopicTaken { .. } => ErrorCode::InvalidRequest,
            QueueError::TopicNotFound(_) => ErrorCode::UnknownTopic,
            QueueError::QueueLimitReached { .. } => ErrorCode::GroupLimitReached,
            _ => ErrorCode::StorageError,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<crate::auth::SecurityError> for Failure {
    fn from(e: crate::auth::SecurityError) -> Self {
        use crate::auth::SecurityError;
        let code = match &e {
            SecurityError::AuthenticationFailed(_) => ErrorCode::AuthenticationFailed,
            SecurityError::UnknownUser(_) | SecurityError::Invalid(_) => ErrorCode::InvalidRequest,
            SecurityError::NotAuthorized(_) => ErrorCode::NotAuthorized,
            SecurityError::Hash(_) => ErrorCode::InvalidRequest,
            _ => ErrorCode::StorageError,
        };
        Failure::new(code, e.to_string())
    }
}
