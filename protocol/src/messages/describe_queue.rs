//! DescribeQueue: a queue's settings and, per partition, its floor, window
//! and how many records are available, in flight, delayed and
//! dead-lettered.

use bytes::{BufMut, BytesMut};

use super::queue_common::QueueSettingsInfo;
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Describes queue `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeQueueRequest {
    /// The queue.
    pub name: String,
}

/// One partition of a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePartitionInfo {
    /// The partition.
    pub partition: u32,
    /// Every record below is finished.
    pub floor: u64,
    /// The partition's log end.
    pub log_end: u64,
    /// Available now (in the window).
    pub available: u64,
    /// Locked to a member.
    pub in_flight: u64,
    /// Waiting for a redelivery time.
    pub delayed: u64,
    /// Dead-lettered since the broker started.
    pub dead_lettered: u64,
    /// Acknowledged since the broker started.
    pub acked: u64,
    /// Locks that ran out since the broker started.
    pub lock_expiries: u64,
    /// Age of the oldest unfinished record (at the floor), ms; 0 if none.
    pub oldest_unacked_age_ms: u64,
}

/// The queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeQueueResponse {
    /// Its settings.
    pub settings: QueueSettingsInfo,
    /// Its partitions, in order.
    pub partitions: Vec<QueuePartitionInfo>,
}

impl Encode for DescribeQueueRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
    }
}

impl Decode for DescribeQueueRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
        })
    }
}

const PARTITION_INFO_BYTES: usize = 4 + 9 * 8;

impl Encode for DescribeQueueResponse {
    fn encode(&self, buf: &mut BytesMut) {
        self.settings.encode(buf);
        buf.put_u32_le(self.partitions.len() as u32);
        for p in &self.partitions {
            buf.put_u32_le(p.partition);
            for v in [
                p.floor,
                p.log_end,
                p.available,
                p.in_flight,
                p.delayed,
                p.dead_lettered,
                p.acked,
                p.lock_expiries,
                p.oldest_unacked_age_ms,
            ] {
                buf.put_u64_le(v);
            }
        }
    }
}

impl Decode for DescribeQueueResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let settings = QueueSettingsInfo::decode(r)?;
        let n = r.count("partitions", PARTITION_INFO_BYTES)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(QueuePartitionInfo {
                partition: r.u32("partition")?,
                floor: r.u64("floor")?,
                log_end: r.u64("log_end")?,
                available: r.u64("available")?,
                in_flight: r.u64("in_flight")?,
                delayed: r.u64("delayed")?,
                dead_lettered: r.u64("dead_lettered")?,
                acked: r.u64("acked")?,
                lock_expiries: r.u64("lock_expiries")?,
                oldest_unacked_age_ms: r.u64("oldest_unacked_age_ms")?,
            });
        }
        Ok(Self {
            settings,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::queue_common::examples;
    use crate::messages::test_util::Examples;

    impl Examples for DescribeQueueRequest {
        fn examples() -> Vec<Self> {
            vec![DescribeQueueRequest { name: "q".into() }]
        }
    }

    impl Examples for DescribeQueueResponse {
        fn examples() -> Vec<Self> {
            vec![DescribeQueueResponse {
                settings: examples::settings(),
                partitions: vec![QueuePartitionInfo {
                    partition: 0,
                    floor: 10,
                    log_end: 20,
                    available: 3,
                    in_flight: 2,
                    delayed: 1,
                    dead_lettered: 4,
                    acked: 9,
                    lock_expiries: 1,
                    oldest_unacked_age_ms: 1500,
                }],
            }]
        }
    }
}
