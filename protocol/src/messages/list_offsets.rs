//! ListOffsets: a partition's earliest or latest offset, or the first offset
//! at or after a timestamp.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The log start offset.
    Earliest,
    /// The log end offset (the next offset to be written).
    Latest,
    /// The first offset whose record timestamp is at or after this Unix time
    /// in milliseconds; the log end offset when there is none.
    Timestamp(i64),
}

/// Looks up an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsRequest {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// What to look up.
    pub query: OffsetQuery,
}

/// The offset found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsResponse {
    /// The offset.
    pub offset: u64,
}

impl Encode for ListOffsetsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.topic);
        buf.put_u32_le(self.partition);
        let (tag, ts) = match self.query {
            OffsetQuery::Earliest => (0u8, 0i64),
            OffsetQuery::Latest => (1, 0),
            OffsetQuery::Timestamp(ts) => (2, ts),
        };
        buf.put_u8(tag);
        buf.put_i64_le(ts);
    }
}

impl Decode for ListOffsetsRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let topic = r.string("topic")?;
        let partition = r.u32("partition")?;
        let tag = r.u8("query")?;
        let ts = r.i64("timestamp_ms")?;
        let query = match tag {
            0 => OffsetQuery::Earliest,
            1 => OffsetQuery::Latest,
            2 => OffsetQuery::Timestamp(ts),
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "query",
                    value: u64::from(other),
                });
            }
        };
        Ok(Self {
            topic,
            partition,
            query,
        })
    }
}

impl Encode for ListOffsetsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64_le(self.offset);
    }
}

impl Decode for ListOffsetsResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            offset: r.u64("offset")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ListOffsetsRequest {
        fn examples() -> Vec<Self> {
            [
                OffsetQuery::Earliest,
                OffsetQuery::Latest,
                OffsetQuery::Timestamp(-5),
                OffsetQuery::Timestamp(1_700_000_000_000),
            ]
            .into_iter()
            .map(|query| ListOffsetsRequest {
                topic: "t".into(),
                partition: 1,
                query,
            })
            .collect()
        }
    }

    impl Examples for ListOffsetsResponse {
        fn examples() -> Vec<Self> {
            vec![ListOffsetsResponse { offset: 7 }]
        }
    }

    #[test]
    fn unknown_query_tags_are_refused() {
        let mut buf = BytesMut::new();
        buf.put_string("t");
        buf.put_u32_le(0);
        buf.put_u8(9);
        buf.put_i64_le(0);
        let err = crate::primitives::decode_body::<ListOffsetsRequest>(buf.freeze()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidValue {
                field: "query",
                value: 9
            }
        );
    }
}
