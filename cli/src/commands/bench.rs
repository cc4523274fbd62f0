//! `skiff bench produce|consume|e2e|fsync`: a load generator that measures the
//! broker.
//!
//! Every actor (producer or consumer) runs as its own task with its own
//! [`Connection`], on a multi-threaded runtime. What each mode measures:
//!
//! - `produce`: batches of `--batch` records, each encoded and compressed
//!   (`--compression`) as it is sent, as a real producer does, sent as
//!   `ProduceRequest`s straight over the connection with `--in-flight`
//!   requests outstanding. The values come from a pool generated before the
//!   run (`--payload`: seeded random bytes, or JSON order events), so what
//!   is timed is record encoding, compression, the network and the broker
//!   (CRC and record check, inflating compressed batches, group commit,
//!   fsync), not generating data. Latency: per batch, request sent (or, with
//!   `--rate`, its intended send time) to acknowledgement.
//! - `consume`: fetches from the start of each partition up to the end seen
//!   at start (or `--messages`), one fetch in flight per consumer, and
//!   decodes every record with the client's decoder (CRC checked, key and
//!   value sliced). Latency: per fetch.
//! - `e2e`: producers pace messages at `--rate` from a dedicated thread each
//!   (sub-millisecond sleeps; tokio's timer is 1 ms) and stamp each value with
//!   its *intended* send time, so a stalled broker cannot hide queueing delay
//!   (no coordinated omission); consumers long-poll from the log end and
//!   record publish-to-receive latency per message. With `--echo` they run
//!   against an in-process echo of the framing instead of a broker (see
//!   [`echo`]): the floor that the bench and loopback set.
//! - `--group G` (consume, e2e): consumers join group G and read through the
//!   client's `Consumer` (broker-assigned partitions, its decode and commit
//!   path) instead of direct fetches; consume latency is then per `--batch`
//!   records received.
//! - `fsync`: no broker; the bare append+fdatasync loop (see [`fsync`]),
//!   the disk's floor that `--fsync always` latency is judged against.
//!
//! - `--protocol kafka` (produce, consume): producers and consumers speak
//!   Kafka's protocol to the broker's Kafka listener instead (see
//!   [`kafka`]), with the same batches, requests in flight and decoding.
//!
//! Throughput counts payload (value) bytes: the logical, uncompressed size;
//! MB is 10^6 bytes. `wire_bytes` counts the batches as sent or fetched
//! (compressed), `compression_ratio` is payload over wire bytes (below 1
//! without compression: batch and record headers), and `disk_bytes` is what
//! the topic's segments hold after the run (from `topic describe`).

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use skiff_client::protocol::batch::{self, BatchBuilder, BatchIter, Record, RecordEncoding};
use skiff_client::protocol::kafka_batch;
use skiff_client::protocol::messages::{
    FetchRequest, ListOffsetsRequest, OffsetQuery, ProduceRequest, TopicConfig,
};
use skiff_client::protocol::partitioner::partition_for_key;
use skiff_client::{
    Admin, Client, ClientConfig, Connection, Consumer, ErrorCode, GroupConfig, StartFrom,
};

use rand::{RngCore, SeedableRng};
use skiff_client::protocol::testdata::JsonEvents;

use crate::args::{BenchArgs, BenchMode, BenchProtocol, CompressionArgs, Payload};
use crate::output;

mod echo;
mod fsync;
mod kafka;
mod stages;

/// Messages sent when neither `--messages` nor `--duration` is given.
const MESSAGES_DEFAULT: u64 = 1_000_000;
/// Distinct values a producer cycles through: more than one batch of the
/// default size holds, so no batch repeats a value (which would flatter
/// compression), and generating them before the run takes well under a
/// second.
const VALUE_POOL_MESSAGES: usize = 8192;
/// Bound on one producer's value pool, in bytes: large `--size` values get
/// fewer distinct values rather than gigabytes of memory.
const VALUE_POOL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes asked for per fetch; the broker caps it at its `fetch_bytes_max`.
const FETCH_BYTES_MAX: u32 = 8 * 1024 * 1024;
/// How long a consumer's fetch waits at the log end.
const FETCH_WAIT_MS: u32 = 200;
/// Time any one request may take before the bench fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest latency the histograms hold: 60 s, in microseconds.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Timer slack of an e2e producer's pacing thread, in nanoseconds. Linux
/// lets a thread's sleep end up to its slack late (50 µs by default) to
/// batch wake-ups; at 50,000 msg/s messages are 20 µs apart, so that
/// default was most of the bench's own send delay.
const PACING_TIMER_SLACK_NS: u64 = 1_000;
/// An e2e producer's shortest pacing sleep without `--pacing-tick-us`.
const PACING_TICK_US_DEFAULT: u64 = 100;
/// Bytes of the send timestamp at the start of every e2e value.
const STAMP_BYTES: usize = 8;

/// Runs `skiff bench` on its own multi-threaded runtime.
/// `config` says how to reach the broker (address, TLS, credentials).
pub fn run(config: ClientConfig, args: BenchArgs) -> Result<()> {
    if args.mode == BenchMode::Fsync {
        // No broker and nothing async: the loop blocks on the disk.
        return fsync::run(&args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.mode == BenchMode::Rebalance {
        return runtime.block_on(super::bench_rebalance::bench(config, args));
    }
    runtime.block_on(bench(config, args))
}

/// One actor's result.
struct ActorReport {
    role: &'static str,
    id: usize,
    messages: u64,
    bytes: u64,
    /// Batch bytes sent or fetched (None: not seen, through the client's
    /// group consumer).
    wire_bytes: Option<u64>,
    elapsed: Duration,
    latency: Histogram<u64>,
}

pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

pub(super) fn record_latency(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, LATENCY_US_MAX));
}

