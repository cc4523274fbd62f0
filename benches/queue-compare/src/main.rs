//! The work-queue load of `skiff bench queue`, against RabbitMQ and NATS
//! JetStream: fill a queue with RECORDS records of SIZE bytes (each
//! publish confirmed), then WORKERS workers, each on its own connection,
//! take and acknowledge every record one by one; every NACK_EVERYth record
//! is negatively acknowledged on its first delivery (redelivered at once)
//! and timed until it is delivered again.
//!
//! - RabbitMQ: a durable quorum queue (Raft log, fsync'd before a publish
//!   is confirmed), persistent messages, publisher confirms, manual acks,
//!   `basic.qos` prefetch PREFETCH per worker; a nack with requeue.
//! - NATS JetStream: a work-queue stream with file storage, a durable pull
//!   consumer with explicit acks shared by the workers (at most PREFETCH
//!   unacknowledged per worker); a NAK redelivers.
//!
//! `queue-compare rabbitmq|nats URL [RECORDS WORKERS SIZE PREFETCH NACK_EVERY]`
//! prints one JSON object: publish and ack rates, redelivery latency.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::json;

/// Publishes awaited at once while filling.
const PUBLISH_WINDOW: usize = 10_000;
/// A run with no acknowledgement for this long fails.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an idle worker checks whether the run is over.
const IDLE_POLL: Duration = Duration::from_millis(200);

struct Load {
    records: u64,
    workers: usize,
    size: usize,
    prefetch: u16,
    nack_every: u64,
}

/// What workers share: progress, and nacked records waiting to come back.
struct Shared {
    /// Distinct records acknowledged: the run is done when all are.
    acked: AtomicU64,
    acked_seqs: Mutex<HashSet<u64>>,
    /// Acks of a record already acknowledged: a broker's at-least-once
    /// redelivery (e.g. a record whose ack was in flight when its worker's
    /// connection closed is requeued and handed to another worker, which
    /// acks it again). Counting them as records acked overstated the rate
    /// (100,003 of 100,000 with 4 RabbitMQ workers).
    duplicate_acks: AtomicU64,
    waiting: Mutex<HashMap<u64, Instant>>,
    redelivery_ms: Mutex<Vec<f64>>,
    last_progress: Mutex<Instant>,
}

