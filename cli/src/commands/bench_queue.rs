//! `skiff bench queue`: work-queue workers over one topic.
//!
//! Fills the topic with `--messages` records of `--size` bytes (not timed),
//! then for each count of `--workers` creates a fresh queue over the topic
//! (a new queue starts at the topic's start, so every run works through the
//! same records), runs that many workers, each on its own connection, until
//! every record of the topic is acknowledged, and deletes the queue and its
//! dead-letter topic. A worker receives up to `--receive-records`, spends
//! `--work-ms` per record (a sleep: waiting on another service), and
//! settles the whole receive in one request: acks, and a nack with no delay
//! for every `--nack-every`th record on its first delivery. A worker keeps
//! one settle in flight while it receives and works on the next records (as
//! RabbitMQ and NATS clients send acks without waiting); a record counts as
//! acknowledged only when its settle is answered, i.e. durable.
//!
//! Measured per run: records handed out and acknowledged per second (wall
//! time from the first receive to the last ack), receive and settle round
//! trips, and redelivery latency: from a nack being sent to the record
//! being handed out again (to any worker). With several worker counts it
//! prints each run's rate relative to the first (`1,8` shows what 8
//! workers get over 1).
//!
//! Durability is the broker's: run `skiffd --fsync always` to measure acks
//! answered only once fsync'd.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use skiff_client::protocol::messages::{
    CreateQueueRequest, DeleteQueueRequest, QueueConfig, ReceiveRequest, SettleAction,
    SettleRequest, Settlement,
};
use skiff_client::{Admin, Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};

use super::bench::{ensure_topic, new_histogram, percentiles, record_latency};
use crate::args::BenchArgs;
use crate::output;

/// Records produced when `--messages` is not given.
const QUEUE_MESSAGES_DEFAULT: u64 = 200_000;
/// Produce acknowledgements awaited at once while filling the topic:
/// bounds the filler's memory while keeping batches full.
const FILL_IN_FLIGHT_MAX: usize = 20_000;
/// How long a worker's receive waits when nothing is available, in ms:
/// short, so workers notice the end of the run soon.
const RECEIVE_WAIT_MS: u32 = 100;
/// A run with no acknowledgement for this long fails instead of hanging.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What every worker of one run shares.
struct Run {
    queue: String,
    total: u64,
    receive_records: u32,
    work: Duration,
    nack_every: u64,
    acked: AtomicU64,
    /// Records in settles sent and not yet answered.
    settling: AtomicU64,
    handed_out: AtomicU64,
    nacked: AtomicU64,
    /// Nacked records not yet handed out again: (partition, offset) to
    /// when the nack was sent.
    waiting: Mutex<HashMap<(u32, u64), Instant>>,
    last_progress: Mutex<Instant>,
    /// When the last record's ack was answered: the end of the measured
    /// time (workers then still wait out a receive before they stop).
    finished: Mutex<Option<Instant>>,
}

/// One worker's latencies.
struct WorkerReport {
    receive: Histogram<u64>,
    settle: Histogram<u64>,
    redelivery: Histogram<u64>,
}

