//! `skiff bench --protocol kafka`: the produce and consume loads sent to the
//! broker's Kafka listener as a Kafka client sends them, so the two front
//! ends can be compared with the same batch size, requests in flight and
//! payloads.
//!
//! - A producer encodes each batch as a Kafka record batch (magic 2,
//!   CRC-32C, compressed with skiff's codecs, which Kafka numbers the same)
//!   inside the timed loop and sends it as a Produce v9 request with
//!   `acks=-1`, with `--in-flight` requests outstanding on one connection.
//! - A consumer ([`KafkaFetcher`], driven by the bench's one consumer loop)
//!   reads its partitions round-robin with one Fetch v12 request in flight,
//!   and decodes every record (CRC-32C checked, inflated) with skiff's
//!   record decoder, as the native consumer does
//!   ([`kafka_batch::decode_kafka_batch`]).
//!
//! Kafka answers a connection's requests in the order they were sent, so a
//! [`KafkaWire`] matches responses to requests by position and checks each
//! correlation id. Its reader task stamps each response as it arrives, so
//! latency does not include the time the producer spent encoding the next
//! batch. Responses are bounded by [`RESPONSE_BYTES_MAX`] before they are
//! buffered. The bench speaks PLAINTEXT; with `--user`/`--password` (or
//! `$SKIFF_USER`/`$SKIFF_PASSWORD`) each connection signs in with SASL
//! PLAIN first (SaslHandshake v1, SaslAuthenticate v2), as current Kafka
//! clients do. A token cannot sign the bench in: PLAIN names the user, and
//! the native connection that creates the topic takes a token only alone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    self as krecords, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use skiff_client::Credentials;
use skiff_client::protocol::compression::{self, Compression};
use skiff_client::protocol::kafka_batch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::{
    ActorReport, Ctx, FETCH_BYTES_MAX, FETCH_WAIT_MS, Fetched, REQUEST_TIMEOUT, Values,
    keys_by_partition, new_histogram, partition_of, record_latency, unix_ms,
};

/// Produce API version sent (flexible, topic names; skiffd serves 3-11).
const PRODUCE_VERSION: i16 = 9;
/// Fetch API version sent (flexible, topic names; skiffd serves 4-12).
const FETCH_VERSION: i16 = 12;
/// Largest response accepted, in bytes: a fetch answer is at most
/// [`FETCH_BYTES_MAX`] of records plus its framing.
const RESPONSE_BYTES_MAX: usize = FETCH_BYTES_MAX as usize + 1024 * 1024;
/// SaslHandshake version sent: v1, whose tokens travel in SaslAuthenticate.
const SASL_HANDSHAKE_VERSION: i16 = 1;
/// SaslAuthenticate version sent (skiffd serves 0-2).
const SASL_AUTHENTICATE_VERSION: i16 = 2;
/// Kafka's "all in-sync replicas" acknowledgement: the strongest, which
/// skiffd gives every produce anyway (durable under its fsync policy).
const ACKS_ALL: i16 = -1;
/// The client id the bench's Kafka requests carry.
const CLIENT_ID: &str = "skiff-bench";

/// One Kafka connection with requests pipelined: sends go out at once,
/// responses are read by a task and taken in request order.
struct KafkaWire {
    write: OwnedWriteHalf,
    responses: mpsc::Receiver<Result<(Instant, Bytes)>>,
    /// Correlation ids and versions sent and not yet answered, oldest first.
    awaited: VecDeque<(i32, i16)>,
    next_id: i32,
    frame: BytesMut,
}