impl Shared {
    fn new() -> Self {
        Self {
            acked: AtomicU64::new(0),
            acked_seqs: Mutex::new(HashSet::new()),
            duplicate_acks: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            redelivery_ms: Mutex::new(Vec::new()),
            last_progress: Mutex::new(Instant::now()),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the record of sequence `seq`, on its first delivery, is
    /// nacked; notes when.
    fn nack_first(&self, load: &Load, seq: u64) -> bool {
        let nack = load.nack_every > 0 && seq.is_multiple_of(load.nack_every);
        if nack {
            Self::lock(&self.waiting).insert(seq, Instant::now());
        }
        nack
    }

    /// A redelivery of `seq`: records its latency.
    fn redelivered(&self, seq: u64) {
        if let Some(at) = Self::lock(&self.waiting).remove(&seq) {
            Self::lock(&self.redelivery_ms).push(at.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// `seq` was acknowledged: counted once per record.
    fn acked(&self, seq: u64) {
        if !Self::lock(&self.acked_seqs).insert(seq) {
            self.duplicate_acks.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.acked.fetch_add(1, Ordering::Relaxed);
        *Self::lock(&self.last_progress) = Instant::now();
    }

    /// Whether every record is acknowledged; an error after a stall.
    fn done(&self, load: &Load) -> Result<bool> {
        let acked = self.acked.load(Ordering::Relaxed);
        if acked >= load.records {
            return Ok(true);
        }
        if Self::lock(&self.last_progress).elapsed() > STALL_TIMEOUT {
            bail!("stalled: {acked} of {} acknowledged", load.records);
        }
        Ok(false)
    }
}

/// A value of `size` bytes starting with its sequence number.
fn value(seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![b'x'; size.max(8)];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v
}

fn seq_of(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(u64::MAX, u64::from_le_bytes)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

mod rabbit {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    use super::*;

    const QUEUE: &str = "skiff-compare-jobs";

    async fn connect(url: &str) -> Result<Connection> {
        Connection::connect(url, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to RabbitMQ at {url}"))
    }

    pub async fn fill(url: &str, load: &Load) -> Result<Duration> {
        let conn = connect(url).await?;
        let ch = conn.create_channel().await?;
        ch.queue_delete(QUEUE, QueueDeleteOptions::default())
            .await
            .ok();
        let ch = conn.create_channel().await?;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        ch.queue_declare(
            QUEUE,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let started = Instant::now();
        let mut seq = 0;
        while seq < load.records {
            let mut confirms = Vec::with_capacity(PUBLISH_WINDOW);
            while seq < load.records && confirms.len() < PUBLISH_WINDOW {
                let confirm = ch
                    .basic_publish(
                        "",
                        QUEUE,
                        BasicPublishOptions::default(),
                        &value(seq, load.size),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?;
                confirms.push(confirm);
                seq += 1;
            }
            for c in confirms {
                if !c.await?.is_ack() {
                    bail!("RabbitMQ refused a publish (nack)");
                }
            }
        }
        let took = started.elapsed();
        conn.close(200, "filled").await.ok();
        Ok(took)
    }

    pub async fn worker(
        url: String,
        id: usize,
        load: Arc<Load>,
        shared: Arc<Shared>,
    ) -> Result<()> {
        let conn = connect(&url).await?;
        let ch = conn.create_channel().await?;
        ch.basic_qos(load.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = ch
            .basic_consume(
                QUEUE,
                &format!("worker-{id}"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        while !shared.done(&load)? {
            let next = match tokio::time::timeout(IDLE_POLL, consumer.next()).await {
                Ok(Some(d)) => d?,
                Ok(None) => bail!("RabbitMQ ended the consumer"),
                Err(_) => continue,
            };
            let seq = seq_of(&next.data);
            if next.redelivered {
                shared.redelivered(seq);
            } else if shared.nack_first(&load, seq) {
                next.nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await?;
                continue;
            }
            next.ack(BasicAckOptions::default()).await?;
            shared.acked(seq);
        }
        conn.close(200, "done").await.ok();
        Ok(())
    }
}

mod nats {
    use async_nats::jetstream::{self, AckKind, consumer, stream};

    use super::*;

    const STREAM: &str = "SKIFF_COMPARE_JOBS";
    const SUBJECT: &str = "skiff-compare.jobs";
    const CONSUMER: &str = "workers";

    async fn connect(url: &str) -> Result<jetstream::Context> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        Ok(jetstream::new(client))
    }

    pub async fn fill(url: &str, load: &Load) -> Result<Duration> {
        let js = connect(url).await?;
        js.delete_stream(STREAM).await.ok();
        let stream = js
            .create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec![SUBJECT.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating stream: {e}"))?;
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: i64::from(load.prefetch) * load.workers as i64,
                ..consumer::pull::Config::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating consumer: {e}"))?;
        let started = Instant::now();
        let mut seq = 0;
        while seq < load.records {
            let mut acks = Vec::with_capacity(PUBLISH_WINDOW);
            while seq < load.records && acks.len() < PUBLISH_WINDOW {
                let ack = js
                    .publish(SUBJECT, value(seq, load.size).into())
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                acks.push(ack);
                seq += 1;
            }
            for a in acks {
                a.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
            }
        }
        Ok(started.elapsed())
    }

    pub async fn worker(
        url: String,
        _id: usize,
        load: Arc<Load>,
        shared: Arc<Shared>,
    ) -> Result<()> {
        let js = connect(&url).await?;
        let consumer: consumer::PullConsumer = js
            .get_stream(STREAM)
            .await
            .map_err(|e| anyhow::anyhow!("stream: {e}"))?
            .get_consumer(CONSUMER)
            .await
            .map_err(|e| anyhow::anyhow!("consumer: {e}"))?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(usize::from(load.prefetch))
            .heartbeat(Duration::from_secs(1))
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("pull: {e}"))?;
        while !shared.done(&load)? {
            let msg = match tokio::time::timeout(IDLE_POLL, messages.next()).await {
                Ok(Some(m)) => m.map_err(|e| anyhow::anyhow!("message: {e}"))?,
                Ok(None) => bail!("NATS ended the pull"),
                Err(_) => continue,
            };
            let seq = seq_of(&msg.payload);
            let delivered = msg
                .info()
                .map_err(|e| anyhow::anyhow!("message info: {e}"))?
                .delivered;
            if delivered > 1 {
                shared.redelivered(seq);
            } else if shared.nack_first(&load, seq) {
                msg.ack_with(AckKind::Nak(None))
                    .await
                    .map_err(|e| anyhow::anyhow!("nak: {e}"))?;
                continue;
            }
            msg.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            shared.acked(seq);
        }
        Ok(())
    }
}

fn arg(n: usize, default: u64) -> Result<u64> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(a) => a
            .parse()
            .with_context(|| format!("argument {n}: {a:?} is not a number")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let usage = "usage: queue-compare rabbitmq|nats URL [RECORDS WORKERS SIZE PREFETCH NACK_EVERY]";
    let broker = std::env::args().nth(1).context(usage)?;
    let url = std::env::args().nth(2).context(usage)?;
    let load = Arc::new(Load {
        records: arg(3, 200_000)?,
        workers: usize::try_from(arg(4, 4)?)?.max(1),
        size: usize::try_from(arg(5, 100)?)?,
        prefetch: u16::try_from(arg(6, 100)?)?.max(1),
        nack_every: arg(7, 1000)?,
    });
    let publish = match broker.as_str() {
        "rabbitmq" => rabbit::fill(&url, &load).await?,
        "nats" => nats::fill(&url, &load).await?,
        _ => bail!("{usage}"),
    };
    let shared = Arc::new(Shared::new());
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.workers)
        .map(|id| {
            let (url, load, shared) = (url.clone(), Arc::clone(&load), Arc::clone(&shared));
            match broker.as_str() {
                "rabbitmq" => tokio::spawn(rabbit::worker(url, id, load, shared)),
                _ => tokio::spawn(nats::worker(url, id, load, shared)),
            }
        })
        .collect();
    for t in tasks {
        t.await.context("worker task")??;
    }
    let consume = started.elapsed();
    let mut redelivery = Shared::lock(&shared.redelivery_ms).clone();
    redelivery.sort_by(f64::total_cmp);
    let acked = shared.acked.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "broker": broker,
            "records": load.records,
            "workers": load.workers,
            "size": load.size,
            "prefetch": load.prefetch,
            "publish_per_s": load.records as f64 / publish.as_secs_f64(),
            "acked": acked,
            "acked_per_s": acked as f64 / consume.as_secs_f64(),
            "duplicate_acks": shared.duplicate_acks.load(Ordering::Relaxed),
            "redeliveries": redelivery.len(),
            "redelivery_ms": {
                "p50": percentile(&redelivery, 0.5),
                "p99": percentile(&redelivery, 0.99),
                "max": redelivery.last().copied().unwrap_or(0.0),
            },
        })
    );
    Ok(())
}