/// Locks `m`; a worker that panicked holding it left nothing half-done.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `skiff bench queue` (called by `skiff bench`).
pub async fn run(config: ClientConfig, args: BenchArgs) -> Result<()> {
    let q = &args.queue;
    if args.duration.is_some() {
        bail!(
            "bench queue runs until every record is acknowledged: give --messages, not --duration"
        );
    }
    if !(q.work_ms.is_finite() && (0.0..=60_000.0).contains(&q.work_ms)) {
        bail!("--work-ms must be between 0 and 60000, not {}", q.work_ms);
    }
    if args.size == 0 {
        bail!("--size must be at least 1 byte");
    }
    let config = config.client_id("skiff-bench");
    let partitions = ensure_topic(&config, &args.topic, args.partitions).await?;
    let messages = args.messages.unwrap_or(QUEUE_MESSAGES_DEFAULT);
    let filling = Instant::now();
    fill(&config, &args.topic, messages, args.size).await?;
    let fill_s = filling.elapsed().as_secs_f64();
    let admin = Admin::new(Client::lazy(config.clone()));
    let described = admin
        .describe_topic(&args.topic)
        .await
        .with_context(|| format!("describing topic {:?}", args.topic))?;
    let total: u64 = described
        .partitions
        .iter()
        .map(|p| p.log_end_offset - p.log_start_offset)
        .sum();
    let mut runs = Vec::new();
    for &workers in &q.workers {
        let name = format!("{}-bench-{workers}w-{}", args.topic, std::process::id());
        let report = run_queue(&config, &args, &name, workers, total).await;
        // The queue and its dead-letter topic go, whatever the run did.
        let dlq = cleanup(&config, &name).await;
        let mut report = report?;
        report["dead_letter_topic"] = json!(dlq);
        runs.push(report);
    }
    let base = runs
        .first()
        .and_then(|r| r["acked_per_s"].as_f64())
        .unwrap_or(0.0);
    for r in &mut runs {
        let rate = r["acked_per_s"].as_f64().unwrap_or(0.0);
        r["speedup"] = json!((base > 0.0).then(|| rate / base));
    }
    let summary = json!({
        "mode": "queue",
        "topic": args.topic,
        "partitions": partitions,
        "size": args.size,
        "records": total,
        "produced": messages,
        "produced_per_s": messages as f64 / fill_s,
        "work_ms": q.work_ms,
        "receive_records": q.receive_records,
        "nack_every": q.nack_every,
        "lock_ms": q.lock_ms,
        "runs": runs,
    });
    output::summary(args.json, &summary, print_human)
}

/// Appends `messages` records of `size` bytes to `topic` (not timed).
async fn fill(config: &ClientConfig, topic: &str, messages: u64, size: usize) -> Result<()> {
    let client = Client::connect(config.clone())
        .await
        .context("connecting the filler")?;
    let producer = Producer::new(client, ProducerConfig::default().linger_ms(5));
    let value = bytes::Bytes::from(vec![b'x'; size]);
    let mut left = messages;
    while left > 0 {
        let n = left.min(FILL_IN_FLIGHT_MAX as u64);
        let acks: Vec<_> = (0..n)
            .map(|_| producer.send(ProducerRecord::new(topic, value.clone())))
            .collect();
        for ack in acks {
            ack.await
                .with_context(|| format!("filling topic {topic:?}"))?;
        }
        left -= n;
    }
    Ok(())
}

/// Deletes the bench's queue and its dead-letter topic; returns the
/// dead-letter topic's name. Failures are reported, not fatal.
async fn cleanup(config: &ClientConfig, queue: &str) -> Option<String> {
    let client = Client::lazy(config.clone());
    let dlq = client
        .send(skiff_client::protocol::messages::DescribeQueueRequest {
            name: queue.to_owned(),
        })
        .await
        .ok()
        .map(|d| d.settings.dead_letter_topic);
    if let Err(e) = client
        .send(DeleteQueueRequest {
            name: queue.to_owned(),
        })
        .await
    {
        eprintln!("bench queue: cannot delete queue {queue:?}: {e}");
    }
    if let Some(dlq) = &dlq {
        if let Err(e) = Admin::new(client).delete_topic(dlq).await {
            eprintln!("bench queue: cannot delete dead-letter topic {dlq:?}: {e}");
        }
    }
    dlq
}

