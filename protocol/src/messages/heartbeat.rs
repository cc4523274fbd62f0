//! Heartbeat: keeps a member alive and carries the incremental rebalance.
//!
//! The member reports the partitions it has released since its last
//! heartbeat (committed, stopped consuming). The broker answers with the
//! member's full current ownership (it may consume exactly these), the subset
//! it must give up (commit, stop, then report them released in the next
//! heartbeat) and whether it must rejoin (the broker no longer knows it, e.g.
//! after its session expired or a broker restart: it owns nothing any more).
//!
//! Version 1 makes the heartbeat a long poll, so assignments are pushed
//! rather than polled: the member also sends the partitions it believes it
//! owns and how long the broker may hold the request (`max_wait_ms`). The
//! broker answers at once when the member's view is out of date (another
//! generation, other partitions, something to revoke, must rejoin), and
//! otherwise holds the answer until that happens or the wait ends (at most
//! the member's heartbeat interval, so liveness is unchanged). Version 0
//! bodies lack both fields and are answered at once, as before.

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
    /// How long the broker may hold the answer while nothing changes for
    /// this member, in milliseconds (0: answer at once; version 0 is 0).
    pub max_wait_ms: u32,
    /// The partitions the member owns in its own view, after `released`
    /// (the `owned` of its last answer minus what it released): an answer
    /// differing from it is news. Empty in version 0.
    pub owned: Vec<TopicPartition>,
}

/// The first version with `max_wait_ms` and `owned` (the long poll).
pub const HEARTBEAT_VERSION_LONG_POLL: u16 = 1;

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
        buf.put_u32_le(self.max_wait_ms);
        put_topic_partitions(buf, &self.owned);
    }

    fn encode_version(&self, buf: &mut BytesMut, version: u16) {
        if version >= HEARTBEAT_VERSION_LONG_POLL {
            return self.encode(buf);
        }
        buf.put_string(&self.group);
        buf.put_string(&self.member_id);
        buf.put_u32_le(self.generation);
        put_topic_partitions(buf, &self.released);
    }
}

impl Decode for HeartbeatRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Self::decode_version(r, HEARTBEAT_VERSION_LONG_POLL)
    }

    fn decode_version(r: &mut Reader, version: u16) -> Result<Self, DecodeError> {
        let group = r.string("group")?;
        let member_id = r.string("member_id")?;
        let generation = r.u32("generation")?;
        let released = read_topic_partitions(r, "released")?;
        let (max_wait_ms, owned) = if version >= HEARTBEAT_VERSION_LONG_POLL {
            (r.u32("max_wait_ms")?, read_topic_partitions(r, "owned")?)
        } else {
            (0, Vec::new())
        };
        Ok(Self {
            group,
            member_id,
            generation,
            released,
            max_wait_ms,
            owned,
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
                max_wait_ms: 3000,
                owned: vec![TopicPartition::new("t", 0)],
            }]
        }
    }

    /// A version 0 body (an older client) still decodes, as a heartbeat
    /// answered at once; a version 1 body with its new fields cut is an
    /// error, not a version 0 one.
    #[test]
    fn version_0_bodies_decode_without_the_long_poll() {
        use crate::primitives::{decode_body, decode_body_version};
        let v1 = HeartbeatRequest::examples().remove(0);
        let mut buf = BytesMut::new();
        v1.encode_version(&mut buf, 0);
        let v0: HeartbeatRequest = decode_body_version(buf.clone().freeze(), 0).unwrap();
        assert_eq!(
            v0,
            HeartbeatRequest {
                max_wait_ms: 0,
                owned: vec![],
                ..v1.clone()
            }
        );
        assert!(decode_body::<HeartbeatRequest>(buf.clone().freeze()).is_err());
        assert!(decode_body_version::<HeartbeatRequest>(buf.freeze(), 1).is_err());
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
