//! Crash torture: `skiffd --fsync always` as a child process, killed with
//! SIGKILL at random moments under load and restarted, while idempotent
//! producers (skiff-client `Producer`) write keyed messages with per-key
//! sequence numbers to a 4-partition topic with tiny segments (rolls every
//! few batches) and size retention, and a group consumer (skiff-client
//! `Consumer::with_group`, manual commits every few tens of ms; a new member
//! joins after each restart or failed commit) reads everything and records
//! every commit the broker acknowledged. The producers compress differently
//! (`PRODUCER_CODECS`: one plain, one lz4, one zstd), so the partitions mix
//! compressed and plain batches and every check below holds for both.
//!
//! Checked at the end, after a last restart:
//! - every acknowledged message is in the log exactly once, at the offset
//!   its ack named (lost = acknowledged but missing: must be 0);
//! - per key, sequences appear in increasing order (no duplicate, no
//!   reorder), acknowledged or not;
//! - offsets are contiguous: no offset reused or skipped;
//! - everything the consumer ever saw is still there, unchanged (nothing
//!   visible vanished in a crash), and a redelivery never changed a value;
//! - every partition's committed offset (FetchOffsets) is at least the last
//!   acknowledged commit for it and within the log: committed offsets never
//!   go backwards across crashes.
//!
//! A second topic with a small size retention is written by one more
//! (throttled) idempotent producer with keyless records (sticky partition
//! per batch) and read by a plain fetch loop (the witness), so retention
//! deletes segments in every run and kills land in deletions too. Checked
//! for it: every acknowledged message is in the log exactly once at its
//! acked offset, or below the log start and seen by the witness before
//! retention deleted it; no message stored twice; offsets contiguous.
//!
//! The producers are paced (a pause after each window), so the write rate,
//! and with it how many seconds of records retention keeps, does not depend
//! on how fast the build is: a release build used to outrun the group
//! consumer's rejoin after a restart ("fell behind retention").
//!
//! `SKIFF_TORTURE_CYCLES` sets the number of kill/restart cycles (default 5,
//! well under 30 s); `SKIFF_TORTURE_SECONDS` instead kills and restarts
//! until that much time has passed. Figures are printed for the record:
//! cycles, acknowledged, lost, duplicates, retention deletions, commits.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use skiff_client::{
    AutoCommit, Client, ClientConfig, Compression, Consumer, ConsumerConfig, GroupConfig, Producer,
    ProducerConfig, ProducerRecord,
};
use skiff_protocol::batch::{BatchIter, batch_compression, decode_records};
use skiff_protocol::messages::{FetchOffsetsRequest, FetchRequest, TopicConfig, TopicPartition};
use tokio::sync::Mutex;

const TOPIC: &str = "torture";
const PARTITIONS: u32 = 4;
const PRODUCERS: usize = 3;
const KEYS_PER_PRODUCER: usize = 8;
/// Each `TOPIC` producer's batch codec (by producer id): idempotence,
/// recovery and the exactly-once checks must hold for compressed batches as
/// for plain ones, side by side in one partition.
const PRODUCER_CODECS: [Compression; PRODUCERS] =
    [Compression::None, Compression::Lz4, Compression::Zstd];
/// Partition size kept by retention: many segments. The group consumer loses
/// a second or two joining after each restart, so retention has to leave it
/// that much room: at the paced rate (`TORTURE_LOAD`, at most ~1,500
/// records/s of ~170 bytes over 4 partitions, ~64 KiB/s each) 768 KiB is
/// over 10 s. Deletions happen only in longer runs.
const RETENTION_BYTES: u64 = 768 * 1024;
const CYCLES_DEFAULT: u64 = 5;
/// The topic whose retention deletes segments in every run.
const RETAINED: &str = "torture-retained";
const RETAINED_PARTITIONS: u32 = 2;
/// Its size retention: 8 segments of 8 KiB, about 4 s of its paced
/// producer's writes (`RETAINED_LOAD`: at most ~300 records/s of ~120
/// bytes over 2 partitions, ~18 KiB/s each), so the witness (which stalls
/// for a moment at each restart) reads everything before it is deleted,
/// while a default run still deletes a few segments per partition.
const RETAINED_BYTES: u64 = 64 * 1024;
/// The id of the producer that writes to `RETAINED`.
const RETAINED_PRODUCER: usize = PRODUCERS;

