//! Group consumers against a real embedded broker: partitions shared without
//! overlap, at-least-once (exactly-once with clean hand-overs), failover
//! after a crash from the committed offsets, and commits that survive a
//! broker restart. Session timeouts are short (hundreds of ms) and every
//! wait is a bounded loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_broker::{Broker, BrokerConfig, BrokerHandle};
use skiff_client::{
    AutoCommit, Client, ClientConfig, Consumer, ConsumerConfig, GroupConfig, Producer,
    ProducerConfig, ProducerRecord, TopicConfig,
};
use tokio_util::sync::CancellationToken;

/// Session timeout of the tests' members, in ms (heartbeats every third).
const SESSION_MS: u32 = 600;
/// Bound on every settle loop: rounds of `POLL_MS`.
const ROUNDS_MAX: usize = 400;
/// Pause between settle checks, in ms.
const POLL_MS: u64 = 25;
/// How long a member's driver waits in `next()` before publishing its
/// assignment again, in ms (also exercises `next()`'s cancel-safety).
const DRIVER_TICK_MS: u64 = 50;

async fn start_broker(dir: &Path) -> BrokerHandle {
    Broker::start(BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        session_timeout_ms_min: 100,
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts")
}

async fn connect(broker: &BrokerHandle, client_id: &str) -> Client {
    Client::connect(ClientConfig::new(broker.local_addr().to_string()).client_id(client_id))
        .await
        .expect("client connects")
}

fn group_config(group: &str, topic: &str) -> GroupConfig {
    GroupConfig::new(group, [topic])
        .session_timeout_ms(SESSION_MS)
        .auto_commit(AutoCommit::Interval(Duration::from_millis(100)))
        .consumer(ConsumerConfig::default().max_wait_ms(50))
}

/// Produces `per_partition` records to each of `partitions`, value
/// `p<partition>-<i>`.
async fn produce(client: &Client, topic: &str, partitions: u32, per_partition: u32, tag: &str) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let sends: Vec<_> = (0..per_partition)
        .flat_map(|i| (0..partitions).map(move |p| (p, i)))
        .map(|(p, i)| {
            producer.send(ProducerRecord::new(topic, format!("{tag}{p}-{i}")).partition(p))
        })
        .collect();
    for ack in futures::future::join_all(sends).await {
        ack.expect("produced");
    }
}

type Received = Arc<Mutex<Vec<(u32, u64)>>>;

/// A group consumer driven by its own task.
struct Member {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Consumer>,
    assignment: Arc<Mutex<BTreeSet<u32>>>,
    received: Received,
}

impl Member {
    async fn start(client: Client, config: GroupConfig, per_record: Duration) -> Member {
        let mut consumer = Consumer::with_group(client, config).await.expect("joins");
        let stop = CancellationToken::new();
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let received: Received = Arc::default();
        let task = tokio::spawn({
            let (stop, assignment, received) =
                (stop.clone(), Arc::clone(&assignment), Arc::clone(&received));
            async move {
                loop {
                    let item = tokio::select! {
                        _ = stop.cancelled() => break,
                        item = tokio::time::timeout(Duration::from_millis(DRIVER_TICK_MS), consumer.next()) => item,
                    };
                    if let Ok(Some(Ok(r))) = item {
                        received.lock().unwrap().push((r.partition, r.offset));
                        if !per_record.is_zero() {
                            tokio::time::sleep(per_record).await;
                        }
                    } else if let Ok(Some(Err(e))) = item {
                        panic!("consumer error: {e}");
                    }
                    *assignment.lock().unwrap() =
                        consumer.assignment().into_iter().map(|(_, p)| p).collect();
                }
                consumer
            }
        });
        Member {
            stop,
            task,
            assignment,
            received,
        }
    }

    fn owned(&self) -> BTreeSet<u32> {
        self.assignment.lock().unwrap().clone()
    }

    fn received(&self) -> Vec<(u32, u64)> {
        self.received.lock().unwrap().clone()
    }

    /// Stops the driver and closes the consumer (commit + leave).
    async fn close(self) -> Vec<(u32, u64)> {
        self.stop.cancel();
        let consumer = self.task.await.expect("driver ends");
        consumer.close().await.expect("closes cleanly");
        self.received.lock().unwrap().clone()
    }
}

