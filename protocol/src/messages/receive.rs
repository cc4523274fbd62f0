//! Receive: hands a queue member up to `max_records` available records,
//! each locked to it, waiting up to `max_wait_ms` when none is available.

use bytes::{BufMut, BytesMut};

use super::queue_common::{QUEUE_DELIVERY_BYTES_MIN, QueueDelivery};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Asks for records of queue `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRequest {
    /// The queue.
    pub queue: String,
    /// The member's id from an earlier answer; 0 for a new member.
    pub member_id: u64,
    /// Most records to hand out.
    pub max_records: u32,
    /// Longest wait when none is available, ms (capped by the broker).
    pub max_wait_ms: u32,
}

/// Records handed out, locked to the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveResponse {
    /// The member's id: send it with every later receive and settle.
    pub member_id: u64,
    /// The records, possibly none (the wait ran out).
    pub deliveries: Vec<QueueDelivery>,
}

impl Encode for ReceiveRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.queue);
        buf.put_u64_le(self.member_id);
        buf.put_u32_le(self.max_records);
        buf.put_u32_le(self.max_wait_ms);
    }
}

impl Decode for ReceiveRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            queue: r.string("queue")?,
            member_id: r.u64("member_id")?,
            max_records: r.u32("max_records")?,
            max_wait_ms: r.u32("max_wait_ms")?,
        })
    }
}

impl Encode for ReceiveResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64_le(self.member_id);
        buf.put_u32_le(self.deliveries.len() as u32);
        for d in &self.deliveries {
            d.encode(buf);
        }
    }
}

impl Decode for ReceiveResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let member_id = r.u64("member_id")?;
        let n = r.count("deliveries", QUEUE_DELIVERY_BYTES_MIN)?;
        let mut deliveries = Vec::with_capacity(n);
        for _ in 0..n {
            deliveries.push(QueueDelivery::decode(r)?);
        }
        Ok(Self {
            member_id,
            deliveries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::queue_common::examples;
    use crate::messages::test_util::Examples;

    impl Examples for ReceiveRequest {
        fn examples() -> Vec<Self> {
            vec![ReceiveRequest {
                queue: "q".into(),
                member_id: 7,
                max_records: 100,
                max_wait_ms: 500,
            }]
        }
    }

    impl Examples for ReceiveResponse {
        fn examples() -> Vec<Self> {
            vec![
                ReceiveResponse {
                    member_id: 7,
                    deliveries: vec![],
                },
                ReceiveResponse {
                    member_id: 7,
                    deliveries: vec![examples::delivery(), examples::delivery()],
                },
            ]
        }
    }
}
