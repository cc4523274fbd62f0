//! Settle: a member's verdicts on records it holds, batched: ack, nack with
//! a delay, reject with a reason, extend the lock, or release. Answered
//! once every ack, nack and reject is durable; each item has its own
//! result.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// What to do with one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleAction {
    /// Done.
    Ack,
    /// Redeliver no sooner than `delay_ms` (or the queue's backoff).
    Nack {
        /// The delay, ms.
        delay_ms: u32,
    },
    /// Straight to the dead-letter topic.
    Reject {
        /// Why (a dead-letter header).
        reason: String,
    },
    /// Keep the lock `lock_ms` longer from now.
    Extend {
        /// The new lock time, ms.
        lock_ms: u32,
    },
    /// Give back without a verdict (available again at once).
    Release,
}

/// One delivery and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The record's partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// The delivery count it was handed out with.
    pub deliveries: u32,
    /// The verdict.
    pub action: SettleAction,
}

/// Settles deliveries of queue `queue` held by `member_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleRequest {
    /// The queue.
    pub queue: String,
    /// The member (from its receive).
    pub member_id: u64,
    /// The verdicts.
    pub items: Vec<Settlement>,
}

/// The outcome of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleResult {
    /// Why the item was refused (the lock was lost, ...); `None`: done.
    pub error: Option<String>,
    /// For an extend: the new lock deadline, Unix ms; else 0.
    pub lock_deadline_ms: i64,
}

/// One result per item, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleResponse {
    /// The results.
    pub results: Vec<SettleResult>,
}

const TAG_ACK: u8 = 0;
const TAG_NACK: u8 = 1;
const TAG_REJECT: u8 = 2;
const TAG_EXTEND: u8 = 3;
const TAG_RELEASE: u8 = 4;

impl Encode for SettleRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.queue);
        buf.put_u64_le(self.member_id);
        buf.put_u32_le(self.items.len() as u32);
        for item in &self.items {
            buf.put_u32_le(item.partition);
            buf.put_u64_le(item.offset);
            buf.put_u32_le(item.deliveries);
            match &item.action {
                SettleAction::Ack => buf.put_u8(TAG_ACK),
                SettleAction::Nack { delay_ms } => {
                    buf.put_u8(TAG_NACK);
                    buf.put_u32_le(*delay_ms);
                }
                SettleAction::Reject { reason } => {
                    buf.put_u8(TAG_REJECT);
                    buf.put_string(reason);
                }
                SettleAction::Extend { lock_ms } => {
                    buf.put_u8(TAG_EXTEND);
                    buf.put_u32_le(*lock_ms);
                }
                SettleAction::Release => buf.put_u8(TAG_RELEASE),
            }
        }
    }
}

impl Decode for SettleRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let queue = r.string("queue")?;
        let member_id = r.u64("member_id")?;
        let n = r.count("items", 4 + 8 + 4 + 1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let partition = r.u32("partition")?;
            let offset = r.u64("offset")?;
            let deliveries = r.u32("deliveries")?;
            let action = match r.u8("action")? {
                TAG_ACK => SettleAction::Ack,
                TAG_NACK => SettleAction::Nack {
                    delay_ms: r.u32("delay_ms")?,
                },
                TAG_REJECT => SettleAction::Reject {
                    reason: r.string("reason")?,
                },
                TAG_EXTEND => SettleAction::Extend {
                    lock_ms: r.u32("lock_ms")?,
                },
                TAG_RELEASE => SettleAction::Release,
                other => {
                    return Err(DecodeError::InvalidValue {
                        field: "action",
                        value: u64::from(other),
                    });
                }
            };
            items.push(Settlement {
                partition,
                offset,
                deliveries,
                action,
            });
        }
        Ok(Self {
            queue,
            member_id,
            items,
        })
    }
}

impl Encode for SettleResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.results.len() as u32);
        for result in &self.results {
            buf.put_bool(result.error.is_some());
            if let Some(e) = &result.error {
                buf.put_string(e);
            }
            buf.put_i64_le(result.lock_deadline_ms);
        }
    }
}

impl Decode for SettleResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("results", 1 + 8)?;
        let mut results = Vec::with_capacity(n);
        for _ in 0..n {
            let error = if r.bool("has_error")? {
                Some(r.string("error")?)
            } else {
                None
            };
            results.push(SettleResult {
                error,
                lock_deadline_ms: r.i64("lock_deadline_ms")?,
            });
        }
        Ok(Self { results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for SettleRequest {
        fn examples() -> Vec<Self> {
            let item = |action| Settlement {
                partition: 1,
                offset: 9,
                deliveries: 2,
                action,
            };
            vec![SettleRequest {
                queue: "q".into(),
                member_id: 3,
                items: vec![
                    item(SettleAction::Ack),
                    item(SettleAction::Nack { delay_ms: 500 }),
                    item(SettleAction::Reject {
                        reason: "bad".into(),
                    }),
                    item(SettleAction::Extend { lock_ms: 9000 }),
                    item(SettleAction::Release),
                ],
            }]
        }
    }

    impl Examples for SettleResponse {
        fn examples() -> Vec<Self> {
            vec![SettleResponse {
                results: vec![
                    SettleResult {
                        error: None,
                        lock_deadline_ms: 0,
                    },
                    SettleResult {
                        error: Some("lock lost".into()),
                        lock_deadline_ms: 0,
                    },
                ],
            }]
        }
    }

    #[test]
    fn an_unknown_action_is_refused() {
        let mut buf = BytesMut::new();
        SettleRequest {
            queue: "q".into(),
            member_id: 1,
            items: vec![Settlement {
                partition: 0,
                offset: 0,
                deliveries: 1,
                action: SettleAction::Release,
            }],
        }
        .encode(&mut buf);
        let last = buf.len() - 1;
        buf[last] = 9;
        assert!(crate::primitives::decode_body::<SettleRequest>(buf.freeze()).is_err());
    }
}
