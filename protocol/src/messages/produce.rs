//! Produce: appends one record batch to one partition. The ack carries the
//! offsets the broker assigned.

use bytes::{BufMut, Bytes, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Partition value asking the broker to choose: by the hash of the first
/// record's key ([`crate::partitioner::partition_for_key`]) when it has one,
/// round-robin otherwise.
pub const PARTITION_AUTO: u32 = u32::MAX;

/// The first Produce version a producer sends magic-2 batches in (records
/// in Kafka's encoding, see [`crate::batch`]). The body is the same in both
/// versions, and a broker that reads magic 2 takes it in either: the
/// version only lets a producer learn, from the `UnsupportedVersion` of a
/// broker from before magic 2 (which serves version 0 only), to send magic
/// 1 instead.
pub const PRODUCE_VERSION_KAFKA_RECORDS: u16 = 1;

/// Appends a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    /// Target topic.
    pub topic: String,
    /// Target partition, or [`PARTITION_AUTO`].
    pub partition: u32,
    /// One whole record batch (see [`crate::batch`]); its base offset is
    /// ignored and stamped by the broker.
    pub batch: Bytes,
}

/// The batch is stored (durably, under the broker's fsync mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResponse {
    /// The partition the batch went to.
    pub partition: u32,
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of the batch's last record.
    pub last_offset: u64,
}

impl Encode for ProduceRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.topic);
        buf.put_u32_le(self.partition);
        buf.put_bytes_field(&self.batch);
    }
}

impl Decode for ProduceRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            topic: r.string("topic")?,
            partition: r.u32("partition")?,
            batch: r.bytes("batch")?,
        })
    }
}

impl Encode for ProduceResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.partition);
        buf.put_u64_le(self.base_offset);
        buf.put_u64_le(self.last_offset);
    }
}

impl Decode for ProduceResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            partition: r.u32("partition")?,
            base_offset: r.u64("base_offset")?,
            last_offset: r.u64("last_offset")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ProduceRequest {
        fn examples() -> Vec<Self> {
            vec![ProduceRequest {
                topic: "t".into(),
                partition: PARTITION_AUTO,
                batch: Bytes::from_static(b"not checked here"),
            }]
        }
    }

    impl Examples for ProduceResponse {
        fn examples() -> Vec<Self> {
            vec![ProduceResponse {
                partition: 3,
                base_offset: 100,
                last_offset: 109,
            }]
        }
    }
}
