//! Power-loss torture: a broker in-process (`--fsync always`) on a directory
//! watched by `skiff_broker::fsio::power`, under load from paced idempotent
//! producers (keyed records, a topic with tiny segments and size retention,
//! so rolls and retention deletions happen), a group consumer committing
//! every few tens of ms, and an admin task creating and deleting topics.
//! At random moments the power is cut: only what completed syncs made
//! durable is kept, each unsynced tail dropped, kept, cut anywhere or
//! replaced by garbage (seeded per cut), directory entries never fsynced
//! dropped; a new broker starts on that image and the load goes on.
//!
//! Checked after the last cut:
//! - every acknowledged message is in the log at its acked offset with its
//!   value, or below the log start (deleted by retention): lost must be 0;
//! - no message is stored twice, per key sequences only increase, offsets
//!   are contiguous, every record decodes (nothing torn served);
//! - every partition's committed offset is at least the last acknowledged
//!   commit;
//! - every topic whose creation was acknowledged (and not its deletion)
//!   exists, and no topic whose deletion was acknowledged is back.
//!
//! `SKIFF_TORTURE_CYCLES` (default 5) or `SKIFF_TORTURE_SECONDS` (cut until
//! that much time has passed) set the length; rates are paced, not left to
//! build speed, so debug and release runs do the same work per second.

mod power;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use power::{Rig, read_all};
use rand::{Rng, SeedableRng};
use skiff_broker::Durability;
use skiff_broker::fsio::power::Tail;
use skiff_client::{
    AutoCommit, Client, Consumer, ConsumerConfig, GroupConfig, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicConfig,
};
use skiff_protocol::messages::{FetchOffsetsRequest, TopicPartition};
use tokio::sync::Mutex;

const TOPIC: &str = "torture";
const PARTITIONS: u32 = 3;
const PRODUCERS: usize = 2;
const KEYS_PER_PRODUCER: usize = 6;
/// Tiny segments: a roll every few batches.
const SEGMENT_BYTES: u64 = 4096;
/// A few seconds of the paced load per partition: retention deletes
/// segments in every run longer than a few cycles.
const RETENTION_BYTES: u64 = 48 * 1024;
/// Messages per producer window and the pause after it: at most about
/// 2 x 20 / 20 ms = 2,000 messages/s, whatever the build.
const WINDOW_MAX: usize = 20;
const WINDOW_PAUSE: Duration = Duration::from_millis(20);
const GROUP: &str = "torture-group";
const COMMIT_EVERY: Duration = Duration::from_millis(30);
/// Bound on one group call (join, commit) so a member stuck on the old
/// broker is replaced.
const GROUP_CALL_MAX: Duration = Duration::from_secs(2);
const CHURN_PAUSE: Duration = Duration::from_millis(50);
/// Churn topics alive at a time: each restart opens them all, so their
/// number stays bounded however long the run.
const CHURN_LIVE: u64 = 10;
const CYCLES_DEFAULT: u64 = 5;
/// How long the load runs between two cuts, in ms.
const RUN_MS: std::ops::Range<u64> = 150..900;

#[derive(Default)]
struct Acked {
    /// (producer, key, seq) -> (partition, offset)
    at: HashMap<(usize, usize, u64), (u32, u64)>,
    failed: u64,
}

#[derive(Default)]
struct Commits {
    acked: u64,
    last: BTreeMap<u32, u64>,
}

#[derive(Default)]
struct Churn {
    created: BTreeSet<String>,
    /// Deletes sent, acknowledged or not: one cut short by a power cut may
    /// or may not have taken effect.
    delete_sent: BTreeSet<String>,
    deleted: BTreeSet<String>,
}

async fn produce(id: usize, rig_client: Client, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let producer = Producer::new(
        rig_client,
        ProducerConfig::default()
            .linger_ms(2)
            .retries_max(40)
            .retry_backoff_ms(50),
    );
    let mut seqs = [0u64; KEYS_PER_PRODUCER];
    let mut rng = rand::rngs::StdRng::from_entropy();
    while !stop.load(Ordering::Relaxed) {
        let mut window = Vec::new();
        for _ in 0..rng.gen_range(1..WINDOW_MAX) {
            let k = rng.gen_range(0..KEYS_PER_PRODUCER);
            let seq = seqs[k];
            seqs[k] += 1;
            let value = format!("{id}:{k}:{seq}:{}", "x".repeat(rng.gen_range(0..100)));
            let rec = ProducerRecord::new(TOPIC, value).key(format!("p{id}-k{k}"));
            window.push(((id, k, seq), producer.send(rec)));
        }
        for (msg, fut) in window {
            match fut.await {
                Ok(ack) => {
                    let prev = acked
                        .lock()
                        .await
                        .at
                        .insert(msg, (ack.partition, ack.offset));
                    assert!(prev.is_none(), "acked twice: {msg:?}");
                }
                Err(_) => acked.lock().await.failed += 1,
            }
        }
        tokio::time::sleep(WINDOW_PAUSE).await;
    }
}

