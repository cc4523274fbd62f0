//! CreateTopic: a new topic with its partition count and log settings.
//!
//! Version 1 added the topic's compression policy ([`TopicCompression`]) to
//! [`TopicConfig`], which the describe and alter responses carry too, so
//! CreateTopic, DescribeTopic and AlterTopic moved to version 1 together.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};

use crate::compression::Compression;
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// What a topic stores, as Kafka's `compression.type`: the batches as the
/// producer compressed them, or every batch in one codec the broker enforces
/// by re-encoding (recompressing) the batches that differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TopicCompression {
    /// Keep what the producer sent (the default).
    #[default]
    Producer,
    /// Store every batch with this codec (`none`: uncompressed).
    Codec(Compression),
}

/// Wire tag of [`TopicCompression::Producer`]; a codec is sent as
/// `CODEC_TAG_BASE + its attribute number` (1..=5).
const PRODUCER_TAG: u8 = 0;
const CODEC_TAG_BASE: u8 = 1;

impl TopicCompression {
    /// Every policy: `producer`, then each codec in attribute order.
    pub const ALL: [TopicCompression; 6] = [
        TopicCompression::Producer,
        TopicCompression::Codec(Compression::None),
        TopicCompression::Codec(Compression::Gzip),
        TopicCompression::Codec(Compression::Snappy),
        TopicCompression::Codec(Compression::Lz4),
        TopicCompression::Codec(Compression::Zstd),
    ];

    /// The policy's name, as [`FromStr`] reads it: `producer` or a codec
    /// name.
    pub fn name(self) -> &'static str {
        match self {
            TopicCompression::Producer => "producer",
            TopicCompression::Codec(codec) => codec.name(),
        }
    }

    /// The codec a batch sent with `sent` must be stored with: `None` when it
    /// is stored as sent.
    pub fn recompress_to(self, sent: Compression) -> Option<Compression> {
        match self {
            TopicCompression::Codec(codec) if codec != sent => Some(codec),
            _ => None,
        }
    }

    pub(crate) fn encode(self, buf: &mut BytesMut) {
        buf.put_u8(match self {
            TopicCompression::Producer => PRODUCER_TAG,
            // Attribute numbers are 0..=4: the tag fits a byte.
            TopicCompression::Codec(codec) => CODEC_TAG_BASE + codec.attribute() as u8,
        });
    }

    pub(crate) fn decode(r: &mut Reader, field: &'static str) -> Result<Self, DecodeError> {
        let tag = r.u8(field)?;
        if tag == PRODUCER_TAG {
            return Ok(TopicCompression::Producer);
        }
        tag.checked_sub(CODEC_TAG_BASE)
            .and_then(|codec| Compression::from_attribute(u16::from(codec)))
            .map(TopicCompression::Codec)
            .ok_or(DecodeError::InvalidValue {
                field,
                value: u64::from(tag),
            })
    }
}

impl fmt::Display for TopicCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A topic compression name that is none of `producer`, `none`, `gzip`,
/// `snappy`, `lz4` or `zstd`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown topic compression {0:?} (expected producer, none, gzip, snappy, lz4 or zstd)")]
pub struct UnknownTopicCompression(pub String);

impl FromStr for TopicCompression {
    type Err = UnknownTopicCompression;

    /// Reads a policy name (ASCII case ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicCompression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTopicCompression(s.to_owned()))
    }
}

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
    /// The codec batches are stored with (default: as the producer sent
    /// them).
    pub compression: TopicCompression,
}

impl Encode for TopicConfig {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.partitions);
        buf.put_opt_u64(self.retention_ms);
        buf.put_opt_u64(self.retention_bytes);
        buf.put_opt_u64(self.segment_bytes);
        buf.put_opt_u64(self.segment_ms);
        self.compression.encode(buf);
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
            compression: TopicCompression::decode(r, "compression")?,
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
            TopicCompression::ALL
                .into_iter()
                .map(|compression| CreateTopicRequest {
                    name: "orders".into(),
                    config: TopicConfig {
                        partitions: 6,
                        retention_ms: Some(86_400_000),
                        retention_bytes: None,
                        segment_bytes: Some(1 << 20),
                        segment_ms: None,
                        compression,
                    },
                })
                .collect()
        }
    }

    #[test]
    fn compression_names_round_trip_and_bad_ones_are_named() {
        for c in TopicCompression::ALL {
            assert_eq!(c.name().parse::<TopicCompression>(), Ok(c));
        }
        assert_eq!(
            "ZSTD".parse(),
            Ok(TopicCompression::Codec(Compression::Zstd))
        );
        let err = "brotli"
            .parse::<TopicCompression>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"brotli\"") && err.contains("producer"),
            "{err}"
        );
    }

    #[test]
    fn unknown_compression_tags_are_refused() {
        for tag in [6u8, 255] {
            let r = TopicCompression::decode(&mut Reader::new(bytes::Bytes::from(vec![tag])), "c");
            assert!(
                matches!(r, Err(DecodeError::InvalidValue { value, .. }) if value == u64::from(tag))
            );
        }
    }

    #[test]
    fn only_a_different_codec_recompresses() {
        let zstd = TopicCompression::Codec(Compression::Zstd);
        assert_eq!(
            zstd.recompress_to(Compression::Lz4),
            Some(Compression::Zstd)
        );
        assert_eq!(zstd.recompress_to(Compression::Zstd), None);
        assert_eq!(
            TopicCompression::Producer.recompress_to(Compression::Lz4),
            None
        );
    }
}
