//! Request and response bodies, one file per API. The [`Request`] trait ties
//! each request type to its API key, version and response type, so a client
//! cannot send a request and decode the wrong response.

mod alter_queue;
mod alter_topic;
mod commit_offsets;
mod create_queue;
mod create_token;
mod create_topic;
mod delete_group;
mod delete_queue;
mod delete_topic;
mod delete_user;
mod describe_group;
mod describe_queue;
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
mod list_queues;
mod list_topics;
mod list_users;
mod produce;
mod put_user;
mod queue_common;
mod receive;
mod reset_offsets;
mod revoke_acl;
mod revoke_token;
mod security_common;
mod settle;
mod status;

pub use alter_queue::{AlterQueueRequest, AlterQueueResponse};
pub use alter_topic::{AlterTopicRequest, AlterTopicResponse, ConfigChange};
pub use commit_offsets::{CommitOffsetsRequest, CommitOffsetsResponse, OffsetCommit};
pub use create_queue::{CreateQueueRequest, CreateQueueResponse};
pub use create_token::{CreateTokenRequest, CreateTokenResponse};
pub use create_topic::{
    CreateTopicRequest, CreateTopicResponse, TopicCompression, TopicConfig, UnknownTopicCompression,
};
pub use delete_group::{DeleteGroupRequest, DeleteGroupResponse};
pub use delete_queue::{DeleteQueueRequest, DeleteQueueResponse};
pub use delete_topic::{DeleteTopicRequest, DeleteTopicResponse};
pub use delete_user::{DeleteUserRequest, DeleteUserResponse};
pub use describe_group::{
    DESCRIBE_GROUP_VERSION_WAITING, DescribeGroupRequest, DescribeGroupResponse, GroupState,
    MemberDescription, PartitionProgress,
};
pub use describe_queue::{DescribeQueueRequest, DescribeQueueResponse, QueuePartitionInfo};
pub use describe_topic::{DescribeTopicRequest, DescribeTopicResponse, PartitionDescription};
pub use fetch::{FETCH_VERSION_KAFKA_RECORDS, FetchRequest, FetchResponse};
pub use fetch_offsets::{CommittedOffset, FetchOffsetsRequest, FetchOffsetsResponse};
pub use grant_acl::{GrantAclRequest, GrantAclResponse};
pub use group_common::TopicPartition;
pub use handshake::{Credentials, HandshakeRequest, HandshakeResponse};
pub use heartbeat::{HEARTBEAT_VERSION_LONG_POLL, HeartbeatRequest, HeartbeatResponse};
pub use init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
pub use join_group::{JoinGroupRequest, JoinGroupResponse};
pub use leave_group::{LeaveGroupRequest, LeaveGroupResponse};
pub use list_acls::{ListAclsRequest, ListAclsResponse};
pub use list_groups::{GroupListing, ListGroupsRequest, ListGroupsResponse};
pub use list_offsets::{ListOffsetsRequest, ListOffsetsResponse, OffsetQuery};
pub use list_queues::{ListQueuesRequest, ListQueuesResponse, QueueListing};
pub use list_topics::{ListTopicsRequest, ListTopicsResponse, TopicListing};
pub use list_users::{ListUsersRequest, ListUsersResponse, UserListing};
pub use produce::{PARTITION_AUTO, PRODUCE_VERSION_KAFKA_RECORDS, ProduceRequest, ProduceResponse};
pub use put_user::{PutUserRequest, PutUserResponse};
pub use queue_common::{QueueConfig, QueueDelivery, QueueSettingsInfo};
pub use receive::{ReceiveRequest, ReceiveResponse};
pub use reset_offsets::{ResetOffsetsRequest, ResetOffsetsResponse, ResetTo};
pub use revoke_acl::{RevokeAclRequest, RevokeAclResponse};
pub use revoke_token::{RevokeTokenRequest, RevokeTokenResponse};
pub use security_common::{AclEntry, Operation, Operations, ResourceKind, ResourcePattern};
pub use settle::{SettleAction, SettleRequest, SettleResponse, SettleResult, Settlement};
pub use status::{StatusRequest, StatusResponse};

