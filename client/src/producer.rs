//! [`Producer`]: batches records per partition and sends the batches with
//! several produce requests in flight.
//!
//! One background task owns all producer state: [`Producer::send`] only
//! checks the record, counts its bytes against `buffer_bytes_max` and queues
//! it on a channel, so the order of `send` calls is the order records enter
//! their partition's batches. The task appends to the partition's open
//! batch; a batch closes when it reaches `batch_bytes_max`, when it is
//! `linger_ms` old, or on [`Producer::flush`]. Closed batches are sent
//! oldest first across all partitions (so no partition waits behind the
//! others' later batches), at most `in_flight_max` requests at a time.
//!
//! Partition choice: [`ProducerRecord::partition`] if set; otherwise the key's
//! hash ([`skiff_protocol::partitioner::partition_for_key`], with the
//! partition count from DescribeTopic, cached per topic); otherwise, for a
//! keyless record, a sticky partition: keyless records of a topic fill one
//! partition's batch, and once that batch closes the next keyless record
//! moves on to the next partition (round-robin across batches, as Kafka's
//! sticky partitioner). Each producer starts a topic at a random partition,
//! so short-lived producers (one `skiff produce` run each) spread over the
//! partitions instead of all filling partition 0. The producer knows the partition, so keyless
//! batches are numbered and deduplicated like keyed ones. With
//! `idempotent(false)`, or while the topic does not exist yet (a broker with
//! `auto_create_topics` creates it on the first produce), keyless records
//! are sent with [`PARTITION_AUTO`] and the broker places each whole batch
//! the same way.
//!
//! # Ordering and retries
//!
//! Within a partition, acknowledged records are stored in `send` order. The
//! broker appends one connection's produce requests in arrival order, so
//! several batches of one partition may be in flight. When one fails, the
//! producer stops sending that partition until all its in-flight batches
//! have answered, then:
//! - if every one of them failed with a retriable error (a broken
//!   connection, a transient storage error) and retries remain, all of them
//!   are sent again, in their original order, after `retry_backoff_ms`;
//! - otherwise the failed batches fail, and every batch of that partition
//!   queued behind them fails with [`Error::EarlierBatchFailed`] rather than
//!   being stored out of order. Batches already stored stay acknowledged.
//!
//! # Idempotence (on by default)
//!
//! Before its first batch the producer asks the broker for a producer id
//! (InitProducerId) and numbers the records it sends to each partition
//! (`base_sequence` in the batch header, assigned when a batch is first
//! sent). The broker stores each sequence once: a retried batch whose first
//! attempt was stored (its response lost to a cut connection or a broker
//! crash) is answered with its original offsets, so **retries do not
//! duplicate**; a gap or reorder is refused. After a batch fails for good,
//! the producer takes a new producer id, so later batches do not trip over
//! the gap. At most [`IDEMPOTENT_IN_FLIGHT_MAX`] requests are in flight (the
//! broker remembers that many batches per producer and partition).
//!
//! Not covered: keyless records sent with [`PARTITION_AUTO`] (only before
//! their topic exists, see above: the broker picks the partition, so there
//! is no per-partition sequence; they are sent without a producer id and
//! retries of them can duplicate), and a broker without InitProducerId (the producer then falls back to plain batches and
//! logs a warning). With `idempotent(false)`, retries can duplicate: set
//! `retries_max = 0` to rule that out at the price of failing instead.
//!
//! Keyless records sent with [`PARTITION_AUTO`] have no ordering guarantee
//! across batches.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng;
use skiff_protocol::ErrorCode;
use skiff_protocol::FRAME_BYTES_MAX_DEFAULT;
use skiff_protocol::batch::{
    self, BATCH_BYTES_MAX, BATCH_HEADER_BYTES, BatchBuilder, Header, Record, RecordEncoding,
    next_sequence,
};
use skiff_protocol::compression::{Compression, Level};
use skiff_protocol::messages::{
    DescribeTopicRequest, InitProducerIdRequest, PARTITION_AUTO, PRODUCE_VERSION_KAFKA_RECORDS,
    ProduceRequest, ProduceResponse,
};
use skiff_protocol::partitioner::partition_for_key;
use skiff_protocol::topic_name::validate_topic_name;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::admin::{in_partition, in_topic};
use crate::client::Client;
use crate::error::{Error, Result};

/// Default linger: 5 ms. Long enough to gather a burst into one batch,
/// short enough to be invisible next to a network round trip and an fsync.
pub const LINGER_MS_DEFAULT: u64 = 5;
/// Default largest batch: 1 MiB. Well under the protocol's batch and frame
/// limits (16 MiB), large enough to amortise the per-request fsync.
pub const BATCH_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Default produce requests in flight on the connection: 5.
pub const IN_FLIGHT_MAX_DEFAULT: usize = 5;
/// Produce requests in flight at most for an idempotent producer: the
/// broker remembers the last 5 batches per producer and partition
/// (`skiff_broker::PRODUCER_BATCHES_REMEMBERED`), so a retry of any
/// in-flight batch is still recognised.
pub const IDEMPOTENT_IN_FLIGHT_MAX: usize = 5;
/// Default bytes accepted by `send` but not yet acknowledged: 64 MiB.
pub const BUFFER_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;
/// Default retries of a failed produce request: 3.
pub const RETRIES_MAX_DEFAULT: u32 = 3;
/// Default wait before a retry: 100 ms.
pub const RETRY_BACKOFF_MS_DEFAULT: u64 = 100;
/// Room left in a produce frame for everything but the batch: frame and
/// request headers, the topic name (at most 249 bytes), partition, length.
const PRODUCE_FRAME_OVERHEAD_BYTES: usize = 4 * 1024;
/// Largest record accepted: a batch holding only it must fit both the
/// protocol's batch limit and the broker's default frame limit.
pub const RECORD_BYTES_MAX: usize = if BATCH_BYTES_MAX < FRAME_BYTES_MAX_DEFAULT {
    BATCH_BYTES_MAX
} else {
    FRAME_BYTES_MAX_DEFAULT - PRODUCE_FRAME_OVERHEAD_BYTES
} - BATCH_HEADER_BYTES;
/// Bytes counted per record on top of key, value and headers, for buffer
/// accounting (varints and bookkeeping).
const RECORD_OVERHEAD_BYTES: usize = 32;

const _: () = assert!(BATCH_BYTES_MAX_DEFAULT <= BATCH_BYTES_MAX);
const _: () = assert!(
    RECORD_BYTES_MAX + BATCH_HEADER_BYTES + PRODUCE_FRAME_OVERHEAD_BYTES <= FRAME_BYTES_MAX_DEFAULT
);
const _: () = assert!(BATCH_BYTES_MAX_DEFAULT <= BUFFER_BYTES_MAX_DEFAULT);

