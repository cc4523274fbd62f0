//! `skiff bench rebalance`: how long consumer-group hand-overs leave
//! partitions unread.
//!
//! One producer writes `--rate` messages per second (default 10,000),
//! spread evenly over the topic's partitions, for the whole run. Group
//! members (each a client `Consumer` on its own connection) start at one;
//! every membership change adds a member (up to `--members-max`) or closes
//! one cleanly (down to one), `--changes` times, each once the group has
//! settled (no partition on its way to a new owner, then
//! [`SETTLE_READS`] more).
//!
//! Measured, from the records the members read (time taken when `next()`
//! returns them):
//! - per hand-over: for every partition whose reader changes after a
//!   membership change, the time from that change (a member started, or
//!   asked to close) to the first record read by its new reader, or from
//!   that record's acknowledgement if it came later (a partition the
//!   producer had nothing new for cannot be read sooner);
//! - the longest time any partition went unread while it had records to
//!   read: the longest a record waited from its acknowledgement to the
//!   producer (it is visible to consumers from then) to its read, overall
//!   and among the first reads by a new reader (the hand-overs' share).
//!   Gaps in production (a stalled producer) are not counted as unread.
//! - after the producer stops and the members drained the topic: records
//!   never read (lost) and records read more than once (duplicates; clean
//!   hand-overs commit before releasing, so none are expected).
//!
//! `--no-push` makes the members learn of changes at their heartbeats
//! (the client's behaviour before Heartbeat v1), for a before/after
//! comparison on one build. Use a fresh `--topic` and group: records
//! stored before the run are skipped by offset.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use skiff_client::protocol::messages::{ListOffsetsRequest, OffsetQuery};
use skiff_client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, GroupConfig, Producer, ProducerConfig,
    ProducerRecord, StartFrom,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::args::{BenchArgs, BenchProtocol};
use crate::output;

/// Offered load when `--rate` is not given, in messages per second.
const RATE_DEFAULT: u64 = 10_000;
/// The producer's pacing tick: it sends a tick's worth of messages at once.
const PACING_TICK: Duration = Duration::from_millis(1);
/// Bytes of every message value.
const VALUE_BYTES: usize = 16;
/// Fetch long-poll of the members, in milliseconds.
const MEMBER_FETCH_WAIT_MS: u32 = 100;
/// How long the group may take to settle after a change before the bench
/// gives up: a `--no-push` hand-over needs two heartbeat intervals (3 s by
/// default) at most; a crashed member's session timeout is not waited for.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After the group settled, how long members keep reading before the next
/// change, so every moved partition has been read by its new owner.
const SETTLE_READS: Duration = Duration::from_millis(500);
/// How often the group's state is polled while settling.
const SETTLE_POLL: Duration = Duration::from_millis(20);
/// How long the members may take to read everything once the producer
/// stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Most offsets tracked per partition for the lost/duplicate check:
/// 2^26 reads is more than an hour at 10,000 msg/s on one partition.
const TRACKED_OFFSETS_MAX: u64 = 1 << 26;
/// Largest hand-over the histogram holds: 10 min, in microseconds.
const HANDOVER_US_MAX: u64 = 600_000_000;

/// One partition, as the members read it.
#[derive(Debug, Default)]
struct PartitionReads {
    /// Member that read it last.
    reader: Option<usize>,
    /// The longest a record waited from its acknowledgement to its read.
    longest_wait: Duration,
    /// The same, among records read first by a new reader.
    longest_handover_wait: Duration,
    /// Reads per offset above the start offset (lost: 0, duplicate: > 1).
    reads: Vec<u8>,
    /// When each offset above the start offset was acknowledged.
    acked: Vec<Option<Instant>>,
    /// First offset produced by this run.
    start: u64,
    /// Offsets read beyond [`TRACKED_OFFSETS_MAX`].
    untracked: u64,
    /// A new reader took over and no read of a record with a known
    /// acknowledgement time has been charged to the change yet.
    moving: bool,
}

/// A membership change and what it moved.
#[derive(Debug)]
struct Change {
    kind: &'static str,
    members_after: usize,
    at: Instant,
    /// Partition -> time to the first read by its new reader.
    moved: BTreeMap<u32, Duration>,
}