impl KafkaWire {
    /// Connects to `addr`; at most `in_flight` responses wait unread.
    async fn connect(addr: &str, in_flight: usize) -> Result<KafkaWire> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to the Kafka listener {addr}: timed out"))?
            .with_context(|| format!("connecting to the Kafka listener {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let (tx, responses) = mpsc::channel(in_flight.max(1));
        tokio::spawn(read_responses(read, tx));
        Ok(KafkaWire {
            write,
            responses,
            awaited: VecDeque::new(),
            next_id: 0,
            frame: BytesMut::new(),
        })
    }

    /// Connects to the bench's Kafka listener and signs in with the bench's
    /// credentials, if any; at most `in_flight` responses wait unread.
    async fn open(ctx: &Ctx, in_flight: usize) -> Result<KafkaWire> {
        let mut wire = KafkaWire::connect(kafka_broker(ctx)?, in_flight).await?;
        wire.sign_in(&ctx.config.credentials).await?;
        Ok(wire)
    }

    /// Signs in with SASL PLAIN as `credentials`' user; nothing without
    /// credentials (a broker without users serves anonymous connections).
    async fn sign_in(&mut self, credentials: &Credentials) -> Result<()> {
        let (user, password) = match credentials {
            Credentials::None => return Ok(()),
            Credentials::Password { user, password } => (user, password),
            Credentials::Token { .. } => bail!(
                "--protocol kafka signs in with SASL PLAIN, which names the user: \
                 give --user and --password instead of --token"
            ),
        };
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        self.send(&handshake, SASL_HANDSHAKE_VERSION).await?;
        let (_, answer) = self.recv::<SaslHandshakeRequest>().await?;
        if answer.error_code != 0 {
            bail!(
                "the Kafka listener refused SASL PLAIN (error {})",
                answer.error_code
            );
        }
        let token = format!("\0{user}\0{}", password.expose());
        let authenticate = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        self.send(&authenticate, SASL_AUTHENTICATE_VERSION).await?;
        let (_, answer) = self.recv::<SaslAuthenticateRequest>().await?;
        if answer.error_code != 0 {
            bail!(
                "the Kafka listener refused the SASL login as {user} (error {}: {})",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or("no message")
            );
        }
        Ok(())
    }

    /// Requests sent and not yet taken with [`KafkaWire::recv`].
    fn in_flight(&self) -> usize {
        self.awaited.len()
    }

    /// Encodes and sends `req` at `version`.
    async fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<()> {
        let correlation_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let api = ApiKey::try_from(R::KEY).map_err(|()| anyhow::anyhow!("unknown API key"))?;
        self.frame.clear();
        self.frame.put_i32(0);
        header.encode(&mut self.frame, api.request_header_version(version))?;
        req.encode(&mut self.frame, version)?;
        let len = i32::try_from(self.frame.len() - 4).context("request too large")?;
        self.frame[..4].copy_from_slice(&len.to_be_bytes());
        self.write
            .write_all(&self.frame)
            .await
            .context("sending a Kafka request")?;
        self.awaited.push_back((correlation_id, version));
        Ok(())
    }

    /// The response to the oldest request in flight, with when it arrived.
    async fn recv<R: Request>(&mut self) -> Result<(Instant, R::Response)> {
        let Some((correlation_id, version)) = self.awaited.pop_front() else {
            bail!("no Kafka request in flight");
        };
        let (arrived, mut body) = tokio::time::timeout(REQUEST_TIMEOUT, self.responses.recv())
            .await
            .context("a Kafka response timed out")?
            .context("the Kafka listener closed the connection")??;
        let header = ResponseHeader::decode(
            &mut body,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .context("decoding a Kafka response header")?;
        if header.correlation_id != correlation_id {
            bail!(
                "Kafka response for correlation id {} where {correlation_id} was due",
                header.correlation_id
            );
        }
        let response =
            R::Response::decode(&mut body, version).context("decoding a Kafka response")?;
        Ok((arrived, response))
    }
}

/// Reads length-prefixed response frames until the connection closes or
/// the bench drops the receiver; a read error is passed on once.
async fn read_responses(mut read: OwnedReadHalf, tx: mpsc::Sender<Result<(Instant, Bytes)>>) {
    loop {
        let frame = async {
            let len = read.read_u32().await.context("reading a Kafka response")? as usize;
            if len > RESPONSE_BYTES_MAX {
                bail!("a Kafka response of {len} bytes is over the {RESPONSE_BYTES_MAX} allowed");
            }
            // Read into spare capacity: megabytes of fetch answer are not
            // zeroed first.
            let mut body = BytesMut::with_capacity(len);
            while body.len() < len {
                let want = len - body.len();
                let mut rest = (&mut body).limit(want);
                if read
                    .read_buf(&mut rest)
                    .await
                    .context("reading a Kafka response")?
                    == 0
                {
                    bail!("the Kafka listener closed the connection mid-response");
                }
            }
            Ok((Instant::now(), body.freeze()))
        }
        .await;
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            return;
        }
    }
}

/// The Kafka listener's address, required with `--protocol kafka`.
fn kafka_broker(ctx: &Ctx) -> Result<&str> {
    ctx.kafka_broker
        .as_deref()
        .context("--protocol kafka needs --kafka-broker HOST:PORT (the broker's kafka_listen)")
}

/// Encodes one Kafka record batch of `records`, compressed with the bench's
/// `--compression` by skiff's codecs.
fn encode_batch(ctx: &Ctx, records: &[krecords::Record]) -> Result<Bytes> {
    let c = ctx.compression;
    let kafka_codec = match c.compression {
        Compression::None => krecords::Compression::None,
        Compression::Gzip => krecords::Compression::Gzip,
        Compression::Snappy => krecords::Compression::Snappy,
        Compression::Lz4 => krecords::Compression::Lz4,
        Compression::Zstd => krecords::Compression::Zstd,
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression: kafka_codec,
    };
    let mut out = BytesMut::new();
    if c.compression == Compression::None {
        RecordBatchEncoder::encode(&mut out, records, &options)
            .context("encoding a Kafka record batch")?;
        return Ok(out.freeze());
    }
    RecordBatchEncoder::encode_with_custom_compression(
        &mut out,
        records,
        &options,
        Some(|raw: &mut BytesMut, out: &mut BytesMut, _| {
            let packed = compression::compress(c.compression, c.compression_level, &raw[..])?;
            out.put_slice(&packed);
            Ok(())
        }),
    )
    .context("encoding a Kafka record batch")?;
    Ok(out.freeze())
}

/// A produce-bench producer over the Kafka protocol: as the native
/// producer, each batch built and compressed as it is sent, `in_flight`
/// requests outstanding, optionally paced at its share of `--rate`.
pub(super) async fn producer(ctx: Arc<Ctx>, producers: usize, id: usize) -> Result<ActorReport> {
    let mut wire = KafkaWire::open(&ctx, ctx.in_flight).await?;
    let mut values = Values::new(ctx.payload, ctx.size, id as u64);
    let keys = keys_by_partition(&ctx);
    let mut keys_used = 0usize;
    let mut wire_bytes: u64 = 0;
    let mut latency = new_histogram();
    // Intended send time of each request in flight, oldest first.
    let mut intended_times: VecDeque<Instant> = VecDeque::new();
    let topic = TopicName(StrBytes::from_string(ctx.topic.clone()));
    let batch = ctx.batch as u64;
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut j: u64 = 0;
    let mut records = Vec::with_capacity(ctx.batch);
    loop {
        let more = ctx.per_producer.is_none_or(|n| sent < n)
            && ctx.deadline.is_none_or(|d| Instant::now() < d);
        if !more {
            break;
        }
        if wire.in_flight() >= ctx.in_flight {
            finish_produce(&mut wire, &mut intended_times, &mut latency).await?;
            continue;
        }
        let intended = match ctx.rate_per_producer {
            Some(rate) => {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        let count = ctx.per_producer.map_or(batch, |n| batch.min(n - sent));
        let partition = partition_of(&ctx, producers, id, j);
        let keys = &keys[partition as usize];
        let now_ms = unix_ms();
        records.clear();
        for i in 0..count {
            let key = (!keys.is_empty()).then(|| keys[keys_used % keys.len()].clone());
            keys_used += 1;
            records.push(krecords::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: krecords::NO_PARTITION_LEADER_EPOCH,
                producer_id: krecords::NO_PRODUCER_ID,
                producer_epoch: krecords::NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch wherever offset minus
                // sequence changes; this keeps one batch whose base
                // sequence is NO_SEQUENCE (-1), as a producer without
                // idempotence sends.
                sequence: krecords::NO_SEQUENCE.wrapping_add(i as i32),
                timestamp: now_ms,
                key,
                value: Some(values.next()),
                headers: Default::default(),
            });
        }
        let batch_bytes = encode_batch(&ctx, &records)?;
        wire_bytes += batch_bytes.len() as u64;
        let request = ProduceRequest::default()
            .with_acks(ACKS_ALL)
            .with_timeout_ms(REQUEST_TIMEOUT.as_millis() as i32)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition as i32)
                            .with_records(Some(batch_bytes)),
                    ]),
            ]);
        wire.send(&request, PRODUCE_VERSION).await?;
        intended_times.push_back(intended);
        sent += count;
        j += 1;
        ctx.progress.fetch_add(count, Ordering::Relaxed);
    }
    while wire.in_flight() > 0 {
        finish_produce(&mut wire, &mut intended_times, &mut latency).await?;
    }
    Ok(ActorReport {
        role: "producer",
        id,
        messages: sent,
        bytes: sent * ctx.size as u64,
        wire_bytes: Some(wire_bytes),
        elapsed: started.elapsed(),
        latency,
    })
}