/// Producer settings.
///
/// ```
/// use skiff_client::ProducerConfig;
///
/// let config = ProducerConfig::default().linger_ms(20).in_flight_max(2);
/// assert_eq!(config.linger_ms, 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// How long an open batch waits for more records, in milliseconds.
    pub linger_ms: u64,
    /// A batch closes once it holds this many bytes.
    pub batch_bytes_max: usize,
    /// Produce requests in flight at once (all partitions together).
    pub in_flight_max: usize,
    /// Bytes accepted but not yet acknowledged; beyond this `send` fails
    /// with [`Error::BufferFull`].
    pub buffer_bytes_max: usize,
    /// Times a failed produce request is sent again (deduplicated by the
    /// broker when `idempotent`, see the module docs).
    pub retries_max: u32,
    /// Wait before a retry, in milliseconds.
    pub retry_backoff_ms: u64,
    /// Deduplicated retries (producer id + sequence; see the module docs).
    pub idempotent: bool,
    /// Codec the records of each batch are compressed with (none by
    /// default). A batch is compressed once, when first sent; a retry sends
    /// the same bytes.
    pub compression: Compression,
    /// Level for `compression` (gzip 0-9, zstd -7..=22; ignored by the
    /// others). Checked by [`Producer::new`]: with a level outside the
    /// codec's range every `send` fails with [`Error::InvalidArgument`].
    pub compression_level: Level,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger_ms: LINGER_MS_DEFAULT,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            buffer_bytes_max: BUFFER_BYTES_MAX_DEFAULT,
            retries_max: RETRIES_MAX_DEFAULT,
            retry_backoff_ms: RETRY_BACKOFF_MS_DEFAULT,
            idempotent: true,
            compression: Compression::None,
            compression_level: Level::Default,
        }
    }
}

impl ProducerConfig {
    /// Sets the linger, in milliseconds.
    pub fn linger_ms(mut self, ms: u64) -> Self {
        self.linger_ms = ms;
        self
    }
    /// Sets the batch size limit, in bytes (capped at the protocol's limit).
    pub fn batch_bytes_max(mut self, bytes: usize) -> Self {
        self.batch_bytes_max = bytes.min(BATCH_BYTES_MAX);
        self
    }
    /// Sets the produce requests in flight (at least 1).
    pub fn in_flight_max(mut self, n: usize) -> Self {
        self.in_flight_max = n.max(1);
        self
    }
    /// Sets the unacknowledged-bytes limit.
    pub fn buffer_bytes_max(mut self, bytes: usize) -> Self {
        self.buffer_bytes_max = bytes;
        self
    }
    /// Sets the retries per produce request.
    pub fn retries_max(mut self, n: u32) -> Self {
        self.retries_max = n;
        self
    }
    /// Sets the wait before a retry, in milliseconds.
    pub fn retry_backoff_ms(mut self, ms: u64) -> Self {
        self.retry_backoff_ms = ms;
        self
    }
    /// Turns idempotence (deduplicated retries) on or off; on by default.
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }
    /// Sets the batch compression codec.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }
    /// Sets the compression level (see [`ProducerConfig::compression_level`]).
    pub fn compression_level(mut self, level: Level) -> Self {
        self.compression_level = level;
        self
    }

    /// Checks the settings that can be wrong: the compression level against
    /// the codec's range.
    pub fn validate(&self) -> Result<()> {
        self.compression
            .check_level(self.compression_level)
            .map_err(|e| Error::InvalidArgument(format!("producer compression: {e}")))
    }
}

/// A record to send.
///
/// ```
/// use skiff_client::ProducerRecord;
///
/// let record = ProducerRecord::new("orders", "{\"id\": 7}")
///     .key("customer-42")
///     .header("content-type", "application/json");
/// assert_eq!(record.topic, "orders");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Target topic.
    pub topic: String,
    /// Optional key: records with the same key go to the same partition.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Bytes,
    /// Application headers, in order.
    pub headers: Vec<Header>,
    /// Explicit partition; overrides the key hash.
    pub partition: Option<u32>,
    /// Create time (Unix ms); now when unset.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A keyless record for `topic`.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            key: None,
            value: value.into(),
            headers: Vec::new(),
            partition: None,
            timestamp_ms: None,
        }
    }
    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.into(),
        });
        self
    }
    /// Sends to this partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Sets the create time (Unix ms).
    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Bytes this record counts for against `buffer_bytes_max`.
    fn accounted_bytes(&self) -> usize {
        RECORD_OVERHEAD_BYTES
            + self.key.as_ref().map_or(0, |k| k.len())
            + self.value.len()
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.len() + 8)
                .sum::<usize>()
    }
}

/// Where a record was stored.
///
/// ```no_run
/// # async fn run(producer: skiff_client::Producer) -> Result<(), skiff_client::Error> {
/// use skiff_client::ProducerRecord;
///
/// let ack = producer.send(ProducerRecord::new("orders", "hello")).await?;
/// println!("stored in partition {} at offset {}", ack.partition, ack.offset);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The topic.
    pub topic: String,
    /// The partition it went to.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
}

/// The result of one [`Producer::send`]: resolves once the broker has
/// stored the record (or it failed for good). Dropping it does not cancel
/// the send.
///
/// ```no_run
/// # async fn run(producer: skiff_client::Producer) -> Result<(), skiff_client::Error> {
/// use skiff_client::ProducerRecord;
///
/// // Queue first, await later: both records are in flight together.
/// let first = producer.send(ProducerRecord::new("orders", "a").partition(0));
/// let second = producer.send(ProducerRecord::new("orders", "b").partition(0));
/// let (first, second) = (first.await?, second.await?);
/// assert_eq!(second.offset, first.offset + 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "the record is sent anyway; await the future to learn whether it was stored"]
pub struct SendFuture {
    state: SendState,
}

#[derive(Debug)]
enum SendState {
    Waiting(oneshot::Receiver<Result<Ack>>),
    Failed(Option<Error>),
}

impl Future for SendFuture {
    type Output = Result<Ack>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            SendState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed("producer"))),
                Poll::Pending => Poll::Pending,
            },
            SendState::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(Error::Closed("producer")))),
        }
    }
}

/// Sends records in batches; cheap to clone (clones share the batches and
/// the connection). Dropping the last clone sends whatever is still buffered
/// and lets the outstanding [`SendFuture`]s resolve.
///
/// ```no_run
/// use skiff_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let client = Client::connect(ClientConfig::default()).await?;
/// let producer = Producer::new(client, ProducerConfig::default());
/// // Many sends in flight, then wait for all of them.
/// let acks: Vec<_> = (0..100)
///     .map(|i| producer.send(ProducerRecord::new("events", format!("event {i}"))))
///     .collect();
/// for ack in futures::future::join_all(acks).await {
///     let ack = ack?;
///     println!("{}/{}@{}", ack.topic, ack.partition, ack.offset);
/// }
/// producer.flush().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    tx: mpsc::UnboundedSender<Command>,
    buffered_bytes: Arc<AtomicUsize>,
    buffer_bytes_max: usize,
    /// Why the config was refused (checked once, in `new`): every `send`
    /// fails with it.
    config_error: Option<Error>,
}

#[derive(Debug)]
enum Command {
    Send {
        record: ProducerRecord,
        accounted_bytes: usize,
        ack: oneshot::Sender<Result<Ack>>,
    },
    Flush(oneshot::Sender<()>),
}

