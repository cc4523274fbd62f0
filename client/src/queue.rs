//! Work-queue consumers: [`QueueConsumer::next`] yields [`Delivery`]s, each
//! a record locked to this consumer until its deadline, to be settled with
//! [`Delivery::ack`], [`Delivery::nack`] or [`Delivery::reject`] (or kept
//! longer with [`Delivery::extend`]). Any number may be in flight at once.
//! A delivery dropped without a verdict is released (available to other
//! workers at once), from a background task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skiff_protocol::batch::Header;
use skiff_protocol::messages::{
    QueueDelivery, ReceiveRequest, SettleAction, SettleRequest, Settlement,
};

use crate::{Client, Error, Result};

/// Records asked for per receive, by default.
pub const QUEUE_RECEIVE_RECORDS_DEFAULT: u32 = 100;
/// How long one receive waits for records, by default, in ms.
pub const QUEUE_RECEIVE_WAIT_MS_DEFAULT: u32 = 500;

/// How a [`QueueConsumer`] asks for records.
#[derive(Debug, Clone)]
pub struct QueueConsumerConfig {
    /// Records asked for per receive (the broker caps it).
    pub max_records: u32,
    /// How long one receive waits when none is available, in ms.
    pub max_wait_ms: u32,
}

impl Default for QueueConsumerConfig {
    fn default() -> Self {
        Self {
            max_records: QUEUE_RECEIVE_RECORDS_DEFAULT,
            max_wait_ms: QUEUE_RECEIVE_WAIT_MS_DEFAULT,
        }
    }
}

#[derive(Debug)]
struct Member {
    client: Client,
    queue: String,
    member_id: u64,
}

impl Member {
    async fn settle(&self, d: &QueueDelivery, action: SettleAction) -> Result<i64> {
        let response = self
            .client
            .send(SettleRequest {
                queue: self.queue.clone(),
                member_id: self.member_id,
                items: vec![Settlement {
                    partition: d.partition,
                    offset: d.offset,
                    deliveries: d.deliveries,
                    action,
                }],
            })
            .await?;
        let result = response.results.into_iter().next().ok_or_else(|| {
            Error::InvalidArgument("the broker answered a settle without its result".into())
        })?;
        match result.error {
            None => Ok(result.lock_deadline_ms),
            Some(message) => Err(Error::LockLost {
                partition: d.partition,
                offset: d.offset,
                message,
            }),
        }
    }
}

/// A member of a work queue. See the module docs.
#[derive(Debug)]
pub struct QueueConsumer {
    member: Option<Arc<Member>>,
    client: Client,
    queue: String,
    config: QueueConsumerConfig,
    buffered: VecDeque<QueueDelivery>,
}

impl QueueConsumer {
    /// A consumer of queue `queue`; it joins at its first receive.
    pub fn new(client: Client, queue: &str, config: QueueConsumerConfig) -> Self {
        Self {
            member: None,
            client,
            queue: queue.to_owned(),
            config,
            buffered: VecDeque::new(),
        }
    }

    /// The next delivery, waiting as long as it takes. Records of one
    /// receive are buffered: their locks run from when they were handed
    /// out, so keep `max_records` near what a worker gets through within a
    /// lock time.
    pub async fn next(&mut self) -> Result<Delivery> {
        loop {
            if let Some(d) = self.buffered.pop_front() {
                let member =
                    Arc::clone(self.member.as_ref().ok_or_else(|| {
                        Error::InvalidArgument("a delivery without a member".into())
                    })?);
                return Ok(Delivery {
                    member,
                    inner: d,
                    settled: false,
                });
            }
            let member_id = self.member.as_ref().map_or(0, |m| m.member_id);
            let response = self
                .client
                .send(ReceiveRequest {
                    queue: self.queue.clone(),
                    member_id,
                    max_records: self.config.max_records,
                    max_wait_ms: self.config.max_wait_ms,
                })
                .await?;
            if self.member.is_none() {
                self.member = Some(Arc::new(Member {
                    client: self.client.clone(),
                    queue: self.queue.clone(),
                    member_id: response.member_id,
                }));
            }
            self.buffered.extend(response.deliveries);
        }
    }
}

/// A record handed to this consumer, locked to it until
/// [`Delivery::lock_deadline_ms`]. Settle it once; dropped unsettled, it is
/// released.
#[derive(Debug)]
pub struct Delivery {
    member: Arc<Member>,
    inner: QueueDelivery,
    settled: bool,
}

impl Delivery {
    /// The record's partition.
    pub fn partition(&self) -> u32 {
        self.inner.partition
    }
    /// The record's offset.
    pub fn offset(&self) -> u64 {
        self.inner.offset
    }
    /// How many times the record was handed out, this time included.
    pub fn deliveries(&self) -> u32 {
        self.inner.deliveries
    }
    /// When the lock runs out, Unix ms.
    pub fn lock_deadline_ms(&self) -> i64 {
        self.inner.lock_deadline_ms
    }
    /// The record's timestamp, Unix ms.
    pub fn timestamp_ms(&self) -> i64 {
        self.inner.timestamp_ms
    }
    /// The record's key.
    pub fn key(&self) -> Option<&Bytes> {
        self.inner.key.as_ref()
    }
    /// The record's value.
    pub fn value(&self) -> &Bytes {
        &self.inner.value
    }
    /// The record's headers.
    pub fn headers(&self) -> &[Header] {
        &self.inner.headers
    }

    /// Done: the record is never delivered again. Returns once durable;
    /// [`Error::LockLost`] if the lock ran out first (the record is or was
    /// redelivered).
    pub async fn ack(mut self) -> Result<()> {
        self.settled = true;
        self.member.settle(&self.inner, SettleAction::Ack).await?;
        Ok(())
    }

    /// Deliver again, no sooner than `delay` (or the queue's backoff, if
    /// longer); after the queue's `max_deliveries` the record goes to the
    /// dead-letter topic instead.
    pub async fn nack(mut self, delay: Duration) -> Result<()> {
        self.settled = true;
        let delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
        self.member
            .settle(&self.inner, SettleAction::Nack { delay_ms })
            .await?;
        Ok(())
    }

    /// Straight to the dead-letter topic, with `reason` in its headers.
    pub async fn reject(mut self, reason: &str) -> Result<()> {
        self.settled = true;
        self.member
            .settle(
                &self.inner,
                SettleAction::Reject {
                    reason: reason.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Keeps the lock `time` longer from now; returns the new deadline.
    pub async fn extend(&mut self, time: Duration) -> Result<i64> {
        let lock_ms = u32::try_from(time.as_millis()).unwrap_or(u32::MAX);
        let deadline = self
            .member
            .settle(&self.inner, SettleAction::Extend { lock_ms })
            .await?;
        self.inner.lock_deadline_ms = deadline;
        Ok(deadline)
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Released from a task: without a runtime (a consumer dropped at
        // exit) the lock simply runs out.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let member = Arc::clone(&self.member);
            let inner = self.inner.clone();
            runtime.spawn(async move {
                let _ = member.settle(&inner, SettleAction::Release).await;
            });
        }
    }
}
