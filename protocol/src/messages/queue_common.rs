//! Types shared by the work-queue APIs: queue settings as sent (every field
//! optional: the broker's default or the current value stays), a queue's
//! settings as stored, and a delivery.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::Header;
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Queue settings in a create or alter; `None` keeps the default (create)
/// or the current value (alter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a handed-out record stays locked, in ms.
    pub lock_ms: Option<u64>,
    /// Deliveries before a failed record is dead-lettered.
    pub max_deliveries: Option<u64>,
    /// Redelivery delay after the first delivery, in ms.
    pub backoff_initial_ms: Option<u64>,
    /// Growth of the delay per delivery.
    pub backoff_multiplier: Option<u64>,
    /// Cap of the delay, in ms.
    pub backoff_max_ms: Option<u64>,
    /// `none` or `key`.
    pub ordering: Option<String>,
    /// The dead-letter topic (create only).
    pub dead_letter_topic: Option<String>,
    /// Records tracked per partition.
    pub window_records: Option<u64>,
}

fn put_opt_string(buf: &mut BytesMut, v: Option<&str>) {
    buf.put_bool(v.is_some());
    if let Some(v) = v {
        buf.put_string(v);
    }
}

fn opt_string(r: &mut Reader, field: &'static str) -> Result<Option<String>, DecodeError> {
    Ok(if r.bool(field)? {
        Some(r.string(field)?)
    } else {
        None
    })
}

impl Encode for QueueConfig {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_opt_u64(self.lock_ms);
        buf.put_opt_u64(self.max_deliveries);
        buf.put_opt_u64(self.backoff_initial_ms);
        buf.put_opt_u64(self.backoff_multiplier);
        buf.put_opt_u64(self.backoff_max_ms);
        put_opt_string(buf, self.ordering.as_deref());
        put_opt_string(buf, self.dead_letter_topic.as_deref());
        buf.put_opt_u64(self.window_records);
    }
}

impl Decode for QueueConfig {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            lock_ms: r.opt_u64("lock_ms")?,
            max_deliveries: r.opt_u64("max_deliveries")?,
            backoff_initial_ms: r.opt_u64("backoff_initial_ms")?,
            backoff_multiplier: r.opt_u64("backoff_multiplier")?,
            backoff_max_ms: r.opt_u64("backoff_max_ms")?,
            ordering: opt_string(r, "ordering")?,
            dead_letter_topic: opt_string(r, "dead_letter_topic")?,
            window_records: r.opt_u64("window_records")?,
        })
    }
}

/// A queue's settings as the broker holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSettingsInfo {
    /// The topic the queue reads.
    pub topic: String,
    /// Lock time, ms.
    pub lock_ms: u32,
    /// Deliveries before dead-lettering.
    pub max_deliveries: u32,
    /// Backoff: first delay, ms.
    pub backoff_initial_ms: u32,
    /// Backoff: growth per delivery.
    pub backoff_multiplier: u32,
    /// Backoff: cap, ms.
    pub backoff_max_ms: u32,
    /// `none` or `key`.
    pub ordering: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// Records tracked per partition.
    pub window_records: u32,
}

impl Encode for QueueSettingsInfo {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.topic);
        buf.put_u32_le(self.lock_ms);
        buf.put_u32_le(self.max_deliveries);
        buf.put_u32_le(self.backoff_initial_ms);
        buf.put_u32_le(self.backoff_multiplier);
        buf.put_u32_le(self.backoff_max_ms);
        buf.put_string(&self.ordering);
        buf.put_string(&self.dead_letter_topic);
        buf.put_u32_le(self.window_records);
    }
}

impl Decode for QueueSettingsInfo {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            topic: r.string("topic")?,
            lock_ms: r.u32("lock_ms")?,
            max_deliveries: r.u32("max_deliveries")?,
            backoff_initial_ms: r.u32("backoff_initial_ms")?,
            backoff_multiplier: r.u32("backoff_multiplier")?,
            backoff_max_ms: r.u32("backoff_max_ms")?,
            ordering: r.string("ordering")?,
            dead_letter_topic: r.string("dead_letter_topic")?,
            window_records: r.u32("window_records")?,
        })
    }
}

/// A record handed out to a queue member, locked to it until
/// `lock_deadline_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDelivery {
    /// The record's partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// Deliveries so far, this one included; names this delivery in a
    /// settle.
    pub deliveries: u32,
    /// When the lock runs out, Unix ms.
    pub lock_deadline_ms: i64,
    /// The record's timestamp, Unix ms.
    pub timestamp_ms: i64,
    /// The record's key.
    pub key: Option<Bytes>,
    /// The record's value.
    pub value: Bytes,
    /// The record's headers.
    pub headers: Vec<Header>,
}

/// Smallest encoded delivery, for count checks.
pub(crate) const QUEUE_DELIVERY_BYTES_MIN: usize = 4 + 8 + 4 + 8 + 8 + 1 + 4 + 4;

impl Encode for QueueDelivery {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.partition);
        buf.put_u64_le(self.offset);
        buf.put_u32_le(self.deliveries);
        buf.put_i64_le(self.lock_deadline_ms);
        buf.put_i64_le(self.timestamp_ms);
        buf.put_opt_bytes(self.key.as_deref());
        buf.put_bytes_field(&self.value);
        buf.put_u32_le(self.headers.len() as u32);
        for h in &self.headers {
            buf.put_string(&h.key);
            buf.put_bytes_field(&h.value);
        }
    }
}

impl Decode for QueueDelivery {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let partition = r.u32("partition")?;
        let offset = r.u64("offset")?;
        let deliveries = r.u32("deliveries")?;
        let lock_deadline_ms = r.i64("lock_deadline_ms")?;
        let timestamp_ms = r.i64("timestamp_ms")?;
        let key = r.opt_bytes("key")?;
        let value = r.bytes("value")?;
        let n = r.count("headers", 2 + 4)?;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            headers.push(Header {
                key: r.string("header key")?,
                value: r.bytes("header value")?,
            });
        }
        Ok(Self {
            partition,
            offset,
            deliveries,
            lock_deadline_ms,
            timestamp_ms,
            key,
            value,
            headers,
        })
    }
}

#[cfg(test)]
pub(crate) mod examples {
    use super::*;

    pub fn config_full() -> QueueConfig {
        QueueConfig {
            lock_ms: Some(30_000),
            max_deliveries: Some(5),
            backoff_initial_ms: Some(100),
            backoff_multiplier: Some(2),
            backoff_max_ms: Some(60_000),
            ordering: Some("key".into()),
            dead_letter_topic: Some("jobs.q.dlq".into()),
            window_records: Some(10_000),
        }
    }

    pub fn settings() -> QueueSettingsInfo {
        QueueSettingsInfo {
            topic: "jobs".into(),
            lock_ms: 30_000,
            max_deliveries: 5,
            backoff_initial_ms: 0,
            backoff_multiplier: 2,
            backoff_max_ms: 60_000,
            ordering: "none".into(),
            dead_letter_topic: "jobs.q.dlq".into(),
            window_records: 10_000,
        }
    }

    pub fn delivery() -> QueueDelivery {
        QueueDelivery {
            partition: 1,
            offset: 42,
            deliveries: 2,
            lock_deadline_ms: 1_700_000_000_000,
            timestamp_ms: 1_699_999_999_000,
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::from_static(b"work"),
            headers: vec![Header {
                key: "h".into(),
                value: Bytes::from_static(b"v"),
            }],
        }
    }
}