use std::fmt::Debug;
use std::ops::RangeInclusive;

use crate::primitives::{Decode, Encode};

/// The API table: every API of skiff's protocol, declared once. Each line
/// gives the API's name (an [`ApiKey`] variant), its wire number (the
/// contract: never reused), its request and response body types (one file
/// each in this module) and the versions a broker serves.
///
/// Everything else per API is generated from it: [`ApiKey`], its number
/// mapping, names and version ranges, each request's [`Request`] impl, and
/// [`visit_apis`], which the round-trip tests and the fuzz target walk. A
/// crate that serves or calls APIs passes its own macro as `$callback` to
/// get one line per API, so it cannot forget one: the broker's dispatch
/// matches every [`ApiKey`] to its request type's handler, and an API
/// without a handler does not compile.
///
/// A body change that old peers cannot read bumps the API's version: the
/// broker serves exactly the versions listed, so a peer speaking a version
/// outside them is refused with `UnsupportedVersion` naming the version
/// served, never misread. Bodies are decoded strictly in the layout of the
/// request's version: an API serving several versions overrides
/// `Decode::decode_version` / `Encode::encode_version` for the old layouts
/// (e.g. Heartbeat 0, answered as before the long poll).
///
/// The callback receives, per API:
/// `#[doc] Name = number, RequestType => ResponseType, versions min..=max;`
#[macro_export]
macro_rules! for_each_api {
    ($callback:ident) => {
        $callback! {
            /// Opens a connection: versions and client id.
            Handshake = 0, HandshakeRequest => HandshakeResponse, versions 0..=0;
            /// Creates a topic.
            CreateTopic = 1, CreateTopicRequest => CreateTopicResponse, versions 1..=1;
            /// Deletes a topic and its files.
            DeleteTopic = 2, DeleteTopicRequest => DeleteTopicResponse, versions 0..=0;
            /// Lists topics.
            ListTopics = 3, ListTopicsRequest => ListTopicsResponse, versions 0..=0;
            /// Describes one topic's partitions.
            DescribeTopic = 4, DescribeTopicRequest => DescribeTopicResponse, versions 1..=1;
            /// Appends a record batch to a partition.
            Produce = 5, ProduceRequest => ProduceResponse, versions 0..=1;
            /// Reads record batches from a partition, long-polling at the end.
            Fetch = 6, FetchRequest => FetchResponse, versions 0..=1;
            /// Looks up an offset: earliest, latest or by timestamp.
            ListOffsets = 7, ListOffsetsRequest => ListOffsetsResponse, versions 0..=0;
            /// Joins a consumer group (server-side assignment).
            JoinGroup = 8, JoinGroupRequest => JoinGroupResponse, versions 0..=0;
            /// Keeps a group member alive; carries incremental rebalances (v1: a long poll
            /// answered when the member's assignment changes).
            Heartbeat = 9, HeartbeatRequest => HeartbeatResponse, versions 0..=1;
            /// Leaves a consumer group.
            LeaveGroup = 10, LeaveGroupRequest => LeaveGroupResponse, versions 0..=0;
            /// Commits a group's offsets (durably).
            CommitOffsets = 11, CommitOffsetsRequest => CommitOffsetsResponse, versions 0..=0;
            /// Reads a group's committed offsets.
            FetchOffsets = 12, FetchOffsetsRequest => FetchOffsetsResponse, versions 0..=0;
            /// Lists consumer groups.
            ListGroups = 13, ListGroupsRequest => ListGroupsResponse, versions 0..=0;
            /// Describes a consumer group: members, assignments, offsets, lag.
            DescribeGroup = 14, DescribeGroupRequest => DescribeGroupResponse, versions 0..=1;
            /// Resets a member-less group's offsets for a topic.
            ResetOffsets = 15, ResetOffsetsRequest => ResetOffsetsResponse, versions 0..=0;
            /// Deletes a member-less group and its offsets.
            DeleteGroup = 16, DeleteGroupRequest => DeleteGroupResponse, versions 0..=0;
            /// Hands an idempotent producer a new producer id and epoch.
            InitProducerId = 17, InitProducerIdRequest => InitProducerIdResponse, versions 0..=0;
            /// Changes a live topic's retention, segment and compression settings.
            AlterTopic = 18, AlterTopicRequest => AlterTopicResponse, versions 1..=1;
            /// The broker's version, uptime, counts and disk usage.
            Status = 19, StatusRequest => StatusResponse, versions 0..=0;
            /// Creates a user or replaces its password and admin flag (admin only).
            PutUser = 20, PutUserRequest => PutUserResponse, versions 0..=0;
            /// Removes a user with its grants and tokens (admin only).
            DeleteUser = 21, DeleteUserRequest => DeleteUserResponse, versions 0..=0;
            /// Lists users and their token ids (admin only).
            ListUsers = 22, ListUsersRequest => ListUsersResponse, versions 0..=0;
            /// Grants a user operations on a topic or group pattern (admin only).
            GrantAcl = 23, GrantAclRequest => GrantAclResponse, versions 0..=0;
            /// Revokes operations from a user's grant (admin only).
            RevokeAcl = 24, RevokeAclRequest => RevokeAclResponse, versions 0..=0;
            /// Lists grants (admin only).
            ListAcls = 25, ListAclsRequest => ListAclsResponse, versions 0..=0;
            /// Creates an API token for a user (admin only).
            CreateToken = 26, CreateTokenRequest => CreateTokenResponse, versions 0..=0;
            /// Revokes an API token (admin only).
            RevokeToken = 27, RevokeTokenRequest => RevokeTokenResponse, versions 0..=0;
            /// Creates a work queue on a topic, and its dead-letter topic.
            CreateQueue = 28, CreateQueueRequest => CreateQueueResponse, versions 0..=0;
            /// Changes a work queue's settings.
            AlterQueue = 29, AlterQueueRequest => AlterQueueResponse, versions 0..=0;
            /// Deletes a work queue and its state (not its topics).
            DeleteQueue = 30, DeleteQueueRequest => DeleteQueueResponse, versions 0..=0;
            /// Lists work queues.
            ListQueues = 31, ListQueuesRequest => ListQueuesResponse, versions 0..=0;
            /// Describes a work queue: settings and per-partition progress.
            DescribeQueue = 32, DescribeQueueRequest => DescribeQueueResponse, versions 0..=0;
            /// Hands a queue member available records, locked to it (long poll).
            Receive = 33, ReceiveRequest => ReceiveResponse, versions 0..=0;
            /// Acks, nacks, rejects, extends or releases a member's deliveries.
            Settle = 34, SettleRequest => SettleResponse, versions 0..=0;
        }
    };
}