/// Joins, reads, commits every `COMMIT_EVERY`; a new member after each cut.
async fn consume(
    client: Client,
    stop: Arc<AtomicBool>,
    commits: Arc<Mutex<Commits>>,
    cuts: Arc<AtomicU64>,
) {
    // Retention may overtake a member that rejoins after a cut: it jumps to
    // the log start and goes on committing (what it read is not checked).
    let config = GroupConfig::new(GROUP, [TOPIC])
        .auto_commit(AutoCommit::Manual)
        .consumer(
            ConsumerConfig::default()
                .max_wait_ms(20)
                .offset_reset(OffsetReset::Earliest),
        );
    while !stop.load(Ordering::Relaxed) {
        let join = Consumer::with_group(client.clone(), config.clone());
        let Ok(Ok(mut consumer)) = tokio::time::timeout(GROUP_CALL_MAX, join).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let cuts_at_join = cuts.load(Ordering::Relaxed);
        let mut last_commit = Instant::now();
        while !stop.load(Ordering::Relaxed) && cuts.load(Ordering::Relaxed) == cuts_at_join {
            // Errors (the broker is down, retention overtook the member)
            // only delay the member; commits are what is checked.
            let _ = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await;
            if last_commit.elapsed() < COMMIT_EVERY {
                continue;
            }
            last_commit = Instant::now();
            let positions: Vec<(u32, u64)> = consumer
                .assignment()
                .into_iter()
                .filter_map(|(t, p)| consumer.position(&t, p).map(|o| (p, o)))
                .collect();
            let ok = matches!(
                tokio::time::timeout(GROUP_CALL_MAX, consumer.commit()).await,
                Ok(Ok(()))
            );
            if !ok {
                break;
            }
            let mut c = commits.lock().await;
            let mut moved = false;
            for (p, o) in positions {
                let last = c.last.entry(p).or_insert(0);
                if o > *last {
                    *last = o;
                    moved = true;
                }
            }
            c.acked += u64::from(moved);
        }
    }
}

/// Creates `churn-N` topics and deletes `churn-(N - CHURN_LIVE)`,
/// recording what was acknowledged.
async fn churn(client: Client, stop: Arc<AtomicBool>, churn: Arc<Mutex<Churn>>) {
    let admin = client.admin();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("churn-{n}");
        let config = TopicConfig {
            partitions: 1,
            // Small segments keep the preallocated index files small.
            segment_bytes: Some(SEGMENT_BYTES),
            ..TopicConfig::default()
        };
        if admin.create_topic(&name, config).await.is_ok() {
            churn.lock().await.created.insert(name);
        }
        tokio::time::sleep(CHURN_PAUSE).await;
        let old = format!("churn-{}", n.saturating_sub(CHURN_LIVE));
        let created = churn.lock().await.created.contains(&old);
        if created {
            churn.lock().await.delete_sent.insert(old.clone());
        }
        if created && admin.delete_topic(&old).await.is_ok() {
            churn.lock().await.deleted.insert(old);
        }
        tokio::time::sleep(CHURN_PAUSE).await;
    }
}

fn length_from_env() -> (u64, Option<Duration>) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match var("SKIFF_TORTURE_SECONDS") {
        Some(s) => (u64::MAX, Some(Duration::from_secs(s))),
        None => (var("SKIFF_TORTURE_CYCLES").unwrap_or(CYCLES_DEFAULT), None),
    }
}