/// What the members report, under one lock (reads are cheap updates).
#[derive(Debug, Default)]
struct Tracker {
    partitions: Vec<PartitionReads>,
    changes: Vec<Change>,
    /// While set, gaps count toward the longest unread time.
    producing: bool,
}

impl Tracker {
    fn acked(&mut self, partition: u32, offset: u64, now: Instant) {
        let Some(p) = self.partitions.get_mut(partition as usize) else {
            return;
        };
        let Some(i) = offset
            .checked_sub(p.start)
            .filter(|i| *i < TRACKED_OFFSETS_MAX)
        else {
            return;
        };
        let i = i as usize;
        if p.acked.len() <= i {
            p.acked.resize(i + 1, None);
        }
        p.acked[i] = Some(now);
    }

    fn read(&mut self, member: usize, partition: u32, offset: u64, now: Instant) {
        let producing = self.producing;
        let Some(p) = self.partitions.get_mut(partition as usize) else {
            return;
        };
        if offset < p.start {
            return;
        }
        let moved = p.reader.is_some_and(|r| r != member);
        let i = offset - p.start;
        let acked = p.acked.get(i as usize).copied().flatten();
        if let (true, Some(acked)) = (producing, acked) {
            let wait = now.saturating_duration_since(acked);
            p.longest_wait = p.longest_wait.max(wait);
            if moved {
                p.longest_handover_wait = p.longest_handover_wait.max(wait);
            }
        }
        p.reader = Some(member);
        if i < TRACKED_OFFSETS_MAX {
            let i = i as usize;
            if p.reads.len() <= i {
                p.reads.resize(i + 1, 0);
            }
            p.reads[i] = p.reads[i].saturating_add(1);
        } else {
            p.untracked += 1;
        }
        p.moving |= moved;
        // Charged at the new reader's first read of a record whose
        // acknowledgement the producer has seen (one it has not is brand
        // new: its wait would be unknown). A record acknowledged after the
        // change could not have been read before: time from whichever
        // came last.
        if let (true, Some(acked), Some(change)) = (p.moving, acked, self.changes.last_mut()) {
            p.moving = false;
            let from = acked.max(change.at);
            change
                .moved
                .entry(partition)
                .or_insert_with(|| now.saturating_duration_since(from));
        }
    }
}

/// A running member: its task and the switch that closes it.
struct Member {
    close: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

/// Resolves once `switch` is on (or its sender is gone).
async fn switched_on(switch: &mut watch::Receiver<bool>) {
    let _ = switch.wait_for(|on| *on).await;
}

/// Runs `skiff bench rebalance` (dispatched from `skiff bench`).
pub async fn bench(config: ClientConfig, args: BenchArgs) -> Result<()> {
    let rate = args.rate.unwrap_or(RATE_DEFAULT);
    if rate == 0 {
        bail!("--rate must be at least 1");
    }
    if args.protocol != BenchProtocol::Native || args.metrics.is_some() {
        bail!(
            "bench rebalance measures skiff's own groups: --protocol kafka and --metrics do not apply"
        );
    }
    let config = config.client_id("skiff-bench-rebalance");
    let partitions = super::bench::ensure_topic(&config, &args.topic, args.partitions).await?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("bench-rebalance-{}", std::process::id()));
    let client = Client::connect(config.clone()).await?;
    let mut tracker = Tracker::default();
    for p in 0..partitions {
        let start = log_end(&client, &args.topic, p).await?;
        tracker.partitions.push(PartitionReads {
            start,
            ..PartitionReads::default()
        });
    }
    let tracker = Arc::new(Mutex::new(tracker));
    let push = !args.no_push;

    let mut members: Vec<Member> = Vec::new();
    let mut next_id = 0;
    let spawn = |id: usize| {
        let (config, topic, group, tracker) = (
            config.clone(),
            args.topic.clone(),
            group.clone(),
            Arc::clone(&tracker),
        );
        let (close, closed) = watch::channel(false);
        let task = tokio::spawn(member(config, topic, group, push, id, tracker, closed));
        Member { close, task }
    };
    members.push(spawn(next_id));
    next_id += 1;
    let admin = Admin::new(client.clone());
    settle(&admin, &group, 1).await?;

    let (stop, stopped) = watch::channel(false);
    lock(&tracker).producing = true;
    let producer = tokio::spawn(produce(
        client.clone(),
        args.topic.clone(),
        partitions,
        rate,
        Arc::clone(&tracker),
        stopped,
    ));
    tokio::time::sleep(SETTLE_READS).await;