/// What every actor needs.
struct Ctx {
    config: ClientConfig,
    topic: String,
    partitions: u32,
    size: usize,
    payload: Payload,
    batch: usize,
    in_flight: usize,
    producers: usize,
    key_space: Option<u64>,
    /// Batch compression of the produce and e2e producers.
    compression: CompressionArgs,
    /// Consume as members of this consumer group (broker-assigned
    /// partitions) through the client's `Consumer`, instead of direct fetches.
    group: Option<String>,
    /// The protocol producers and consumers speak.
    protocol: BenchProtocol,
    /// The broker's Kafka listener, for `--protocol kafka`.
    kafka_broker: Option<String>,
    /// Messages each producer sends (None: until the deadline).
    per_producer: Option<u64>,
    deadline: Option<Instant>,
    /// Messages per second per producer.
    rate_per_producer: Option<f64>,
    /// e2e: shortest pacing sleep of a producer (`--pacing-tick-us`): bounds
    /// its request rate at the price of at most this much added latency.
    pacing_tick: Duration,
    /// Counts every message sent (produce) or received (consume, e2e), for
    /// the progress bar.
    progress: AtomicU64,
    /// e2e: messages acknowledged so far, and whether all producers ended.
    produced: AtomicU64,
    producers_done: AtomicBool,
    /// Time zero of the e2e send stamps.
    anchor: Instant,
    /// e2e: per message, from its intended send time to its request being
    /// handed to the connection (pacing and batching delay).
    send_delay: Mutex<Histogram<u64>>,
}