/// Expands the API table into [`ApiKey`], the [`Request`] impls and
/// [`visit_apis`].
macro_rules! declare_apis {
    ($(
        $(#[$doc:meta])*
        $api:ident = $number:literal, $request:ident => $response:ident, versions $min:literal ..= $max:literal;
    )*) => {
        /// The APIs a broker serves, generated from the API table
        /// ([`for_each_api!`](crate::for_each_api)). The numbers are the
        /// wire contract. Exhaustive on purpose: a new API is a new variant
        /// every `match` must handle.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ApiKey {
            $( $(#[$doc])* $api = $number, )*
        }

        impl ApiKey {
            /// Every API, in table order.
            pub const ALL: &'static [ApiKey] = &[$(ApiKey::$api),*];

            /// Maps a wire number to an API, if it is one this side knows.
            pub fn from_u16(v: u16) -> Option<ApiKey> {
                match v {
                    $( $number => Some(ApiKey::$api), )*
                    _ => None,
                }
            }

            /// The API's name, as in the table (`"Produce"`): for logs,
            /// metric labels and error messages.
            pub fn name(self) -> &'static str {
                match self {
                    $( ApiKey::$api => stringify!($api), )*
                }
            }

            /// The versions of this API a broker serves.
            pub fn versions(self) -> RangeInclusive<u16> {
                match self {
                    $( ApiKey::$api => $min..=$max, )*
                }
            }
        }

        $(
            impl Request for $request {
                const API_KEY: ApiKey = ApiKey::$api;
                const API_VERSION: u16 = $max;
                type Response = $response;
            }
        )*

        /// Calls `visitor` once per API with its request type (and through
        /// it the response type), in table order: the tests' and the fuzz
        /// target's way to cover every message without a list of their own.
        pub fn visit_apis<V: ApiVisitor>(visitor: &mut V) {
            $( visitor.visit::<$request>(); )*
        }
    };
}

for_each_api!(declare_apis);

/// A request body: its API key and version, and the body type of its
/// response. Implemented for every request type by the API table.
pub trait Request: Encode + Decode + Debug + PartialEq + Send + 'static {
    /// The API this request is for.
    const API_KEY: ApiKey;
    /// The API version this type encodes (the newest the table serves).
    const API_VERSION: u16;
    /// The response body type.
    type Response: Encode + Decode + Debug + PartialEq + Send + 'static;
}