impl Producer {
    /// A producer sending through `client`. Spawns its background task, so
    /// call it inside a tokio runtime.
    ///
    /// The config is checked here ([`ProducerConfig::validate`]); if it is
    /// refused, every `send` fails with that [`Error::InvalidArgument`].
    pub fn new(client: Client, mut config: ProducerConfig) -> Producer {
        let config_error = config.validate().err();
        if config.idempotent {
            config.in_flight_max = config.in_flight_max.min(IDEMPOTENT_IN_FLIGHT_MAX);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered_bytes = Arc::new(AtomicUsize::new(0));
        let buffer_bytes_max = config.buffer_bytes_max;
        Task::spawn(
            Arc::new(ClientSender {
                client,
                kafka_records: Arc::new(AtomicBool::new(true)),
            }),
            config,
            Arc::clone(&buffered_bytes),
            rx,
        );
        Producer {
            tx,
            buffered_bytes,
            buffer_bytes_max,
            config_error,
        }
    }

    /// Queues `record` and returns a future for its [`Ack`]. The record is
    /// queued when `send` returns, whether or not the future is awaited: the
    /// order of `send` calls is the order within each partition.
    pub fn send(&self, record: ProducerRecord) -> SendFuture {
        let failed = |e| SendFuture {
            state: SendState::Failed(Some(e)),
        };
        if let Some(e) = &self.config_error {
            return failed(e.clone());
        }
        if let Err(e) = validate_topic_name(&record.topic) {
            return failed(e.into());
        }
        if record.partition == Some(PARTITION_AUTO) {
            return failed(Error::InvalidArgument(format!(
                "partition {PARTITION_AUTO} is reserved; leave the partition unset to let the broker choose"
            )));
        }
        let accounted_bytes = record.accounted_bytes();
        if accounted_bytes > RECORD_BYTES_MAX {
            return failed(Error::RecordTooLarge {
                size: accounted_bytes,
                max: RECORD_BYTES_MAX,
            });
        }
        let before = self
            .buffered_bytes
            .fetch_add(accounted_bytes, Ordering::AcqRel);
        if before > 0 && before + accounted_bytes > self.buffer_bytes_max {
            self.buffered_bytes
                .fetch_sub(accounted_bytes, Ordering::AcqRel);
            return failed(Error::BufferFull {
                buffered: before,
                max: self.buffer_bytes_max,
            });
        }
        let (ack, rx) = oneshot::channel();
        let command = Command::Send {
            record,
            accounted_bytes,
            ack,
        };
        if self.tx.send(command).is_err() {
            self.buffered_bytes
                .fetch_sub(accounted_bytes, Ordering::AcqRel);
            return failed(Error::Closed("producer"));
        }
        SendFuture {
            state: SendState::Waiting(rx),
        }
    }

    /// Sends every open batch now and waits until every record passed to
    /// `send` before this call is acknowledged or has failed (their own
    /// futures carry the outcome).
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .map_err(|_| Error::Closed("producer"))?;
        rx.await.map_err(|_| Error::Closed("producer"))
    }

    /// Bytes accepted by `send` and not yet acknowledged or failed.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes.load(Ordering::Acquire)
    }
}

/// How the task sends requests; a trait so the batching logic can be tested
/// without a broker.
trait Sender: Send + Sync + 'static {
    /// Queues the request on the connection (in call order) and returns the
    /// future of its response.
    fn produce(&self, req: ProduceRequest)
    -> BoxFuture<Result<BoxFuture<Result<ProduceResponse>>>>;
    fn partition_count(&self, topic: String) -> BoxFuture<Result<u32>>;
    /// A new (producer id, epoch) from the broker.
    fn init_producer_id(&self) -> BoxFuture<Result<(u64, u16)>>;
    /// The record encoding to build batches in.
    fn encoding(&self) -> RecordEncoding {
        RecordEncoding::Skiff
    }
    /// The broker refused a magic-2 produce: build and send magic 1 from
    /// now on (called by the task, before it settles the refusal).
    fn fall_back(&self) {}
}

/// Sends through a [`Client`]. Batches are built in Kafka's record encoding
/// (magic 2, the form the broker stores Kafka producers' batches in, so a
/// Kafka consumer reads them without re-encoding) and sent as Produce v1;
/// a broker from before magic 2 refuses v1 with `UnsupportedVersion`
/// (before storing anything), after which this sender builds and sends
/// magic 1 in v0, re-encoding the batches already built.
struct ClientSender {
    client: Client,
    /// Cleared for good once the broker refuses Produce v1.
    kafka_records: Arc<AtomicBool>,
}

impl Sender for ClientSender {
    fn produce(
        &self,
        mut req: ProduceRequest,
    ) -> BoxFuture<Result<BoxFuture<Result<ProduceResponse>>>> {
        let client = self.client.clone();
        let flag = Arc::clone(&self.kafka_records);
        Box::pin(async move {
            let kafka_records = flag.load(Ordering::Acquire);
            let version = if kafka_records {
                PRODUCE_VERSION_KAFKA_RECORDS
            } else {
                if batch::batch_encoding(&req.batch) != Ok(RecordEncoding::Skiff) {
                    req.batch = batch::reencode(&req.batch, RecordEncoding::Skiff)
                        .map_err(|e| Error::InvalidArgument(format!("re-encoding a batch: {e}")))?;
                }
                PRODUCE_VERSION_KAFKA_RECORDS - 1
            };
            let topic = req.topic.clone();
            let partition = (req.partition != PARTITION_AUTO).then_some(req.partition);
            let timeout = Duration::from_millis(client.config().request_timeout_ms);
            let pending = client
                .connection()
                .await?
                .enqueue_version(req, version)
                .await?;
            let response: BoxFuture<Result<ProduceResponse>> = Box::pin(async move {
                pending
                    .wait(timeout)
                    .await
                    .map_err(|e| in_partition(e, &topic, partition))
            });
            Ok(response)
        })
    }

    fn encoding(&self) -> RecordEncoding {
        if self.kafka_records.load(Ordering::Acquire) {
            RecordEncoding::Kafka
        } else {
            RecordEncoding::Skiff
        }
    }

    fn fall_back(&self) {
        self.kafka_records.store(false, Ordering::Release);
    }

    fn partition_count(&self, topic: String) -> BoxFuture<Result<u32>> {
        let client = self.client.clone();
        Box::pin(async move {
            let resp = client
                .send(DescribeTopicRequest {
                    name: topic.clone(),
                })
                .await
                .map_err(|e| in_topic(e, &topic))?;
            Ok(resp.config.partitions.max(resp.partitions.len() as u32))
        })
    }

    fn init_producer_id(&self) -> BoxFuture<Result<(u64, u16)>> {
        let client = self.client.clone();
        Box::pin(async move {
            let resp = client.send(InitProducerIdRequest).await?;
            Ok((resp.producer_id, resp.producer_epoch))
        })
    }
}

type PartitionKey = (String, u32);
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A batch still taking records.
struct OpenBatch {
    builder: BatchBuilder,
    acks: Vec<oneshot::Sender<Result<Ack>>>,
    accounted_bytes: usize,
    created: Instant,
}