    let mut growing = true;
    for _ in 0..args.changes {
        if members.len() as u32 >= args.members_max {
            growing = false;
        } else if members.len() == 1 {
            growing = true;
        }
        let kind = if growing { "join" } else { "leave" };
        let members_after = if growing {
            members.len() + 1
        } else {
            members.len() - 1
        };
        lock(&tracker).changes.push(Change {
            kind,
            members_after,
            at: Instant::now(),
            moved: BTreeMap::new(),
        });
        if growing {
            members.push(spawn(next_id));
            next_id += 1;
        } else {
            let gone = members.remove(0);
            gone.close.send_replace(true);
            gone.task.await.context("member task")??;
        }
        settle(&admin, &group, members_after).await?;
        tokio::time::sleep(SETTLE_READS).await;
        if producer.is_finished() {
            break;
        }
    }

    stop.send_replace(true);
    let produced = producer.await.context("producer task")??;
    lock(&tracker).producing = false;
    let mut ends = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        ends.push(log_end(&client, &args.topic, p).await?);
    }
    drain(&tracker, &ends).await;
    for m in members {
        m.close.send_replace(true);
        m.task.await.context("member task")??;
    }

    let summary = summarize(&lock(&tracker), &ends, produced, rate, push, partitions);
    let mut out = output::stdout();
    if args.json {
        writeln!(out, "{summary}")?;
    } else {
        print_human(&mut out, &summary)?;
    }
    out.finish()
}

fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|e| e.into_inner())
}

async fn log_end(client: &Client, topic: &str, partition: u32) -> Result<u64> {
    let resp = client
        .send(ListOffsetsRequest {
            topic: topic.to_owned(),
            partition,
            query: OffsetQuery::Latest,
        })
        .await
        .with_context(|| format!("listing the end offset of {topic}/{partition}"))?;
    Ok(resp.offset)
}

