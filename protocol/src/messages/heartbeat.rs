//! Heartbeat: keeps a member alive and carries the incremental rebalance.
//!
//! The member reports the partitions it has released since its last
//! heartbeat (committed, stopped consuming). The broker answers with the
//! member's full current ownership (it may consume exactly these), the subset
//! it must give up (commit, stop, then report them released in the next
//! heartbeat) and whether it must rejoin (the broker no longer knows it, e.g.
//! after its session expired or a broker restart: it owns nothing any more).

use bytes::{BufMut, BytesMut};

use super::group_common::{TopicPartition, put_topic_partitions, read_topic_partitions};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// A member's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group: String,
    /// The member's id from its join.
    pub member_id: String,
    /// The last generation the member saw.
    pub generation: u32,
    /// Partitions the member was asked to revoke and has now stopped
    /// consuming (after committing their offsets).
    pub released: Vec<TopicPartition>,
}

/// The member's current state in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The group's current generation (use it for commits).
    pub generation: u32,
    /// Every partition the member owns now, including the ones it must
    /// revoke; partitions newly in this list are newly assigned.
    pub owned: Vec<TopicPartition>,
    /// Owned partitions the member must give up: commit, stop consuming, and
    /// list them as `released` in the next heartbeat.
    pub revoke: Vec<TopicPartition>,
    /// The broker no longer knows this member: it owns nothing and must
    /// join again.
    pub rejoin: bool,
}

impl Encode for HeartbeatRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
        buf.put_string(&self.member_id);
        buf.put_u32_le(self.generation);
        put_topic_partitions(buf, &self.released);
    }
}

impl Decode for HeartbeatRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            group: r.string("group")?,
            member_id: r.string("member_id")?,
            generation: r.u32("generation")?,
            released: read_topic_partitions(r, "released")?,
        })
    }
}

impl Encode for HeartbeatResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.generation);
        put_topic_partitions(buf, &self.owned);
        put_topic_partitions(buf, &self.revoke);
        buf.put_bool(self.rejoin);
    }
}

impl Decode for HeartbeatResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            generation: r.u32("generation")?,
            owned: read_topic_partitions(r, "owned")?,
            revoke: read_topic_partitions(r, "revoke")?,
            rejoin: r.bool("rejoin")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for HeartbeatRequest {
        fn examples() -> Vec<Self> {
            vec![HeartbeatRequest {
                group: "g".into(),
                member_id: "m".into(),
                generation: 4,
                released: vec![TopicPartition::new("t", 2)],
            }]
        }
    }

    impl Examples for HeartbeatResponse {
        fn examples() -> Vec<Self> {
            vec![
                HeartbeatResponse {
                    generation: 5,
                    owned: vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)],
                    revoke: vec![TopicPartition::new("t", 1)],
                    rejoin: false,
                },
                HeartbeatResponse {
                    generation: 0,
                    owned: vec![],
                    revoke: vec![],
                    rejoin: true,
                },
            ]
        }
    }
}
