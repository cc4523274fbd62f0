//! FetchOffsets: a group's committed offsets, read by a member before it
//! starts consuming a newly assigned partition. Anyone may read them.

use bytes::{BufMut, BytesMut};

use super::TopicPartition;
use super::group_common::{
    TOPIC_PARTITION_BYTES_MIN, put_topic_partition, put_topic_partitions, read_topic_partition,
    read_topic_partitions,
};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Reads committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOffsetsRequest {
    /// The group.
    pub group: String,
    /// The partitions to look up; empty asks for every partition the group
    /// has a committed offset for.
    pub partitions: Vec<TopicPartition>,
}

/// One partition's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset (next to consume), `None` if never committed.
    pub offset: Option<u64>,
}

/// The committed offsets, one per requested partition, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOffsetsResponse {
    /// The offsets.
    pub offsets: Vec<CommittedOffset>,
}

impl Encode for FetchOffsetsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
        put_topic_partitions(buf, &self.partitions);
    }
}

impl Decode for FetchOffsetsRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            group: r.string("group")?,
            partitions: read_topic_partitions(r, "partitions")?,
        })
    }
}

impl Encode for FetchOffsetsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.offsets.len() as u32);
        for o in &self.offsets {
            put_topic_partition(buf, &o.partition);
            buf.put_opt_u64(o.offset);
        }
    }
}

impl Decode for FetchOffsetsResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("offsets", TOPIC_PARTITION_BYTES_MIN + 1)?;
        let mut offsets = Vec::with_capacity(n);
        for _ in 0..n {
            offsets.push(CommittedOffset {
                partition: read_topic_partition(r)?,
                offset: r.opt_u64("offset")?,
            });
        }
        Ok(Self { offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for FetchOffsetsRequest {
        fn examples() -> Vec<Self> {
            vec![FetchOffsetsRequest {
                group: "g".into(),
                partitions: vec![TopicPartition::new("t", 1)],
            }]
        }
    }

    impl Examples for FetchOffsetsResponse {
        fn examples() -> Vec<Self> {
            vec![FetchOffsetsResponse {
                offsets: vec![
                    CommittedOffset {
                        partition: TopicPartition::new("t", 1),
                        offset: Some(9),
                    },
                    CommittedOffset {
                        partition: TopicPartition::new("t", 2),
                        offset: None,
                    },
                ],
            }]
        }
    }
}
