//! `nats-e2e URL [RATE DURATION_S SIZE]`: NATS JetStream under the load of
//! `skiff bench e2e --rate RATE --duration DURATION_S --size SIZE` with one
//! producer and one consumer, for benches/latency.sh.
//!
//! The stream is file-backed (JetStream's durable storage; its fsync is
//! the server's `sync_interval`, by default not per message). One producer
//! thread paces messages from their *intended* send times as skiff's bench
//! does (std::thread::sleep, each wake-up publishes every message due,
//! in one hop into the runtime) and
//! stamps each with its intended time; publish acks are awaited
//! asynchronously, as durable JetStream publishing works. An ordered push
//! consumer receives them; latency per message is intended send to
//! receive. Prints one JSON object with the keys of `skiff bench e2e
//! --json` where they mean the same (`messages`, `latency_ms`,
//! `produce_latency_ms`, `send_delay_ms`, `msgs_per_s`, `elapsed_s`).
//!
//! Invariants: the consumer fails, naming the counts, when it goes
//! `RECEIVE_GRACE` without a message while acknowledged ones are
//! missing; at most `ACKS_IN_FLIGHT_MAX` publish acks are outstanding.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const STREAM: &str = "SKIFF_E2E";
const SUBJECT: &str = "skiff-e2e.msgs";
/// Bytes of the intended-send stamp at the start of every payload.
const STAMP_BYTES: usize = 8;
/// Shortest pacing sleep, as skiff's bench (`PACING_TICK`).
const PACING_TICK: Duration = Duration::from_micros(100);
/// Largest latency the histograms hold: 60 s, in microseconds.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Longest the consumer may go without a message while some are due.
const RECEIVE_GRACE: Duration = Duration::from_secs(10);
/// How often a waiting consumer looks whether the run is over.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Publish acks outstanding at most (JetStream's async publishing window).
const ACKS_IN_FLIGHT_MAX: usize = 65_536;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.lock()
        .unwrap_or_else(|e| e.into_inner())
        .saturating_record(us.clamp(1, LATENCY_US_MAX));
}

fn percentiles(h: &Mutex<Histogram<u64>>) -> Value {
    let h = h.lock().unwrap_or_else(|e| e.into_inner());
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

fn arg(n: usize, default: f64) -> Result<f64> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(a) => a
            .parse()
            .with_context(|| format!("argument {n}: {a:?} is not a number")),
    }
}

struct Shared {
    anchor: Instant,
    received: AtomicU64,
    acked: AtomicU64,
    failed: Mutex<Option<String>>,
    producer_done: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    ack_latency: Mutex<Histogram<u64>>,
    send_delay: Mutex<Histogram<u64>>,
}