/// One run: a fresh queue, `workers` workers until `total` records are
/// acknowledged.
async fn run_queue(
    config: &ClientConfig,
    args: &BenchArgs,
    queue: &str,
    workers: u32,
    total: u64,
) -> Result<Value> {
    let q = &args.queue;
    let client = Client::lazy(config.clone());
    client
        .send(CreateQueueRequest {
            name: queue.to_owned(),
            topic: args.topic.clone(),
            config: QueueConfig {
                lock_ms: Some(q.lock_ms),
                // Nacked records come back at once and never run out.
                max_deliveries: Some(1000),
                backoff_initial_ms: Some(0),
                ..QueueConfig::default()
            },
        })
        .await
        .with_context(|| format!("creating queue {queue:?}"))?;
    let run = Arc::new(Run {
        queue: queue.to_owned(),
        total,
        receive_records: q.receive_records,
        work: Duration::from_secs_f64(q.work_ms / 1000.0),
        nack_every: q.nack_every,
        acked: AtomicU64::new(0),
        settling: AtomicU64::new(0),
        handed_out: AtomicU64::new(0),
        nacked: AtomicU64::new(0),
        waiting: Mutex::new(HashMap::new()),
        last_progress: Mutex::new(Instant::now()),
        finished: Mutex::new(None),
    });
    // Every worker connects before the clock starts.
    let mut clients = Vec::with_capacity(workers as usize);
    for _ in 0..workers {
        clients.push(
            Client::connect(config.clone())
                .await
                .context("connecting a worker")?,
        );
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(worker(client, Arc::clone(&run))))
        .collect();
    let mut receive = new_histogram();
    let mut settle = new_histogram();
    let mut redelivery = new_histogram();
    for task in tasks {
        let report = task.await.context("a worker task failed")??;
        receive.add(&report.receive).context("merging histograms")?;
        settle.add(&report.settle).context("merging histograms")?;
        redelivery
            .add(&report.redelivery)
            .context("merging histograms")?;
    }
    let ended = lock(&run.finished).unwrap_or_else(Instant::now);
    let wall = ended.duration_since(started).as_secs_f64();
    let acked = run.acked.load(Ordering::Relaxed);
    let handed_out = run.handed_out.load(Ordering::Relaxed);
    Ok(json!({
        "workers": workers,
        "queue": queue,
        "acked": acked,
        "handed_out": handed_out,
        "nacked": run.nacked.load(Ordering::Relaxed),
        "elapsed_s": wall,
        "acked_per_s": acked as f64 / wall,
        "handed_out_per_s": handed_out as f64 / wall,
        "receive_ms": percentiles(&receive),
        "settle_ms": percentiles(&settle),
        "redelivery_ms": percentiles(&redelivery),
    }))
}

/// One worker: receive, work, settle, until the run's records are all
/// acknowledged.
/// A settle sent and not yet answered: its items are counted in
/// [`Run::settling`] until it is.
type InFlight = tokio::task::JoinHandle<Result<Duration>>;

/// Waits for the settle in flight, if any, and records its latency.
async fn join(in_flight: &mut Option<InFlight>, report: &mut WorkerReport) -> Result<()> {
    if let Some(task) = in_flight.take() {
        let took = task.await.context("a settle task failed")??;
        record_latency(&mut report.settle, took);
    }
    Ok(())
}

async fn worker(client: Client, run: Arc<Run>) -> Result<WorkerReport> {
    let mut report = WorkerReport {
        receive: new_histogram(),
        settle: new_histogram(),
        redelivery: new_histogram(),
    };
    let mut member_id = 0;
    let mut in_flight: Option<InFlight> = None;
    while run.acked.load(Ordering::Relaxed) < run.total {
        let stalled = lock(&run.last_progress).elapsed();
        if stalled > STALL_TIMEOUT {
            bail!(
                "no record acknowledged for {} s ({} of {} done)",
                stalled.as_secs(),
                run.acked.load(Ordering::Relaxed),
                run.total
            );
        }
        // Every record is acknowledged or being settled: only a refused
        // settle could leave work, so hear this worker's answer first
        // rather than wait out a receive.
        if in_flight.is_some()
            && run.acked.load(Ordering::Relaxed) + run.settling.load(Ordering::Relaxed) >= run.total
        {
            join(&mut in_flight, &mut report).await?;
            continue;
        }
        let sent = Instant::now();
        let response = client
            .send(ReceiveRequest {
                queue: run.queue.clone(),
                member_id,
                max_records: run.receive_records,
                max_wait_ms: RECEIVE_WAIT_MS,
            })
            .await
            .context("receive")?;
        record_latency(&mut report.receive, sent.elapsed());
        member_id = response.member_id;
        if response.deliveries.is_empty() {
            join(&mut in_flight, &mut report).await?;
            continue;
        }
        run.handed_out
            .fetch_add(response.deliveries.len() as u64, Ordering::Relaxed);
        let mut items = Vec::with_capacity(response.deliveries.len());
        let mut nacks = Vec::new();
        for d in &response.deliveries {
            if d.deliveries > 1 {
                let nacked_at = lock(&run.waiting).remove(&(d.partition, d.offset));
                if let Some(at) = nacked_at {
                    record_latency(&mut report.redelivery, at.elapsed());
                }
            }
            if !run.work.is_zero() {
                tokio::time::sleep(run.work).await;
            }
            let nack = run.nack_every > 0 && d.deliveries == 1 && d.offset % run.nack_every == 0;
            let action = if nack {
                nacks.push((d.partition, d.offset));
                SettleAction::Nack { delay_ms: 0 }
            } else {
                SettleAction::Ack
            };
            items.push(Settlement {
                partition: d.partition,
                offset: d.offset,
                deliveries: d.deliveries,
                action,
            });
        }
        // At most one settle in flight: the previous one is answered
        // before this one goes, while the next receive overlaps it.
        join(&mut in_flight, &mut report).await?;
        // Noted before the nack is sent: another worker may get the record
        // back before this one hears the answer.
        let now = Instant::now();
        lock(&run.waiting).extend(nacks.iter().map(|&k| (k, now)));
        let settling = items.len() as u64;
        run.settling.fetch_add(settling, Ordering::Relaxed);
        let request = SettleRequest {
            queue: run.queue.clone(),
            member_id,
            items,
        };
        let (client, run) = (client.clone(), Arc::clone(&run));
        in_flight = Some(tokio::spawn(async move {
            let result = settle(&client, &run, request, &nacks).await;
            run.settling.fetch_sub(settling, Ordering::Relaxed);
            result
        }));
    }
    join(&mut in_flight, &mut report).await?;
    Ok(report)
}

