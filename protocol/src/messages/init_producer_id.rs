//! InitProducerId: hands an idempotent producer a broker-unique producer id
//! and epoch. The producer then numbers its batches per partition
//! (`base_sequence` in the batch header) and the broker stores each sequence
//! once: a retried batch is answered with its original offsets, a gapped or
//! reordered one is refused (`OutOfOrderSequence`).
//!
//! Ids are never reused, also across broker restarts (the broker persists
//! the next free id before handing out a block of them).

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader};

/// Asks for a new producer id. Empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest;

/// A fresh producer id and its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// The id to put in every batch's `producer_id`.
    pub producer_id: u64,
    /// The epoch to put in every batch's `producer_epoch`.
    pub producer_epoch: u16,
}

impl Encode for InitProducerIdRequest {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for InitProducerIdRequest {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

impl Encode for InitProducerIdResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64_le(self.producer_id);
        buf.put_u16_le(self.producer_epoch);
    }
}

impl Decode for InitProducerIdResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            producer_id: r.u64("producer_id")?,
            producer_epoch: r.u16("producer_epoch")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for InitProducerIdResponse {
        fn examples() -> Vec<Self> {
            vec![InitProducerIdResponse {
                producer_id: 42,
                producer_epoch: 3,
            }]
        }
    }
}
