//! Black-box end-to-end tests: a real broker (embedded, 127.0.0.1:0, temp
//! dir) and the client crate over real sockets. Each test asserts what a
//! user would see: records with keys and headers come back intact, per-key
//! order holds across partitions, data and topics survive a restart, topic
//! deletion removes files, bad names are refused by the broker itself.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{RawConn, STEP_TIMEOUT, next_records, start_broker, test_config};
use skiff_broker::Broker;
use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Error, Producer, ProducerConfig,
    ProducerRecord, StartFrom, TopicConfig,
};
use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{CreateTopicRequest, ProduceRequest};

async fn client_for(addr: std::net::SocketAddr) -> Client {
    Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("client connects")
}

fn partitions(n: u32) -> TopicConfig {
    TopicConfig {
        partitions: n,
        ..TopicConfig::default()
    }
}

/// Reads exactly `n` records from every partition of `topic`.
async fn consume_n(client: &Client, topic: &str, n: usize) -> Vec<skiff_client::ConsumedRecord> {
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign_all(topic, StartFrom::Earliest)
        .await
        .expect("assign");
    next_records(&mut consumer, n).await
}

#[tokio::test]
async fn keys_headers_and_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    client
        .admin()
        .create_topic("kv", partitions(1))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let ack = producer
        .send(
            ProducerRecord::new("kv", "value-1")
                .key("key-1")
                .header("trace", "abc")
                .header("empty", "")
                .timestamp_ms(1_700_000_000_123),
        )
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new("kv", vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!((ack.partition, ack.offset), (0, 0));

    let records = consume_n(&client, "kv", 2).await;
    assert_eq!(records[0].key.as_deref(), Some(&b"key-1"[..]));
    assert_eq!(&records[0].value[..], b"value-1");
    assert_eq!(records[0].timestamp_ms, 1_700_000_000_123);
    let headers: Vec<(&str, &[u8])> = records[0]
        .headers
        .iter()
        .map(|h| (h.key.as_str(), &h.value[..]))
        .collect();
    assert_eq!(headers, vec![("trace", &b"abc"[..]), ("empty", &b""[..])]);
    assert_eq!(records[1].key, None);
    assert_eq!(&records[1].value[..], &[0u8, 159, 146, 150]);
    assert_eq!(records[1].offset, 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn per_key_order_holds_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    client
        .admin()
        .create_topic("orders", partitions(4))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default().linger_ms(1));
    let keys = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let per_key = 50;
    let mut acks = Vec::new();
    for i in 0..per_key {
        for key in keys {
            acks.push(producer.send(ProducerRecord::new("orders", format!("{key}-{i}")).key(key)));
        }
    }
    let mut key_partition: HashMap<&str, u32> = HashMap::new();
    for (n, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.unwrap();
        let key = keys[n % keys.len()];
        // One key always lands on one partition.
        assert_eq!(
            *key_partition.entry(key).or_insert(ack.partition),
            ack.partition
        );
    }
    let used: std::collections::HashSet<u32> = key_partition.values().copied().collect();
    assert!(
        used.len() > 1,
        "keys spread over partitions: {key_partition:?}"
    );

    let records = consume_n(&client, "orders", keys.len() * per_key).await;
    let mut next_seq: HashMap<String, usize> = HashMap::new();
    for r in &records {
        let text = String::from_utf8(r.value.to_vec()).unwrap();
        let (key, seq) = text.rsplit_once('-').unwrap();
        let seq: usize = seq.parse().unwrap();
        let expected = next_seq.entry(key.to_owned()).or_insert(0);
        assert_eq!(seq, *expected, "key {key} out of order");
        *expected += 1;
    }
    assert!(next_seq.values().all(|&n| n == per_key));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn topics_and_records_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    client
        .admin()
        .create_topic(
            "durable",
            TopicConfig {
                partitions: 2,
                retention_ms: Some(86_400_000),
                segment_bytes: Some(4096),
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..200 {
        producer
            .send(ProducerRecord::new("durable", format!("m{i}")).partition(i % 2))
            .await
            .unwrap();
    }
    drop(producer);
    drop(client);
    broker.shutdown().await.unwrap();

    let broker = Broker::start(test_config(dir.path())).await.unwrap();
    let client = client_for(broker.local_addr()).await;
    let described = client.admin().describe_topic("durable").await.unwrap();
    assert_eq!(described.config.partitions, 2);
    assert_eq!(described.config.retention_ms, Some(86_400_000));
    assert_eq!(described.config.segment_bytes, Some(4096));
    let ends: Vec<u64> = described
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    assert_eq!(ends, vec![100, 100]);
    let records = consume_n(&client, "durable", 200).await;
    let mut values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    values.sort_by_key(|v| v[1..].parse::<u32>().unwrap());
    assert_eq!(
        values,
        (0..200).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn seek_by_timestamp_lands_on_the_first_newer_record() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    client
        .admin()
        .create_topic("ts", partitions(1))
        .await
        .unwrap();
    // A long linger puts all records in one batch, so the broker must look
    // inside the batch to find the record.
    let producer = Producer::new(client.clone(), ProducerConfig::default().linger_ms(50));
    let sends: Vec<_> = (0..10)
        .map(|i| {
            producer.send(ProducerRecord::new("ts", format!("r{i}")).timestamp_ms(1000 + i * 100))
        })
        .collect();
    for s in sends {
        s.await.unwrap();
    }
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign("ts", [0], StartFrom::Timestamp(1450))
        .await
        .unwrap();
    let first = tokio::time::timeout(STEP_TIMEOUT, consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.offset, 5);
    assert_eq!(&first.value[..], b"r5");

    let mut raw = RawConn::handshaken(broker.local_addr()).await;
    let found = raw
        .call(skiff_protocol::messages::ListOffsetsRequest {
            topic: "ts".into(),
            partition: 0,
            query: skiff_protocol::messages::OffsetQuery::Timestamp(1450),
        })
        .await
        .unwrap();
    assert_eq!(found.offset, 5, "the broker resolves to the record");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    client
        .admin()
        .create_topic("lp", partitions(1))
        .await
        .unwrap();
    let mut raw = RawConn::handshaken(broker.local_addr()).await;
    let fetch = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let response = raw
            .call(skiff_protocol::messages::FetchRequest {
                topic: "lp".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
                max_wait_ms: 20_000,
            })
            .await
            .unwrap();
        (response, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer
        .send(ProducerRecord::new("lp", "wake"))
        .await
        .unwrap();
    let (response, waited) = tokio::time::timeout(STEP_TIMEOUT, fetch)
        .await
        .unwrap()
        .unwrap();
    assert!(!response.records.is_empty());
    assert_eq!(response.log_end_offset, 1);
    assert!(
        waited >= Duration::from_millis(150),
        "it waited for data: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "it did not wait out max_wait: {waited:?}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_a_topic_removes_its_files_and_later_produces_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    client
        .admin()
        .create_topic("gone", partitions(2))
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer
        .send(ProducerRecord::new("gone", "x"))
        .await
        .unwrap();
    let topic_dir = dir.path().join("topics").join("gone");
    assert!(topic_dir.is_dir());
    client.admin().delete_topic("gone").await.unwrap();
    assert!(!topic_dir.exists(), "files removed");
    assert!(client.admin().list_topics().await.unwrap().is_empty());

    let mut raw = RawConn::handshaken(broker.local_addr()).await;
    let mut builder = skiff_protocol::batch::BatchBuilder::new();
    builder.push(skiff_protocol::batch::Record {
        timestamp_ms: 0,
        key: None,
        value: bytes::Bytes::from_static(b"x"),
        headers: vec![],
    });
    let err = raw
        .call(ProduceRequest {
            topic: "gone".into(),
            partition: 0,
            batch: builder.build(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::UnknownTopic);
    assert!(err.1.contains("\"gone\""), "{}", err.1);

    let err = client.admin().delete_topic("gone").await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownTopic { .. } | Error::Broker { .. }),
        "{err}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_broker_itself_refuses_bad_topic_names() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    // A raw connection bypasses the client's own name check.
    let mut raw = RawConn::handshaken(broker.local_addr()).await;
    for bad in ["", "a/b", "..", "spaces here", "ünïcode", &"x".repeat(250)] {
        let err = raw
            .call(CreateTopicRequest {
                name: bad.to_owned(),
                config: partitions(1),
            })
            .await
            .unwrap_err();
        assert_eq!(err.0, ErrorCode::InvalidTopicName, "{bad:?}: {}", err.1);
        assert!(err.1.contains("topic name"), "{}", err.1);
    }
    let err = raw
        .call(CreateTopicRequest {
            name: "zero".into(),
            config: partitions(0),
        })
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::InvalidConfig);
    assert!(err.1.contains("partitions"), "{}", err.1);
    assert!(!dir.path().join("topics").join("..").join("x").exists());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_brokers_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let err = Broker::start(test_config(dir.path())).await.unwrap_err();
    assert!(
        matches!(err, skiff_broker::BrokerError::DataDirInUse { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    // After a clean shutdown the directory is free again.
    broker.shutdown().await.unwrap();
    let again = Broker::start(test_config(dir.path())).await.unwrap();
    again.shutdown().await.unwrap();
}