async fn bench(config: ClientConfig, args: BenchArgs) -> Result<()> {
    if args.prezero {
        bail!("--prezero belongs to `bench fsync` (the bare fdatasync loop)");
    }
    if args.pacing_tick_us.is_some() && (args.mode != BenchMode::E2e || args.rate.is_none()) {
        bail!("--pacing-tick-us paces e2e producers: it needs e2e with --rate");
    }
    if args.mode == BenchMode::Queue {
        return super::bench_queue::run(config, args).await;
    }
    if args.batch == 0 || args.producers == 0 || args.consumers == 0 || args.in_flight == 0 {
        bail!("--batch, --producers, --consumers and --in-flight must be at least 1");
    }
    if args.mode == BenchMode::E2e && args.size < STAMP_BYTES {
        bail!("e2e needs --size of at least {STAMP_BYTES} bytes (the send timestamp)");
    }
    if args.metrics.is_some() && args.mode != BenchMode::E2e {
        bail!("--metrics reports the broker's stages of an e2e run");
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    args.compression.check().map_err(anyhow::Error::msg)?;
    if args.protocol == BenchProtocol::Kafka {
        if args.mode == BenchMode::E2e || args.group.is_some() {
            bail!("--protocol kafka runs the produce and consume benches without --group");
        }
        if args.kafka_broker.is_none() {
            bail!("--protocol kafka needs --kafka-broker HOST:PORT (the broker's kafka_listen)");
        }
    }
    if args.echo
        && (args.mode != BenchMode::E2e
            || args.group.is_some()
            || args.metrics.is_some()
            || args.protocol != BenchProtocol::Native)
    {
        bail!("--echo runs e2e on skiff's protocol, without --group or --metrics");
    }
    // Held for the whole run: dropping it stops the echo.
    let echo = match args.echo {
        true => Some(echo::start().await?),
        false => None,
    };
    let config = match &echo {
        Some(echo) => ClientConfig::new(echo.addr.to_string()),
        None => config,
    };
    let config = config.client_id("skiff-bench");
    let partitions = ensure_topic(&config, &args.topic, args.partitions).await?;
    let messages = match (args.messages, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(MESSAGES_DEFAULT),
    };
    let producers = args.producers as u64;
    let ctx = Arc::new(Ctx {
        config,
        topic: args.topic.clone(),
        partitions,
        size: args.size,
        payload: args.payload,
        batch: args.batch,
        in_flight: args.in_flight,
        producers: args.producers,
        key_space: args.key_space,
        compression: args.compression,
        group: args.group.clone(),
        protocol: args.protocol,
        kafka_broker: args.kafka_broker.clone(),
        per_producer: messages.map(|n| n.div_ceil(producers)),
        deadline: args
            .duration
            .map(|s| Instant::now() + Duration::from_secs_f64(s)),
        rate_per_producer: args.rate.map(|r| r as f64 / producers as f64),
        pacing_tick: Duration::from_micros(args.pacing_tick_us.unwrap_or(PACING_TICK_US_DEFAULT)),
        progress: AtomicU64::new(0),
        produced: AtomicU64::new(0),
        producers_done: AtomicBool::new(false),
        anchor: Instant::now(),
        send_delay: Mutex::new(new_histogram()),
    });
    let total_hint = match args.mode {
        BenchMode::Consume => None,
        _ => messages.map(|n| n.div_ceil(producers) * producers),
    };
    let progress = start_progress(&ctx, args.json, total_hint, args.duration);
    let stages_before = match &args.metrics {
        Some(addr) => Some(stages::scrape(addr).await?),
        None => None,
    };
    let started = Instant::now();
    let (reports, produce_reports) = match args.mode {
        BenchMode::Produce => (run_producers(&ctx, false).await?, Vec::new()),
        BenchMode::Consume => (
            run_consumers(&ctx, args.consumers, messages).await?,
            Vec::new(),
        ),
        BenchMode::E2e => run_e2e(&ctx, args.consumers).await?,
        // Dispatched in `run` to its own module.
        BenchMode::Rebalance => bail!("bench rebalance runs in bench_rebalance"),
        BenchMode::Queue => bail!("bench queue is run by bench_queue"),
        BenchMode::Fsync => bail!("bench fsync is run by bench::fsync"),
    };
    let wall = started.elapsed();
    progress.finish_and_clear();
    let disk = topic_disk(&ctx.config, &args.topic).await?;
    let mut summary = summarize(&args, partitions, wall, &reports, &produce_reports, disk);
    if args.echo {
        summary["echo"] = json!(true);
    }
    if args.mode == BenchMode::E2e {
        summary["send_delay_ms"] =
            percentiles(&ctx.send_delay.lock().unwrap_or_else(|e| e.into_inner()));
    }
    if let (Some(addr), Some(before)) = (&args.metrics, stages_before) {
        summary["broker_stages_ms"] = stages::report(&before, &stages::scrape(addr).await?);
    }
    output::summary(args.json, &summary, print_human)
}

/// Creates the topic if missing; returns its partition count.
pub(super) async fn ensure_topic(
    config: &ClientConfig,
    topic: &str,
    partitions: u32,
) -> Result<u32> {
    let admin = Admin::new(Client::lazy(config.clone()));
    let topic_config = TopicConfig {
        partitions,
        ..TopicConfig::default()
    };
    match admin.create_topic(topic, topic_config).await {
        Ok(()) => {}
        Err(skiff_client::Error::Broker {
            code: ErrorCode::TopicAlreadyExists,
            ..
        }) => {}
        Err(e) => return Err(e).with_context(|| format!("creating topic {topic:?}")),
    }
    let described = admin
        .describe_topic(topic)
        .await
        .with_context(|| format!("describing topic {topic:?}"))?;
    Ok(described.partitions.len() as u32)
}

/// What a topic's partitions hold: (segment bytes on disk, messages).
async fn topic_disk(config: &ClientConfig, topic: &str) -> Result<(u64, u64)> {
    let admin = Admin::new(Client::lazy(config.clone()));
    let described = admin
        .describe_topic(topic)
        .await
        .with_context(|| format!("describing topic {topic:?}"))?;
    Ok(described.partitions.iter().fold((0, 0), |(b, n), p| {
        (
            b + p.size_bytes,
            n + (p.log_end_offset - p.log_start_offset),
        )
    }))
}

fn start_progress(
    ctx: &Arc<Ctx>,
    json: bool,
    total: Option<u64>,
    duration: Option<f64>,
) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{elapsed_precise} [{bar:40}] {pos}/{len} msgs {per_sec}"
    } else {
        "{elapsed_precise} {pos} msgs {per_sec} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    if let Some(s) = duration {
        bar.set_message(format!("(running {s} s)"));
    }
    let ctx = Arc::clone(ctx);
    let ticker = bar.clone();
    tokio::spawn(async move {
        while !ticker.is_finished() {
            ticker.set_position(ctx.progress.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}

/// A producer's message values, generated before the run from a seed and
/// handed out in turn (`Bytes` clones, no copy).
struct Values {
    pool: Vec<Bytes>,
    next: usize,
}

impl Values {
    /// `--payload` values of `size` bytes for producer `seed`.
    fn new(payload: Payload, size: usize, seed: u64) -> Values {
        let count = (VALUE_POOL_BYTES_MAX / size.max(1)).clamp(1, VALUE_POOL_MESSAGES);
        let pool = match payload {
            Payload::Random => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                (0..count)
                    .map(|_| {
                        let mut v = vec![0u8; size];
                        rng.fill_bytes(&mut v);
                        Bytes::from(v)
                    })
                    .collect()
            }
            Payload::Json => {
                let mut events = JsonEvents::new(seed);
                (0..count).map(|_| json_value(&mut events, size)).collect()
            }
        };
        Values { pool, next: 0 }
    }

    fn next(&mut self) -> Bytes {
        let v = self.pool[self.next % self.pool.len()].clone();
        self.next += 1;
        v
    }
}

/// JSON events laid back to back (one per line) and cut at `size` bytes:
/// one ~500-byte event trimmed, or several for larger sizes.
fn json_value(events: &mut JsonEvents, size: usize) -> Bytes {
    let mut v = Vec::with_capacity(size + 640);
    while v.len() < size {
        if !v.is_empty() {
            v.push(b'\n');
        }
        v.extend_from_slice(events.next_json().as_bytes());
    }
    v.truncate(size);
    Bytes::from(v)
}

/// With `--key-space K`, the keys `key-<k>` (k < K) that hash to each
/// partition, so records carry what a keyed producer would send there;
/// empty lists without it.
fn keys_by_partition(ctx: &Ctx) -> Vec<Vec<Bytes>> {
    (0..ctx.partitions)
        .map(|partition| match ctx.key_space {
            Some(k) => (0..k)
                .map(|i| Bytes::from(format!("key-{i}")))
                .filter(|key| partition_for_key(key, ctx.partitions) == partition)
                .collect(),
            None => Vec::new(),
        })
        .collect()
}

/// Encodes a batch with the bench's `--compression`.
fn encode(ctx: &Ctx, builder: BatchBuilder) -> Result<Bytes> {
    let c = ctx.compression;
    builder
        .build_compressed(c.compression, c.compression_level)
        .context("compressing a batch")
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The partition producer `producer` sends its `j`-th batch to: with as
/// many producers as partitions each owns one; otherwise they rotate.
fn partition_of(ctx: &Ctx, producers: usize, producer: usize, j: u64) -> u32 {
    ((producer as u64 + j * producers as u64) % u64::from(ctx.partitions)) as u32
}

async fn run_producers(ctx: &Arc<Ctx>, e2e: bool) -> Result<Vec<ActorReport>> {
    let producers = ctx.producers;
    let mut tasks = Vec::new();
    for id in 0..producers {
        let ctx = Arc::clone(ctx);
        tasks.push(if e2e {
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || handle.block_on(paced_producer_thread(ctx, id)))
        } else if ctx.protocol == BenchProtocol::Kafka {
            tokio::spawn(kafka::producer(ctx, producers, id))
        } else {
            tokio::spawn(producer(ctx, producers, id))
        });
    }
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.context("producer task failed")??);
    }
    Ok(reports)
}