/// Waits until the group has `members` members and no partition is on its
/// way to a new owner.
async fn settle(admin: &Admin, group: &str, members: usize) -> Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        if let Ok(d) = admin.describe_group(group).await {
            let settled = d.members.len() == members
                && d.state == skiff_client::protocol::messages::GroupState::Stable
                && d.partitions.iter().all(|p| p.waiting_ms.is_none());
            if settled {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "group {group:?} did not settle with {members} members within {SETTLE_TIMEOUT:?}"
            );
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Waits until every partition was read up to `ends` (bounded).
async fn drain(tracker: &Mutex<Tracker>, ends: &[u64]) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < deadline {
        let done = {
            let t = lock(tracker);
            t.partitions
                .iter()
                .zip(ends)
                .all(|(p, end)| p.start + p.reads.len() as u64 >= *end)
        };
        if done {
            return;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// One group member: reads and reports every record until closed, then
/// closes its consumer (commit, leave).
async fn member(
    config: ClientConfig,
    topic: String,
    group: String,
    push: bool,
    id: usize,
    tracker: Arc<Mutex<Tracker>>,
    mut close: watch::Receiver<bool>,
) -> Result<()> {
    let client = Client::connect(config.client_id(format!("bench-member-{id}"))).await?;
    let group_config = GroupConfig::new(group, [topic])
        .reset(StartFrom::Earliest)
        .push_assignments(push)
        .consumer(ConsumerConfig::default().max_wait_ms(MEMBER_FETCH_WAIT_MS));
    let mut consumer = Consumer::with_group(client, group_config).await?;
    loop {
        let record = tokio::select! {
            () = switched_on(&mut close) => break,
            r = consumer.next() => r,
        };
        match record {
            Some(Ok(r)) => lock(&tracker).read(id, r.partition, r.offset, Instant::now()),
            Some(Err(e)) => eprintln!("warning: member {id}: {e}"),
            None => break,
        }
    }
    consumer.close().await?;
    Ok(())
}

/// Produces `rate` messages per second round-robin over the partitions
/// until `stop`, telling `tracker` when each was acknowledged; returns how
/// many were.
async fn produce(
    client: Client,
    topic: String,
    partitions: u32,
    rate: u64,
    tracker: Arc<Mutex<Tracker>>,
    mut stop: watch::Receiver<bool>,
) -> Result<u64> {
    let producer = Producer::new(client, ProducerConfig::default().linger_ms(1));
    let value = Bytes::from(vec![b'r'; VALUE_BYTES]);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(PACING_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent: u64 = 0;
    let mut acked: u64 = 0;
    let mut pending = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = switched_on(&mut stop) => break,
            Some(ack) = pending.next() => {
                let ack: skiff_client::Ack = ack?;
                lock(&tracker).acked(ack.partition, ack.offset, Instant::now());
                acked += 1;
            }
            _ = ticker.tick() => {
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                while sent < due {
                    let record = ProducerRecord::new(topic.as_str(), value.clone())
                        .partition((sent % u64::from(partitions)) as u32);
                    pending.push(producer.send(record));
                    sent += 1;
                }
            }
        }
    }
    while let Some(ack) = pending.next().await {
        ack?;
        acked += 1;
    }
    producer.flush().await?;
    Ok(acked)
}

fn summarize(
    t: &Tracker,
    ends: &[u64],
    produced: u64,
    rate: u64,
    push: bool,
    partitions: u32,
) -> Value {
    let mut handovers =
        Histogram::<u64>::new_with_bounds(1, HANDOVER_US_MAX, 3).expect("static bounds are valid");
    let mut per_change = Vec::new();
    for c in &t.changes {
        for d in c.moved.values() {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            handovers.saturating_record(us.clamp(1, HANDOVER_US_MAX));
        }
        per_change.push(json!({
            "change": c.kind,
            "members_after": c.members_after,
            "partitions_moved": c.moved.len(),
            "longest_handover_ms": c.moved.values().max().map(ms),
        }));
    }
    let (mut lost, mut duplicates) = (0u64, 0u64);
    for (p, end) in t.partitions.iter().zip(ends) {
        let tracked = end.saturating_sub(p.start).min(TRACKED_OFFSETS_MAX) as usize;
        for i in 0..tracked {
            match p.reads.get(i).copied().unwrap_or(0) {
                0 => lost += 1,
                n => duplicates += u64::from(n - 1),
            }
        }
    }
    let longest_wait = t
        .partitions
        .iter()
        .map(|p| p.longest_wait)
        .max()
        .unwrap_or_default();
    let longest_handover_wait = t
        .partitions
        .iter()
        .map(|p| p.longest_handover_wait)
        .max()
        .unwrap_or_default();
    let quantile =
        |q: f64| (!handovers.is_empty()).then(|| handovers.value_at_quantile(q) as f64 / 1000.0);
    json!({
        "mode": "rebalance",
        "push": push,
        "partitions": partitions,
        "rate_msgs_per_s": rate,
        "produced": produced,
        "changes": per_change,
        "handovers": handovers.len(),
        "handover_ms": {
            "p50": quantile(0.5),
            "p90": quantile(0.9),
            "max": quantile(1.0),
        },
        "longest_unread_ms": ms(&longest_wait),
        "longest_unread_at_handover_ms": ms(&longest_handover_wait),
        "lost": lost,
        "duplicates": duplicates,
    })
}

fn ms(d: &Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn print_human(out: &mut impl Write, s: &Value) -> std::io::Result<()> {
    writeln!(
        out,
        "rebalance bench: {} partitions, {} msg/s, push {}",
        s["partitions"], s["rate_msgs_per_s"], s["push"]
    )?;
    writeln!(
        out,
        "{:<8} {:>8} {:>8} {:>14}",
        "CHANGE", "MEMBERS", "MOVED", "LONGEST-MS"
    )?;
    for c in s["changes"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<8} {:>8} {:>8} {:>14}",
            c["change"].as_str().unwrap_or("-"),
            c["members_after"].to_string(),
            c["partitions_moved"].to_string(),
            c["longest_handover_ms"].to_string()
        )?;
    }
    writeln!(
        out,
        "hand-overs: {}  median {} ms  p90 {} ms  max {} ms",
        s["handovers"], s["handover_ms"]["p50"], s["handover_ms"]["p90"], s["handover_ms"]["max"]
    )?;
    writeln!(
        out,
        "longest unread: {} ms (at a hand-over: {} ms)  produced {}  lost {}  duplicates {}",
        s["longest_unread_ms"],
        s["longest_unread_at_handover_ms"],
        s["produced"],
        s["lost"],
        s["duplicates"]
    )
}