/// Something done once per API with its types; see [`visit_apis`].
pub trait ApiVisitor {
    /// Called with one API's request type (`R::API_KEY`, `R::Response`).
    fn visit<R: Request>(&mut self);
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::primitives::{Decode, Encode, decode_body};
    use bytes::BytesMut;
    use std::fmt::Debug;

    /// Values of a message type worth round-tripping, one per shape (each
    /// enum variant, empty and full lists...). Every request and response
    /// type of the API table has them, next to its codec: the table's
    /// round-trip test does not compile without them.
    pub trait Examples: Sized {
        /// The values.
        fn examples() -> Vec<Self>;
    }

    /// Bodies with no fields have one example.
    macro_rules! unit_examples {
        ($($ty:ty),* $(,)?) => {
            $( impl Examples for $ty {
                fn examples() -> Vec<Self> {
                    vec![Self]
                }
            } )*
        };
    }
    use super::*;
    unit_examples!(
        CreateTopicResponse,
        DeleteTopicResponse,
        ListTopicsRequest,
        InitProducerIdRequest,
        StatusRequest,
    );

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

#[cfg(test)]
mod tests {
    use super::test_util::{Examples, round_trip};
    use super::*;
    use std::collections::HashSet;

    fn round_trip_examples<T: Examples + Encode + Decode + PartialEq + Debug>(what: &str) {
        let examples = T::examples();
        assert!(!examples.is_empty(), "{what} has no examples");
        examples.into_iter().for_each(round_trip);
    }

    /// One test over the whole table: every request and response type must
    /// have [`Examples`] (else this does not compile), and each example
    /// round-trips and refuses every truncation of its encoding.
    macro_rules! round_trip_every_api {
        ($(
            $(#[$doc:meta])*
            $api:ident = $number:literal, $request:ident => $response:ident, versions $min:literal ..= $max:literal;
        )*) => {
            #[test]
            fn every_request_and_response_round_trips() {
                $(
                    round_trip_examples::<$request>(stringify!($request));
                    round_trip_examples::<$response>(stringify!($response));
                )*
            }
        };
    }
    for_each_api!(round_trip_every_api);

    struct Visited(Vec<ApiKey>);

    impl ApiVisitor for Visited {
        fn visit<R: Request>(&mut self) {
            assert!(R::API_KEY.versions().contains(&R::API_VERSION));
            self.0.push(R::API_KEY);
        }
    }

    #[test]
    fn every_api_is_in_the_table_once() {
        let mut seen = HashSet::new();
        for &api in ApiKey::ALL {
            assert!(seen.insert(api as u16), "{api:?} numbered twice");
            assert_eq!(ApiKey::from_u16(api as u16), Some(api));
            assert_eq!(api.name(), format!("{api:?}"));
        }
        assert_eq!(ApiKey::from_u16(ApiKey::ALL.len() as u16), None);
        let mut visited = Visited(Vec::new());
        visit_apis(&mut visited);
        assert_eq!(visited.0, ApiKey::ALL);
    }
}
