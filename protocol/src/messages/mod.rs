//! Request and response bodies, one file per API. The [`Request`] trait ties
//! each request type to its API key, version and response type, so a client
//! cannot send a request and decode the wrong response.

mod alter_topic;
mod commit_offsets;
mod create_token;
mod create_topic;
mod delete_group;
mod delete_topic;
mod delete_user;
mod describe_group;
mod describe_topic;
mod fetch;
mod fetch_offsets;
mod grant_acl;
mod group_common;
mod handshake;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_acls;
mod list_groups;
mod list_offsets;
mod list_topics;
mod list_users;
mod produce;
mod put_user;
mod reset_offsets;
mod revoke_acl;
mod revoke_token;
mod security_common;
mod status;

pub use alter_topic::{AlterTopicRequest, AlterTopicResponse, ConfigChange};
pub use commit_offsets::{CommitOffsetsRequest, CommitOffsetsResponse, OffsetCommit};
pub use create_token::{CreateTokenRequest, CreateTokenResponse};
pub use create_topic::{CreateTopicRequest, CreateTopicResponse, TopicConfig};
pub use delete_group::{DeleteGroupRequest, DeleteGroupResponse};
pub use delete_topic::{DeleteTopicRequest, DeleteTopicResponse};
pub use delete_user::{DeleteUserRequest, DeleteUserResponse};
pub use describe_group::{
    DescribeGroupRequest, DescribeGroupResponse, GroupState, MemberDescription, PartitionProgress,
};
pub use describe_topic::{DescribeTopicRequest, DescribeTopicResponse, PartitionDescription};
pub use fetch::{FetchRequest, FetchResponse};
pub use fetch_offsets::{CommittedOffset, FetchOffsetsRequest, FetchOffsetsResponse};
pub use grant_acl::{GrantAclRequest, GrantAclResponse};
pub use group_common::TopicPartition;
pub use handshake::{Credentials, HandshakeRequest, HandshakeResponse};
pub use heartbeat::{HeartbeatRequest, HeartbeatResponse};
pub use init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
pub use join_group::{JoinGroupRequest, JoinGroupResponse};
pub use leave_group::{LeaveGroupRequest, LeaveGroupResponse};
pub use list_acls::{ListAclsRequest, ListAclsResponse};
pub use list_groups::{GroupListing, ListGroupsRequest, ListGroupsResponse};
pub use list_offsets::{ListOffsetsRequest, ListOffsetsResponse, OffsetQuery};
pub use list_topics::{ListTopicsRequest, ListTopicsResponse, TopicListing};
pub use list_users::{ListUsersRequest, ListUsersResponse, UserListing};
pub use produce::{PARTITION_AUTO, ProduceRequest, ProduceResponse};
pub use put_user::{PutUserRequest, PutUserResponse};
pub use reset_offsets::{ResetOffsetsRequest, ResetOffsetsResponse, ResetTo};
pub use revoke_acl::{RevokeAclRequest, RevokeAclResponse};
pub use revoke_token::{RevokeTokenRequest, RevokeTokenResponse};
pub use security_common::{AclEntry, Operation, Operations, ResourceKind, ResourcePattern};
pub use status::{StatusRequest, StatusResponse};

use crate::primitives::{Decode, Encode};

