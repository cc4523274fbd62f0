//! Work queues under SIGKILL: `skiffd --fsync always` as a child process,
//! killed while workers ack, nack and reject, restarted on the same port.
//! Checked: every record ends acknowledged or in the dead-letter topic,
//! never both; no record is in the dead-letter topic twice; no record whose
//! ack was answered is ever handed out again; at the end the queue's floor
//! is past every record.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    StartFrom, TopicConfig,
};
use skiff_protocol::messages::{
    CreateQueueRequest, DescribeQueueRequest, QueueConfig, ReceiveRequest, SettleAction,
    SettleRequest, Settlement,
};
use tokio::time::Instant;

const RECORDS: u64 = 500;
const WORKERS: usize = 4;
const KILLS: usize = 3;
/// How long the run may take in all before it fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

struct Skiffd(std::process::Child);

impl Drop for Skiffd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16) -> Skiffd {
    let mut last = String::new();
    // The killed process's port may take a moment to be free again.
    for _ in 0..50 {
        match try_start(dir, port) {
            Ok(s) => return s,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("skiffd did not start: {last}");
}

fn try_start(dir: &Path, port: u16) -> Result<Skiffd, String> {
    use std::io::BufRead;
    let stderr_path = dir.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skiffd"))
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
    if line.starts_with("skiffd listening on ") {
        Ok(child)
    } else {
        Err(std::fs::read_to_string(&stderr_path).unwrap_or_default())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// What the workers saw, shared.
#[derive(Default)]
struct Seen {
    /// Offsets whose ack was answered OK.
    acked: BTreeSet<u64>,
    /// Offsets whose ack or reject got no answer (the broker died): done or
    /// not, either is right.
    unknown: BTreeSet<u64>,
    /// Violations: an offset handed out after its ack was answered.
    redelivered_after_ack: Vec<u64>,
}

/// The verdict for a delivery, fixed by offset and count so it is
/// reproducible: mostly acks, some nacks, a few rejects.
fn verdict(offset: u64, deliveries: u32) -> SettleAction {
    match (offset * 7 + u64::from(deliveries) * 3) % 10 {
        0..=6 => SettleAction::Ack,
        7 | 8 => SettleAction::Nack { delay_ms: 0 },
        _ => SettleAction::Reject {
            reason: "torture".into(),
        },
    }
}

async fn worker(client: Client, seen: Arc<Mutex<Seen>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut member_id = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let received = client
            .send(ReceiveRequest {
                queue: "q".into(),
                member_id,
                max_records: 5,
                max_wait_ms: 100,
            })
            .await;
        let Ok(received) = received else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        member_id = received.member_id;
        for d in received.deliveries {
            {
                let mut s = seen.lock().unwrap();
                if s.acked.contains(&d.offset) {
                    s.redelivered_after_ack.push(d.offset);
                }
            }
            let action = verdict(d.offset, d.deliveries);
            let is_ack = matches!(action, SettleAction::Ack);
            let finishing = !matches!(action, SettleAction::Nack { .. });
            let answer = client
                .send(SettleRequest {
                    queue: "q".into(),
                    member_id,
                    items: vec![Settlement {
                        partition: d.partition,
                        offset: d.offset,
                        deliveries: d.deliveries,
                        action,
                    }],
                })
                .await;
            let mut s = seen.lock().unwrap();
            match answer {
                Ok(r) if r.results[0].error.is_none() && is_ack => {
                    s.acked.insert(d.offset);
                }
                Ok(_) => {}
                Err(_) if finishing => {
                    s.unknown.insert(d.offset);
                }
                Err(_) => {}
            }
        }
    }
}

async fn client_for(addr: SocketAddr) -> Client {
    for _ in 0..100 {
        if let Ok(c) = Client::connect(ClientConfig::new(addr.to_string())).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {addr}");
}

#[test]
fn queue_state_survives_sigkill_during_acks_nacks_and_dead_letters() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async { tokio::time::timeout(RUN_TIMEOUT, run()).await })
        .expect("the torture finishes in time");
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut broker = start(&data, port);
    let client = client_for(addr).await;
    client
        .admin()
        .create_topic(
            "jobs",
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..RECORDS {
        producer
            .send(ProducerRecord::new("jobs", format!("r{i}")))
            .await
            .unwrap();
    }
    client
        .send(CreateQueueRequest {
            name: "q".into(),
            topic: "jobs".into(),
            config: QueueConfig {
                max_deliveries: Some(3),
                ..QueueConfig::default()
            },
        })
        .await
        .unwrap();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(client.clone(), Arc::clone(&seen), Arc::clone(&stop))))
        .collect();
    for kill in 0..KILLS {
        // Killed with work in flight: after a fifth, two fifths, ... of the
        // records were acked.
        let target = (kill as u64 + 1) * RECORDS / 5;
        let waited = Instant::now();
        while (seen.lock().unwrap().acked.len() as u64) < target {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "no progress before kill {kill}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        broker.0.kill().expect("kill -9");
        let _ = broker.0.wait();
        broker = start(&data, port);
    }
    // Run until the broker says every record is finished.
    let began = Instant::now();
    loop {
        if let Ok(d) = client.send(DescribeQueueRequest { name: "q".into() }).await {
            assert!(d.partitions[0].floor <= RECORDS);
            if d.partitions[0].floor == RECORDS {
                break;
            }
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign_all("jobs.q.dlq", StartFrom::Earliest)
        .await
        .unwrap();
    let mut dead: BTreeMap<u64, usize> = BTreeMap::new();
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await {
        let r = r.unwrap();
        let h = r
            .headers
            .iter()
            .find(|h| h.key == "skiff-dlq-offset")
            .expect("origin offset header");
        let origin: u64 = std::str::from_utf8(&h.value).unwrap().parse().unwrap();
        *dead.entry(origin).or_default() += 1;
    }
    let s = seen.lock().unwrap();
    assert!(
        s.redelivered_after_ack.is_empty(),
        "acked then redelivered: {:?}",
        s.redelivered_after_ack
    );
    let twice: Vec<_> = dead.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "dead-lettered twice: {twice:?}");
    let both: Vec<_> = s.acked.iter().filter(|o| dead.contains_key(o)).collect();
    assert!(both.is_empty(), "acked and dead-lettered: {both:?}");
    let lost: Vec<_> = (0..RECORDS)
        .filter(|o| !s.acked.contains(o) && !dead.contains_key(o) && !s.unknown.contains(o))
        .collect();
    assert!(lost.is_empty(), "neither acked nor dead-lettered: {lost:?}");
    assert!(!dead.is_empty() && !s.acked.is_empty());
    drop(broker);
}