fn main() -> Result<()> {
    let usage = "usage: nats-e2e URL [RATE DURATION_S SIZE]";
    let url = std::env::args().nth(1).context(usage)?;
    let rate = arg(2, 50_000.0)?;
    let duration = Duration::from_secs_f64(arg(3, 6.0)?);
    let size = arg(4, 100.0)? as usize;
    if rate < 1.0 || size < STAMP_BYTES {
        bail!("RATE must be at least 1 and SIZE at least {STAMP_BYTES} bytes");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(run(url, rate, duration, size))?;
    println!("{summary}");
    Ok(())
}

async fn run(url: String, rate: f64, duration: Duration, size: usize) -> Result<Value> {
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let js = jetstream::new(client.clone());
    js.delete_stream(STREAM).await.ok();
    let stream = js
        .create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECT.into()],
            storage: stream::StorageType::File,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating stream: {e}"))?;
    let mut messages = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating consumer: {e}"))?
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("subscribing: {e}"))?;
    let shared = Arc::new(Shared {
        anchor: Instant::now(),
        received: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        failed: Mutex::new(None),
        producer_done: AtomicBool::new(false),
        latency: Mutex::new(new_histogram()),
        ack_latency: Mutex::new(new_histogram()),
        send_delay: Mutex::new(new_histogram()),
    });

    let consumer_shared = Arc::clone(&shared);
    let consumer = tokio::spawn(async move {
        let s = consumer_shared;
        let mut last_progress = Instant::now();
        loop {
            if s.producer_done.load(Ordering::Acquire)
                && s.received.load(Ordering::Relaxed) >= s.acked.load(Ordering::Relaxed)
            {
                return Ok(());
            }
            let msg = match tokio::time::timeout(IDLE_POLL, messages.next()).await {
                Ok(Some(m)) => m.map_err(|e| anyhow::anyhow!("message: {e}"))?,
                Ok(None) => bail!("NATS ended the subscription"),
                Err(_) if last_progress.elapsed() < RECEIVE_GRACE => continue,
                Err(_) => bail!(
                    "no message for {RECEIVE_GRACE:?}: {} received of {} acknowledged",
                    s.received.load(Ordering::Relaxed),
                    s.acked.load(Ordering::Relaxed)
                ),
            };
            last_progress = Instant::now();
            let now_ns = s.anchor.elapsed().as_nanos() as u64;
            if msg.payload.len() >= STAMP_BYTES {
                let mut stamp = [0u8; STAMP_BYTES];
                stamp.copy_from_slice(&msg.payload[..STAMP_BYTES]);
                let sent_ns = u64::from_le_bytes(stamp);
                record(
                    &s.latency,
                    Duration::from_nanos(now_ns.saturating_sub(sent_ns)),
                );
            }
            s.received.fetch_add(1, Ordering::Relaxed);
        }
    });

    let handle = tokio::runtime::Handle::current();
    let producer_shared = Arc::clone(&shared);
    let producer_js = js.clone();
    let started = Instant::now();
    let producer = std::thread::spawn(move || -> Result<u64> {
        let s = producer_shared;
        let window = Arc::new(Semaphore::new(ACKS_IN_FLIGHT_MAX));
        let filler = vec![0x5a_u8; size - STAMP_BYTES];
        let mut sent: u64 = 0;
        let mut acks = Vec::new();
        while started.elapsed() < duration {
            let now = Instant::now();
            let due = ((now - started).as_secs_f64() * rate) as u64;
            if due <= sent {
                let next = started + Duration::from_secs_f64((sent + 1) as f64 / rate);
                std::thread::sleep(next.saturating_duration_since(now).max(PACING_TICK));
                continue;
            }
            // One hop into the runtime per wake-up, for every message due.
            handle.block_on(async {
                for k in sent..due {
                    let intended = started + Duration::from_secs_f64(k as f64 / rate);
                    let stamp = (intended - s.anchor).as_nanos() as u64;
                    let mut payload = Vec::with_capacity(size);
                    payload.extend_from_slice(&stamp.to_le_bytes());
                    payload.extend_from_slice(&filler);
                    let permit = Arc::clone(&window)
                        .acquire_owned()
                        .await
                        .context("ack window closed")?;
                    record(&s.send_delay, intended.elapsed());
                    let ack = producer_js
                        .publish(SUBJECT, Bytes::from(payload))
                        .await
                        .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                    let s2 = Arc::clone(&s);
                    acks.push(tokio::spawn(async move {
                        match ack.await {
                            Ok(_) => {
                                record(&s2.ack_latency, intended.elapsed());
                                s2.acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                *s2.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(e.to_string());
                            }
                        }
                        drop(permit);
                    }));
                }
                anyhow::Ok(())
            })?;
            sent = due;
            if acks.len() > 4096 {
                acks.retain(|a| !a.is_finished());
            }
        }
        for a in acks {
            handle.block_on(a).context("ack task failed")?;
        }
        Ok(sent)
    });
    let sent = tokio::task::spawn_blocking(move || producer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    shared.producer_done.store(true, Ordering::Release);
    if let Some(e) = shared
        .failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        bail!("publish ack failed: {e}");
    }
    consumer.await??;
    let elapsed = started.elapsed();
    let received = shared.received.load(Ordering::Relaxed);
    js.delete_stream(STREAM).await.ok();
    Ok(json!({
        "mode": "e2e",
        "system": "nats-jetstream",
        "storage": "file",
        "rate": rate,
        "size": size,
        "messages": received,
        "sent": sent,
        "elapsed_s": elapsed.as_secs_f64(),
        "msgs_per_s": received as f64 / elapsed.as_secs_f64().max(1e-9),
        "latency_kind": "publish-to-receive, from intended send time",
        "latency_ms": percentiles(&shared.latency),
        "produce_latency_ms": percentiles(&shared.ack_latency),
        "send_delay_ms": percentiles(&shared.send_delay),
    }))
}