/// Takes the oldest produce answer: fails on any partition error, records
/// the latency from the request's intended send time to its arrival.
async fn finish_produce(
    wire: &mut KafkaWire,
    intended_times: &mut VecDeque<Instant>,
    latency: &mut hdrhistogram::Histogram<u64>,
) -> Result<()> {
    let (arrived, response) = wire.recv::<ProduceRequest>().await?;
    for topic in &response.responses {
        for p in &topic.partition_responses {
            if p.error_code != 0 {
                bail!(
                    "Kafka produce to partition {} failed: error code {}{}",
                    p.index,
                    p.error_code,
                    p.error_message
                        .as_ref()
                        .map(|m| format!(" ({})", m.as_str()))
                        .unwrap_or_default()
                );
            }
        }
    }
    let intended = intended_times
        .pop_front()
        .context("a produce answer with no request")?;
    record_latency(latency, arrived.saturating_duration_since(intended));
    Ok(())
}

/// A bench consumer's Kafka connection: one Fetch v12 in flight, each
/// answer's batches CRC-32C checked and decoded with skiff's record decoder
/// ([`kafka_batch::decode_kafka_batch`]), as the native consumer decodes.
pub(super) struct KafkaFetcher {
    wire: KafkaWire,
    topic: TopicName,
}