/// The APIs a broker serves. The numbers are the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ApiKey {
    /// Opens a connection: versions and client id.
    Handshake = 0,
    /// Creates a topic.
    CreateTopic = 1,
    /// Deletes a topic and its files.
    DeleteTopic = 2,
    /// Lists topics.
    ListTopics = 3,
    /// Describes one topic's partitions.
    DescribeTopic = 4,
    /// Appends a record batch to a partition.
    Produce = 5,
    /// Reads record batches from a partition, long-polling at the end.
    Fetch = 6,
    /// Looks up an offset: earliest, latest or by timestamp.
    ListOffsets = 7,
    /// Joins a consumer group (server-side assignment).
    JoinGroup = 8,
    /// Keeps a group member alive; carries incremental rebalances.
    Heartbeat = 9,
    /// Leaves a consumer group.
    LeaveGroup = 10,
    /// Commits a group's offsets (durably).
    CommitOffsets = 11,
    /// Reads a group's committed offsets.
    FetchOffsets = 12,
    /// Lists consumer groups.
    ListGroups = 13,
    /// Describes a consumer group: members, assignments, offsets, lag.
    DescribeGroup = 14,
    /// Resets a member-less group's offsets for a topic.
    ResetOffsets = 15,
    /// Deletes a member-less group and its offsets.
    DeleteGroup = 16,
    /// Hands an idempotent producer a new producer id and epoch.
    InitProducerId = 17,
    /// Changes a live topic's retention and segment settings.
    AlterTopic = 18,
    /// The broker's version, uptime, counts and disk usage.
    Status = 19,
    /// Creates a user or replaces its password and admin flag (admin only).
    PutUser = 20,
    /// Removes a user with its grants and tokens (admin only).
    DeleteUser = 21,
    /// Lists users and their token ids (admin only).
    ListUsers = 22,
    /// Grants a user operations on a topic or group pattern (admin only).
    GrantAcl = 23,
    /// Revokes operations from a user's grant (admin only).
    RevokeAcl = 24,
    /// Lists grants (admin only).
    ListAcls = 25,
    /// Creates an API token for a user (admin only).
    CreateToken = 26,
    /// Revokes an API token (admin only).
    RevokeToken = 27,
}

impl ApiKey {
    /// Maps a wire number to an API, if it is one this side knows.
    pub fn from_u16(v: u16) -> Option<ApiKey> {
        Some(match v {
            0 => ApiKey::Handshake,
            1 => ApiKey::CreateTopic,
            2 => ApiKey::DeleteTopic,
            3 => ApiKey::ListTopics,
            4 => ApiKey::DescribeTopic,
            5 => ApiKey::Produce,
            6 => ApiKey::Fetch,
            7 => ApiKey::ListOffsets,
            8 => ApiKey::JoinGroup,
            9 => ApiKey::Heartbeat,
            10 => ApiKey::LeaveGroup,
            11 => ApiKey::CommitOffsets,
            12 => ApiKey::FetchOffsets,
            13 => ApiKey::ListGroups,
            14 => ApiKey::DescribeGroup,
            15 => ApiKey::ResetOffsets,
            16 => ApiKey::DeleteGroup,
            17 => ApiKey::InitProducerId,
            18 => ApiKey::AlterTopic,
            19 => ApiKey::Status,
            20 => ApiKey::PutUser,
            21 => ApiKey::DeleteUser,
            22 => ApiKey::ListUsers,
            23 => ApiKey::GrantAcl,
            24 => ApiKey::RevokeAcl,
            25 => ApiKey::ListAcls,
            26 => ApiKey::CreateToken,
            27 => ApiKey::RevokeToken,
            _ => return None,
        })
    }
}

/// A request body: its API key and version, and the body type of its response.
pub trait Request: Encode + Decode + Send + 'static {
    /// The API this request is for.
    const API_KEY: ApiKey;
    /// The API version this type encodes.
    const API_VERSION: u16 = 0;
    /// The response body type.
    type Response: Encode + Decode + Send + 'static;
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::primitives::{Decode, Encode, decode_body};
    use bytes::BytesMut;
    use std::fmt::Debug;

    /// Encodes, decodes strictly and compares; then checks that every
    /// truncation of the encoding is an error rather than a panic.
    pub fn round_trip<T: Encode + Decode + PartialEq + Debug>(value: T) {
        let mut buf = BytesMut::new();
        value.encode(&mut buf);
        let bytes = buf.freeze();
        let decoded: T = decode_body(bytes.clone()).expect("decodes");
        assert_eq!(decoded, value);
        for cut in 0..bytes.len() {
            assert!(
                decode_body::<T>(bytes.slice(..cut)).is_err(),
                "truncation at {cut} of {} decoded",
                bytes.len()
            );
        }
    }
}
