//! Types shared by the consumer-group APIs: a topic-partition pair and the
//! encoding of lists of them.

use bytes::{BufMut, BytesMut};

use crate::primitives::{DecodeError, Reader, WriteExt};

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Smallest wire size of a [`TopicPartition`]: an empty string and a `u32`.
pub(crate) const TOPIC_PARTITION_BYTES_MIN: usize = 2 + 4;
/// Smallest wire size of a string: its `u16` length.
pub(crate) const STRING_BYTES_MIN: usize = 2;

pub(crate) fn put_topic_partition(buf: &mut BytesMut, tp: &TopicPartition) {
    buf.put_string(&tp.topic);
    buf.put_u32_le(tp.partition);
}

pub(crate) fn read_topic_partition(r: &mut Reader) -> Result<TopicPartition, DecodeError> {
    Ok(TopicPartition {
        topic: r.string("topic")?,
        partition: r.u32("partition")?,
    })
}

pub(crate) fn put_topic_partitions(buf: &mut BytesMut, tps: &[TopicPartition]) {
    buf.put_u32_le(tps.len() as u32);
    for tp in tps {
        put_topic_partition(buf, tp);
    }
}

pub(crate) fn read_topic_partitions(
    r: &mut Reader,
    field: &'static str,
) -> Result<Vec<TopicPartition>, DecodeError> {
    let n = r.count(field, TOPIC_PARTITION_BYTES_MIN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(read_topic_partition(r)?);
    }
    Ok(out)
}

pub(crate) fn put_strings(buf: &mut BytesMut, items: &[String]) {
    buf.put_u32_le(items.len() as u32);
    for s in items {
        buf.put_string(s);
    }
}

pub(crate) fn read_strings(
    r: &mut Reader,
    field: &'static str,
) -> Result<Vec<String>, DecodeError> {
    let n = r.count(field, STRING_BYTES_MIN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.string(field)?);
    }
    Ok(out)
}

pub(crate) fn put_opt_string(buf: &mut BytesMut, v: Option<&str>) {
    match v {
        Some(s) => {
            buf.put_bool(true);
            buf.put_string(s);
        }
        None => buf.put_bool(false),
    }
}

pub(crate) fn read_opt_string(
    r: &mut Reader,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    if r.bool(field)? {
        Ok(Some(r.string(field)?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use crate::messages::test_util::round_trip;
    use crate::messages::*;
    use crate::primitives::decode_body;

    fn arb_tp() -> impl Strategy<Value = TopicPartition> {
        ("[a-z€]{0,6}", any::<u32>()).prop_map(|(t, p)| TopicPartition::new(t, p))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn group_messages_round_trip(
            group in "[a-z0-9.-]{0,12}",
            member in "[a-z0-9-]{0,12}",
            generation in any::<u32>(),
            tps in prop::collection::vec(arb_tp(), 0..8),
            offsets in prop::collection::vec(any::<u64>(), 8),
            rejoin in any::<bool>(),
        ) {
            round_trip(HeartbeatRequest {
                group: group.clone(),
                member_id: member.clone(),
                generation,
                released: tps.clone(),
                max_wait_ms: generation / 2,
                owned: tps.iter().skip(1).cloned().collect(),
            });
            round_trip(HeartbeatResponse {
                generation,
                owned: tps.clone(),
                revoke: tps.iter().take(2).cloned().collect(),
                rejoin,
            });
            round_trip(CommitOffsetsRequest {
                group: group.clone(),
                member_id: member.clone(),
                generation,
                offsets: tps
                    .iter()
                    .zip(&offsets)
                    .map(|(tp, o)| OffsetCommit { partition: tp.clone(), offset: *o })
                    .collect(),
            });
            round_trip(FetchOffsetsResponse {
                offsets: tps
                    .iter()
                    .zip(&offsets)
                    .map(|(tp, o)| CommittedOffset {
                        partition: tp.clone(),
                        offset: (o % 2 == 0).then_some(*o),
                    })
                    .collect(),
            });
        }

        /// Arbitrary bytes never panic a group decoder (and never allocate
        /// from a lying count: `Reader::count` checks first).
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let b = Bytes::from(bytes);
            let _ = decode_body::<JoinGroupRequest>(b.clone());
            let _ = decode_body::<JoinGroupResponse>(b.clone());
            let _ = decode_body::<HeartbeatRequest>(b.clone());
            let _ = decode_body::<HeartbeatResponse>(b.clone());
            let _ = decode_body::<LeaveGroupRequest>(b.clone());
            let _ = decode_body::<CommitOffsetsRequest>(b.clone());
            let _ = decode_body::<FetchOffsetsRequest>(b.clone());
            let _ = decode_body::<FetchOffsetsResponse>(b.clone());
            let _ = decode_body::<ListGroupsResponse>(b.clone());
            let _ = decode_body::<DescribeGroupRequest>(b.clone());
            let _ = decode_body::<DescribeGroupResponse>(b.clone());
            let _ = decode_body::<ResetOffsetsRequest>(b.clone());
            let _ = decode_body::<ResetOffsetsResponse>(b.clone());
            let _ = decode_body::<DeleteGroupRequest>(b);
        }
    }
}