/// A produce-bench producer: each batch encoded and compressed as it is
/// sent, `in_flight` requests outstanding, optionally paced at its share of
/// `--rate` (latency counted from the intended send time).
async fn producer(ctx: Arc<Ctx>, producers: usize, id: usize) -> Result<ActorReport> {
    let conn = Connection::connect(&ctx.config).await?;
    let mut values = Values::new(ctx.payload, ctx.size, id as u64);
    let keys = keys_by_partition(&ctx);
    let mut keys_used = 0usize;
    let mut wire_bytes: u64 = 0;
    let mut latency = new_histogram();
    let mut inflight = FuturesUnordered::new();
    let batch = ctx.batch as u64;
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut j: u64 = 0;
    loop {
        let more = ctx.per_producer.is_none_or(|n| sent < n)
            && ctx.deadline.is_none_or(|d| Instant::now() < d);
        if !more {
            break;
        }
        if inflight.len() >= ctx.in_flight {
            if let Some(done) = inflight.next().await {
                finish_produce(done, &mut latency)?;
            }
            continue;
        }
        let intended = match ctx.rate_per_producer {
            Some(rate) => {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                while Instant::now() < due {
                    let sleep = tokio::time::sleep_until(due.into());
                    if inflight.is_empty() {
                        sleep.await;
                    } else {
                        tokio::select! {
                            () = sleep => {}
                            Some(done) = inflight.next() => finish_produce(done, &mut latency)?,
                        }
                    }
                }
                due
            }
            None => Instant::now(),
        };
        let count = ctx.per_producer.map_or(batch, |n| batch.min(n - sent));
        let partition = partition_of(&ctx, producers, id, j);
        let keys = &keys[partition as usize];
        // Kafka's record encoding, as skiff's producer writes it.
        let mut builder = BatchBuilder::new().with_encoding(RecordEncoding::Kafka);
        let now_ms = unix_ms();
        for _ in 0..count {
            let key = (!keys.is_empty()).then(|| keys[keys_used % keys.len()].clone());
            keys_used += 1;
            builder.push(Record {
                timestamp_ms: now_ms,
                key,
                value: values.next(),
                headers: Vec::new(),
            });
        }
        let records = encode(&ctx, builder)?;
        wire_bytes += records.len() as u64;
        let pending = conn
            .enqueue(ProduceRequest {
                topic: ctx.topic.clone(),
                partition,
                batch: records,
            })
            .await?;
        inflight.push(async move {
            let result = pending.wait(REQUEST_TIMEOUT).await;
            (result.map(|_| count), intended)
        });
        sent += count;
        j += 1;
        ctx.progress.fetch_add(count, Ordering::Relaxed);
    }
    while let Some(done) = inflight.next().await {
        finish_produce(done, &mut latency)?;
    }
    let elapsed = started.elapsed();
    Ok(ActorReport {
        role: "producer",
        id,
        messages: sent,
        bytes: sent * ctx.size as u64,
        wire_bytes: Some(wire_bytes),
        elapsed,
        latency,
    })
}

type ProduceDone = (skiff_client::Result<u64>, Instant);

fn finish_produce(done: ProduceDone, latency: &mut Histogram<u64>) -> Result<()> {
    let (result, intended) = done;
    result.context("produce failed")?;
    record_latency(latency, intended.elapsed());
    Ok(())
}

