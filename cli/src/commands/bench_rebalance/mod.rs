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
//!   Gaps in production (a stalled producer) are not counted as unread;
//!   the longest gap between two acknowledgements of a partition is
//!   reported on its own.
//! - after the producer stops and the members drained the topic: records
//!   never read (lost) and records read more than once (duplicates; clean
//!   hand-overs commit before releasing, so none are expected).
//!
//! `--crashes N` then runs N crash rounds: a member joins through its own
//! [`link::Link`] (with `--crash-session-timeout-ms`) and, once the group
//! settled, the link is cut as a SIGKILL would close the process's
//! sockets: no leave, no commit, no heartbeat. The hand-over is measured
//! from the cut to the first read by each partition's new reader, and
//! reported beside the session timeout the broker must wait out first.
//! Records the crashed member read but had not committed are read again
//! (duplicates expected only there); none may be lost. The longest-unread
//! figures cover joins and clean leaves only: from a crash until the group
//! settled again, gaps are the session timeout by design.
//!
//! `--no-push` makes the members learn of changes at their heartbeats
//! (the client's behaviour before Heartbeat v1), for a before/after
//! comparison on one build. Use a fresh `--topic` and group: records
//! stored before the run are skipped by offset.

mod link;

use std::collections::{BTreeMap, BTreeSet};
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
use link::Link;

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
    /// Reads of each offset above the start offset (lost: none,
    /// duplicate: more than one).
    reads: Vec<OffsetReads>,
    /// When each offset above the start offset was acknowledged.
    acked: Vec<Option<Instant>>,
    /// First offset produced by this run.
    start: u64,
    /// Offsets read beyond [`TRACKED_OFFSETS_MAX`].
    untracked: u64,
    /// A new reader took over and no read of a record with a known
    /// acknowledgement time has been charged to the change yet.
    moving: bool,
    /// When the producer last had a record of this partition acknowledged.
    last_ack: Option<Instant>,
    /// The longest time between two acknowledgements (a producer stall
    /// shows here, not as unread time).
    longest_ack_gap: Duration,
}

/// How often one offset was read, and by whom first.
#[derive(Debug, Default, Clone, Copy)]
struct OffsetReads {
    times: u8,
    first_reader: usize,
}

/// What a membership change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    Join,
    Leave,
    Crash,
}

impl ChangeKind {
    fn name(self) -> &'static str {
        match self {
            ChangeKind::Join => "join",
            ChangeKind::Leave => "leave",
            ChangeKind::Crash => "crash",
        }
    }
}

/// A membership change and what it moved.
#[derive(Debug)]
struct Change {
    kind: ChangeKind,
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
    /// While set, gaps count toward the longest unread time (off from a
    /// crash until the group settled again).
    producing: bool,
    /// Members whose links were cut.
    crashed: BTreeSet<usize>,
}

impl Tracker {
    fn acked(&mut self, partition: u32, offset: u64, now: Instant) {
        let Some(p) = self.partitions.get_mut(partition as usize) else {
            return;
        };
        if let Some(last) = p.last_ack.replace(now) {
            p.longest_ack_gap = p.longest_ack_gap.max(now.saturating_duration_since(last));
        }
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
                p.reads.resize(i + 1, OffsetReads::default());
            }
            let reads = &mut p.reads[i];
            if reads.times == 0 {
                reads.first_reader = member;
            }
            reads.times = reads.times.saturating_add(1);
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

/// A running member: its task, the switch that closes it, and for a
/// member that will crash, its link to the broker.
struct Member {
    id: usize,
    close: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
    link: Option<Link>,
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
    let spawn = |id: usize, link: Option<Link>| {
        let mut config = config.clone();
        let mut session_timeout_ms = None;
        if let Some(link) = &link {
            if config.tls_ca_file.is_some() && config.tls_server_name.is_none() {
                config.tls_server_name = Some(host_of(&config.broker).to_owned());
            }
            config.broker = link.addr().to_string();
            session_timeout_ms = Some(args.crash_session_timeout_ms);
        }
        let (topic, group, tracker) = (args.topic.clone(), group.clone(), Arc::clone(&tracker));
        let (close, closed) = watch::channel(false);
        let task = tokio::spawn(member(
            MemberSetup {
                config,
                topic,
                group,
                push,
                session_timeout_ms,
                id,
            },
            tracker,
            closed,
        ));
        Member {
            id,
            close,
            task,
            link,
        }
    };
    members.push(spawn(next_id, None));
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

