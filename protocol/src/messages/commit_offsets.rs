//! CommitOffsets: a member stores its progress on partitions it owns. The
//! broker refuses the whole request when the generation is stale or the
//! member does not own one of the partitions, so a consumer that lost a
//! partition can never overwrite its new owner's progress. An acknowledged
//! commit is on disk (fdatasync'd) and survives a broker crash.

use bytes::{BufMut, BytesMut};

use super::TopicPartition;
use super::group_common::{TOPIC_PARTITION_BYTES_MIN, put_topic_partition, read_topic_partition};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// One committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset to consume (one past the last processed record).
    pub offset: u64,
}

/// Commits offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsetsRequest {
    /// The group.
    pub group: String,
    /// The committing member.
    pub member_id: String,
    /// The generation the member last saw; must be the group's current one.
    pub generation: u32,
    /// The positions, each on a partition the member owns.
    pub offsets: Vec<OffsetCommit>,
}

/// The commit is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsetsResponse;

impl Encode for CommitOffsetsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
        buf.put_string(&self.member_id);
        buf.put_u32_le(self.generation);
        buf.put_u32_le(self.offsets.len() as u32);
        for c in &self.offsets {
            put_topic_partition(buf, &c.partition);
            buf.put_u64_le(c.offset);
        }
    }
}

impl Decode for CommitOffsetsRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let group = r.string("group")?;
        let member_id = r.string("member_id")?;
        let generation = r.u32("generation")?;
        let n = r.count("offsets", TOPIC_PARTITION_BYTES_MIN + 8)?;
        let mut offsets = Vec::with_capacity(n);
        for _ in 0..n {
            offsets.push(OffsetCommit {
                partition: read_topic_partition(r)?,
                offset: r.u64("offset")?,
            });
        }
        Ok(Self {
            group,
            member_id,
            generation,
            offsets,
        })
    }
}

impl Encode for CommitOffsetsResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for CommitOffsetsResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for CommitOffsetsRequest {
        fn examples() -> Vec<Self> {
            vec![CommitOffsetsRequest {
                group: "g".into(),
                member_id: "m".into(),
                generation: 2,
                offsets: vec![
                    OffsetCommit {
                        partition: TopicPartition::new("t", 0),
                        offset: 42,
                    },
                    OffsetCommit {
                        partition: TopicPartition::new("u", 3),
                        offset: u64::MAX,
                    },
                ],
            }]
        }
    }

    impl Examples for CommitOffsetsResponse {
        fn examples() -> Vec<Self> {
            vec![CommitOffsetsResponse]
        }
    }
}
