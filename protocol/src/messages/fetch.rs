//! Fetch: reads whole record batches from one partition, starting at the
//! batch that holds `offset`. At the end of the log the broker holds the
//! request up to `max_wait_ms` and answers as soon as data arrives.

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// The first Fetch version whose reader decodes batches of magic 2 (records
/// in Kafka's encoding, see [`crate::batch`]); a version 0 reader gets them
/// re-encoded in skiff's (magic 1). The body is the same in both versions.
pub const FETCH_VERSION_KAFKA_RECORDS: u16 = 1;

/// Reads from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// First offset wanted.
    pub offset: u64,
    /// Soft cap on the response's record bytes: at least one whole batch is
    /// returned when one is available, even if larger.
    pub max_bytes: u32,
    /// How long to wait for data when there is none at `offset`; 0 answers
    /// at once.
    pub max_wait_ms: u32,
}

/// Record batches and the partition's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Next offset to be written (acknowledged end).
    pub log_end_offset: u64,
    /// Zero or more whole batches, back to back, exactly as stored. The first
    /// batch may start before the requested offset.
    pub records: Bytes,
}

impl Encode for FetchRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.topic);
        buf.put_u32_le(self.partition);
        buf.put_u64_le(self.offset);
        buf.put_u32_le(self.max_bytes);
        buf.put_u32_le(self.max_wait_ms);
    }
}

impl Decode for FetchRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            topic: r.string("topic")?,
            partition: r.u32("partition")?,
            offset: r.u64("offset")?,
            max_bytes: r.u32("max_bytes")?,
            max_wait_ms: r.u32("max_wait_ms")?,
        })
    }
}

impl Encode for FetchResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(20 + self.records.len());
        buf.put_u64_le(self.log_start_offset);
        buf.put_u64_le(self.log_end_offset);
        buf.put_bytes_field(&self.records);
    }
}

impl Decode for FetchResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            log_start_offset: r.u64("log_start_offset")?,
            log_end_offset: r.u64("log_end_offset")?,
            records: r.bytes("records")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for FetchRequest {
        fn examples() -> Vec<Self> {
            vec![FetchRequest {
                topic: "t".into(),
                partition: 0,
                offset: 42,
                max_bytes: 1 << 20,
                max_wait_ms: 500,
            }]
        }
    }

    impl Examples for FetchResponse {
        fn examples() -> Vec<Self> {
            vec![FetchResponse {
                log_start_offset: 0,
                log_end_offset: 50,
                records: Bytes::from_static(b"batches"),
            }]
        }
    }
}
