//! AlterTopic: changes a live topic's log settings (retention and segment
//! rolls). The partition count cannot change: keys already hashed to a
//! partition would move. Each setting is kept, set, or reset to the broker's
//! default; the response carries the topic's settings after the change.
//! Version 1 added the compression policy (see `create_topic`).

use bytes::{BufMut, BytesMut};

use super::{TopicCompression, TopicConfig};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// What to do with one setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfigChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Set it to this value.
    Set(u64),
    /// Unset it: the broker's default applies.
    Reset,
}

impl ConfigChange {
    /// The setting after this change, given its current value.
    pub fn apply(self, current: Option<u64>) -> Option<u64> {
        match self {
            ConfigChange::Keep => current,
            ConfigChange::Set(v) => Some(v),
            ConfigChange::Reset => None,
        }
    }

    fn encode(self, buf: &mut BytesMut) {
        match self {
            ConfigChange::Keep => buf.put_u8(0),
            ConfigChange::Set(v) => {
                buf.put_u8(1);
                buf.put_u64_le(v);
            }
            ConfigChange::Reset => buf.put_u8(2),
        }
    }

    fn decode(r: &mut Reader, field: &'static str) -> Result<Self, DecodeError> {
        match r.u8(field)? {
            0 => Ok(ConfigChange::Keep),
            1 => Ok(ConfigChange::Set(r.u64(field)?)),
            2 => Ok(ConfigChange::Reset),
            other => Err(DecodeError::InvalidValue {
                field,
                value: u64::from(other),
            }),
        }
    }
}

/// Changes a topic's log settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterTopicRequest {
    /// The topic.
    pub name: String,
    /// Delete whole segments older than this many milliseconds.
    pub retention_ms: ConfigChange,
    /// Delete the oldest whole segments while a partition holds more bytes.
    pub retention_bytes: ConfigChange,
    /// Roll to a new segment at this many bytes.
    pub segment_bytes: ConfigChange,
    /// Roll to a new segment when the active one is this old.
    pub segment_ms: ConfigChange,
    /// The codec batches are stored with from now on (`None`: unchanged;
    /// batches already stored stay as they are).
    pub compression: Option<TopicCompression>,
}

/// The topic's settings after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterTopicResponse {
    /// Partition count and log settings (unset: the broker's default).
    pub config: TopicConfig,
}

impl Encode for AlterTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
        self.retention_ms.encode(buf);
        self.retention_bytes.encode(buf);
        self.segment_bytes.encode(buf);
        self.segment_ms.encode(buf);
        match self.compression {
            None => buf.put_u8(0),
            Some(c) => {
                buf.put_u8(1);
                c.encode(buf);
            }
        }
    }
}

impl Decode for AlterTopicRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
            retention_ms: ConfigChange::decode(r, "retention_ms")?,
            retention_bytes: ConfigChange::decode(r, "retention_bytes")?,
            segment_bytes: ConfigChange::decode(r, "segment_bytes")?,
            segment_ms: ConfigChange::decode(r, "segment_ms")?,
            compression: match r.u8("compression")? {
                0 => None,
                1 => Some(TopicCompression::decode(r, "compression")?),
                other => {
                    return Err(DecodeError::InvalidValue {
                        field: "compression",
                        value: u64::from(other),
                    });
                }
            },
        })
    }
}

impl Encode for AlterTopicResponse {
    fn encode(&self, buf: &mut BytesMut) {
        self.config.encode(buf);
    }
}

impl Decode for AlterTopicResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            config: TopicConfig::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for AlterTopicRequest {
        fn examples() -> Vec<Self> {
            vec![
                AlterTopicRequest {
                    name: "orders".into(),
                    retention_ms: ConfigChange::Set(60_000),
                    retention_bytes: ConfigChange::Reset,
                    segment_bytes: ConfigChange::Keep,
                    segment_ms: ConfigChange::Set(0),
                    compression: None,
                },
                AlterTopicRequest {
                    name: "orders".into(),
                    compression: Some(TopicCompression::Producer),
                    ..AlterTopicRequest::default()
                },
                AlterTopicRequest {
                    name: "orders".into(),
                    compression: Some(TopicCompression::Codec(crate::Compression::Lz4)),
                    ..AlterTopicRequest::default()
                },
            ]
        }
    }

    impl Examples for AlterTopicResponse {
        fn examples() -> Vec<Self> {
            vec![AlterTopicResponse {
                config: TopicConfig {
                    partitions: 3,
                    retention_ms: Some(60_000),
                    compression: TopicCompression::Codec(crate::Compression::Zstd),
                    ..TopicConfig::default()
                },
            }]
        }
    }

    #[test]
    fn unknown_change_tags_are_refused() {
        let mut buf = BytesMut::new();
        buf.put_string("t");
        buf.put_u8(9);
        let r = crate::primitives::decode_body::<AlterTopicRequest>(buf.freeze());
        assert!(matches!(r, Err(DecodeError::InvalidValue { value: 9, .. })));
    }

    #[test]
    fn changes_apply() {
        assert_eq!(ConfigChange::Keep.apply(Some(1)), Some(1));
        assert_eq!(ConfigChange::Set(2).apply(Some(1)), Some(2));
        assert_eq!(ConfigChange::Reset.apply(Some(1)), None);
    }
}
