//! DescribeGroup: a group's state, generation, members with their
//! partitions, and per partition the committed offset, the log end offset
//! and the lag between them.
//!
//! Version 1 adds, per partition, how long it has been waiting for its new
//! owner during a hand-over (`waiting_ms`). Version 0 answers lack it.

use bytes::{BufMut, BytesMut};

use super::TopicPartition;
use super::group_common::{
    STRING_BYTES_MIN, TOPIC_PARTITION_BYTES_MIN, put_opt_string, put_topic_partition,
    put_topic_partitions, read_opt_string, read_topic_partition, read_topic_partitions,
};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// A group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupState {
    /// No members (offsets may still be stored).
    Empty,
    /// Members, and every partition is with its target owner.
    Stable,
    /// Members, and some partitions are being revoked or wait for an owner.
    Rebalancing,
}

impl GroupState {
    /// The state's number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            GroupState::Empty => 0,
            GroupState::Stable => 1,
            GroupState::Rebalancing => 2,
        }
    }

    /// Decodes a state, refusing unknown numbers.
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => GroupState::Empty,
            1 => GroupState::Stable,
            2 => GroupState::Rebalancing,
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "state",
                    value: u64::from(other),
                });
            }
        })
    }

    /// A short stable name, e.g. `stable`.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Stable => "stable",
            GroupState::Rebalancing => "rebalancing",
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Describes one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroupRequest {
    /// The group.
    pub group: String,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from.
    pub host: String,
    /// Topics it consumes.
    pub topics: Vec<String>,
    /// Partitions it owns now (including ones being revoked).
    pub owned: Vec<TopicPartition>,
    /// Owned partitions it has been asked to release.
    pub revoking: Vec<TopicPartition>,
}

/// One partition's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: TopicPartition,
    /// The member owning it now, if any.
    pub owner: Option<String>,
    /// The committed offset, `None` if never committed.
    pub committed: Option<u64>,
    /// The partition's log end offset.
    pub log_end_offset: u64,
    /// `log_end_offset - committed`, `None` when nothing is committed.
    pub lag: Option<u64>,
    /// How long, in milliseconds, the partition has been on its way to a
    /// new owner (since its revocation was asked or its owner left, until
    /// the new owner started it); `None` when it is not moving. Always
    /// `None` in version 0.
    pub waiting_ms: Option<u64>,
}

/// The first version with [`PartitionProgress::waiting_ms`].
pub const DESCRIBE_GROUP_VERSION_WAITING: u16 = 1;

/// A group's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroupResponse {
    /// Group name.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// Its generation.
    pub generation: u32,
    /// Members, sorted by id.
    pub members: Vec<MemberDescription>,
    /// Every partition of the topics the group consumes or has offsets for,
    /// sorted by topic and partition.
    pub partitions: Vec<PartitionProgress>,
}

impl Encode for DescribeGroupRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
    }
}

impl Decode for DescribeGroupRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            group: r.string("group")?,
        })
    }
}

/// Smallest wire size of a member: three empty strings and three empty lists.
const MEMBER_BYTES_MIN: usize = 3 * STRING_BYTES_MIN + 3 * 4;
/// Smallest wire size of a partition's progress.
const PROGRESS_BYTES_MIN: usize = TOPIC_PARTITION_BYTES_MIN + 1 + 1 + 8 + 1;

impl Encode for DescribeGroupResponse {
    fn encode(&self, buf: &mut BytesMut) {
        self.encode_version(buf, DESCRIBE_GROUP_VERSION_WAITING);
    }

