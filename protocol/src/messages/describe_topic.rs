//! DescribeTopic: a topic's settings and, per partition, its offsets and size.

use bytes::{BufMut, BytesMut};

use super::TopicConfig;
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Describes one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTopicRequest {
    /// The topic.
    pub name: String,
}

/// One partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Next offset to be written (acknowledged end).
    pub log_end_offset: u64,
    /// Bytes of segment files on disk.
    pub size_bytes: u64,
}

/// A topic's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTopicResponse {
    /// Topic name.
    pub name: String,
    /// Its settings (unset fields use the broker's defaults).
    pub config: TopicConfig,
    /// One entry per partition, in partition order.
    pub partitions: Vec<PartitionDescription>,
}

impl Encode for DescribeTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
    }
}

impl Decode for DescribeTopicRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
        })
    }
}

/// Wire size of one [`PartitionDescription`].
const PARTITION_DESCRIPTION_BYTES: usize = 4 + 8 + 8 + 8;

impl Encode for DescribeTopicResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
        self.config.encode(buf);
        buf.put_u32_le(self.partitions.len() as u32);
        for p in &self.partitions {
            buf.put_u32_le(p.partition);
            buf.put_u64_le(p.log_start_offset);
            buf.put_u64_le(p.log_end_offset);
            buf.put_u64_le(p.size_bytes);
        }
    }
}

impl Decode for DescribeTopicResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let name = r.string("name")?;
        let config = TopicConfig::decode(r)?;
        let n = r.count("partitions", PARTITION_DESCRIPTION_BYTES)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(PartitionDescription {
                partition: r.u32("partition")?,
                log_start_offset: r.u64("log_start_offset")?,
                log_end_offset: r.u64("log_end_offset")?,
                size_bytes: r.u64("size_bytes")?,
            });
        }
        Ok(Self {
            name,
            config,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for DescribeTopicRequest {
        fn examples() -> Vec<Self> {
            vec![DescribeTopicRequest {
                name: "orders".into(),
            }]
        }
    }

    impl Examples for DescribeTopicResponse {
        fn examples() -> Vec<Self> {
            vec![DescribeTopicResponse {
                name: "t".into(),
                config: TopicConfig {
                    partitions: 2,
                    ..TopicConfig::default()
                },
                partitions: vec![
                    PartitionDescription {
                        partition: 0,
                        log_start_offset: 0,
                        log_end_offset: 10,
                        size_bytes: 1234,
                    },
                    PartitionDescription {
                        partition: 1,
                        log_start_offset: 5,
                        log_end_offset: 5,
                        size_bytes: 0,
                    },
                ],
            }]
        }
    }
}
