//! kafka-python (a pure-Python Kafka client no one here wrote) against a
//! real broker's Kafka listener: it produces with keys and headers and
//! skiff's client reads the same records; skiff's client produces and
//! kafka-python reads them. The client lives in a venv under the target
//! directory (`target/kafka-python`), created on first use from PyPI.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::kafka::{kafka_addr, run_bounded, start_kafka_broker};
use common::next_records;
use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    StartFrom, TopicConfig,
};

/// The kafka-python release line the test uses.
const KAFKA_PYTHON: &str = "kafka-python>=2.2,<3";
/// Longest the venv set-up or one client run may take.
const SETUP_LIMIT: Duration = Duration::from_secs(300);
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn venv() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("kafka-python")
}

/// The venv's python with kafka-python importable, set up if needed.
fn python() -> String {
    let dir = venv();
    let python = dir.join("bin/python").to_string_lossy().into_owned();
    let ready = |python: &str| {
        run_bounded(python, &["-c", "import kafka"], None, RUN_LIMIT)
            .status
            .success()
    };
    if std::path::Path::new(&python).exists() && ready(&python) {
        return python;
    }
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = run_bounded("python3", &["-m", "venv", &dir_arg], None, SETUP_LIMIT);
    assert!(
        out.status.success(),
        "python3 -m venv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pip = dir.join("bin/pip").to_string_lossy().into_owned();
    let out = run_bounded(&pip, &["install", "-q", KAFKA_PYTHON], None, SETUP_LIMIT);
    assert!(
        out.status.success(),
        "pip install {KAFKA_PYTHON}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ready(&python), "kafka-python does not import after install");
    python
}

async fn client(args: Vec<String>, stdin: Option<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        let python = python();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_python/client.py");
        let mut all = vec![script];
        all.extend(args.iter().map(String::as_str));
        run_bounded(
            &python,
            &all,
            stdin.as_deref().map(str::as_bytes),
            RUN_LIMIT,
        )
    })
    .await
    .expect("client thread");
    assert!(
        out.status.success(),
        "kafka-python failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_and_skiff_read_each_others_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let kafka = kafka_addr(&broker).to_string();

    // kafka-python produces; skiff reads.
    let offsets = client(
        vec![kafka.clone(), "produce".into(), "from-python".into()],
        Some("alice:one\nbob:two\n".into()),
    )
    .await;
    assert_eq!(offsets.lines().collect::<Vec<_>>(), ["0", "1"]);
    let skiff = Client::connect(ClientConfig::new(broker.local_addr().to_string()))
        .await
        .expect("client connects");
    let mut consumer = Consumer::new(skiff.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign_all("from-python", StartFrom::Earliest)
        .await
        .expect("assign");
    let records = next_records(&mut consumer, 2).await;
    for (record, (key, value)) in records.iter().zip([("alice", "one"), ("bob", "two")]) {
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(&record.value[..], value.as_bytes());
        assert_eq!(record.headers[0].key, "source");
        assert_eq!(&record.headers[0].value[..], b"kafka-python");
    }
    // kafka-python reads them back with the offsets and timestamps skiff
    // reports.
    let read = client(
        vec![
            kafka.clone(),
            "consume".into(),
            "from-python".into(),
            "2".into(),
        ],
        None,
    )
    .await;
    let lines: Vec<serde_json::Value> = read
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for (line, record) in lines.iter().zip(&records) {
        assert_eq!(line["offset"], record.offset);
        assert_eq!(line["timestamp"], record.timestamp_ms);
    }

    // skiff produces; kafka-python reads.
    skiff
        .admin()
        .create_topic(
            "from-skiff",
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create");
    let producer = Producer::new(skiff, ProducerConfig::default());
    producer
        .send(
            ProducerRecord::new("from-skiff", "payload")
                .key("k")
                .header("h", "v")
                .timestamp_ms(1_700_000_000_123),
        )
        .await
        .expect("produce");
    let read = client(
        vec![kafka, "consume".into(), "from-skiff".into(), "1".into()],
        None,
    )
    .await;
    let line: serde_json::Value = serde_json::from_str(read.trim()).expect("json");
    assert_eq!(line["key"], "k");
    assert_eq!(line["value"], "payload");
    assert_eq!(line["offset"], 0);
    assert_eq!(line["timestamp"], 1_700_000_000_123i64);
    assert_eq!(line["headers"], serde_json::json!([["h", "v"]]));
    broker.shutdown().await.unwrap();
}