/// An e2e producer, run on a blocking-pool thread so it can pace with
/// `std::thread::sleep` (a few µs precise with the thread's timer slack
/// cut to [`PACING_TIMER_SLACK_NS`]) instead of tokio's 1 ms timer. Each
/// wake-up sends every message due by then (at most `--batch` per
/// request), each value stamped with its intended send time.
async fn paced_producer_thread(ctx: Arc<Ctx>, id: usize) -> Result<ActorReport> {
    // Failing leaves the default slack: coarser pacing, still correct.
    let _ =
        rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(PACING_TIMER_SLACK_NS));
    let conn = Connection::connect(&ctx.config).await?;
    let producers = ctx.producers;
    let latency = Arc::new(Mutex::new(new_histogram()));
    let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let mut waits = Vec::new();
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut j: u64 = 0;
    let mut wire_bytes: u64 = 0;
    let mut values = Values::new(ctx.payload, ctx.size - STAMP_BYTES, id as u64);
    loop {
        let more = ctx.per_producer.is_none_or(|n| sent < n)
            && ctx.deadline.is_none_or(|d| Instant::now() < d);
        if !more {
            break;
        }
        let now = Instant::now();
        let due_count = match ctx.rate_per_producer {
            Some(rate) => {
                let due = (now - started).as_secs_f64() * rate;
                let due = (due as u64).max(sent);
                if due == sent {
                    let next = started + Duration::from_secs_f64((sent + 1) as f64 / rate);
                    std::thread::sleep(next.saturating_duration_since(now).max(ctx.pacing_tick));
                    continue;
                }
                due - sent
            }
            None => ctx.batch as u64,
        };
        let count = due_count
            .min(ctx.batch as u64)
            .min(ctx.per_producer.map_or(u64::MAX, |n| n - sent));
        // Each message's intended send time: its slot in the paced
        // schedule, or now when unpaced.
        let intended: Vec<Instant> = (sent..sent + count)
            .map(|k| match ctx.rate_per_producer {
                Some(rate) => started + Duration::from_secs_f64(k as f64 / rate),
                None => now,
            })
            .collect();
        // Kafka's record encoding, as skiff's producer writes it.
        let mut builder = BatchBuilder::new().with_encoding(RecordEncoding::Kafka);
        let ms = unix_ms();
        for &intended in &intended {
            let stamp = u64::try_from((intended - ctx.anchor).as_nanos()).unwrap_or(u64::MAX);
            let mut value = Vec::with_capacity(ctx.size);
            value.extend_from_slice(&stamp.to_le_bytes());
            value.extend_from_slice(&values.next());
            builder.push(Record {
                timestamp_ms: ms,
                key: None,
                value: Bytes::from(value),
                headers: Vec::new(),
            });
        }
        let partition = partition_of(&ctx, producers, id, j);
        let records = encode(&ctx, builder)?;
        wire_bytes += records.len() as u64;
        let handed = Instant::now();
        {
            let mut delays = ctx.send_delay.lock().unwrap_or_else(|e| e.into_inner());
            for &intended in &intended {
                record_latency(&mut delays, handed.saturating_duration_since(intended));
            }
        }
        let pending = conn
            .enqueue(ProduceRequest {
                topic: ctx.topic.clone(),
                partition,
                batch: records,
            })
            .await?;
        let (latency, failed, ctx2) = (Arc::clone(&latency), Arc::clone(&failed), Arc::clone(&ctx));
        waits.push(tokio::spawn(async move {
            match pending.wait(REQUEST_TIMEOUT).await {
                Ok(_) => {
                    record_latency(
                        &mut latency.lock().unwrap_or_else(|e| e.into_inner()),
                        now.elapsed(),
                    );
                    ctx2.produced.fetch_add(count, Ordering::Relaxed);
                }
                Err(e) => {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                }
            }
        }));
        if waits.len() > 4096 {
            waits.retain(|w| !w.is_finished());
        }
        sent += count;
        j += 1;
    }
    for w in waits {
        w.await.context("produce wait task failed")?;
    }
    if let Some(e) = failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bail!("produce failed: {e}");
    }
    let latency = std::mem::replace(
        &mut *latency.lock().unwrap_or_else(|e| e.into_inner()),
        new_histogram(),
    );
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

/// Consumer `id` of `consumers` reads partitions `p` with `p % consumers == id`.
fn partitions_of(ctx: &Ctx, consumers: usize, id: usize) -> Vec<u32> {
    (0..ctx.partitions)
        .filter(|p| *p as usize % consumers == id)
        .collect()
}

async fn run_consumers(
    ctx: &Arc<Ctx>,
    consumers: usize,
    messages: Option<u64>,
) -> Result<Vec<ActorReport>> {
    let consumers = consumers.min(ctx.partitions as usize);
    if ctx.group.is_some() {
        let admin = Admin::new(Client::lazy(ctx.config.clone()));
        let described = admin.describe_topic(&ctx.topic).await?;
        let available: u64 = described
            .partitions
            .iter()
            .map(|p| p.log_end_offset - p.log_start_offset)
            .sum();
        let target = messages.map_or(available, |n| n.min(available));
        return run_group_consumers(ctx, consumers, target, StartFrom::Earliest).await;
    }
    let mut tasks = Vec::new();
    for id in 0..consumers {
        let ctx = Arc::clone(ctx);
        let budget = messages.map(|n| n.div_ceil(consumers as u64));
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&ctx.config).await?;
            let mut ranges = Vec::new();
            for p in partitions_of(&ctx, consumers, id) {
                let start = list_offset(&conn, &ctx.topic, p, OffsetQuery::Earliest).await?;
                let end = list_offset(&conn, &ctx.topic, p, OffsetQuery::Latest).await?;
                ranges.push((p, start, end));
            }
            let fetcher = match ctx.protocol {
                BenchProtocol::Native => Fetcher::Native(conn),
                BenchProtocol::Kafka => Fetcher::Kafka(kafka::KafkaFetcher::open(&ctx).await?),
            };
            consumer(ctx, fetcher, id, ranges, budget, false).await
        }));
    }
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.context("consumer task failed")??);
    }
    Ok(reports)
}

async fn list_offset(
    conn: &Connection,
    topic: &str,
    partition: u32,
    q: OffsetQuery,
) -> Result<u64> {
    Ok(conn
        .send(ListOffsetsRequest {
            topic: topic.to_owned(),
            partition,
            query: q,
        })
        .await?
        .offset)
}

