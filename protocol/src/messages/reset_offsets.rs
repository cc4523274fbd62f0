//! ResetOffsets: moves a group's committed offsets for every partition of a
//! topic to the earliest or latest offset, a given offset or the first
//! offset at a timestamp. Refused while the group has members, so no running
//! consumer's commits race with the reset.

use bytes::{BufMut, BytesMut};

use super::TopicPartition;
use super::group_common::{TOPIC_PARTITION_BYTES_MIN, put_topic_partition, read_topic_partition};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// Each partition's log start offset.
    Earliest,
    /// Each partition's log end offset (skip everything stored).
    Latest,
    /// This offset on every partition (clamped to each partition's log).
    Offset(u64),
    /// The first offset at or after this Unix time in milliseconds (the log
    /// end offset where there is none).
    Timestamp(i64),
}

/// Resets offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsetsRequest {
    /// The group (created if the broker does not know it yet).
    pub group: String,
    /// The topic whose partitions are reset.
    pub topic: String,
    /// The target.
    pub to: ResetTo,
}

/// The new committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsetsResponse {
    /// One entry per partition of the topic, in partition order.
    pub offsets: Vec<(TopicPartition, u64)>,
}

impl Encode for ResetOffsetsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
        buf.put_string(&self.topic);
        let (tag, value) = match self.to {
            ResetTo::Earliest => (0u8, 0u64),
            ResetTo::Latest => (1, 0),
            ResetTo::Offset(o) => (2, o),
            ResetTo::Timestamp(ts) => (3, ts as u64),
        };
        buf.put_u8(tag);
        buf.put_u64_le(value);
    }
}

impl Decode for ResetOffsetsRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let group = r.string("group")?;
        let topic = r.string("topic")?;
        let tag = r.u8("to")?;
        let value = r.u64("value")?;
        let to = match tag {
            0 => ResetTo::Earliest,
            1 => ResetTo::Latest,
            2 => ResetTo::Offset(value),
            3 => ResetTo::Timestamp(value as i64),
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "to",
                    value: u64::from(other),
                });
            }
        };
        Ok(Self { group, topic, to })
    }
}

impl Encode for ResetOffsetsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.offsets.len() as u32);
        for (tp, offset) in &self.offsets {
            put_topic_partition(buf, tp);
            buf.put_u64_le(*offset);
        }
    }
}

impl Decode for ResetOffsetsResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("offsets", TOPIC_PARTITION_BYTES_MIN + 8)?;
        let mut offsets = Vec::with_capacity(n);
        for _ in 0..n {
            offsets.push((read_topic_partition(r)?, r.u64("offset")?));
        }
        Ok(Self { offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ResetOffsetsRequest {
        fn examples() -> Vec<Self> {
            [
                ResetTo::Earliest,
                ResetTo::Latest,
                ResetTo::Offset(17),
                ResetTo::Timestamp(-3),
                ResetTo::Timestamp(1_700_000_000_000),
            ]
            .into_iter()
            .map(|to| ResetOffsetsRequest {
                group: "g".into(),
                topic: "t".into(),
                to,
            })
            .collect()
        }
    }

    impl Examples for ResetOffsetsResponse {
        fn examples() -> Vec<Self> {
            vec![ResetOffsetsResponse {
                offsets: vec![
                    (TopicPartition::new("t", 0), 3),
                    (TopicPartition::new("t", 1), 0),
                ],
            }]
        }
    }

    #[test]
    fn unknown_targets_are_refused() {
        let mut buf = BytesMut::new();
        buf.put_string("g");
        buf.put_string("t");
        buf.put_u8(7);
        buf.put_u64_le(0);
        assert_eq!(
            crate::primitives::decode_body::<ResetOffsetsRequest>(buf.freeze()).unwrap_err(),
            DecodeError::InvalidValue {
                field: "to",
                value: 7
            }
        );
    }
}
