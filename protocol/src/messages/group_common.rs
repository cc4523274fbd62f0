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