    // Joins and clean leaves, then crash rounds (each a join through a
    // link, then the cut), with room for the crashing member to own a
    // partition of its own.
    let mut plan = Vec::new();
    let mut count = 1usize;
    let mut growing = true;
    for _ in 0..args.changes {
        if count as u32 >= args.members_max {
            growing = false;
        } else if count == 1 {
            growing = true;
        }
        let kind = if growing {
            ChangeKind::Join
        } else {
            ChangeKind::Leave
        };
        count = if growing { count + 1 } else { count - 1 };
        plan.push(kind);
    }
    if args.crashes > 0 {
        let room = (args.members_max as usize).min(partitions as usize).max(2);
        while count + 1 > room {
            plan.push(ChangeKind::Leave);
            count -= 1;
        }
        for _ in 0..args.crashes {
            plan.extend([ChangeKind::Join, ChangeKind::Crash]);
        }
    }

    for (i, kind) in plan.iter().copied().enumerate() {
        let members_after = match kind {
            ChangeKind::Join => members.len() + 1,
            ChangeKind::Leave | ChangeKind::Crash => members.len() - 1,
        };
        let at = Instant::now();
        {
            let mut t = lock(&tracker);
            t.changes.push(Change {
                kind,
                members_after,
                at,
                moved: BTreeMap::new(),
            });
            if kind == ChangeKind::Crash {
                t.producing = false;
            }
        }
        match kind {
            ChangeKind::Join => {
                let crashing = plan.get(i + 1) == Some(&ChangeKind::Crash);
                let link = match crashing {
                    true => Some(Link::open(&config.broker).await?),
                    false => None,
                };
                members.push(spawn(next_id, link));
                next_id += 1;
            }
            ChangeKind::Leave => {
                let gone = members.remove(0);
                gone.close.send_replace(true);
                gone.task.await.context("member task")??;
            }
            ChangeKind::Crash => {
                let gone = members.pop().expect("a crash follows its member's join");
                if gone.task.is_finished() {
                    // It failed before it could crash: say why.
                    gone.task.await.context("member task")??;
                    bail!("member {} ended before its crash", gone.id);
                }
                lock(&tracker).crashed.insert(gone.id);
                // Cut first, so nothing the dying member does reaches the
                // broker (its consumer's drop would send a leave).
                if let Some(link) = gone.link {
                    link.cut().await;
                }
                gone.task.abort();
            }
        }
        settle(&admin, &group, members_after).await?;
        tokio::time::sleep(SETTLE_READS).await;
        lock(&tracker).producing = true;
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

    let setup = SummarySetup {
        push,
        partitions,
        rate,
        crash_session_timeout_ms: args.crash_session_timeout_ms,
    };
    let summary = summarize(&lock(&tracker), &ends, produced, &setup);
    output::summary(args.json, &summary, print_human)
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

/// The host part of a `host:port` broker address (for the TLS name a
/// member behind a link must still check).
fn host_of(broker: &str) -> &str {
    match broker.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => broker,
    }
}

/// Who a member is and how it joins.
struct MemberSetup {
    config: ClientConfig,
    topic: String,
    group: String,
    push: bool,
    /// Asked of the broker (None: its default).
    session_timeout_ms: Option<u32>,
    id: usize,
}

/// One group member: reads and reports every record until closed, then
/// closes its consumer (commit, leave).
async fn member(
    setup: MemberSetup,
    tracker: Arc<Mutex<Tracker>>,
    mut close: watch::Receiver<bool>,
) -> Result<()> {
    let MemberSetup {
        config,
        topic,
        group,
        push,
        session_timeout_ms,
        id,
    } = setup;
    let client = Client::connect(config.client_id(format!("bench-member-{id}"))).await?;
    let mut group_config = GroupConfig::new(group, [topic])
        .reset(StartFrom::Earliest)
        .push_assignments(push)
        .consumer(ConsumerConfig::default().max_wait_ms(MEMBER_FETCH_WAIT_MS));
    if let Some(ms) = session_timeout_ms {
        group_config = group_config.session_timeout_ms(ms);
    }
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

fn summarize(t: &Tracker, ends: &[u64], produced: u64, setup: &SummarySetup) -> Value {
    let mut handovers =
        Histogram::<u64>::new_with_bounds(1, HANDOVER_US_MAX, 3).expect("static bounds are valid");
    let mut per_change = Vec::new();
    let mut crash_longest: Option<Duration> = None;
    for c in &t.changes {
        let longest = c.moved.values().max().copied();
        if c.kind == ChangeKind::Crash {
            if let Some(d) = longest {
                crash_longest = Some(crash_longest.map_or(d, |l| l.max(d)));
            }
        } else {
            for d in c.moved.values() {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                handovers.saturating_record(us.clamp(1, HANDOVER_US_MAX));
            }
        }
        per_change.push(json!({
            "change": c.kind.name(),
            "members_after": c.members_after,
            "partitions_moved": c.moved.len(),
            "longest_handover_ms": longest.as_ref().map(ms),
        }));
    }
    let (mut lost, mut duplicates, mut duplicates_after_crash) = (0u64, 0u64, 0u64);
    for (p, end) in t.partitions.iter().zip(ends) {
        let tracked = end.saturating_sub(p.start).min(TRACKED_OFFSETS_MAX) as usize;
        for i in 0..tracked {
            let reads = p.reads.get(i).copied().unwrap_or_default();
            match reads.times {
                0 => lost += 1,
                n if t.crashed.contains(&reads.first_reader) => {
                    duplicates_after_crash += u64::from(n - 1);
                }
                n => duplicates += u64::from(n - 1),
            }
        }
    }
    let longest =
        |of: fn(&PartitionReads) -> Duration| t.partitions.iter().map(of).max().unwrap_or_default();
    let longest_wait = longest(|p| p.longest_wait);
    let longest_handover_wait = longest(|p| p.longest_handover_wait);
    let longest_ack_gap = longest(|p| p.longest_ack_gap);
    let quantile =
        |q: f64| (!handovers.is_empty()).then(|| handovers.value_at_quantile(q) as f64 / 1000.0);
    json!({
        "mode": "rebalance",
        "push": setup.push,
        "partitions": setup.partitions,
        "rate_msgs_per_s": setup.rate,
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
        "crashes": t.crashed.len(),
        "crash_session_timeout_ms": setup.crash_session_timeout_ms,
        "crash_handover_max_ms": crash_longest.as_ref().map(ms),
        "crash_handover_over_session_timeout_ms": crash_longest
            .map(|d| ((ms(&d) - f64::from(setup.crash_session_timeout_ms)) * 1e3).round() / 1e3),
        "producer_longest_ack_gap_ms": ms(&longest_ack_gap),
        "lost": lost,
        "duplicates": duplicates,
        "duplicates_after_crash": duplicates_after_crash,
    })
}

/// What the summary reports about the run's setup.
struct SummarySetup {
    push: bool,
    partitions: u32,
    rate: u64,
    crash_session_timeout_ms: u32,
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
        "longest unread (joins, clean leaves): {} ms (at a hand-over: {} ms)",
        s["longest_unread_ms"], s["longest_unread_at_handover_ms"],
    )?;
    if s["crashes"].as_u64().unwrap_or(0) > 0 {
        writeln!(
            out,
            "crashes: {}  slowest hand-over {} ms  session timeout {} ms  over it by {} ms",
            s["crashes"],
            s["crash_handover_max_ms"],
            s["crash_session_timeout_ms"],
            s["crash_handover_over_session_timeout_ms"]
        )?;
    }
    writeln!(
        out,
        "produced {} (longest gap between acks of a partition: {} ms)  lost {}  duplicates {} (after crashes: {})",
        s["produced"],
        s["producer_longest_ack_gap_ms"],
        s["lost"],
        s["duplicates"],
        s["duplicates_after_crash"]
    )
}
