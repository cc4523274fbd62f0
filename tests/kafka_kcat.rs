//! kcat (librdkafka, a Kafka client no one here wrote) against a real
//! broker's Kafka listener: `-L`, `-P` with keys and headers (plain,
//! compressed, idempotent), `-C -o beginning -e`, and what each side wrote
//! read through the other protocol: kcat's records through skiff's client
//! with the same key, value, headers, timestamp and offset, and skiff's
//! records through kcat. `.ci/run` installs kcat; without it these fail.

mod common;

use std::time::Duration;

use common::kafka::{installed, kafka_addr, run_bounded, start_kafka_broker};
use common::next_records;
use skiff_client::{
    Client, ClientConfig, ConsumedRecord, Consumer, ConsumerConfig, Producer, ProducerConfig,
    ProducerRecord, StartFrom, TopicConfig,
};

/// Longest one kcat run may take.
const KCAT_LIMIT: Duration = Duration::from_secs(30);

/// Runs kcat against `broker` with `args`, on a blocking thread (the broker
/// runs in this process); panics with its stderr when it fails.
async fn kcat(broker: std::net::SocketAddr, args: &[&str], stdin: Option<&str>) -> String {
    assert!(
        installed("kcat"),
        "kcat is not installed (apt-get install -y kcat; .ci/run does)"
    );
    let mut all = vec!["-b".to_owned(), broker.to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let stdin = stdin.map(|s| s.as_bytes().to_vec());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        run_bounded("kcat", &args, stdin.as_deref(), KCAT_LIMIT)
    })
    .await
    .expect("kcat thread");
    assert!(
        out.status.success(),
        "kcat {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

async fn skiff_records(addr: std::net::SocketAddr, topic: &str, n: usize) -> Vec<ConsumedRecord> {
    let client = Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("client connects");
    let mut consumer = Consumer::new(client, ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign_all(topic, StartFrom::Earliest)
        .await
        .expect("assign");
    next_records(&mut consumer, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_lists_produces_and_consumes_and_skiff_reads_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let kafka = kafka_addr(&broker);

    // -P with keys and a header; the topic is created through Metadata.
    kcat(
        kafka,
        &["-P", "-t", "orders", "-K", ":", "-H", "trace=abc"],
        Some("alice:first\nbob:second\n"),
    )
    .await;
    // -L: this broker at its advertised (bound) address, and the topic.
    let listing = kcat(kafka, &["-L", "-t", "orders"], None).await;
    assert!(
        listing.contains(&format!("broker 0 at {kafka}")),
        "{listing}"
    );
    assert!(
        listing.contains("topic \"orders\" with 1 partitions"),
        "{listing}"
    );

    // -C -o beginning -e: what kcat wrote, with offsets and timestamps.
    let consumed = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "orders",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k|%s|%o|%T|%h\n",
        ],
        None,
    )
    .await;
    let lines: Vec<Vec<&str>> = consumed.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(lines.len(), 2, "{consumed}");
    assert_eq!(lines[0][..3], ["alice", "first", "0"]);
    assert_eq!(lines[1][..3], ["bob", "second", "1"]);
    assert_eq!(lines[0][4], "trace=abc");

    // The same records through skiff's own protocol and client.
    let records = skiff_records(broker.local_addr(), "orders", 2).await;
    for (record, line) in records.iter().zip(&lines) {
        assert_eq!(record.key.as_deref(), Some(line[0].as_bytes()));
        assert_eq!(&record.value[..], line[1].as_bytes());
        assert_eq!(record.offset.to_string(), line[2]);
        assert_eq!(record.timestamp_ms.to_string(), line[3]);
        assert_eq!(record.headers.len(), 1);
        assert_eq!(record.headers[0].key, "trace");
        assert_eq!(&record.headers[0].value[..], b"abc");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_reads_what_skiff_produced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let client = Client::connect(ClientConfig::new(broker.local_addr().to_string()))
        .await
        .expect("client connects");
    client
        .admin()
        .create_topic(
            "native",
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create topic");
    let producer = Producer::new(client, ProducerConfig::default());
    for (i, key) in ["k0", "k1", "k2"].iter().enumerate() {
        producer
            .send(
                ProducerRecord::new("native", format!("value-{i}"))
                    .key(*key)
                    .header("h", format!("x{i}"))
                    .timestamp_ms(1_700_000_000_000 + i as i64),
            )
            .await
            .expect("skiff produce");
    }
    let consumed = kcat(
        kafka_addr(&broker),
        &[
            "-C",
            "-t",
            "native",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k|%s|%o|%T|%h\n",
        ],
        None,
    )
    .await;
    let want: Vec<String> = (0..3)
        .map(|i| format!("k{i}|value-{i}|{i}|{}|h=x{i}", 1_700_000_000_000i64 + i))
        .collect();
    assert_eq!(consumed.lines().collect::<Vec<_>>(), want);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_compressed_and_idempotent_batches_are_readable_from_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let kafka = kafka_addr(&broker);
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        kcat(
            kafka,
            &["-P", "-t", "packed", "-K", ":", "-z", codec],
            Some(&format!("{codec}:{}\n", codec.repeat(50))),
        )
        .await;
    }
    kcat(
        kafka,
        &[
            "-P",
            "-t",
            "packed",
            "-K",
            ":",
            "-X",
            "enable.idempotence=true",
        ],
        Some("idem:one\nidem:two\n"),
    )
    .await;
    let records = skiff_records(broker.local_addr(), "packed", 6).await;
    for (record, codec) in records.iter().zip(codecs) {
        assert_eq!(record.key.as_deref(), Some(codec.as_bytes()));
        assert_eq!(record.value, codec.repeat(50).as_bytes());
    }
    assert_eq!(&records[4].value[..], b"one");
    assert_eq!(&records[5].value[..], b"two");
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    // And back out through kcat, compressed batches re-encoded with their
    // codec.
    let consumed = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "packed",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%o\n",
        ],
        None,
    )
    .await;
    assert_eq!(
        consumed.lines().collect::<Vec<_>>(),
        ["gzip=0", "snappy=1", "lz4=2", "zstd=3", "idem=4", "idem=5"]
    );
    broker.shutdown().await.unwrap();
}
