//! JoinGroup: a consumer joins (or rejoins) a group for one or more topics.
//! The broker assigns partitions (no client acts as leader) and answers with
//! the member's id, the group's generation and the partitions the member owns
//! right now. Partitions still held by other members are handed over later,
//! through heartbeats, once their old owner has released them.

use bytes::{BufMut, BytesMut};

use super::group_common::{
    TopicPartition, put_opt_string, put_strings, put_topic_partitions, read_opt_string,
    read_strings, read_topic_partitions,
};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Joins a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group.
    pub group: String,
    /// Topics to consume (at least one; each must exist).
    pub topics: Vec<String>,
    /// A free-form client name, shown by `describe`.
    pub client_id: String,
    /// How long the broker keeps the member without a heartbeat, in
    /// milliseconds; 0 asks for the broker's default. Must lie within the
    /// broker's `session_timeout_ms_min..=session_timeout_ms_max`.
    pub session_timeout_ms: u32,
    /// The id from an earlier join, to rejoin as the same member (keeping its
    /// partitions); `None` for a new member. An id the group no longer knows
    /// gets a fresh member.
    pub member_id: Option<String>,
}

/// The member's place in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// The member's id; send it with every later group request.
    pub member_id: String,
    /// The group's generation after the join.
    pub generation: u32,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u32,
    /// The session timeout the broker applies, in milliseconds.
    pub session_timeout_ms: u32,
    /// Partitions the member owns now and may consume.
    pub assignment: Vec<TopicPartition>,
}

impl Encode for JoinGroupRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
        put_strings(buf, &self.topics);
        buf.put_string(&self.client_id);
        buf.put_u32_le(self.session_timeout_ms);
        put_opt_string(buf, self.member_id.as_deref());
    }
}

impl Decode for JoinGroupRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            group: r.string("group")?,
            topics: read_strings(r, "topics")?,
            client_id: r.string("client_id")?,
            session_timeout_ms: r.u32("session_timeout_ms")?,
            member_id: read_opt_string(r, "member_id")?,
        })
    }
}

impl Encode for JoinGroupResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.member_id);
        buf.put_u32_le(self.generation);
        buf.put_u32_le(self.heartbeat_interval_ms);
        buf.put_u32_le(self.session_timeout_ms);
        put_topic_partitions(buf, &self.assignment);
    }
}

impl Decode for JoinGroupResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            member_id: r.string("member_id")?,
            generation: r.u32("generation")?,
            heartbeat_interval_ms: r.u32("heartbeat_interval_ms")?,
            session_timeout_ms: r.u32("session_timeout_ms")?,
            assignment: read_topic_partitions(r, "assignment")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for JoinGroupRequest {
        fn examples() -> Vec<Self> {
            vec![
                JoinGroupRequest {
                    group: "g".into(),
                    topics: vec!["a".into(), "b".into()],
                    client_id: "svc-1".into(),
                    session_timeout_ms: 10_000,
                    member_id: None,
                },
                JoinGroupRequest {
                    group: "g".into(),
                    topics: vec![],
                    client_id: String::new(),
                    session_timeout_ms: 0,
                    member_id: Some("svc-1-7".into()),
                },
            ]
        }
    }

    impl Examples for JoinGroupResponse {
        fn examples() -> Vec<Self> {
            vec![JoinGroupResponse {
                member_id: "m".into(),
                generation: 3,
                heartbeat_interval_ms: 1000,
                session_timeout_ms: 10_000,
                assignment: vec![TopicPartition::new("a", 0), TopicPartition::new("b", 5)],
            }]
        }
    }

    #[test]
    fn lying_counts_are_refused_without_allocating() {
        let mut buf = BytesMut::new();
        buf.put_string("g");
        buf.put_u32_le(u32::MAX);
        assert!(matches!(
            crate::primitives::decode_body::<JoinGroupRequest>(buf.freeze()),
            Err(DecodeError::Truncated {
                field: "topics",
                ..
            })
        ));
    }
}