/// A closed batch: queued, in flight, or waiting for a retry.
struct ClosedBatch {
    id: u64,
    /// Encoded once, when first sent (that is when its sequence is fixed);
    /// re-encoded once into skiff's record encoding, keeping its producer id
    /// and sequence, if a broker from before magic 2 refused it.
    bytes: Bytes,
    /// The records until the batch is first sent.
    builder: Option<BatchBuilder>,
    /// Sent with a producer id and sequence.
    sequenced: bool,
    acks: Vec<oneshot::Sender<Result<Ack>>>,
    accounted_bytes: usize,
    attempts: u32,
    /// Sent again once in skiff's record encoding after a broker from
    /// before magic 2 refused it (not counted as an attempt).
    fell_back: bool,
    flush_ids: Vec<u64>,
}

struct InFlight {
    batch: ClosedBatch,
    result: Option<Result<ProduceResponse>>,
}

/// Whether a failed batch is sent again once in skiff's record encoding:
/// a broker from before magic 2 refused its Produce v1 (it stored nothing),
/// and it has not been sent again for that yet.
fn falls_back(f: &InFlight) -> bool {
    !f.batch.fell_back
        && matches!(&f.result, Some(Err(e)) if e.code() == Some(ErrorCode::UnsupportedVersion))
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    queued: VecDeque<ClosedBatch>,
    in_flight: VecDeque<InFlight>,
    /// A batch failed: send nothing until every in-flight batch answered.
    paused: bool,
    /// Retry: send nothing before this instant.
    not_before: Option<Instant>,
}

impl PartitionQueue {
    fn is_idle(&self) -> bool {
        self.open.is_none() && self.queued.is_empty() && self.in_flight.is_empty()
    }
}

struct Completion {
    key: PartitionKey,
    id: u64,
    result: Result<ProduceResponse>,
}

struct Task {
    sender: Arc<dyn Sender>,
    config: ProducerConfig,
    buffered_bytes: Arc<AtomicUsize>,
    partitions: HashMap<PartitionKey, PartitionQueue>,
    partition_counts: HashMap<String, u32>,
    /// Per topic, the partition keyless records are filling.
    sticky: HashMap<String, u32>,
    /// Flush id → (batches still outstanding, waiter).
    flushes: HashMap<u64, (usize, oneshot::Sender<()>)>,
    next_id: u64,
    in_flight_total: usize,
    done_tx: mpsc::UnboundedSender<Completion>,
    /// (producer id, epoch) once InitProducerId answered.
    producer: Option<(u64, u16)>,
    /// Next sequence per partition for `producer`.
    sequences: HashMap<PartitionKey, u32>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX))
}

impl Task {
    /// Starts the producer's background task, fed by `commands`.
    fn spawn(
        sender: Arc<dyn Sender>,
        config: ProducerConfig,
        buffered_bytes: Arc<AtomicUsize>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let task = Task {
            sender,
            config,
            buffered_bytes,
            partitions: HashMap::new(),
            partition_counts: HashMap::new(),
            sticky: HashMap::new(),
            flushes: HashMap::new(),
            next_id: 0,
            in_flight_total: 0,
            done_tx,
            producer: None,
            sequences: HashMap::new(),
        };
        tokio::spawn(task.run(commands, done_rx));
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut done: mpsc::UnboundedReceiver<Completion>,
    ) {
        let mut closing = false;
        loop {
            let wake = self.next_wakeup();
            tokio::select! {
                command = commands.recv(), if !closing => match command {
                    Some(Command::Send { record, accounted_bytes, ack }) => {
                        self.enqueue(record, accounted_bytes, ack).await;
                    }
                    Some(Command::Flush(waiter)) => self.flush(waiter),
                    None => {
                        // Every handle is gone: send what is buffered, then stop.
                        closing = true;
                        self.close_all_open();
                    }
                },
                Some(completion) = done.recv() => self.complete(completion),
                _ = sleep_until_opt(wake), if wake.is_some() => {}
            }
            self.close_expired();
            self.dispatch().await;
            if closing && self.partitions.values().all(PartitionQueue::is_idle) {
                break;
            }
        }
    }

    /// The earliest linger expiry or retry time.
    fn next_wakeup(&self) -> Option<Instant> {
        let linger = Duration::from_millis(self.config.linger_ms);
        self.partitions
            .values()
            .flat_map(|q| {
                let open = q.open.as_ref().map(|o| o.created + linger);
                let retry = q.not_before.filter(|_| !q.queued.is_empty());
                open.into_iter().chain(retry)
            })
            .min()
    }

    async fn resolve_partition(&mut self, record: &ProducerRecord) -> Result<u32> {
        if let Some(p) = record.partition {
            return Ok(p);
        }
        let Some(key) = &record.key else {
            if !self.config.idempotent {
                return Ok(PARTITION_AUTO);
            }
            return match self.partition_count(&record.topic).await {
                Ok(count) => Ok(self.sticky_partition(&record.topic, count)),
                // Not created yet: the broker creates it (when it may) and
                // places the batch. Not ours to describe: the produce itself
                // gets the broker's refusal (or is placed, if allowed).
                Err(e)
                    if matches!(
                        e.code(),
                        Some(ErrorCode::UnknownTopic | ErrorCode::NotAuthorized)
                    ) =>
                {
                    Ok(PARTITION_AUTO)
                }
                Err(e) => Err(e),
            };
        };
        let count = self.partition_count(&record.topic).await?;
        Ok(partition_for_key(key, count))
    }

    /// The topic's partition count, asked of the broker once and cached.
    async fn partition_count(&mut self, topic: &str) -> Result<u32> {
        if let Some(&n) = self.partition_counts.get(topic) {
            return Ok(n);
        }
        let n = self.sender.partition_count(topic.to_owned()).await?;
        self.partition_counts.insert(topic.to_owned(), n);
        Ok(n)
    }

    /// The partition for a keyless record of `topic`: the one keyless
    /// records are filling while its batch is open, else the next one; the
    /// topic's first keyless record goes to a random partition.
    fn sticky_partition(&mut self, topic: &str, count: u32) -> u32 {
        let count = count.max(1);
        let filling = |p: u32| {
            self.partitions
                .get(&(topic.to_owned(), p))
                .is_some_and(|q| q.open.is_some())
        };
        let next = match self.sticky.get(topic) {
            Some(&p) if p < count && filling(p) => p,
            Some(&p) => (p + 1) % count,
            None => rand::thread_rng().gen_range(0..count),
        };
        self.sticky.insert(topic.to_owned(), next);
        next
    }

