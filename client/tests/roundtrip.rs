//! Client against a real broker: an embedded `skiff_broker::Broker` on
//! 127.0.0.1:0 in a temporary directory, real sockets.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use skiff_broker::{Broker, BrokerConfig, BrokerHandle};
use skiff_client::{
    Client, ClientConfig, Connection, Consumer, ConsumerConfig, Error, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, StartFrom, TopicConfig,
};
use skiff_protocol::ErrorCode;
use skiff_protocol::messages::FetchRequest;

/// Upper bound on any single wait in these tests, so a bug hangs nothing.
const TEST_WAIT: Duration = Duration::from_secs(10);

async fn broker() -> (BrokerHandle, tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..BrokerConfig::default()
    };
    let handle = Broker::start(config).await.expect("broker starts");
    let client = Client::connect(
        ClientConfig::new(handle.local_addr().to_string()).reconnect_backoff(10, 50, 2),
    )
    .await
    .expect("client connects");
    (handle, dir, client)
}

fn partitions(n: u32) -> TopicConfig {
    TopicConfig {
        partitions: n,
        ..TopicConfig::default()
    }
}

async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_WAIT, fut)
        .await
        .expect("finished in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lifecycle() {
    let (broker, _dir, client) = broker().await;
    let admin = client.admin();
    admin.create_topic("orders", partitions(3)).await.unwrap();
    let err = admin
        .create_topic("orders", partitions(3))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TopicAlreadyExists), "{err}");
    assert!(matches!(
        admin.create_topic("bad/name", partitions(1)).await,
        Err(Error::InvalidTopicName(_))
    ));
    let listed = admin.list_topics().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].partitions),
        ("orders", 3)
    );
    let described = admin.describe_topic("orders").await.unwrap();
    assert_eq!(described.partitions.len(), 3);
    admin.delete_topic("orders").await.unwrap();
    let err = admin.describe_topic("orders").await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTopic { topic, .. } if topic == "orders"),
        "{err:?}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_records_come_back_in_order_with_their_offsets() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("events", partitions(3))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let sends: Vec<_> = (0..300)
        .map(|i| {
            producer.send(
                ProducerRecord::new("events", format!("value-{i}"))
                    .key(format!("key-{}", i % 7))
                    .header("i", i.to_string()),
            )
        })
        .collect();
    let acks: Vec<_> = within(futures::future::join_all(sends))
        .await
        .into_iter()
        .map(|a| a.unwrap())
        .collect();
    // Offsets per partition are 0, 1, 2, ... in send order; a key always
    // maps to one partition.
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut key_partition: HashMap<usize, u32> = HashMap::new();
    for (i, ack) in acks.iter().enumerate() {
        let expected = next.entry(ack.partition).or_default();
        assert_eq!(ack.offset, *expected, "record {i}");
        *expected += 1;
        assert_eq!(
            *key_partition.entry(i % 7).or_insert(ack.partition),
            ack.partition
        );
    }

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(50));
    assert_eq!(
        consumer
            .assign_all("events", StartFrom::Earliest)
            .await
            .unwrap(),
        3
    );
    let mut seen = HashMap::new();
    for _ in 0..300 {
        let r = within(consumer.next()).await.expect("assigned").unwrap();
        let i: usize = std::str::from_utf8(&r.headers[0].value)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(r.value, format!("value-{i}"));
        assert_eq!(r.key.as_deref(), Some(format!("key-{}", i % 7).as_bytes()));
        assert_eq!((r.partition, r.offset), (acks[i].partition, acks[i].offset));
        assert!(seen.insert(i, ()).is_none(), "record {i} delivered twice");
    }
    assert_eq!(
        consumer.position("events", acks[0].partition),
        Some(next[&acks[0].partition])
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_start_where_asked_and_skip_earlier_records_of_a_batch() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("t", partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default().linger_ms(50));
    let sends: Vec<_> = (0..10)
        .map(|i| {
            producer.send(
                ProducerRecord::new("t", format!("{i}"))
                    .partition(0)
                    .timestamp_ms(1_000 + i),
            )
        })
        .collect();
    producer.flush().await.unwrap();
    for s in sends {
        s.await.unwrap();
    }

    // The ten records share one batch; starting at 5 must skip 0..5.
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(50));
    consumer
        .assign("t", [0], StartFrom::Offset(5))
        .await
        .unwrap();
    let first = within(consumer.next()).await.unwrap().unwrap();
    assert_eq!((first.offset, &first.value[..]), (5, &b"5"[..]));

    // By time: the first record stamped at or after 1007 comes first (the
    // broker may resolve to the start of its batch; the consumer skips the
    // older records of it).
    consumer
        .seek_to("t", 0, StartFrom::Timestamp(1_007))
        .await
        .unwrap();
    let r = within(consumer.next()).await.unwrap().unwrap();
    assert_eq!((r.offset, r.timestamp_ms), (7, 1_007));

    consumer.seek("t", 0, 2).unwrap();
    let offsets: Vec<u64> = consumer
        .stream()
        .take(3)
        .map(|r| r.unwrap().offset)
        .collect()
        .await;
    assert_eq!(offsets, vec![2, 3, 4]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_at_the_end_long_polls_for_new_records() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("live", partitions(2))
        .await
        .unwrap();
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(200));
    consumer
        .assign_all("live", StartFrom::Latest)
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        producer
            .send(ProducerRecord::new("live", "late").partition(1))
            .await
    });
    let r = within(consumer.next()).await.unwrap().unwrap();
    assert_eq!((r.partition, r.offset, &r.value[..]), (1, 0, &b"late"[..]));
    sender.await.unwrap().unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_offsets_follow_the_reset_policy() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("r", partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer
        .send(ProducerRecord::new("r", "only").partition(0))
        .await
        .unwrap();

    let mut strict = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(50));
    strict
        .assign("r", [0], StartFrom::Offset(1_000))
        .await
        .unwrap();
    let err = within(strict.next()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetOutOfRange {
                offset: 1_000,
                log_end_offset: 1,
                ..
            }
        ),
        "{err:?}"
    );
    // The partition is stopped until a seek.
    assert!(within(strict.next()).await.is_none());
    strict.seek("r", 0, 0).unwrap();
    assert_eq!(within(strict.next()).await.unwrap().unwrap().offset, 0);

    let mut lenient = Consumer::new(
        client.clone(),
        ConsumerConfig::default()
            .max_wait_ms(50)
            .offset_reset(OffsetReset::Earliest),
    );
    lenient
        .assign("r", [0], StartFrom::Offset(1_000))
        .await
        .unwrap();
    assert_eq!(within(lenient.next()).await.unwrap().unwrap().offset, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_and_partitions_are_typed_errors() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("one", partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let err = within(producer.send(ProducerRecord::new("missing", "v").partition(0)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTopic { topic, .. } if topic == "missing"),
        "{err:?}"
    );
    let err = within(producer.send(ProducerRecord::new("one", "v").partition(5)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownPartition), "{err:?}");
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    let err = consumer
        .assign_all("missing", StartFrom::Earliest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_request_fails_when_the_broker_goes_away() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("p", partitions(1))
        .await
        .unwrap();
    let conn: Connection = client.connection().await.unwrap();
    let poll = tokio::spawn({
        let conn = conn.clone();
        async move {
            conn.send(FetchRequest {
                topic: "p".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1024,
                max_wait_ms: 30_000,
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    within(broker.shutdown()).await.unwrap();
    // Either the broker answers the long poll empty while shutting down, or
    // the request fails with the connection; it must not hang.
    match within(poll).await.unwrap() {
        Ok(resp) => assert!(resp.records.is_empty()),
        Err(e) => assert!(e.is_connection_error(), "{e:?}"),
    }
    // Afterwards the connection is closed and new requests fail fast.
    let err = within(client.admin().list_topics()).await.unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_batches_in_flight_keep_partition_order() {
    let (broker, _dir, client) = broker().await;
    client
        .admin()
        .create_topic("o", partitions(2))
        .await
        .unwrap();
    // ~4 records per batch, so each partition has several batches in flight.
    let config = ProducerConfig::default()
        .batch_bytes_max(256)
        .in_flight_max(5);
    let producer = Producer::new(client.clone(), config);
    let sends: Vec<_> = (0..400u32)
        .map(|i| producer.send(ProducerRecord::new("o", format!("{i:040}")).partition(i % 2)))
        .collect();
    let acks = within(futures::future::join_all(sends)).await;
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.unwrap();
        assert_eq!(
            (ack.partition, ack.offset),
            (i as u32 % 2, i as u64 / 2),
            "record {i}"
        );
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_after_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..BrokerConfig::default()
    };
    let first = Broker::start(config()).await.unwrap();
    let addr = first.local_addr();
    let client =
        Client::connect(ClientConfig::new(addr.to_string()).reconnect_backoff(10, 100, 10))
            .await
            .unwrap();
    client
        .admin()
        .create_topic("r", partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let ack = producer
        .send(ProducerRecord::new("r", "before"))
        .await
        .unwrap();
    assert_eq!(ack.offset, 0);
    let old = client.connection().await.unwrap();
    first.shutdown().await.unwrap();

    let second = Broker::start(BrokerConfig {
        listen: addr,
        ..config()
    })
    .await
    .unwrap();
    // The old connection is gone; the client notices and reconnects.
    let ack = within(producer.send(ProducerRecord::new("r", "after")))
        .await
        .unwrap();
    assert_eq!((ack.partition, ack.offset), (0, 1));
    assert!(old.is_closed());
    let mut consumer = Consumer::new(client, ConsumerConfig::default().max_wait_ms(50));
    consumer
        .assign("r", [0], StartFrom::Earliest)
        .await
        .unwrap();
    let values: Vec<_> = consumer
        .stream()
        .take(2)
        .map(|r| r.unwrap().value)
        .collect()
        .await;
    assert_eq!(values, ["before", "after"]);
    second.shutdown().await.unwrap();
}