/// Sends one settle and counts its answers; returns its round trip.
async fn settle(
    client: &Client,
    run: &Run,
    request: SettleRequest,
    nacks: &[(u32, u64)],
) -> Result<Duration> {
    let items: Vec<(u32, u64)> = request
        .items
        .iter()
        .map(|i| (i.partition, i.offset))
        .collect();
    let sent = Instant::now();
    let settled = client.send(request).await.context("settle")?;
    let took = sent.elapsed();
    let mut acked = 0;
    for (&(partition, offset), result) in items.iter().zip(&settled.results) {
        if let Some(e) = &result.error {
            // A lock lost to expiry: the record comes back to someone.
            eprintln!("bench queue: settle of partition {partition} offset {offset} refused: {e}");
            continue;
        }
        if nacks.contains(&(partition, offset)) {
            run.nacked.fetch_add(1, Ordering::Relaxed);
        } else {
            acked += 1;
        }
    }
    if acked > 0 {
        let now = Instant::now();
        if run.acked.fetch_add(acked, Ordering::Relaxed) + acked >= run.total {
            lock(&run.finished).get_or_insert(now);
        }
        *lock(&run.last_progress) = now;
    }
    Ok(took)
}

fn print_human(out: &mut impl Write, s: &Value) -> std::io::Result<()> {
    let lat = |v: &Value| {
        format!(
            "p50 {:.2} p99 {:.2} max {:.2}",
            v["p50"].as_f64().unwrap_or(0.0),
            v["p99"].as_f64().unwrap_or(0.0),
            v["max"].as_f64().unwrap_or(0.0),
        )
    };
    writeln!(
        out,
        "queue bench: topic {} ({} partitions), {} records of {} bytes ({} produced at {:.0}/s, each acknowledged), {} ms work per record, {} per receive, nack every {}",
        s["topic"].as_str().unwrap_or(""),
        s["partitions"],
        s["records"],
        s["size"],
        s["produced"],
        s["produced_per_s"].as_f64().unwrap_or(0.0),
        s["work_ms"],
        s["receive_records"],
        s["nack_every"],
    )?;
    writeln!(
        out,
        "{:>7} {:>12} {:>12} {:>8} {:>8}  {:<30} {:<30} {:<30}",
        "WORKERS",
        "ACKED/S",
        "HANDED/S",
        "SPEEDUP",
        "SECONDS",
        "REDELIVERY MS",
        "SETTLE MS",
        "RECEIVE MS"
    )?;
    for r in s["runs"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:>7} {:>12.0} {:>12.0} {:>7.2}x {:>8.2}  {:<30} {:<30} {:<30}",
            r["workers"],
            r["acked_per_s"].as_f64().unwrap_or(0.0),
            r["handed_out_per_s"].as_f64().unwrap_or(0.0),
            r["speedup"].as_f64().unwrap_or(0.0),
            r["elapsed_s"].as_f64().unwrap_or(0.0),
            lat(&r["redelivery_ms"]),
            lat(&r["settle_ms"]),
            lat(&r["receive_ms"]),
        )?;
    }
    Ok(())
}