    async fn enqueue(
        &mut self,
        record: ProducerRecord,
        accounted_bytes: usize,
        ack: oneshot::Sender<Result<Ack>>,
    ) {
        let partition = match self.resolve_partition(&record).await {
            Ok(p) => p,
            Err(e) => {
                self.release_bytes(accounted_bytes);
                let _ = ack.send(Err(e));
                return;
            }
        };
        let ProducerRecord {
            topic,
            key,
            value,
            headers,
            timestamp_ms,
            ..
        } = record;
        let record = Record {
            timestamp_ms: timestamp_ms.unwrap_or_else(now_ms),
            key,
            value,
            headers,
        };
        let batch_bytes_max = self.config.batch_bytes_max;
        let key = (topic, partition);
        let queue = self.partitions.entry(key.clone()).or_default();
        if let Some(open) = &queue.open {
            let adds = open.builder.record_bytes(&record);
            if open.builder.encoded_bytes() + adds > batch_bytes_max {
                let open = queue.open.take().expect("checked above");
                let id = self.next_id;
                self.next_id += 1;
                queue.queued.push_back(close_batch(id, open));
            }
        }
        let encoding = self.sender.encoding();
        let open = queue.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new().with_encoding(encoding),
            acks: Vec::new(),
            accounted_bytes: 0,
            created: Instant::now(),
        });
        open.builder.push(record);
        open.acks.push(ack);
        open.accounted_bytes += accounted_bytes;
        if open.builder.encoded_bytes() >= batch_bytes_max {
            self.close_open(&key);
        }
    }

    fn close_open(&mut self, key: &PartitionKey) {
        let Some(queue) = self.partitions.get_mut(key) else {
            return;
        };
        if let Some(open) = queue.open.take() {
            let id = self.next_id;
            self.next_id += 1;
            queue.queued.push_back(close_batch(id, open));
        }
    }

    fn close_all_open(&mut self) {
        let keys: Vec<PartitionKey> = self.partitions.keys().cloned().collect();
        for key in keys {
            self.close_open(&key);
        }
    }

    fn close_expired(&mut self) {
        let linger = Duration::from_millis(self.config.linger_ms);
        let now = Instant::now();
        let expired: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, q)| q.open.as_ref().is_some_and(|o| o.created + linger <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.close_open(&key);
        }
    }

    fn flush(&mut self, waiter: oneshot::Sender<()>) {
        self.close_all_open();
        let flush_id = self.next_id;
        self.next_id += 1;
        let mut outstanding = 0;
        for queue in self.partitions.values_mut() {
            let batches = queue
                .queued
                .iter_mut()
                .chain(queue.in_flight.iter_mut().map(|f| &mut f.batch));
            for batch in batches {
                batch.flush_ids.push(flush_id);
                outstanding += 1;
            }
        }
        if outstanding == 0 {
            let _ = waiter.send(());
        } else {
            self.flushes.insert(flush_id, (outstanding, waiter));
        }
    }

    /// Sends queued batches while requests may be added: oldest first
    /// across partitions (batch ids grow in close order, and a retried batch
    /// keeps its id), in order within each. Oldest first is what keeps one
    /// partition from waiting behind the others: with every partition
    /// closing a batch each linger and `in_flight_max` shared by all of
    /// them, a fixed scan order gave the same partitions every free slot
    /// and left the last one unsent for a hundred milliseconds and more.
    /// Each request is queued on the connection before the next one (that
    /// fixes the order the broker appends them in); only the waits for
    /// responses run concurrently.
    async fn dispatch(&mut self) {
        let now = Instant::now();
        let sender = Arc::clone(&self.sender);
        while self.in_flight_total < self.config.in_flight_max {
            let oldest = self
                .partitions
                .iter()
                .filter(|(_, q)| !q.paused && q.not_before.is_none_or(|t| t <= now))
                .filter_map(|(key, q)| q.queued.front().map(|b| (b.id, key)))
                .min()
                .map(|(_, key)| key.clone());
            let Some(key) = oldest else {
                break;
            };
            let queue = self
                .partitions
                .get_mut(&key)
                .expect("the key was just found");
            let Some(mut batch) = queue.queued.pop_front() else {
                break;
            };
            queue.not_before = None;
            // Encode on first send: the sequence is fixed here, in send
            // order per partition.
            let mut init_error = None;
            if let Some(builder) = batch.builder.take() {
                let idempotent = self.config.idempotent && key.1 != PARTITION_AUTO;
                if idempotent && self.producer.is_none() {
                    match sender.init_producer_id().await {
                        Ok(p) => self.producer = Some(p),
                        Err(e) if e.code() == Some(ErrorCode::UnsupportedApi) => {
                            tracing::warn!(error = %e, "broker has no idempotent producers; retries may duplicate");
                            self.config.idempotent = false;
                        }
                        Err(e) => init_error = Some(e),
                    }
                }
                let (codec, level) = (self.config.compression, self.config.compression_level);
                match (init_error.is_some(), self.producer) {
                    (true, _) => batch.builder = Some(builder),
                    (false, Some((pid, epoch))) if self.config.idempotent && idempotent => {
                        let seq = self.sequences.entry(key.clone()).or_insert(0);
                        let base = *seq;
                        let count = builder.len() as u32;
                        // The sequence advances only for a batch that
                        // encoded, so a failed encoding leaves no gap.
                        match encode(builder.with_producer(pid, epoch, base), codec, level) {
                            Ok(bytes) => {
                                *seq = next_sequence(base, count);
                                batch.bytes = bytes;
                                batch.sequenced = true;
                            }
                            Err(e) => init_error = Some(e),
                        }
                    }
                    _ => match encode(builder, codec, level) {
                        Ok(bytes) => batch.bytes = bytes,
                        Err(e) => init_error = Some(e),
                    },
                }
            }
            let request = ProduceRequest {
                topic: key.0.clone(),
                partition: key.1,
                batch: batch.bytes.clone(),
            };
            let done = self.done_tx.clone();
            let (key, id) = (key.clone(), batch.id);
            let sent = match init_error {
                Some(e) => Err(e),
                None => sender.produce(request).await,
            };
            match sent {
                Ok(response) => {
                    tokio::spawn(async move {
                        let result = response.await;
                        let _ = done.send(Completion { key, id, result });
                    });
                }
                Err(e) => {
                    // Not even queued (no connection): send nothing more
                    // of this partition until this batch is settled, or
                    // a later batch could overtake it.
                    queue.paused = true;
                    let _ = done.send(Completion {
                        key,
                        id,
                        result: Err(e),
                    });
                }
            }
            queue.in_flight.push_back(InFlight {
                batch,
                result: None,
            });
            self.in_flight_total += 1;
        }
    }

    fn complete(&mut self, completion: Completion) {
        let Completion { key, id, result } = completion;
        let refused_version = result
            .as_ref()
            .is_err_and(|e| e.code() == Some(ErrorCode::UnsupportedVersion));
        if refused_version && self.sender.encoding() == RecordEncoding::Kafka {
            // A broker from before magic 2. From here on batches go in
            // magic 1 (v0); every partition with batches in flight (sent
            // in v1, so refused too) is paused until they have all
            // answered and go again in order, so no v0 batch of a
            // partition can overtake its refused v1 batches.
            self.sender.fall_back();
            for queue in self.partitions.values_mut() {
                if !queue.in_flight.is_empty() {
                    queue.paused = true;
                }
            }
        }
        let Some(queue) = self.partitions.get_mut(&key) else {
            return;
        };
        let Some(slot) = queue.in_flight.iter_mut().find(|f| f.batch.id == id) else {
            return;
        };
        if result.is_err() {
            queue.paused = true;
        }
        slot.result = Some(result);
        self.settle(&key);
    }

    /// Resolves the partition's answered in-flight batches, in send order.
    fn settle(&mut self, key: &PartitionKey) {
        let Some(queue) = self.partitions.get_mut(key) else {
            return;
        };
        let mut finished = Vec::new();
        // Successes at the front resolve as soon as they arrive.
        while queue
            .in_flight
            .front()
            .is_some_and(|f| matches!(f.result, Some(Ok(_))))
        {
            let f = queue.in_flight.pop_front().expect("front checked");
            self.in_flight_total -= 1;
            finished.push((f.batch, f.result.expect("checked")));
        }
        // A failure at the front: decide once every in-flight batch answered.
        let mut failed_for_good = Vec::new();
        let mut aborted = Vec::new();
        let mut reset_producer = false;
        if queue.paused && queue.in_flight.iter().all(|f| f.result.is_some()) {
            let answered: Vec<InFlight> = queue.in_flight.drain(..).collect();
            self.in_flight_total -= answered.len();
            let all_failed = answered.iter().all(|f| matches!(f.result, Some(Err(_))));
            let retriable = all_failed
                && answered.iter().all(|f| {
                    falls_back(f)
                        || (f.batch.attempts < self.config.retries_max
                            && matches!(&f.result, Some(Err(e)) if e.is_retriable()))
                });
            if retriable && !answered.is_empty() {
                for f in answered.into_iter().rev() {
                    let fell_back = falls_back(&f);
                    let mut batch = f.batch;
                    if fell_back {
                        batch.fell_back = true;
                        // Once, not on every retry: the sender re-encodes
                        // only a batch that is not in skiff's encoding yet
                        // (and reports a batch it cannot re-encode).
                        if let Ok(skiff) = batch::reencode(&batch.bytes, RecordEncoding::Skiff) {
                            batch.bytes = skiff;
                        }
                    } else {
                        batch.attempts += 1;
                    }
                    if let Some(Err(e)) = &f.result {
                        tracing::debug!(topic = %key.0, partition = key.1, attempt = batch.attempts, error = %e, "retrying produce");
                    }
                    queue.queued.push_front(batch);
                }
                queue.not_before =
                    Some(Instant::now() + Duration::from_millis(self.config.retry_backoff_ms));
            } else {
                let mut first_error = None;
                for f in answered {
                    match f.result.expect("all answered") {
                        Ok(resp) => finished.push((f.batch, Ok(resp))),
                        Err(e) => {
                            first_error.get_or_insert_with(|| e.clone());
                            failed_for_good.push((f.batch, e));
                        }
                    }
                }
                if let Some(cause) = first_error {
                    // A sequenced batch that failed for good may or may not
                    // be stored: continue under a new producer id so the
                    // next batches do not hit a sequence gap.
                    if failed_for_good.iter().any(|(b, _)| b.sequenced)
                        || queue.queued.iter().any(|b| b.sequenced)
                    {
                        reset_producer = true;
                    }
                    let partition = key.1;
                    aborted.extend(queue.queued.drain(..).map(|b| (b, cause.clone())));
                    if let Some(open) = queue.open.take() {
                        aborted.push((close_batch(u64::MAX, open), cause.clone()));
                    }
                    for (_, cause) in &mut aborted {
                        *cause = Error::EarlierBatchFailed {
                            topic: key.0.clone(),
                            partition,
                            cause: Box::new(cause.clone()),
                        };
                    }
                }
            }
            queue.paused = false;
        }
        if reset_producer {
            self.producer = None;
            self.sequences.clear();
        }
        for (batch, result) in finished {
            self.finish(key, batch, result);
        }
        for (batch, e) in failed_for_good.into_iter().chain(aborted) {
            self.finish(key, batch, Err(e));
        }
        if self
            .partitions
            .get(key)
            .is_some_and(PartitionQueue::is_idle)
        {
            self.partitions.remove(key);
        }
    }

    /// Delivers a batch's outcome to each of its records and its flushes.
    fn finish(&mut self, key: &PartitionKey, batch: ClosedBatch, result: Result<ProduceResponse>) {
        self.release_bytes(batch.accounted_bytes);
        match result {
            Ok(resp) => {
                for (i, ack) in batch.acks.into_iter().enumerate() {
                    let _ = ack.send(Ok(Ack {
                        topic: key.0.clone(),
                        partition: resp.partition,
                        offset: resp.base_offset + i as u64,
                    }));
                }
            }
            Err(e) => {
                for ack in batch.acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
        }
        for flush_id in batch.flush_ids {
            if let Some((remaining, _)) = self.flushes.get_mut(&flush_id) {
                *remaining -= 1;
                if *remaining == 0 {
                    if let Some((_, waiter)) = self.flushes.remove(&flush_id) {
                        let _ = waiter.send(());
                    }
                }
            }
        }
    }

    fn release_bytes(&self, bytes: usize) {
        self.buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Encodes a closed batch, its records compressed by `codec` (once: a retry
/// sends these bytes again). Fails only on a level the config check let
/// through or an encoder failure, neither of which a retry would fix.
fn encode(builder: BatchBuilder, codec: Compression, level: Level) -> Result<Bytes> {
    builder
        .build_compressed(codec, level)
        .map_err(|e| Error::InvalidArgument(format!("compressing a batch: {e}")))
}

fn close_batch(id: u64, open: OpenBatch) -> ClosedBatch {
    ClosedBatch {
        id,
        bytes: Bytes::new(),
        builder: Some(open.builder),
        sequenced: false,
        acks: open.acks,
        accounted_bytes: open.accounted_bytes,
        attempts: 0,
        fell_back: false,
        flush_ids: Vec::new(),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::ErrorCode;
    use skiff_protocol::batch::decode_records;
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    /// A fake broker: records every produce request; answers from a script
    /// (default: success), assigning offsets per partition.
    #[derive(Default)]
    struct FakeBroker {
        requests: Mutex<Vec<(u32, usize)>>,
        offsets: Mutex<HashMap<u32, u64>>,
        fail_next: Mutex<VecDeque<Error>>,
        /// Errors for the queueing step (no connection), before `fail_next`.
        fail_enqueue: Mutex<VecDeque<Error>>,
        /// (producer id, base sequence, records) of every request.
        sequences: Mutex<Vec<(u64, u32, u32)>>,
        /// The batch of every request, as sent.
        batches: Mutex<Vec<Bytes>>,
    }

    impl FakeBroker {
        /// Appends in arrival order, as the broker does per connection.
        fn append(&self, req: &ProduceRequest) -> Result<ProduceResponse> {
            let records = decode_records(&req.batch).expect("valid batch").len() as u64;
            let h = skiff_protocol::batch::validate(&req.batch).expect("valid batch");
            self.batches.lock().unwrap().push(req.batch.clone());
            self.sequences
                .lock()
                .unwrap()
                .push((h.producer_id, h.base_sequence, records as u32));
            self.requests
                .lock()
                .unwrap()
                .push((req.partition, records as usize));
            if let Some(e) = self.fail_next.lock().unwrap().pop_front() {
                return Err(e);
            }
            let partition = if req.partition == PARTITION_AUTO {
                0
            } else {
                req.partition
            };
            let mut offsets = self.offsets.lock().unwrap();
            let next = offsets.entry(partition).or_default();
            let base = *next;
            *next += records;
            Ok(ProduceResponse {
                partition,
                base_offset: base,
                last_offset: base + records - 1,
            })
        }
    }

    struct FakeSender(Arc<FakeBroker>);

    impl Sender for FakeSender {
        fn produce(
            &self,
            req: ProduceRequest,
        ) -> BoxFuture<Result<BoxFuture<Result<ProduceResponse>>>> {
            let broker = Arc::clone(&self.0);
            Box::pin(async move {
                if let Some(e) = broker.fail_enqueue.lock().unwrap().pop_front() {
                    return Err(e);
                }
                let result = broker.append(&req);
                let response: BoxFuture<Result<ProduceResponse>> = Box::pin(async move {
                    // Answer out of order: later requests may finish first.
                    tokio::task::yield_now().await;
                    result
                });
                Ok(response)
            })
        }

        fn partition_count(&self, _topic: String) -> BoxFuture<Result<u32>> {
            Box::pin(async { Ok(4) })
        }

        fn init_producer_id(&self) -> BoxFuture<Result<(u64, u16)>> {
            Box::pin(async { Ok((1, 0)) })
        }
    }

    fn producer(config: ProducerConfig) -> (Producer, Arc<FakeBroker>) {
        let broker = Arc::new(FakeBroker::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered_bytes = Arc::new(AtomicUsize::new(0));
        Task::spawn(
            Arc::new(FakeSender(Arc::clone(&broker))),
            config.clone(),
            Arc::clone(&buffered_bytes),
            rx,
        );
        (
            Producer {
                tx,
                buffered_bytes,
                buffer_bytes_max: config.buffer_bytes_max,
                config_error: config.validate().err(),
            },
            broker,
        )
    }

    fn rec(i: usize) -> ProducerRecord {
        ProducerRecord::new("t", format!("value {i}")).partition(1)
    }

    #[tokio::test]
    async fn a_burst_becomes_one_batch_with_consecutive_offsets() {
        let (p, broker) = producer(ProducerConfig::default());
        let futures: Vec<_> = (0..10).map(|i| p.send(rec(i))).collect();
        let acks = futures::future::join_all(futures).await;
        for (i, ack) in acks.into_iter().enumerate() {
            let ack = ack.unwrap();
            assert_eq!((ack.partition, ack.offset), (1, i as u64));
        }
        assert_eq!(*broker.requests.lock().unwrap(), vec![(1, 10)]);
        assert_eq!(p.buffered_bytes(), 0);
    }

    /// With one request in flight for all partitions, the free slot goes to
    /// the oldest closed batch, whatever its partition: the broker sees the
    /// batches in the order they closed (here, send order: `linger_ms(0)`
    /// closes each record's batch at once), so no partition waits behind
    /// the others' later batches.
    #[tokio::test]
    async fn free_slots_go_to_the_oldest_batch_across_partitions() {
        let config = ProducerConfig::default().linger_ms(0).in_flight_max(1);
        let (p, broker) = producer(config);
        let partitions: Vec<u32> = (0..100u32).map(|i| (i * 7 + i / 4) % 4).collect();
        let futures: Vec<_> = partitions
            .iter()
            .map(|&partition| p.send(ProducerRecord::new("t", "v").partition(partition)))
            .collect();
        for ack in futures::future::join_all(futures).await {
            ack.unwrap();
        }
        let sent: Vec<u32> = broker
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(sent, partitions, "batches sent in the order they closed");
    }

    #[tokio::test]
    async fn batches_close_at_batch_bytes_max() {
        let config = ProducerConfig::default().batch_bytes_max(200);
        let (p, broker) = producer(config);
        let value = Bytes::from(vec![b'x'; 60]);
        let futures: Vec<_> = (0..6)
            .map(|_| p.send(ProducerRecord::new("t", value.clone()).partition(0)))
            .collect();
        let acks: Vec<u64> = futures::future::join_all(futures)
            .await
            .into_iter()
            .map(|a| a.unwrap().offset)
            .collect();
        assert_eq!(acks, vec![0, 1, 2, 3, 4, 5]);
        let requests = broker.requests.lock().unwrap().clone();
        assert!(requests.len() >= 3, "{requests:?}");
        assert_eq!(requests.iter().map(|r| r.1).sum::<usize>(), 6);
    }

    #[tokio::test]
    async fn keys_pick_partitions_by_hash_and_keyless_records_go_auto_without_idempotence() {
        let (p, broker) = producer(ProducerConfig::default().idempotent(false));
        let ack = p
            .send(ProducerRecord::new("t", "v").key("customer-1"))
            .await
            .unwrap();
        assert_eq!(ack.partition, partition_for_key(b"customer-1", 4));
        p.send(ProducerRecord::new("t", "v")).await.unwrap();
        let requests = broker.requests.lock().unwrap().clone();
        assert_eq!(requests[1].0, PARTITION_AUTO);
    }

    #[tokio::test]
    async fn keyless_records_stick_to_a_partition_per_batch_and_are_numbered() {
        let (p, broker) = producer(ProducerConfig::default().linger_ms(60_000));
        // Two batches' worth, flushed one batch at a time.
        for _ in 0..2 {
            let acks: Vec<_> = (0..3)
                .map(|_| p.send(ProducerRecord::new("t", "v")))
                .collect();
            p.flush().await.unwrap();
            let partitions: Vec<u32> = futures::future::join_all(acks)
                .await
                .into_iter()
                .map(|a| a.unwrap().partition)
                .collect();
            assert!(
                partitions.windows(2).all(|w| w[0] == w[1]),
                "{partitions:?}"
            );
        }
        let requests = broker.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 2, "{requests:?}");
        // The fake broker's topic has 4 partitions; the first batch starts
        // at a random one of them.
        assert!(requests[0].0 < 4, "{requests:?}");
        assert_eq!(
            requests[1].0,
            (requests[0].0 + 1) % 4,
            "next batch, next partition: {requests:?}"
        );
        let sequences = broker.sequences.lock().unwrap().clone();
        assert!(
            sequences.iter().all(|&(pid, seq, _)| pid == 1 && seq == 0),
            "keyless batches carry the producer id and each partition's first sequence: {sequences:?}"
        );
    }

    #[tokio::test]
    async fn new_producers_start_keyless_records_at_a_random_partition() {
        // 32 producers, one keyless batch each, over 4 partitions: with a
        // random start, all on one partition has chance 4 * (1/4)^32.
        let mut first = BTreeSet::new();
        for _ in 0..32 {
            let (p, _broker) = producer(ProducerConfig::default());
            let ack = p.send(ProducerRecord::new("t", "v")).await.unwrap();
            assert!(ack.partition < 4, "{ack:?}");
            first.insert(ack.partition);
        }
        assert!(first.len() > 1, "every producer started at {first:?}");
    }

    #[tokio::test]
    async fn flush_waits_for_everything_sent_before_it() {
        let (p, _broker) = producer(ProducerConfig::default().linger_ms(60_000));
        let futures: Vec<_> = (0..3).map(|i| p.send(rec(i))).collect();
        tokio::time::timeout(Duration::from_secs(5), p.flush())
            .await
            .expect("flush does not wait for the linger")
            .unwrap();
        for f in futures {
            // Already resolved: flush returned after every ack.
            let ack = futures::FutureExt::now_or_never(f).expect("resolved");
            ack.unwrap();
        }
        p.flush().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_of_a_partition_reach_the_broker_in_send_order() {
        let config = ProducerConfig::default()
            .batch_bytes_max(100)
            .in_flight_max(5);
        let (p, broker) = producer(config);
        let futures: Vec<_> = (0..200).map(|i| p.send(rec(i))).collect();
        for (i, ack) in futures::future::join_all(futures)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(ack.unwrap().offset, i as u64);
        }
        assert!(broker.requests.lock().unwrap().len() > 20);
    }

    #[tokio::test]
    async fn retriable_failures_are_retried_in_order() {
        let config = ProducerConfig::default().retry_backoff_ms(1);
        let (p, broker) = producer(config);
        broker
            .fail_next
            .lock()
            .unwrap()
            .push_back(Error::ConnectionClosed {
                broker: "b".into(),
                reason: "cut".into(),
            });
        let futures: Vec<_> = (0..3).map(|i| p.send(rec(i))).collect();
        let offsets: Vec<u64> = futures::future::join_all(futures)
            .await
            .into_iter()
            .map(|a| a.unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![0, 1, 2]);
        assert_eq!(broker.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn each_codec_compresses_the_batch_and_a_retry_sends_the_same_bytes() {
        for codec in Compression::ALL {
            let config = ProducerConfig::default()
                .retry_backoff_ms(1)
                .compression(codec);
            let (p, broker) = producer(config);
            broker
                .fail_next
                .lock()
                .unwrap()
                .push_back(Error::ConnectionClosed {
                    broker: "b".into(),
                    reason: "cut".into(),
                });
            let futures: Vec<_> = (0..20)
                .map(|i| p.send(rec(i).key(format!("k{i}")).header("h", "v")))
                .collect();
            for (i, ack) in futures::future::join_all(futures)
                .await
                .into_iter()
                .enumerate()
            {
                assert_eq!(ack.unwrap().offset, i as u64, "{codec}");
            }
            let batches = broker.batches.lock().unwrap().clone();
            assert_eq!(batches.len(), 2, "{codec}");
            assert_eq!(batches[0], batches[1], "{codec}: the retry re-encoded");
            let batch = &batches[0];
            assert_eq!(
                skiff_protocol::batch::batch_compression(batch).unwrap(),
                codec
            );
            let records = decode_records(batch).unwrap();
            assert_eq!(records.len(), 20);
            assert_eq!(records[7].value, Bytes::from("value 7"));
            assert_eq!(records[7].key.as_deref(), Some(&b"k7"[..]));
        }
    }

    #[tokio::test]
    async fn a_level_out_of_the_codec_range_fails_every_send() {
        let config = ProducerConfig::default()
            .compression(Compression::Gzip)
            .compression_level(Level::Exact(10));
        assert!(matches!(config.validate(), Err(Error::InvalidArgument(_))));
        let (p, broker) = producer(config);
        let err = p.send(rec(0)).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("gzip")),
            "{err}"
        );
        assert!(broker.requests.lock().unwrap().is_empty());
        let ok = ProducerConfig::default()
            .compression(Compression::Zstd)
            .compression_level(Level::Exact(-7));
        ok.validate().unwrap();
    }

    #[tokio::test]
    async fn idempotent_batches_carry_consecutive_sequences_and_retries_keep_them() {
        let config = ProducerConfig::default().retry_backoff_ms(1);
        let (p, broker) = producer(config);
        broker
            .fail_next
            .lock()
            .unwrap()
            .push_back(Error::ConnectionClosed {
                broker: "b".into(),
                reason: "cut".into(),
            });
        for chunk in 0..4 {
            let futures: Vec<_> = (0..5).map(|i| p.send(rec(chunk * 5 + i))).collect();
            for ack in futures::future::join_all(futures).await {
                ack.expect("acked");
            }
        }
        let seqs = broker.sequences.lock().unwrap().clone();
        assert_eq!(seqs[0].0, 1, "producer id from InitProducerId");
        // The failed first request is sent again with the same sequence.
        assert_eq!(seqs[0].1, 0);
        assert!(
            seqs.iter().skip(1).any(|s| s.1 == 0),
            "retry reuses sequence 0"
        );
        let mut next = 0;
        for &(_, base, records) in seqs.iter().filter(|s| s.1 != 0 || s.2 > 0) {
            if base < next {
                continue; // a retry
            }
            assert_eq!(base, next, "no gap");
            next = base + records;
        }
        assert_eq!(next, 20);
        // Not idempotent: no producer id.
        let (p, broker) = producer(ProducerConfig::default().idempotent(false));
        p.send(rec(0)).await.expect("acked");
        assert_eq!(
            broker.sequences.lock().unwrap()[0].0,
            skiff_protocol::batch::NO_PRODUCER_ID
        );
    }

    #[tokio::test]
    async fn a_batch_that_could_not_be_queued_is_not_overtaken() {
        let config = ProducerConfig::default()
            .batch_bytes_max(100)
            .retry_backoff_ms(1);
        let (p, broker) = producer(config);
        broker
            .fail_enqueue
            .lock()
            .unwrap()
            .push_back(Error::ConnectionClosed {
                broker: "b".into(),
                reason: "down".into(),
            });
        let futures: Vec<_> = (0..20).map(|i| p.send(rec(i))).collect();
        for (i, ack) in futures::future::join_all(futures)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(ack.unwrap().offset, i as u64);
        }
    }

    #[tokio::test]
    async fn a_failed_batch_fails_the_batches_queued_behind_it() {
        let config = ProducerConfig::default()
            .batch_bytes_max(64)
            .in_flight_max(1)
            .linger_ms(0);
        let (p, broker) = producer(config);
        broker.fail_next.lock().unwrap().push_back(Error::Broker {
            code: ErrorCode::CorruptBatch,
            message: "bad".into(),
        });
        let futures: Vec<_> = (0..3).map(|i| p.send(rec(i))).collect();
        let results = futures::future::join_all(futures).await;
        assert!(matches!(
            &results[0],
            Err(Error::Broker {
                code: ErrorCode::CorruptBatch,
                ..
            })
        ));
        for r in &results[1..] {
            assert!(
                matches!(r, Err(Error::EarlierBatchFailed { partition: 1, .. })),
                "{r:?}"
            );
        }
        assert_eq!(broker.requests.lock().unwrap().len(), 1);
        // The partition works again for later sends.
        assert_eq!(p.send(rec(9)).await.unwrap().offset, 0);
        assert_eq!(p.buffered_bytes(), 0);
    }

    #[tokio::test]
    async fn the_buffer_limit_is_enforced() {
        let config = ProducerConfig::default()
            .buffer_bytes_max(100)
            .linger_ms(60_000);
        let (p, _broker) = producer(config);
        let first = p.send(ProducerRecord::new("t", vec![0u8; 60]).partition(0));
        let second = p.send(ProducerRecord::new("t", vec![0u8; 60]).partition(0));
        assert!(matches!(
            second.await,
            Err(Error::BufferFull { max: 100, .. })
        ));
        p.flush().await.unwrap();
        first.await.unwrap();
        assert!(matches!(
            p.send(ProducerRecord::new("bad/name", "v")).await,
            Err(Error::InvalidTopicName(_))
        ));
    }
}