struct Skiffd(std::process::Child);

impl Drop for Skiffd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, config: &Path, port: u16) -> (Skiffd, SocketAddr) {
    // The port of the killed process may take a moment to be free again.
    let mut last_error = String::new();
    for _ in 0..50 {
        match try_start(dir, config, port) {
            Ok(started) => return started,
            Err(e) => last_error = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("skiffd did not start: {last_error}");
}

fn try_start(dir: &Path, config: &Path, port: u16) -> Result<(Skiffd, SocketAddr), String> {
    use std::io::BufRead;
    let stderr_path = dir.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skiffd"))
        // skiffd refuses SKIFF_* variables that are not config keys.
        .env_remove("SKIFF_TORTURE_CYCLES")
        .env_remove("SKIFF_TORTURE_SECONDS")
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .args(["--fsync", "always", "--log-level", "error"])
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn skiffd");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Skiffd(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.trim().strip_prefix("skiffd listening on ") {
        Some(addr) => Ok((child, addr.parse().map_err(|_| line.clone())?)),
        None => {
            drop(child);
            Err(std::fs::read_to_string(&stderr_path).unwrap_or_default())
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// (producer, key index, sequence) from a message value.
fn parse(value: &[u8]) -> (usize, usize, u64) {
    let s = std::str::from_utf8(value).expect("utf8");
    let mut it = s.split(':');
    let mut next = || -> u64 { it.next().and_then(|x| x.parse().ok()).expect("field") };
    (next() as usize, next() as usize, next())
}

#[derive(Default)]
struct Acked {
    /// (producer, key, seq) -> (partition, offset)
    at: HashMap<(usize, usize, u64), (u32, u64)>,
    failed: u64,
}

/// How a producer writes: to which topic, how many messages per window,
/// how long values are, and the pause between windows.
#[derive(Clone, Copy)]
struct Load {
    topic: &'static str,
    window_max: usize,
    padding_max: usize,
    pause: Duration,
    /// Keyed records (per-key order is checked) or keyless ones (the
    /// producer picks a sticky partition per batch; only exactly-once is
    /// checked, as keyless records have no order across partitions).
    keyed: bool,
}

/// Paced: 3 producers x ~20 records per window, a window per >= 40 ms, so
/// at most ~1,500 records/s in any build.
const TORTURE_LOAD: Load = Load {
    topic: TOPIC,
    window_max: 40,
    padding_max: 200,
    pause: Duration::from_millis(40),
    keyed: true,
};

/// Slow enough for `RETAINED_BYTES` to hold a few seconds of it: ~8
/// records per window, a window per >= 25 ms.
const RETAINED_LOAD: Load = Load {
    topic: RETAINED,
    window_max: 16,
    padding_max: 100,
    pause: Duration::from_millis(25),
    keyed: false,
};

async fn produce(
    id: usize,
    load: Load,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> u64 {
    // The retained topic's producer stays plain: its retention is sized for
    // uncompressed bytes.
    let codec = PRODUCER_CODECS.get(id).copied().unwrap_or_default();
    let client = Client::lazy(
        ClientConfig::new(addr.to_string())
            .reconnect_backoff(20, 200, 50)
            .request_timeout_ms(5_000),
    );
    let producer = Producer::new(
        client,
        ProducerConfig::default()
            .linger_ms(2)
            .retries_max(40)
            .retry_backoff_ms(50)
            .compression(codec),
    );
    let mut seqs = [0u64; KEYS_PER_PRODUCER];
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut window = Vec::new();
        for _ in 0..rng.gen_range(1..load.window_max) {
            let k = rng.gen_range(0..KEYS_PER_PRODUCER);
            let seq = seqs[k];
            seqs[k] += 1;
            let value = format!(
                "{id}:{k}:{seq}:{}",
                "x".repeat(rng.gen_range(0..load.padding_max))
            );
            let mut rec = ProducerRecord::new(load.topic, value);
            if load.keyed {
                rec = rec.key(format!("p{id}-k{k}"));
            }
            window.push(((id, k, seq), producer.send(rec)));
        }
        for (msg, fut) in window {
            sent += 1;
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
        tokio::time::sleep(load.pause).await;
    }
    sent
}

/// Reads `RETAINED` with plain fetches from the log start, recording every
/// record it sees, until stopped. A restart costs it a moment (short
/// connect timeout); falling behind retention is counted, not hidden.
async fn witness(addr: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) -> u64 {
    let client = Client::lazy(
        ClientConfig::new(addr.to_string())
            .connect_timeout_ms(250)
            .reconnect_backoff(10, 100, 3)
            .request_timeout_ms(1_000),
    );
    let mut next = vec![0u64; RETAINED_PARTITIONS as usize];
    let mut fell_behind = 0;
    while !stop.load(Ordering::Relaxed) {
        for p in 0..RETAINED_PARTITIONS {
            let resp = client
                .send(FetchRequest {
                    topic: RETAINED.into(),
                    partition: p,
                    offset: next[p as usize],
                    max_bytes: 1024 * 1024,
                    max_wait_ms: 10,
                })
                .await;
            let records = match resp {
                Ok(resp) => resp.records,
                Err(e) if e.code() == Some(skiff_client::ErrorCode::OffsetOutOfRange) => {
                    fell_behind += 1;
                    let start = client
                        .admin()
                        .describe_topic(RETAINED)
                        .await
                        .ok()
                        .and_then(|d| d.partitions.get(p as usize).map(|x| x.log_start_offset));
                    if let Some(start) = start {
                        next[p as usize] = next[p as usize].max(start);
                    }
                    continue;
                }
                // The broker is down or restarting: try again.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let mut seen = seen.lock().await;
            for batch in BatchIter::new(records) {
                for r in decode_records(&batch.expect("batch")).expect("records") {
                    if r.offset < next[p as usize] {
                        continue;
                    }
                    assert_eq!(r.offset, next[p as usize], "witness: offset skipped on {p}");
                    if let Some(before) = seen.insert((p, r.offset), r.value.clone()) {
                        assert_eq!(before, r.value, "{p}/{} changed", r.offset);
                    }
                    next[p as usize] = r.offset + 1;
                }
            }
        }
    }
    fell_behind
}

/// (partition, offset) -> value, as seen by the consumer.
type Seen = BTreeMap<(u32, u64), Bytes>;

/// The group consumer's acknowledged commits.
#[derive(Default)]
struct Commits {
    /// Commits the broker acknowledged that moved some partition.
    acked: u64,
    /// Per partition, the highest committed offset the broker acknowledged.
    last: BTreeMap<u32, u64>,
    /// Commits that failed (not acknowledged).
    failed: u64,
    /// Group consumers created (1 + recreations after a failed commit).
    members: u64,
}

/// A group consumer (skiff-client `Consumer::with_group`, manual commits)
/// that commits every few tens of ms. After each broker restart (and after
/// a failed commit) the member is dropped and a new one joins, resuming
/// from the committed offsets: a member left to notice the restart and
/// rejoin by itself can take longer than retention gives it here.
async fn consume(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    commits: Arc<Mutex<Commits>>,
    restarts: Arc<AtomicU64>,
) {
    let client = Client::lazy(
        ClientConfig::new(addr.to_string())
            .reconnect_backoff(20, 200, 5)
            .request_timeout_ms(2_000),
    );
    let config = GroupConfig::new(GROUP, [TOPIC])
        .auto_commit(AutoCommit::Manual)
        .consumer(ConsumerConfig::default().max_wait_ms(20));
    while !stop.load(Ordering::Relaxed) {
        let join = Consumer::with_group(client.clone(), config.clone());
        let mut consumer = match tokio::time::timeout(GROUP_CALL_MAX, join).await {
            Ok(Ok(c)) => c,
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        commits.lock().await.members += 1;
        // Per partition, the last offset this member delivered: delivery is
        // contiguous, except going back to the committed offset on a rejoin.
        let mut delivered: HashMap<u32, u64> = HashMap::new();
        let mut last_commit = Instant::now();
        let mut healthy = true;
        let restarts_at_join = restarts.load(Ordering::Relaxed);
        while healthy && !stop.load(Ordering::Relaxed) {
            if restarts.load(Ordering::Relaxed) != restarts_at_join {
                // The broker was restarted: a new member joins (and resumes
                // from the committed offsets) rather than waiting for this
                // one to notice and rejoin.
                break;
            }
            match tokio::time::timeout(Duration::from_millis(50), consumer.next()).await {
                Ok(Some(Ok(r))) => {
                    let p = r.partition;
                    if let Some(&prev) = delivered.get(&p) {
                        assert!(
                            r.offset <= prev + 1,
                            "offset skipped on {p}: {} after {prev}",
                            r.offset
                        );
                    }
                    delivered.insert(p, r.offset);
                    let mut seen = seen.lock().await;
                    if let Some(before) = seen.insert((p, r.offset), r.value.clone()) {
                        assert_eq!(before, r.value, "{p}/{} delivered twice, changed", r.offset);
                    }
                }
                Ok(Some(Err(skiff_client::Error::OffsetOutOfRange { .. }))) => {
                    panic!("group consumer fell behind retention")
                }
                // Fetch errors while the broker is down: the consumer goes on.
                Ok(Some(Err(_))) | Err(_) => {}
                Ok(None) => healthy = false,
            }
            if last_commit.elapsed() >= COMMIT_EVERY {
                last_commit = Instant::now();
                healthy = commit(&mut consumer, &commits).await;
            }
        }
        if stop.load(Ordering::Relaxed) && healthy {
            // Final commit of everything delivered, then leave.
            let positions = positions(&consumer);
            let closed = tokio::time::timeout(GROUP_CALL_MAX, consumer.close()).await;
            record(&commits, positions, matches!(closed, Ok(Ok(())))).await;
        }
    }
}

const GROUP: &str = "torture-group";
/// Bound on a join, commit or close of the group consumer (a member stuck
/// on a dead connection is replaced).
const GROUP_CALL_MAX: Duration = Duration::from_secs(2);
/// How often the group consumer commits.
const COMMIT_EVERY: Duration = Duration::from_millis(30);

/// The positions (next offset to deliver) of the assigned partitions.
fn positions(consumer: &Consumer) -> Vec<(u32, u64)> {
    consumer
        .assignment()
        .into_iter()
        .filter_map(|(topic, p)| consumer.position(&topic, p).map(|o| (p, o)))
        .collect()
}

/// Commits the delivered positions; false when the commit failed.
async fn commit(consumer: &mut Consumer, commits: &Mutex<Commits>) -> bool {
    // What `commit` sends: the positions of the assigned partitions.
    let positions = positions(consumer);
    let ok = matches!(
        tokio::time::timeout(GROUP_CALL_MAX, consumer.commit()).await,
        Ok(Ok(()))
    );
    record(commits, positions, ok).await;
    ok
}

async fn record(commits: &Mutex<Commits>, positions: Vec<(u32, u64)>, ok: bool) {
    let mut c = commits.lock().await;
    if !ok {
        c.failed += 1;
        return;
    }
    let mut moved = false;
    for (p, offset) in positions {
        let last = c.last.entry(p).or_insert(0);
        if offset > *last {
            *last = offset;
            moved = true;
        }
    }
    if moved {
        c.acked += 1;
    }
}

/// The group's committed offset per partition.
async fn fetch_committed(addr: SocketAddr) -> BTreeMap<u32, Option<u64>> {
    let client = Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("connect");
    let resp = client
        .send(FetchOffsetsRequest {
            group: GROUP.into(),
            partitions: (0..PARTITIONS)
                .map(|p| TopicPartition::new(TOPIC, p))
                .collect(),
        })
        .await
        .expect("fetch offsets");
    resp.offsets
        .into_iter()
        .map(|c| (c.partition.partition, c.offset))
        .collect()
}

/// Every record of every partition, read from the log start, and the codecs
/// of the batches that hold them. Retention may still delete a segment
/// between the describe and a fetch (it runs every 100 ms); the read then
/// starts over from the new log start.
async fn read_everything(addr: SocketAddr, topic: &str) -> (Vec<u64>, Seen, Codecs) {
    let client = Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("connect");
    for _ in 0..READ_ATTEMPTS_MAX {
        if let Some(read) = try_read_everything(&client, topic).await {
            return read;
        }
    }
    panic!("retention kept moving the log start during {READ_ATTEMPTS_MAX} full reads");
}

/// Full reads attempted before giving up on a moving log start.
const READ_ATTEMPTS_MAX: usize = 10;

/// The codecs of the batches read.
type Codecs = std::collections::BTreeSet<u16>;

async fn try_read_everything(client: &Client, topic: &str) -> Option<(Vec<u64>, Seen, Codecs)> {
    let desc = client
        .admin()
        .describe_topic(topic)
        .await
        .expect("describe");
    let mut out = Seen::new();
    let mut codecs = Codecs::new();
    let mut starts = Vec::new();
    for p in desc.partitions {
        starts.push(p.log_start_offset);
        let mut offset = p.log_start_offset;
        while offset < p.log_end_offset {
            let resp = client
                .send(FetchRequest {
                    topic: topic.into(),
                    partition: p.partition,
                    offset,
                    max_bytes: 1024 * 1024,
                    max_wait_ms: 0,
                })
                .await;
            let resp = match resp {
                Ok(resp) => resp,
                Err(e) if e.code() == Some(skiff_client::ErrorCode::OffsetOutOfRange) => {
                    return None;
                }
                Err(e) => panic!("fetch: {e}"),
            };
            for batch in BatchIter::new(resp.records) {
                let batch = batch.expect("batch");
                codecs.insert(batch_compression(&batch).expect("codec").attribute());
                for r in decode_records(&batch).expect("records") {
                    assert_eq!(r.offset, offset, "offset reused or skipped");
                    out.insert((p.partition, r.offset), r.value);
                    offset += 1;
                }
            }
        }
    }
    Some((starts, out, codecs))
}

/// How long to run: (cycles, or until this much time has passed).
fn length_from_env() -> (u64, Option<Duration>) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match var("SKIFF_TORTURE_SECONDS") {
        Some(s) => (u64::MAX, Some(Duration::from_secs(s))),
        None => (var("SKIFF_TORTURE_CYCLES").unwrap_or(CYCLES_DEFAULT), None),
    }
}

#[test]
fn crash_torture() {
    let (cycles, duration) = length_from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(cycles, duration));
}

async fn run(cycles: u64, duration: Option<Duration>) {
    let began = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("skiff.toml");
    // Tiny segments: a roll every few batches, so kills land in rolls too.
    std::fs::write(
        &config,
        "segment_bytes = 8192\nretention_check_interval_ms = 100\n",
    )
    .expect("write config");
    let port = free_port();
    let (mut broker, addr) = start(&data, &config, port);
    let admin = Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("connect")
        .admin();
    admin
        .create_topic(
            TOPIC,
            TopicConfig {
                partitions: PARTITIONS,
                retention_bytes: Some(RETENTION_BYTES),
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create topic");
    admin
        .create_topic(
            RETAINED,
            TopicConfig {
                partitions: RETAINED_PARTITIONS,
                retention_bytes: Some(RETAINED_BYTES),
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create retained topic");

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let seen = Arc::new(Mutex::new(Seen::new()));
    let commits = Arc::new(Mutex::new(Commits::default()));
    let restarts = Arc::new(AtomicU64::new(0));
    let retained_acked = Arc::new(Mutex::new(Acked::default()));
    let retained_seen = Arc::new(Mutex::new(Seen::new()));
    let mut producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let acked = Arc::clone(&acked);
            tokio::spawn(produce(id, TORTURE_LOAD, addr, Arc::clone(&stop), acked))
        })
        .collect();
    producers.push(tokio::spawn(produce(
        RETAINED_PRODUCER,
        RETAINED_LOAD,
        addr,
        Arc::clone(&stop),
        Arc::clone(&retained_acked),
    )));
    let witness = tokio::spawn(witness(addr, Arc::clone(&stop), Arc::clone(&retained_seen)));
    let consumer = tokio::spawn(consume(
        addr,
        Arc::clone(&stop),
        Arc::clone(&seen),
        Arc::clone(&commits),
        Arc::clone(&restarts),
    ));

    let kills = AtomicU64::new(0);
    for _ in 0..cycles {
        if duration.is_some_and(|d| began.elapsed() >= d) {
            break;
        }
        let run_ms = rand::thread_rng().gen_range(200..1200);
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        // SIGKILL: no shutdown, no marker, no final fsync.
        broker.0.kill().expect("kill");
        let _ = broker.0.wait();
        kills.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..200))).await;
        broker = start(&data, &config, port).0;
        restarts.fetch_add(1, Ordering::Relaxed);
    }
    // Let the clients settle on the last broker, and on a slow machine give
    // retention the time to delete a first segment, then stop them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_first_deletion(&admin).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for p in producers {
        sent += p.await.expect("producer task");
    }
    let witness_fell_behind = witness.await.expect("witness task");
    consumer.await.expect("consumer task");
    // One more crash and recovery before the final check.
    broker.0.kill().expect("kill");
    let _ = broker.0.wait();
    let (_broker, addr) = start(&data, &config, port);
    let (starts, log, codecs) = read_everything(addr, TOPIC).await;
    let (retained_starts, retained_log, _) = read_everything(addr, RETAINED).await;
    let committed = fetch_committed(addr).await;

    let acked = acked.lock().await;
    let seen = seen.lock().await;
    let commits = commits.lock().await;
    // Committed offsets never go backwards across crashes: each partition's
    // is at least the last acknowledged commit, and within the log.
    let log_end = |p: u32| {
        log.range((p, 0)..(p + 1, 0))
            .next_back()
            .map_or(starts[p as usize], |(&(_, o), _)| o + 1)
    };
    let mut commits_behind = 0;
    for (&p, &last) in &commits.last {
        let now = committed.get(&p).copied().flatten();
        if now.is_none_or(|o| o < last) {
            eprintln!("partition {p}: committed {now:?} < acknowledged commit {last}");
            commits_behind += 1;
        }
        if let Some(o) = now {
            assert!(
                o <= log_end(p),
                "partition {p}: committed {o} beyond the log end"
            );
        }
    }
    let tally = check(&acked, &seen, &starts, &log, TORTURE_LOAD.keyed);
    let retained_acked = retained_acked.lock().await;
    let retained_seen = retained_seen.lock().await;
    let retained = check(
        &retained_acked,
        &retained_seen,
        &retained_starts,
        &retained_log,
        RETAINED_LOAD.keyed,
    );
    println!(
        "crash torture: {} cycles (SIGKILL + restart), {} sent to both topics, {} acknowledged, {} failed (unacknowledged), lost {}, expired unseen {}, consumer saw {} (vanished {}), log now holds {} records, {:.1}s",
        kills.load(Ordering::Relaxed),
        sent,
        acked.at.len(),
        acked.failed,
        tally.lost,
        tally.expired,
        seen.len(),
        tally.vanished,
        log.len(),
        began.elapsed().as_secs_f64()
    );
    println!(
        "crash torture retention: {} acknowledged, lost {}, deleted by retention {} (unseen {}), log start now {:?}, witness saw {} (vanished {}, fell behind {} times)",
        retained_acked.at.len(),
        retained.lost,
        retained.deleted,
        retained.expired,
        retained_starts,
        retained_seen.len(),
        retained.vanished,
        witness_fell_behind,
    );
    println!(
        "crash torture group: {} commits acknowledged, {} failed, {} members, last acknowledged {:?}, committed after the last crash {:?}, behind {}",
        commits.acked, commits.failed, commits.members, commits.last, committed, commits_behind
    );
    println!(
        "crash torture figures: cycles {}, acknowledged {}, lost {}, duplicates 0 (a duplicate fails the check), retention deletions {}, group commits {}",
        kills.load(Ordering::Relaxed),
        acked.at.len() + retained_acked.at.len(),
        tally.lost + retained.lost,
        tally.deleted + retained.deleted,
        commits.acked,
    );
    assert_eq!(tally.lost, 0, "acknowledged messages lost");
    assert_eq!(tally.vanished, 0, "messages seen by the consumer vanished");
    assert_eq!(
        tally.expired, 0,
        "retention deleted acknowledged messages before the consumer saw them"
    );
    assert_eq!(retained.lost, 0, "{RETAINED}: acknowledged messages lost");
    assert_eq!(retained.vanished, 0, "{RETAINED}: messages seen vanished");
    assert_eq!(
        retained.expired, 0,
        "{RETAINED}: retention deleted acknowledged messages before the witness saw them"
    );
    assert!(
        retained.deleted > 0,
        "{RETAINED}: retention deleted nothing, so this run did not exercise it"
    );
    assert!(!acked.at.is_empty(), "nothing was acknowledged");
    let expected: Codecs = PRODUCER_CODECS.iter().map(|c| c.attribute()).collect();
    assert_eq!(codecs, expected, "the log holds every producer's codec");
    assert_eq!(commits_behind, 0, "committed offsets went backwards");
    assert!(commits.acked > 0, "no commit was acknowledged");
}

/// Waits (bounded) until retention has deleted a segment of `RETAINED`.
async fn wait_for_first_deletion(admin: &skiff_client::Admin) {
    for _ in 0..FIRST_DELETION_POLLS_MAX {
        if let Ok(desc) = admin.describe_topic(RETAINED).await {
            if desc.partitions.iter().any(|p| p.log_start_offset > 0) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls, 100 ms apart, for a first deletion by retention (the final check
/// fails if there was none).
const FIRST_DELETION_POLLS_MAX: usize = 200;

/// What the final check of one topic found.
struct Tally {
    /// Acknowledged, at or above the log start, but not at its offset.
    lost: u64,
    /// Acknowledged, below the log start (deleted by retention).
    deleted: u64,
    /// Of those, never seen by a reader before the deletion.
    expired: u64,
    /// Seen by a reader, at or above the log start, but gone or changed.
    vanished: u64,
}

/// Checks one topic's final log against what was acknowledged and seen:
/// each acknowledged message exactly once at its acked offset (or deleted
/// by retention after being seen), no message twice, with `keyed` strictly
/// increasing sequences per key (no reorder), nothing seen vanished or
/// changed.
fn check(acked: &Acked, seen: &Seen, starts: &[u64], log: &Seen, keyed: bool) -> Tally {
    let mut tally = Tally {
        lost: 0,
        deleted: 0,
        expired: 0,
        vanished: 0,
    };
    for (msg, &(p, offset)) in &acked.at {
        match log.get(&(p, offset)) {
            Some(v) => {
                let (id, k, seq) = parse(v);
                assert_eq!((id, k, seq), *msg, "acked offset holds another message");
            }
            None if offset < starts[p as usize] => {
                tally.deleted += 1;
                if !seen.contains_key(&(p, offset)) {
                    tally.expired += 1;
                }
            }
            None => {
                // Enough to tell a harness miscount from a real loss.
                let p_end = log
                    .range((p, 0)..(p + 1, 0))
                    .next_back()
                    .map(|(&(_, o), _)| o + 1);
                eprintln!(
                    "lost: {msg:?} acked at {p}/{offset}; log start {}, end {p_end:?}, seen by a reader: {}",
                    starts[p as usize],
                    seen.contains_key(&(p, offset))
                );
                tally.lost += 1;
            }
        }
    }
    let mut last: HashMap<(usize, usize), u64> = HashMap::new();
    let mut all: BTreeMap<(u32, u64), Bytes> = seen.clone();
    all.extend(log.iter().map(|(k, v)| (*k, v.clone())));
    let mut at: HashMap<(usize, usize, u64), (u32, u64)> = HashMap::new();
    for (&(p, offset), value) in &all {
        let (id, k, seq) = parse(value);
        if let Some(first) = at.insert((id, k, seq), (p, offset)) {
            panic!("p{id}-k{k} sequence {seq} stored twice: at {first:?} and {p}/{offset}");
        }
        if !keyed {
            continue;
        }
        if let Some(&prev) = last.get(&(id, k)) {
            assert!(
                seq > prev,
                "key p{id}-k{k}: sequence {seq} at {p}/{offset} after {prev} (duplicate or reorder)"
            );
        }
        last.insert((id, k), seq);
    }
    for (&(p, offset), value) in seen {
        if offset >= starts[p as usize] {
            match log.get(&(p, offset)) {
                Some(v) if v == value => {}
                _ => tally.vanished += 1,
            }
        }
    }
    tally
}