/// Waits until `check` holds, at most `ROUNDS_MAX` rounds; panics with
/// `what` otherwise.
async fn settle(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..ROUNDS_MAX {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    panic!("did not settle: {what}");
}

fn balanced(members: &[&Member], partitions: u32) -> bool {
    let sets: Vec<BTreeSet<u32>> = members.iter().map(|m| m.owned()).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<u32> = sets.iter().flatten().copied().collect();
    let fair = partitions as usize / members.len();
    total == partitions as usize
        && union.len() == partitions as usize
        && sets.iter().all(|s| s.len() >= fair && s.len() <= fair + 1)
}

fn assert_disjoint(members: &[&Member]) {
    let mut seen = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for p in m.owned() {
            if let Some(other) = seen.insert(p, i) {
                panic!("partition {p} owned by members {other} and {i}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_without_overlap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker, "share").await;
    client
        .admin()
        .create_topic(
            "t",
            TopicConfig {
                partitions: 6,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic");

    let a = Member::start(client.clone(), group_config("g", "t"), Duration::ZERO).await;
    settle("one member owns all 6", || a.owned().len() == 6).await;
    let b = Member::start(client.clone(), group_config("g", "t"), Duration::ZERO).await;
    settle("two members own 3 each", || balanced(&[&a, &b], 6)).await;
    assert_disjoint(&[&a, &b]);
    let c = Member::start(client.clone(), group_config("g", "t"), Duration::ZERO).await;
    settle("three members own 2 each", || balanced(&[&a, &b, &c], 6)).await;
    assert_disjoint(&[&a, &b, &c]);

    // The broker agrees with the members.
    let described = client.admin().describe_group("g").await.expect("describe");
    assert_eq!(described.members.len(), 3);
    assert!(described.members.iter().all(|m| m.owned.len() == 2));

    // A clean leave hands its partitions to the others.
    let left = Instant::now();
    c.close().await;
    settle("two members own 3 each after a leave", || {
        balanced(&[&a, &b], 6)
    })
    .await;
    println!("partitions reassigned {:?} after a leave", left.elapsed());
    assert_disjoint(&[&a, &b]);
    a.close().await;
    b.close().await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_hand_overs_deliver_every_message_exactly_once() {
    const PARTITIONS: u32 = 6;
    const PER_PARTITION: u32 = 150;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker, "exact").await;
    client
        .admin()
        .create_topic(
            "t",
            TopicConfig {
                partitions: PARTITIONS,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic");
    produce(&client, "t", PARTITIONS, PER_PARTITION, "p").await;
    let total = (PARTITIONS * PER_PARTITION) as usize;
    let slow = Duration::from_millis(1);

    // Members come and go while the records are being consumed.
    let a = Member::start(client.clone(), group_config("g", "t"), slow).await;
    settle("a starts", || a.received().len() >= total / 6).await;
    let b = Member::start(client.clone(), group_config("g", "t"), slow).await;
    settle("b gets a share", || !b.received().is_empty()).await;
    let c = Member::start(client.clone(), group_config("g", "t"), slow).await;
    settle("c gets a share", || !c.received().is_empty()).await;
    let mut all = a.close().await;
    let count = |m: &Member, all: &Vec<(u32, u64)>| m.received().len() + all.len();
    settle("everything consumed", || {
        count(&b, &all) + c.received().len() >= total
    })
    .await;
    // Nothing more arrives (no redelivery).
    tokio::time::sleep(Duration::from_millis(300)).await;
    all.extend(b.close().await);
    all.extend(c.close().await);

    let mut seen = BTreeMap::new();
    for (p, o) in &all {
        *seen.entry((*p, *o)).or_insert(0) += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "delivered more than once: {dupes:?}");
    assert_eq!(seen.len(), total, "every record delivered");

    // Everything is committed: lag 0 everywhere.
    let described = client.admin().describe_group("g").await.expect("describe");
    assert!(
        described.members.is_empty(),
        "members left behind: {:?}",
        described.members
    );
    for p in &described.partitions {
        assert_eq!(p.lag, Some(0), "{p:?}");
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_members_partitions_move_after_the_session_timeout() {
    const PARTITIONS: u32 = 6;
    const PER_PARTITION: u32 = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let addr = broker.local_addr().to_string();
    let client = connect(&broker, "survivor").await;
    client
        .admin()
        .create_topic(
            "t",
            TopicConfig {
                partitions: PARTITIONS,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic");
    produce(&client, "t", PARTITIONS, PER_PARTITION, "p").await;
    let total = (PARTITIONS * PER_PARTITION) as usize;

    let b = Member::start(
        client.clone(),
        group_config("g", "t"),
        Duration::from_millis(2),
    )
    .await;
    settle("b owns everything", || b.owned().len() == 6).await;

    // The doomed member runs on its own runtime, so "crashing" it is
    // dropping that runtime: its heartbeat task and socket die, and no leave
    // or commit is sent (the consumer itself is forgotten, never dropped).
    let crashed: Received = Arc::default();
    let (owned_tx, owned_rx) = std::sync::mpsc::channel();
    let doomed = std::thread::spawn({
        let crashed = Arc::clone(&crashed);
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let consumer = runtime.block_on(async move {
                let client = Client::connect(ClientConfig::new(addr).client_id("doomed"))
                    .await
                    .expect("client");
                let mut consumer = Consumer::with_group(client, group_config("g", "t"))
                    .await
                    .expect("joins");
                let deadline = Instant::now() + Duration::from_secs(10);
                while crashed.lock().unwrap().len() < 60 && Instant::now() < deadline {
                    if let Ok(Some(Ok(r))) =
                        tokio::time::timeout(Duration::from_millis(50), consumer.next()).await
                    {
                        crashed.lock().unwrap().push((r.partition, r.offset));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                consumer
            });
            let owned: BTreeSet<u32> = consumer.assignment().into_iter().map(|(_, p)| p).collect();
            std::mem::forget(consumer);
            runtime.shutdown_background();
            owned_tx.send(owned).expect("send");
        }
    });
    let doomed_owned = tokio::task::spawn_blocking(move || owned_rx.recv().expect("owned"))
        .await
        .expect("join");
    let crash_at = Instant::now();
    let b_at_crash = b.received().len();
    doomed.join().expect("thread");
    assert!(!doomed_owned.is_empty(), "the doomed member got partitions");
    let committed: BTreeMap<u32, Option<u64>> = client
        .admin()
        .describe_group("g")
        .await
        .expect("describe")
        .partitions
        .into_iter()
        .map(|p| (p.partition.partition, p.committed))
        .collect();

    settle("b owns everything again", || b.owned().len() == 6).await;
    let moved = crash_at.elapsed();
    settle("b reads a taken-over partition", || {
        b.received()[b_at_crash..]
            .iter()
            .any(|(p, _)| doomed_owned.contains(p))
    })
    .await;
    let reading = crash_at.elapsed();
    println!(
        "crash: partitions owned by the survivor after {moved:?}, first record read after {reading:?} (session timeout {SESSION_MS} ms)"
    );
    assert!(
        moved >= Duration::from_millis(u64::from(SESSION_MS) / 2),
        "moved before the session could expire: {moved:?}"
    );
    settle("everything consumed", || {
        let mut set: BTreeSet<(u32, u64)> = b.received().into_iter().collect();
        set.extend(crashed.lock().unwrap().iter().copied());
        set.len() >= total
    })
    .await;
    let received = b.received();
    // The survivor resumed each taken-over partition exactly at its
    // committed offset (its own commit at the hand-over at the least).
    for p in &doomed_owned {
        let first = received[b_at_crash..]
            .iter()
            .filter(|(q, _)| q == p)
            .map(|(_, o)| *o)
            .min();
        assert_eq!(first, Some(committed[p].unwrap_or(0)), "partition {p}");
    }
    let mut all: BTreeSet<(u32, u64)> = received.into_iter().collect();
    all.extend(crashed.lock().unwrap().iter().copied());
    assert_eq!(all.len(), total, "no record skipped");
    b.close().await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_broker_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker, "before").await;
    client
        .admin()
        .create_topic(
            "t",
            TopicConfig {
                partitions: 3,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic");
    produce(&client, "t", 3, 20, "old").await;
    let m = Member::start(client.clone(), group_config("g", "t"), Duration::ZERO).await;
    settle("first batch consumed", || m.received().len() >= 60).await;
    let first = m.close().await;
    assert_eq!(first.len(), 60);
    drop(client);
    broker.shutdown().await.expect("shutdown");

    let broker = start_broker(dir.path()).await;
    let client = connect(&broker, "after").await;
    produce(&client, "t", 3, 5, "new").await;
    let m = Member::start(client.clone(), group_config("g", "t"), Duration::ZERO).await;
    settle("new records consumed", || m.received().len() >= 15).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = m.close().await;
    let mut offsets: Vec<(u32, u64)> = second.clone();
    offsets.sort_unstable();
    let expected: Vec<(u32, u64)> = (0..3).flat_map(|p| (20..25).map(move |o| (p, o))).collect();
    assert_eq!(offsets, expected, "resumed exactly after the commits");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_rejoins_after_the_broker_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let addr = broker.local_addr();
    let client = connect(&broker, "rejoin").await;
    client
        .admin()
        .create_topic(
            "t",
            TopicConfig {
                partitions: 2,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic");
    produce(&client, "t", 2, 10, "old").await;
    let m = Member::start(client.clone(), group_config("g", "t"), Duration::ZERO).await;
    settle("first records consumed", || m.received().len() >= 20).await;
    // Let an auto-commit land, then restart the broker on the same address.
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.shutdown().await.expect("shutdown");
    let broker = Broker::start(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: addr,
        session_timeout_ms_min: 100,
        ..BrokerConfig::default()
    })
    .await
    .expect("broker restarts on the same address");
    produce(&client, "t", 2, 5, "new").await;
    // Fetches need no membership, so the new records can arrive before the
    // member's heartbeat finds that the broker forgot it. Its rejoin then
    // rewinds it to the committed offsets (what it read before a rejoin is
    // treated as lost), so it may read them twice; wait for the rejoin,
    // then for one more record per partition read after it.
    let mut rejoined = false;
    for _ in 0..ROUNDS_MAX {
        let d = client.admin().describe_group("g").await.expect("describe");
        if d.members.len() == 1 && d.partitions.iter().all(|p| p.owner.is_some()) {
            rejoined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    assert!(rejoined, "the member rejoined and owns both partitions");
    produce(&client, "t", 2, 1, "last").await;
    settle("the member read on to the last records", || {
        let received = m.received();
        (0..2).all(|p| received.iter().rev().find(|(rp, _)| *rp == p) == Some(&(p, 15)))
    })
    .await;
    let received = m.close().await;
    let unique: BTreeSet<(u32, u64)> = received.iter().copied().collect();
    assert_eq!(unique.len(), 32, "every record, none skipped");
    let described = client.admin().describe_group("g").await.expect("describe");
    assert!(
        described.partitions.iter().all(|p| p.lag == Some(0)),
        "{described:?}"
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_across_a_rebalance_is_retried_and_lands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker, "stale").await;
    client
        .admin()
        .create_topic(
            "t",
            TopicConfig {
                partitions: 2,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic");
    produce(&client, "t", 2, 10, "p").await;
    let config = group_config("g", "t").auto_commit(AutoCommit::Manual);
    let mut a = Consumer::with_group(client.clone(), config.clone())
        .await
        .expect("joins");
    assert!(a.commit().await.is_ok(), "nothing delivered yet: a no-op");
    let mut delivered = BTreeMap::new();
    for _ in 0..5 {
        let r = tokio::time::timeout(Duration::from_secs(5), a.next())
            .await
            .expect("a record within 5 s")
            .expect("group consumers never end")
            .expect("record");
        delivered.insert(r.partition, r.offset + 1);
    }
    // Another member joins: the generation moves on before `a` has
    // heartbeated, so its commit is first refused as stale, then retried.
    let b = Consumer::with_group(client.clone(), config)
        .await
        .expect("joins");
    a.commit().await.expect("commit lands after a heartbeat");
    let described = client.admin().describe_group("g").await.expect("describe");
    for (p, position) in &delivered {
        let progress = described
            .partitions
            .iter()
            .find(|q| q.partition.partition == *p)
            .expect("partition described");
        assert_eq!(
            progress.committed,
            Some(*position),
            "only what was delivered"
        );
    }
    a.close().await.expect("close");
    b.close().await.expect("close");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn group_settings_are_checked_before_joining() {
    let client = Client::lazy(ClientConfig::new("127.0.0.1:1"));
    let no_topics = GroupConfig::new("g", Vec::<String>::new());
    assert!(matches!(
        Consumer::with_group(client.clone(), no_topics).await,
        Err(skiff_client::Error::InvalidArgument(_))
    ));
    let no_name = GroupConfig::new("", ["t"]);
    assert!(matches!(
        Consumer::with_group(client.clone(), no_name).await,
        Err(skiff_client::Error::InvalidArgument(_))
    ));
    let mut plain = Consumer::new(client, ConsumerConfig::default());
    assert!(matches!(
        plain.commit().await,
        Err(skiff_client::Error::InvalidArgument(_))
    ));
}