/// One fetch's answer, whichever protocol brought it.
pub(super) struct Fetched {
    /// When the answer arrived.
    pub(super) arrived: Instant,
    /// Its whole batches, from the one holding the offset asked for;
    /// decoded one at a time by the loop ([`Fetched::decode`]).
    pub(super) batches: Vec<Bytes>,
    /// Whether they are Kafka's batches (else skiff's).
    pub(super) kafka: bool,
    /// Bytes of record batches on the wire.
    pub(super) wire_bytes: u64,
}

impl Fetched {
    /// The records of one of its batches, checked as a client checks them
    /// (inflated when compressed: consume pays for decompression).
    fn decode(&self, b: &Bytes) -> Result<Vec<batch::DecodedRecord>> {
        Ok(if self.kafka {
            kafka_batch::decode_kafka_batch(b).context("decoding a fetched Kafka batch")?
        } else {
            batch::decode_records(b)?
        })
    }
}

/// Where a bench consumer's fetches go.
enum Fetcher {
    /// skiff's protocol: Fetch, each batch decoded as the client does.
    Native(Connection),
    /// The broker's Kafka listener.
    Kafka(kafka::KafkaFetcher),
}

impl Fetcher {
    async fn fetch(&mut self, ctx: &Ctx, partition: u32, offset: u64) -> Result<Fetched> {
        let conn = match self {
            Fetcher::Kafka(k) => return k.fetch(partition, offset).await,
            Fetcher::Native(conn) => conn,
        };
        let response = conn
            .send_with_timeout(
                FetchRequest {
                    topic: ctx.topic.clone(),
                    partition,
                    offset,
                    max_bytes: FETCH_BYTES_MAX,
                    max_wait_ms: FETCH_WAIT_MS,
                },
                REQUEST_TIMEOUT,
            )
            .await?;
        Ok(Fetched {
            arrived: Instant::now(),
            wire_bytes: response.records.len() as u64,
            batches: BatchIter::new(response.records).collect::<Result<_, _>>()?,
            kafka: false,
        })
    }
}

/// Reads `ranges` (partition, from, until) round-robin, one fetch at a time,
/// through `fetcher`. In consume mode it stops at each range's end (or
/// after `budget` messages); in e2e mode (`e2e`) it follows the log until
/// every produced message was received, recording publish-to-receive
/// latency per message (else the latency of each fetch that brought
/// records, from its request to its answer).
async fn consumer(
    ctx: Arc<Ctx>,
    mut fetcher: Fetcher,
    id: usize,
    ranges: Vec<(u32, u64, u64)>,
    budget: Option<u64>,
    e2e: bool,
) -> Result<ActorReport> {
    let mut latency = new_histogram();
    let mut queue: VecDeque<(u32, u64, u64)> = ranges.into_iter().collect();
    let started = Instant::now();
    let mut received: u64 = 0;
    let mut bytes: u64 = 0;
    let mut wire_bytes: u64 = 0;
    while let Some((partition, offset, end)) = queue.pop_front() {
        if !e2e && (offset >= end || budget.is_some_and(|b| received >= b)) {
            continue;
        }
        if e2e {
            let all_in = ctx.producers_done.load(Ordering::Acquire)
                && ctx.progress.load(Ordering::Relaxed) >= ctx.produced.load(Ordering::Relaxed);
            if all_in {
                break;
            }
        }
        let asked = Instant::now();
        let fetched = fetcher.fetch(&ctx, partition, offset).await?;
        let mut next = offset;
        let mut got: u64 = 0;
        let now_ns = u64::try_from(ctx.anchor.elapsed().as_nanos()).unwrap_or(u64::MAX);
        wire_bytes += fetched.wire_bytes;
        for records in fetched.batches.iter().map(|b| fetched.decode(b)) {
            for r in records? {
                if r.offset < offset {
                    continue;
                }
                next = r.offset + 1;
                got += 1;
                bytes += r.value.len() as u64;
                if e2e && r.value.len() >= STAMP_BYTES {
                    let mut stamp = [0u8; STAMP_BYTES];
                    stamp.copy_from_slice(&r.value[..STAMP_BYTES]);
                    let sent_ns = u64::from_le_bytes(stamp);
                    record_latency(
                        &mut latency,
                        Duration::from_nanos(now_ns.saturating_sub(sent_ns)),
                    );
                }
            }
        }
        if !e2e && got > 0 {
            record_latency(
                &mut latency,
                fetched.arrived.saturating_duration_since(asked),
            );
        }
        received += got;
        ctx.progress.fetch_add(got, Ordering::Relaxed);
        queue.push_back((partition, next, end));
    }
    Ok(ActorReport {
        role: "consumer",
        id,
        messages: received,
        bytes,
        wire_bytes: Some(wire_bytes),
        elapsed: started.elapsed(),
        latency,
    })
}