#[test]
fn power_loss_torture() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let began = Instant::now();
    let (cycles, duration) = length_from_env();
    let mut rig = Rig::start_tuned(Durability::Always, false, |c| {
        c.retention_check_interval_ms = 100;
    })
    .await;
    let client = || {
        Client::lazy(
            rig_config(&rig)
                .reconnect_backoff(20, 200, 50)
                .request_timeout_ms(5_000),
        )
    };
    client()
        .admin()
        .create_topic(
            TOPIC,
            TopicConfig {
                partitions: PARTITIONS,
                segment_bytes: Some(SEGMENT_BYTES),
                retention_bytes: Some(RETENTION_BYTES),
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create topic");

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let commits = Arc::new(Mutex::new(Commits::default()));
    let churned = Arc::new(Mutex::new(Churn::default()));
    let cuts = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<_> = (0..PRODUCERS)
        .map(|id| tokio::spawn(produce(id, client(), Arc::clone(&stop), Arc::clone(&acked))))
        .collect();
    tasks.push(tokio::spawn(consume(
        client(),
        Arc::clone(&stop),
        Arc::clone(&commits),
        Arc::clone(&cuts),
    )));
    tasks.push(tokio::spawn(churn(
        client(),
        Arc::clone(&stop),
        Arc::clone(&churned),
    )));

    let mut seeds = rand::rngs::StdRng::from_entropy();
    let mut cut_bytes = (0u64, 0u64, 0u64);
    let mut entries_lost = 0;
    let mut done = 0;
    while done < cycles && duration.is_none_or(|d| began.elapsed() < d) {
        tokio::time::sleep(Duration::from_millis(seeds.gen_range(RUN_MS))).await;
        let seed = seeds.r#gen();
        let report = rig.power_cut(Tail::Random(seed)).await;
        cut_bytes.0 += report.unsynced_kept;
        cut_bytes.1 += report.unsynced_lost;
        cut_bytes.2 += report.garbage_bytes;
        entries_lost += report.entries_lost;
        cuts.fetch_add(1, Ordering::Relaxed);
        done += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    // One last cut with everything quiet, then the check.
    rig.power_cut(Tail::Random(seeds.r#gen())).await;
    let client = rig.client().await;
    let log = read_all(&client, TOPIC).await;
    let desc = client
        .admin()
        .describe_topic(TOPIC)
        .await
        .expect("describe");
    let starts: Vec<u64> = desc.partitions.iter().map(|p| p.log_start_offset).collect();
    let committed = client
        .send(FetchOffsetsRequest {
            group: GROUP.into(),
            partitions: (0..PARTITIONS)
                .map(|p| TopicPartition::new(TOPIC, p))
                .collect(),
        })
        .await
        .expect("fetch offsets");
    let topics: BTreeSet<String> = client
        .admin()
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();

    let acked = acked.lock().await;
    let commits = commits.lock().await;
    let churned = churned.lock().await;
    let (mut lost, mut deleted) = (0u64, 0u64);
    for (msg, &(p, offset)) in &acked.at {
        match log.get(&(p, offset)) {
            Some(v) => {
                let s = std::str::from_utf8(v).expect("utf8");
                let got: Vec<&str> = s.splitn(4, ':').collect();
                let want = [msg.0.to_string(), msg.1.to_string(), msg.2.to_string()];
                assert_eq!(got[..3], want, "{p}/{offset} holds another message");
            }
            None if offset < starts[p as usize] => deleted += 1,
            None => {
                eprintln!("lost: {msg:?} at {p}/{offset}");
                lost += 1;
            }
        }
    }
    let mut duplicates = 0u64;
    let mut last_seq: HashMap<(String, String), u64> = HashMap::new();
    let mut stored = BTreeSet::new();
    for value in log.values() {
        let s = std::str::from_utf8(value).expect("utf8");
        let f: Vec<&str> = s.splitn(4, ':').collect();
        let seq: u64 = f[2].parse().expect("seq");
        if !stored.insert((f[0].to_owned(), f[1].to_owned(), seq)) {
            duplicates += 1;
        }
        let key = (f[0].to_owned(), f[1].to_owned());
        if let Some(&prev) = last_seq.get(&key) {
            assert!(seq > prev, "key {key:?}: {seq} after {prev}");
        }
        last_seq.insert(key, seq);
    }
    let mut commits_behind = 0;
    for c in &committed.offsets {
        let last = commits
            .last
            .get(&c.partition.partition)
            .copied()
            .unwrap_or(0);
        if c.offset.unwrap_or(0) < last {
            eprintln!(
                "partition {}: committed {:?} < acked {last}",
                c.partition.partition, c.offset
            );
            commits_behind += 1;
        }
    }
    let topics_lost: Vec<_> = churned
        .created
        .iter()
        .filter(|t| !churned.delete_sent.contains(*t) && !topics.contains(*t))
        .collect();
    let topics_back: Vec<_> = churned
        .deleted
        .iter()
        .filter(|t| topics.contains(*t))
        .collect();
    println!(
        "power torture: {done} cycles (power cut + restart), {} acknowledged, {} failed, lost {lost}, duplicates {duplicates}, deleted by retention {deleted}, log holds {}, log start {starts:?}, {:.1}s",
        acked.at.len(),
        acked.failed,
        log.len(),
        began.elapsed().as_secs_f64()
    );
    println!(
        "power torture cuts: unsynced bytes kept {}, lost {}, garbage {}, directory entries dropped {entries_lost}",
        cut_bytes.0, cut_bytes.1, cut_bytes.2
    );
    println!(
        "power torture group: {} commits acknowledged, last {:?}, behind {commits_behind}; topics: {} created, {} deleted, lost {}, back {}",
        commits.acked,
        commits.last,
        churned.created.len(),
        churned.deleted.len(),
        topics_lost.len(),
        topics_back.len()
    );
    assert_eq!(lost, 0, "acknowledged messages lost");
    assert_eq!(duplicates, 0, "messages stored twice");
    assert_eq!(
        commits_behind, 0,
        "committed offsets behind an acknowledged commit"
    );
    assert!(
        topics_lost.is_empty(),
        "acknowledged topics lost: {topics_lost:?}"
    );
    assert!(
        topics_back.is_empty(),
        "deleted topics back: {topics_back:?}"
    );
    assert!(!acked.at.is_empty(), "nothing acknowledged");
    rig.shutdown().await;
}

fn rig_config(rig: &Rig) -> skiff_client::ClientConfig {
    rig.client_config()
}
