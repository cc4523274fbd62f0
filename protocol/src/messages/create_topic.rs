//! CreateTopic: a new topic with its partition count and log settings.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// A topic's settings. `None` means "the broker's default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions, at least 1.
    pub partitions: u32,
    /// Delete whole segments older than this many milliseconds.
    pub retention_ms: Option<u64>,
    /// Delete the oldest whole segments while a partition holds more bytes.
    pub retention_bytes: Option<u64>,
    /// Roll to a new segment at this many bytes.
    pub segment_bytes: Option<u64>,
    /// Roll to a new segment when the active one is this old.
    pub segment_ms: Option<u64>,
}

impl Encode for TopicConfig {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.partitions);
        buf.put_opt_u64(self.retention_ms);
        buf.put_opt_u64(self.retention_bytes);
        buf.put_opt_u64(self.segment_bytes);
        buf.put_opt_u64(self.segment_ms);
    }
}

impl Decode for TopicConfig {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            partitions: r.u32("partitions")?,
            retention_ms: r.opt_u64("retention_ms")?,
            retention_bytes: r.opt_u64("retention_bytes")?,
            segment_bytes: r.opt_u64("segment_bytes")?,
            segment_ms: r.opt_u64("segment_ms")?,
        })
    }
}

/// Creates a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicRequest {
    /// Topic name (see [`crate::topic_name`]).
    pub name: String,
    /// Partition count and log settings.
    pub config: TopicConfig,
}

/// The topic was created. Empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicResponse;

impl Encode for CreateTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
        self.config.encode(buf);
    }
}

impl Decode for CreateTopicRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
            config: TopicConfig::decode(r)?,
        })
    }
}

impl Encode for CreateTopicResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for CreateTopicResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for CreateTopicRequest {
        fn examples() -> Vec<Self> {
            vec![CreateTopicRequest {
                name: "orders".into(),
                config: TopicConfig {
                    partitions: 6,
                    retention_ms: Some(86_400_000),
                    retention_bytes: None,
                    segment_bytes: Some(1 << 20),
                    segment_ms: None,
                },
            }]
        }
    }
}