impl KafkaFetcher {
    pub(super) async fn open(ctx: &Ctx) -> Result<KafkaFetcher> {
        Ok(KafkaFetcher {
            wire: KafkaWire::open(ctx, 1).await?,
            topic: TopicName(StrBytes::from_string(ctx.topic.clone())),
        })
    }

    /// Fetches `partition` from `offset`: when the answer arrived, its
    /// batches (from the one holding `offset`) and their bytes on the wire.
    pub(super) async fn fetch(&mut self, partition: u32, offset: u64) -> Result<Fetched> {
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(FETCH_WAIT_MS as i32)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX as i32)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(self.topic.clone())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition as i32)
                            .with_fetch_offset(offset as i64)
                            .with_partition_max_bytes(FETCH_BYTES_MAX as i32),
                    ]),
            ]);
        self.wire.send(&request, FETCH_VERSION).await?;
        let (arrived, response) = self.wire.recv::<FetchRequest>().await?;
        if response.error_code != 0 {
            bail!("Kafka fetch failed: error code {}", response.error_code);
        }
        let data = response
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition as i32)
            .with_context(|| format!("a Kafka fetch answer without partition {partition}"))?;
        if data.error_code != 0 {
            bail!(
                "Kafka fetch of partition {partition} failed: error code {}",
                data.error_code
            );
        }
        let records = data.records.unwrap_or_default();
        Ok(Fetched {
            arrived,
            batches: kafka_batch::split_batches(&records)
                .context("splitting a Kafka fetch answer")?,
            kafka: true,
            wire_bytes: records.len() as u64,
        })
    }
}