async fn run_e2e(ctx: &Arc<Ctx>, consumers: usize) -> Result<(Vec<ActorReport>, Vec<ActorReport>)> {
    let consumers = consumers.min(ctx.partitions as usize);
    if ctx.group.is_some() {
        let ctx2 = Arc::clone(ctx);
        let group = tokio::spawn(async move {
            run_group_consumers(&ctx2, consumers, u64::MAX, StartFrom::Latest).await
        });
        // Give the members time to join and be assigned before sending.
        tokio::time::sleep(GROUP_SETTLE).await;
        let produced = run_producers(ctx, true).await;
        ctx.producers_done.store(true, Ordering::Release);
        let produced = produced?;
        let reports = group.await.context("group consumers failed")??;
        return Ok((reports, produced));
    }
    let mut tasks = Vec::new();
    for id in 0..consumers {
        let conn = Connection::connect(&ctx.config).await?;
        let mut ranges = Vec::new();
        for p in partitions_of(ctx, consumers, id) {
            let end = list_offset(&conn, &ctx.topic, p, OffsetQuery::Latest).await?;
            ranges.push((p, end, u64::MAX));
        }
        let ctx = Arc::clone(ctx);
        tasks.push(tokio::spawn(consumer(
            ctx,
            Fetcher::Native(conn),
            id,
            ranges,
            None,
            true,
        )));
    }
    let produced = run_producers(ctx, true).await;
    ctx.producers_done.store(true, Ordering::Release);
    let produced = produced?;
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.context("consumer task failed")??);
    }
    Ok((reports, produced))
}

/// How long e2e waits after starting group members before producing, so
/// their partitions are assigned and positioned at the log end first.
const GROUP_SETTLE: Duration = Duration::from_secs(2);

/// Consumers that join `--group` and read through the client's `Consumer`
/// (its fetch, decode and commit path), until `target` messages arrived in
/// total (consume) or, in e2e (`target == u64::MAX`), every acknowledged
/// message. Consume latency is per `--batch` records received.
async fn run_group_consumers(
    ctx: &Arc<Ctx>,
    consumers: usize,
    target: u64,
    from: StartFrom,
) -> Result<Vec<ActorReport>> {
    let group = ctx.group.clone().context("no group")?;
    let mut tasks = Vec::new();
    for id in 0..consumers {
        let ctx = Arc::clone(ctx);
        let mut config = GroupConfig::new(group.clone(), [ctx.topic.clone()]);
        config.reset = from;
        tasks.push(tokio::spawn(async move {
            let client = Client::lazy(ctx.config.clone());
            let mut consumer = Consumer::with_group(client, config).await?;
            let e2e = target == u64::MAX;
            let mut latency = new_histogram();
            let started = Instant::now();
            let mut chunk_started = Instant::now();
            let (mut received, mut bytes) = (0u64, 0u64);
            loop {
                let done = if e2e {
                    ctx.producers_done.load(Ordering::Acquire)
                        && ctx.progress.load(Ordering::Relaxed)
                            >= ctx.produced.load(Ordering::Relaxed)
                } else {
                    ctx.progress.load(Ordering::Relaxed) >= target
                };
                if done {
                    break;
                }
                let next = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await;
                let record = match next {
                    Err(_) | Ok(None) => continue,
                    Ok(Some(record)) => record?,
                };
                received += 1;
                bytes += record.value.len() as u64;
                ctx.progress.fetch_add(1, Ordering::Relaxed);
                if e2e && record.value.len() >= STAMP_BYTES {
                    let mut stamp = [0u8; STAMP_BYTES];
                    stamp.copy_from_slice(&record.value[..STAMP_BYTES]);
                    let now_ns = u64::try_from(ctx.anchor.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let sent_ns = u64::from_le_bytes(stamp);
                    record_latency(
                        &mut latency,
                        Duration::from_nanos(now_ns.saturating_sub(sent_ns)),
                    );
                } else if !e2e && received % ctx.batch as u64 == 0 {
                    record_latency(&mut latency, chunk_started.elapsed());
                    chunk_started = Instant::now();
                }
            }
            anyhow::Ok(ActorReport {
                role: "consumer",
                id,
                messages: received,
                bytes,
                wire_bytes: None,
                elapsed: started.elapsed(),
                latency,
            })
        }));
    }
    let mut reports = Vec::new();
    for task in tasks {
        reports.push(task.await.context("group consumer task failed")??);
    }
    Ok(reports)
}

pub(super) fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64) / 1000.0;
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "p99_99": ms(h.value_at_quantile(0.9999)),
        "max": ms(h.max()),
        "count": h.len(),
    })
}

fn rates(messages: u64, bytes: u64, elapsed: Duration) -> (f64, f64) {
    let s = elapsed.as_secs_f64().max(1e-9);
    (messages as f64 / s, bytes as f64 / s / 1e6)
}

/// Payload bytes per wire byte (None when the wire bytes are unknown or 0).
fn ratio(bytes: u64, wire_bytes: Option<u64>) -> Option<f64> {
    wire_bytes
        .filter(|w| *w > 0)
        .map(|w| bytes as f64 / w as f64)
}

fn actor_json(r: &ActorReport) -> Value {
    let (msgs_per_s, mb_per_s) = rates(r.messages, r.bytes, r.elapsed);
    json!({
        "role": r.role,
        "id": r.id,
        "messages": r.messages,
        "bytes": r.bytes,
        "wire_bytes": r.wire_bytes,
        "compression_ratio": ratio(r.bytes, r.wire_bytes),
        "elapsed_s": r.elapsed.as_secs_f64(),
        "msgs_per_s": msgs_per_s,
        "mb_per_s": mb_per_s,
        "latency_ms": percentiles(&r.latency),
    })
}

fn merged(reports: &[ActorReport]) -> Histogram<u64> {
    let mut all = new_histogram();
    for r in reports {
        // Same bounds everywhere, so adding cannot fail.
        let _ = all.add(&r.latency);
    }
    all
}

