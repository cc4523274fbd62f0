//! Black-box tests of work queues: a real broker on 127.0.0.1:0, the
//! queue APIs over real sockets (`Client::send`). Workers share one
//! partition's records, a lost lock redelivers, a nack's delay holds, too
//! many deliveries move a record to the dead-letter topic with its origin
//! in headers, key ordering holds, acks survive a restart, a closed
//! connection's locks are released at once, and queue names are refused
//! when a consumer group has them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{STEP_TIMEOUT, next_records, start_broker};
use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Error, Producer, ProducerConfig,
    ProducerRecord, QueueConsumer, QueueConsumerConfig, StartFrom, TopicConfig,
};
use skiff_protocol::messages::{
    CreateQueueRequest, DescribeQueueRequest, DescribeQueueResponse, JoinGroupRequest,
    ListQueuesRequest, QueueConfig, QueueDelivery, ReceiveRequest, SettleAction, SettleRequest,
    SettleResult, Settlement,
};

async fn client_for(addr: std::net::SocketAddr) -> Client {
    Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("client connects")
}

/// A topic of one partition with `records` (key, value).
async fn topic_with(client: &Client, topic: &str, records: &[(Option<&str>, String)]) {
    client
        .admin()
        .create_topic(
            topic,
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for (key, value) in records {
        let mut r = ProducerRecord::new(topic, value.clone());
        if let Some(k) = key {
            r = r.key(k.to_string());
        }
        producer.send(r).await.unwrap();
    }
}

async fn create_queue(client: &Client, name: &str, topic: &str, config: QueueConfig) -> String {
    client
        .send(CreateQueueRequest {
            name: name.into(),
            topic: topic.into(),
            config,
        })
        .await
        .expect("queue created")
        .dead_letter_topic
}

/// A worker: its member id and client.
struct Worker {
    client: Client,
    queue: String,
    member_id: u64,
}

impl Worker {
    fn new(client: &Client, queue: &str) -> Self {
        Self {
            client: client.clone(),
            queue: queue.into(),
            member_id: 0,
        }
    }

    async fn receive(&mut self, max_records: u32, max_wait_ms: u32) -> Vec<QueueDelivery> {
        let r = tokio::time::timeout(
            STEP_TIMEOUT,
            self.client.send(ReceiveRequest {
                queue: self.queue.clone(),
                member_id: self.member_id,
                max_records,
                max_wait_ms,
            }),
        )
        .await
        .expect("receive answers in time")
        .expect("receive");
        self.member_id = r.member_id;
        r.deliveries
    }

    async fn settle(&self, items: Vec<(&QueueDelivery, SettleAction)>) -> Vec<SettleResult> {
        let items = items
            .into_iter()
            .map(|(d, action)| Settlement {
                partition: d.partition,
                offset: d.offset,
                deliveries: d.deliveries,
                action,
            })
            .collect();
        self.client
            .send(SettleRequest {
                queue: self.queue.clone(),
                member_id: self.member_id,
                items,
            })
            .await
            .expect("settle")
            .results
    }

    async fn ack_all(&self, ds: &[QueueDelivery]) {
        let results = self
            .settle(ds.iter().map(|d| (d, SettleAction::Ack)).collect())
            .await;
        assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    }
}

async fn describe(client: &Client, name: &str) -> DescribeQueueResponse {
    client
        .send(DescribeQueueRequest { name: name.into() })
        .await
        .unwrap()
}

fn values(ds: &[QueueDelivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8(d.value.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn workers_share_one_partition_and_each_record_is_acked_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    let records: Vec<_> = (0..30).map(|i| (None, format!("job-{i}"))).collect();
    topic_with(&client, "jobs", &records).await;
    let dlq = create_queue(&client, "mail", "jobs", QueueConfig::default()).await;
    assert_eq!(dlq, "jobs.mail.dlq");
    let listed = client.send(ListQueuesRequest).await.unwrap().queues;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].topic.as_str()),
        ("mail", "jobs")
    );

    let mut workers: Vec<_> = (0..3).map(|_| Worker::new(&client, "mail")).collect();
    let mut seen = BTreeSet::new();
    let mut per_worker = vec![0; 3];
    // Each worker takes 5 at a time, round robin, until all 30 are done.
    for _round in 0..20 {
        for (i, w) in workers.iter_mut().enumerate() {
            let ds = w.receive(5, 0).await;
            for d in &ds {
                assert_eq!(d.deliveries, 1);
                assert!(
                    seen.insert(d.offset),
                    "offset {} handed out twice",
                    d.offset
                );
            }
            per_worker[i] += ds.len();
            w.ack_all(&ds).await;
        }
        if seen.len() == 30 {
            break;
        }
    }
    assert_eq!(seen, (0..30).collect());
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "every worker got work: {per_worker:?}"
    );
    let d = describe(&client, "mail").await;
    assert_eq!(d.settings.dead_letter_topic, "jobs.mail.dlq");
    let p = &d.partitions[0];
    assert_eq!((p.floor, p.acked, p.available, p.in_flight), (30, 30, 0, 0));
    // Nothing is left to hand out.
    assert!(workers[0].receive(10, 0).await.is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_lost_lock_redelivers_and_the_late_ack_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    topic_with(&client, "jobs", &[(None, "only".into())]).await;
    let config = QueueConfig {
        lock_ms: Some(300),
        ..QueueConfig::default()
    };
    create_queue(&client, "q", "jobs", config).await;
    let mut dead = Worker::new(&client, "q");
    let first = dead.receive(1, 0).await;
    assert_eq!(values(&first), ["only"]);
    // Another worker waits; the first never answers and its lock runs out.
    let mut alive = Worker::new(&client, "q");
    let mut again = Vec::new();
    for _ in 0..10 {
        again = alive.receive(1, 1000).await;
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(values(&again), ["only"]);
    assert_eq!(again[0].deliveries, 2);
    assert!(again[0].lock_deadline_ms > first[0].lock_deadline_ms);
    let late = dead.settle(vec![(&first[0], SettleAction::Ack)]).await;
    assert!(late[0].error.as_deref().unwrap().contains("lock not held"));
    alive.ack_all(&again).await;
    let p = &describe(&client, "q").await.partitions[0];
    assert_eq!((p.floor, p.acked, p.lock_expiries), (1, 1, 1));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_nacked_record_waits_for_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    topic_with(&client, "jobs", &[(None, "retry-me".into())]).await;
    create_queue(&client, "q", "jobs", QueueConfig::default()).await;
    let mut w = Worker::new(&client, "q");
    let ds = w.receive(1, 0).await;
    let nacked_at = skiff_now_ms();
    let r = w
        .settle(vec![(&ds[0], SettleAction::Nack { delay_ms: 3000 })])
        .await;
    assert_eq!(r[0].error, None);
    assert!(w.receive(1, 0).await.is_empty(), "not before its delay");
    assert_eq!(describe(&client, "q").await.partitions[0].delayed, 1);
    let mut again = Vec::new();
    for _ in 0..10 {
        again = w.receive(1, 2000).await;
        if !again.is_empty() {
            break;
        }
    }
    assert!(skiff_now_ms() >= nacked_at + 3000, "redelivered early");
    assert_eq!(
        (values(&again)[0].as_str(), again[0].deliveries),
        ("retry-me", 2)
    );
    broker.shutdown().await.unwrap();
}

fn skiff_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn max_deliveries_and_reject_dead_letter_with_origin_headers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    topic_with(
        &client,
        "jobs",
        &[(Some("k"), "poison".into()), (None, "bad-input".into())],
    )
    .await;
    let config = QueueConfig {
        max_deliveries: Some(2),
        ..QueueConfig::default()
    };
    let dlq = create_queue(&client, "q", "jobs", config).await;
    let mut w = Worker::new(&client, "q");
    let ds = w.receive(2, 0).await;
    assert_eq!(values(&ds), ["poison", "bad-input"]);
    let r = w
        .settle(vec![
            (&ds[0], SettleAction::Nack { delay_ms: 0 }),
            (
                &ds[1],
                SettleAction::Reject {
                    reason: "unparsable".into(),
                },
            ),
        ])
        .await;
    assert!(r.iter().all(|r| r.error.is_none()));
    let ds = w.receive(2, 0).await;
    assert_eq!((values(&ds)[0].as_str(), ds[0].deliveries), ("poison", 2));
    w.settle(vec![(&ds[0], SettleAction::Nack { delay_ms: 0 })])
        .await;
    assert!(w.receive(2, 0).await.is_empty());

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign_all(&dlq, StartFrom::Earliest)
        .await
        .unwrap();
    let dead = next_records(&mut consumer, 2).await;
    let header = |r: &skiff_client::ConsumedRecord, k: &str| {
        let h = r.headers.iter().find(|h| h.key == k).expect(k);
        String::from_utf8(h.value.to_vec()).unwrap()
    };
    let reject = &dead[0];
    assert_eq!(reject.value, "bad-input");
    assert_eq!(header(reject, "skiff-dlq-reason"), "unparsable");
    assert_eq!(header(reject, "skiff-dlq-offset"), "1");
    assert_eq!(header(reject, "skiff-dlq-deliveries"), "1");
    let poison = &dead[1];
    assert_eq!(poison.value, "poison");
    assert_eq!(poison.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(header(poison, "skiff-dlq-topic"), "jobs");
    assert_eq!(header(poison, "skiff-dlq-partition"), "0");
    assert_eq!(header(poison, "skiff-dlq-offset"), "0");
    assert_eq!(header(poison, "skiff-dlq-deliveries"), "2");
    assert!(header(poison, "skiff-dlq-reason").contains("max_deliveries 2"));
    let p = &describe(&client, "q").await.partitions[0];
    assert_eq!((p.floor, p.dead_lettered), (2, 2));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn key_ordering_holds_a_key_until_its_earlier_record_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    topic_with(
        &client,
        "orders",
        &[
            (Some("c1"), "c1-a".into()),
            (Some("c1"), "c1-b".into()),
            (Some("c2"), "c2-a".into()),
        ],
    )
    .await;
    let config = QueueConfig {
        ordering: Some("key".into()),
        ..QueueConfig::default()
    };
    create_queue(&client, "per-customer", "orders", config).await;
    let mut a = Worker::new(&client, "per-customer");
    let mut b = Worker::new(&client, "per-customer");
    let first = a.receive(10, 0).await;
    assert_eq!(values(&first), ["c1-a", "c2-a"]);
    assert!(b.receive(10, 0).await.is_empty(), "c1-b waits for c1-a");
    // A redelivery of c1-a still comes before c1-b.
    a.settle(vec![(&first[0], SettleAction::Nack { delay_ms: 0 })])
        .await;
    let redo = b.receive(10, 0).await;
    assert_eq!((values(&redo)[0].as_str(), redo[0].deliveries), ("c1-a", 2));
    assert_eq!(redo.len(), 1);
    b.ack_all(&redo).await;
    let next = b.receive(10, 0).await;
    assert_eq!(values(&next), ["c1-b"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn acks_survive_a_restart_and_unacked_records_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    let records: Vec<_> = (0..4).map(|i| (None, format!("r{i}"))).collect();
    topic_with(&client, "jobs", &records).await;
    create_queue(&client, "q", "jobs", QueueConfig::default()).await;
    let mut w = Worker::new(&client, "q");
    let ds = w.receive(4, 0).await;
    w.ack_all(&[ds[0].clone(), ds[2].clone()]).await;
    drop(client);
    broker.shutdown().await.unwrap();

    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    let mut w = Worker::new(&client, "q");
    let ds = w.receive(10, 0).await;
    assert_eq!(values(&ds), ["r1", "r3"]);
    assert!(ds.iter().all(|d| d.deliveries == 2));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_name_is_a_group_or_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    topic_with(&client, "jobs", &[]).await;
    client
        .send(JoinGroupRequest {
            group: "billing".into(),
            topics: vec!["jobs".into()],
            client_id: "c".into(),
            session_timeout_ms: 0,
            member_id: None,
        })
        .await
        .unwrap();
    let taken = client
        .send(CreateQueueRequest {
            name: "billing".into(),
            topic: "jobs".into(),
            config: QueueConfig::default(),
        })
        .await;
    assert!(
        matches!(&taken, Err(Error::Broker { message, .. }) if message.contains("consumer group")),
        "{taken:?}"
    );
    create_queue(&client, "mail", "jobs", QueueConfig::default()).await;
    let join = client
        .send(JoinGroupRequest {
            group: "mail".into(),
            topics: vec!["jobs".into()],
            client_id: "c".into(),
            session_timeout_ms: 0,
            member_id: None,
        })
        .await;
    assert!(
        matches!(&join, Err(Error::Broker { message, .. }) if message.contains("work queue")),
        "{join:?}"
    );
    // The dead-letter topic exists now: a second queue naming it is refused.
    let dup = client
        .send(CreateQueueRequest {
            name: "other".into(),
            topic: "jobs".into(),
            config: QueueConfig {
                dead_letter_topic: Some("jobs.mail.dlq".into()),
                ..QueueConfig::default()
            },
        })
        .await;
    assert!(
        matches!(&dup, Err(Error::Broker { message, .. }) if message.contains("is taken")),
        "{dup:?}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_queue_consumer_acks_nacks_extends_and_releases_dropped_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    let records: Vec<_> = (0..3).map(|i| (None, format!("r{i}"))).collect();
    topic_with(&client, "jobs", &records).await;
    create_queue(&client, "q", "jobs", QueueConfig::default()).await;
    let config = QueueConsumerConfig {
        max_records: 1,
        max_wait_ms: 200,
    };
    let mut a = QueueConsumer::new(client.clone(), "q", config.clone());
    // Several in flight at once.
    let mut d0 = next_delivery(&mut a).await;
    let d1 = next_delivery(&mut a).await;
    assert_eq!(
        (d0.value().as_ref(), d1.value().as_ref()),
        (&b"r0"[..], &b"r1"[..])
    );
    assert_eq!(d0.deliveries(), 1);
    let old = d0.lock_deadline_ms();
    assert!(d0.extend(Duration::from_secs(120)).await.unwrap() > old);
    d0.ack().await.unwrap();
    d1.nack(Duration::ZERO).await.unwrap();
    let d = next_delivery(&mut a).await;
    assert_eq!((d.value().as_ref(), d.deliveries()), (&b"r1"[..], 2));
    // Dropped without a verdict: released, another consumer gets it.
    drop(d);
    let mut b = QueueConsumer::new(client.clone(), "q", config);
    let mut got = Vec::new();
    for _ in 0..2 {
        let d = next_delivery(&mut b).await;
        got.push((
            String::from_utf8(d.value().to_vec()).unwrap(),
            d.deliveries(),
        ));
        d.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, [("r1".to_string(), 3), ("r2".to_string(), 1)]);
    let p = &describe(&client, "q").await.partitions[0];
    assert_eq!((p.floor, p.acked), (3, 3));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_closed_connection_releases_its_locks_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let admin = client_for(broker.local_addr()).await;
    let records: Vec<_> = (0..4).map(|i| (None, format!("job-{i}"))).collect();
    topic_with(&admin, "jobs", &records).await;
    // A lock far longer than this test waits: the records can only come
    // back because the connection closed, not because a lock ran out.
    let config = QueueConfig {
        lock_ms: Some(60_000),
        ..QueueConfig::default()
    };
    create_queue(&admin, "q", "jobs", config).await;

    // Worker A, on a connection of its own, takes three records and dies.
    let doomed = client_for(broker.local_addr()).await;
    let mut a = Worker::new(&doomed, "q");
    let taken = a.receive(3, 0).await;
    assert_eq!(values(&taken), ["job-0", "job-1", "job-2"]);
    let p = &describe(&admin, "q").await.partitions[0];
    assert_eq!((p.in_flight, p.available), (3, 1));
    drop(a);
    drop(doomed);

    // Worker B gets all four, the three released ones on their second
    // delivery, long before A's locks would have run out.
    let mut b = Worker::new(&admin, "q");
    let mut got = Vec::new();
    for _ in 0..100 {
        let ds = b.receive(10, 100).await;
        b.ack_all(&ds).await;
        got.extend(
            ds.iter()
                .map(|d| (String::from_utf8(d.value.to_vec()).unwrap(), d.deliveries)),
        );
        if got.len() >= 4 {
            break;
        }
    }
    got.sort();
    let expected: Vec<_> = [("job-0", 2), ("job-1", 2), ("job-2", 2), ("job-3", 1)]
        .into_iter()
        .map(|(v, n)| (v.to_string(), n))
        .collect();
    assert_eq!(got, expected);
    let p = &describe(&admin, "q").await.partitions[0];
    assert_eq!((p.floor, p.acked, p.lock_expiries), (4, 4, 0));
    broker.shutdown().await.unwrap();
}

async fn next_delivery(c: &mut QueueConsumer) -> skiff_client::Delivery {
    tokio::time::timeout(STEP_TIMEOUT, c.next())
        .await
        .expect("a delivery in time")
        .expect("delivery")
}