    fn encode_version(&self, buf: &mut BytesMut, version: u16) {
        buf.put_string(&self.group);
        buf.put_u8(self.state.as_u8());
        buf.put_u32_le(self.generation);
        buf.put_u32_le(self.members.len() as u32);
        for m in &self.members {
            buf.put_string(&m.member_id);
            buf.put_string(&m.client_id);
            buf.put_string(&m.host);
            super::group_common::put_strings(buf, &m.topics);
            put_topic_partitions(buf, &m.owned);
            put_topic_partitions(buf, &m.revoking);
        }
        buf.put_u32_le(self.partitions.len() as u32);
        for p in &self.partitions {
            put_topic_partition(buf, &p.partition);
            put_opt_string(buf, p.owner.as_deref());
            buf.put_opt_u64(p.committed);
            buf.put_u64_le(p.log_end_offset);
            buf.put_opt_u64(p.lag);
            if version >= DESCRIBE_GROUP_VERSION_WAITING {
                buf.put_opt_u64(p.waiting_ms);
            }
        }
    }
}

impl Decode for DescribeGroupResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Self::decode_version(r, DESCRIBE_GROUP_VERSION_WAITING)
    }

    fn decode_version(r: &mut Reader, version: u16) -> Result<Self, DecodeError> {
        let group = r.string("group")?;
        let state = GroupState::from_u8(r.u8("state")?)?;
        let generation = r.u32("generation")?;
        let n = r.count("members", MEMBER_BYTES_MIN)?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            members.push(MemberDescription {
                member_id: r.string("member_id")?,
                client_id: r.string("client_id")?,
                host: r.string("host")?,
                topics: super::group_common::read_strings(r, "topics")?,
                owned: read_topic_partitions(r, "owned")?,
                revoking: read_topic_partitions(r, "revoking")?,
            });
        }
        let n = r.count("partitions", PROGRESS_BYTES_MIN)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(PartitionProgress {
                partition: read_topic_partition(r)?,
                owner: read_opt_string(r, "owner")?,
                committed: r.opt_u64("committed")?,
                log_end_offset: r.u64("log_end_offset")?,
                lag: r.opt_u64("lag")?,
                waiting_ms: if version >= DESCRIBE_GROUP_VERSION_WAITING {
                    r.opt_u64("waiting_ms")?
                } else {
                    None
                },
            });
        }
        Ok(Self {
            group,
            state,
            generation,
            members,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for DescribeGroupRequest {
        fn examples() -> Vec<Self> {
            vec![DescribeGroupRequest { group: "g".into() }]
        }
    }

    impl Examples for DescribeGroupResponse {
        fn examples() -> Vec<Self> {
            vec![DescribeGroupResponse {
                group: "g".into(),
                state: GroupState::Rebalancing,
                generation: 3,
                members: vec![MemberDescription {
                    member_id: "m1".into(),
                    client_id: "svc".into(),
                    host: "127.0.0.1:5000".into(),
                    topics: vec!["t".into()],
                    owned: vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)],
                    revoking: vec![TopicPartition::new("t", 1)],
                }],
                partitions: vec![
                    PartitionProgress {
                        partition: TopicPartition::new("t", 0),
                        owner: Some("m1".into()),
                        committed: Some(5),
                        log_end_offset: 9,
                        lag: Some(4),
                        waiting_ms: Some(12),
                    },
                    PartitionProgress {
                        partition: TopicPartition::new("t", 2),
                        owner: None,
                        committed: None,
                        log_end_offset: 0,
                        lag: None,
                        waiting_ms: None,
                    },
                ],
            }]
        }
    }

    /// An older client's version 0 answer has no `waiting_ms`, and decodes
    /// as such.
    #[test]
    fn version_0_answers_lack_the_wait() {
        use crate::primitives::{decode_body, decode_body_version};
        let v1 = DescribeGroupResponse::examples().remove(0);
        let mut buf = BytesMut::new();
        v1.encode_version(&mut buf, 0);
        let v0: DescribeGroupResponse = decode_body_version(buf.clone().freeze(), 0).unwrap();
        assert_eq!(v0.partitions[0].waiting_ms, None);
        assert_eq!(v0.partitions[0].lag, Some(4));
        assert!(decode_body::<DescribeGroupResponse>(buf.freeze()).is_err());
    }

    #[test]
    fn unknown_states_are_refused() {
        assert!(matches!(
            GroupState::from_u8(9),
            Err(DecodeError::InvalidValue {
                field: "state",
                value: 9
            })
        ));
    }
}