fn summarize(
    args: &BenchArgs,
    partitions: u32,
    wall: Duration,
    reports: &[ActorReport],
    produce_reports: &[ActorReport],
    (disk_bytes, disk_messages): (u64, u64),
) -> Value {
    let messages: u64 = reports.iter().map(|r| r.messages).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let wire_bytes: Option<u64> = reports.iter().map(|r| r.wire_bytes).sum();
    let (msgs_per_s, mb_per_s) = rates(messages, bytes, wall);
    let wire_mb_per_s = wire_bytes.map(|w| rates(messages, w, wall).1);
    let latency_kind = match args.mode {
        BenchMode::Produce => "per produce batch, intended send to ack",
        BenchMode::Consume if args.group.is_some() => "per --batch records received",
        BenchMode::Consume => "per fetch",
        BenchMode::E2e => "per message, intended send to receive",
        BenchMode::Rebalance => "per hand-over",
        BenchMode::Queue | BenchMode::Fsync => "",
    };
    let mut actors: Vec<Value> = reports.iter().map(actor_json).collect();
    actors.extend(produce_reports.iter().map(actor_json));
    let mut summary = json!({
        "mode": args.mode.name(),
        "protocol": args.protocol.name(),
        "topic": args.topic,
        "partitions": partitions,
        "size": args.size,
        "batch": args.batch,
        "in_flight": args.in_flight,
        "producers": args.producers,
        "consumers": args.consumers,
        "rate": args.rate,
        "compression": args.compression.compression.name(),
        "payload": args.payload.name(),
        "messages": messages,
        "bytes": bytes,
        "wire_bytes": wire_bytes,
        "compression_ratio": ratio(bytes, wire_bytes),
        "disk_bytes": disk_bytes,
        "disk_messages": disk_messages,
        "disk_bytes_per_message": (disk_messages > 0).then(|| disk_bytes as f64 / disk_messages as f64),
        "elapsed_s": wall.as_secs_f64(),
        "msgs_per_s": msgs_per_s,
        "mb_per_s": mb_per_s,
        "wire_mb_per_s": wire_mb_per_s,
        "latency_kind": latency_kind,
        "latency_ms": percentiles(&merged(reports)),
        "actors": actors,
    });
    if !produce_reports.is_empty() {
        summary["produce_latency_ms"] = percentiles(&merged(produce_reports));
    }
    summary
}

fn print_human(out: &mut impl Write, s: &Value) -> std::io::Result<()> {
    let lat = |v: &Value| {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3} ms",
            v["p50"].as_f64().unwrap_or(0.0),
            v["p90"].as_f64().unwrap_or(0.0),
            v["p99"].as_f64().unwrap_or(0.0),
            v["p99_9"].as_f64().unwrap_or(0.0),
            v["p99_99"].as_f64().unwrap_or(0.0),
            v["max"].as_f64().unwrap_or(0.0),
        )
    };
    if let Some(actors) = s["actors"].as_array() {
        for a in actors {
            writeln!(
                out,
                "{:>8} {:<3} {:>10} msgs  {:>12.0} msgs/s  {:>8.1} MB/s  {}",
                a["role"].as_str().unwrap_or(""),
                a["id"],
                a["messages"],
                a["msgs_per_s"].as_f64().unwrap_or(0.0),
                a["mb_per_s"].as_f64().unwrap_or(0.0),
                lat(&a["latency_ms"]),
            )?;
        }
    }
    writeln!(
        out,
        "{:>12} {:>10} msgs  {:>12.0} msgs/s  {:>8.1} MB/s  in {:.2} s",
        "total",
        s["messages"],
        s["msgs_per_s"].as_f64().unwrap_or(0.0),
        s["mb_per_s"].as_f64().unwrap_or(0.0),
        s["elapsed_s"].as_f64().unwrap_or(0.0),
    )?;
    if let Some(wire) = s["wire_bytes"].as_u64() {
        writeln!(
            out,
            "{:>12} {:>10} bytes on the wire ({:.1} MB/s, payload/wire {:.2}); topic on disk {} bytes, {:.1} per message",
            s["compression"].as_str().unwrap_or(""),
            wire,
            s["wire_mb_per_s"].as_f64().unwrap_or(0.0),
            s["compression_ratio"].as_f64().unwrap_or(0.0),
            s["disk_bytes"],
            s["disk_bytes_per_message"].as_f64().unwrap_or(0.0),
        )?;
    }
    writeln!(
        out,
        "latency ({}): {}",
        s["latency_kind"].as_str().unwrap_or(""),
        lat(&s["latency_ms"])
    )?;
    if !s["produce_latency_ms"].is_null() {
        writeln!(
            out,
            "produce ack latency: {}",
            lat(&s["produce_latency_ms"])
        )?;
    }
    if !s["send_delay_ms"].is_null() {
        writeln!(
            out,
            "intended send to request handed to the connection: {}",
            lat(&s["send_delay_ms"])
        )?;
    }
    if let Some(stages) = s["broker_stages_ms"].as_object() {
        writeln!(
            out,
            "inside the broker (skiff_stage_seconds, interpolated):"
        )?;
        let ms = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.3}"));
        for (stage, v) in stages {
            writeln!(
                out,
                "  {stage:<15} {:>9} samples  p50 {}  p99 {}  p99.9 {} ms",
                v["count"],
                ms(&v["p50"]),
                ms(&v["p99"]),
                ms(&v["p99_9"]),
            )?;
        }
    }
    Ok(())
}
