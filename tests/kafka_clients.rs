//! Real Kafka clients that no one here wrote, against skiffd's Kafka
//! listener: kcat, librdkafka (confluent-kafka), kafka-python, kafkajs,
//! franz-go and the Java client 4.x. Each test starts a real broker with
//! `kafka_listen` on 127.0.0.1:0, runs a client program from
//! `tests/kafka-clients/` as a subprocess (bounded by `CLIENT_TIMEOUT`),
//! and checks what it wrote through skiff's own client (key, value,
//! headers, timestamp, offset), and the reverse: records that skiff's
//! client produced read back by the Kafka client.
//!
//! The clients are installed by `.ci/kafka-clients` into
//! `target/kafka-clients/`. A missing one fails the test when
//! `SKIFF_KAFKA_CLIENTS=required` (`.ci/run` sets it for this test binary
//! alone: skiffd refuses unknown `SKIFF_*` variables, and other test
//! binaries start skiffd); otherwise the test prints
//! a skip line naming the tool and passes without checking anything.
//!
//! The programs print one JSON object per line (`produced`, `record`,
//! `owned`, `committed`, `left`, `done`); group members leave their group
//! when the test writes `leave` to their stdin, so hand-overs are driven
//! by events, never by sleeping.

mod common;
mod pki;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::kafka::{kafka_addr, start_kafka_broker};
use common::next_records;
use serde_json::Value;
use skiff_broker::BrokerHandle;
use skiff_client::{
    Client, ClientConfig, ConsumedRecord, Consumer, ConsumerConfig, Producer, ProducerConfig,
    ProducerRecord, StartFrom, TopicConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Longest a client program may run: JVM start, metadata retries and a
/// group rebalance fit with room on a loaded 2-core CI machine.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest a group test waits for the next event of its members (a
/// rebalance waits for every member's next poll, at most a few seconds).
const GROUP_EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `SKIFF_KAFKA_CLIENTS=required`: a missing client fails the test.
const REQUIRED_ENV: &str = "SKIFF_KAFKA_CLIENTS";

/// Timestamps of the records skiff's client produces for the Kafka
/// clients to read (fixed, so a test can compare them exactly).
const SKIFF_TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `.ci/kafka-clients` installs everything.
fn installed() -> PathBuf {
    repo().join("target/kafka-clients")
}

fn programs() -> PathBuf {
    repo().join("tests/kafka-clients")
}

/// One of the third-party clients.
#[derive(Debug, Clone, Copy)]
enum Tool {
    Kcat,
    Confluent,
    KafkaPython,
    Kafkajs,
    FranzGo,
    Java,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Kcat => "kcat",
            Tool::Confluent => "confluent-kafka (Python venv)",
            Tool::KafkaPython => "kafka-python (Python venv)",
            Tool::Kafkajs => "kafkajs (node + node_modules)",
            Tool::FranzGo => "franz-go (franzgo-client)",
            Tool::Java => "the Java Kafka client (java + classes and lib)",
        }
    }

    /// The files that must exist for the tool to run.
    fn needs(self) -> Vec<PathBuf> {
        let k = installed();
        match self {
            Tool::Kcat => vec![which("kcat")],
            Tool::Confluent | Tool::KafkaPython => vec![k.join("venv/bin/python")],
            Tool::Kafkajs => vec![which("node"), k.join("node/node_modules/kafkajs")],
            Tool::FranzGo => vec![k.join("bin/franzgo-client")],
            Tool::Java => vec![
                which("java"),
                k.join("java/classes/skiff/kc/Main.class"),
                k.join("java/lib"),
            ],
        }
    }

    /// The command that runs the tool with `bootstrap`, before its own
    /// arguments.
    fn command(self, bootstrap: &str) -> Command {
        let k = installed();
        let mut cmd = match self {
            Tool::Kcat => {
                let mut c = Command::new("kcat");
                c.args(["-b", bootstrap]);
                return c;
            }
            Tool::Confluent | Tool::KafkaPython => {
                let script = match self {
                    Tool::Confluent => "confluent_client.py",
                    _ => "kafka_python_client.py",
                };
                let mut c = Command::new(k.join("venv/bin/python"));
                c.arg(programs().join("python").join(script));
                c
            }
            Tool::Kafkajs => {
                let mut c = Command::new("node");
                c.env("NODE_PATH", k.join("node/node_modules"));
                c.arg(programs().join("node/kafkajs_client.js"));
                c
            }
            Tool::FranzGo => {
                let mut c = Command::new(k.join("bin/franzgo-client"));
                c.args(["-bootstrap", bootstrap]);
                return c;
            }
            Tool::Java => {
                let mut c = Command::new("java");
                let classpath = format!(
                    "{}:{}/*",
                    k.join("java/classes").display(),
                    k.join("java/lib").display()
                );
                c.args(["-cp", &classpath, "skiff.kc.Main"]);
                c
            }
        };
        cmd.args(["--bootstrap", bootstrap]);
        cmd
    }
}

/// The path of `program` on `PATH`, or a path that does not exist.
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(format!("<{program} not on PATH>")))
}

/// Whether every tool in `tools` is installed. A missing one fails the
/// test under `SKIFF_KAFKA_CLIENTS=required`, else prints a skip line.
fn have(test: &str, tools: &[Tool]) -> bool {
    for &tool in tools {
        if let Some(missing) = tool.needs().into_iter().find(|p| !p.exists()) {
            let message = format!(
                "{} is not installed ({} is missing): run .ci/kafka-clients",
                tool.name(),
                missing.display()
            );
            if std::env::var(REQUIRED_ENV).as_deref() == Ok("required") {
                panic!("{test}: {message} ({REQUIRED_ENV}=required)");
            }
            // Straight to stderr: the test harness captures eprintln!, and
            // a skip must be seen in a passing run.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "skipping {test}: {message}");
            return false;
        }
    }
    true
}

/// A broker with both listeners on 127.0.0.1:0, and a skiff client.
struct Setup {
    _broker: BrokerHandle,
    client: Client,
    bootstrap: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_kafka_broker(dir.path()).await;
    let client = Client::connect(ClientConfig::new(broker.local_addr().to_string()))
        .await
        .expect("skiff client connects");
    Setup {
        bootstrap: kafka_addr(&broker).to_string(),
        _broker: broker,
        client,
        _dir: dir,
    }
}

impl Setup {
    async fn create_topic(&self, topic: &str, partitions: u32) {
        self.client
            .admin()
            .create_topic(
                topic,
                TopicConfig {
                    partitions,
                    ..TopicConfig::default()
                },
            )
            .await
            .expect("skiff creates the topic");
    }

    /// Every record of `topic` (expecting `n`), read by skiff's consumer,
    /// keyed by (partition, offset).
    async fn skiff_read(&self, topic: &str, n: usize) -> BTreeMap<(u32, u64), ConsumedRecord> {
        let mut consumer = Consumer::new(
            self.client.clone(),
            ConsumerConfig::default().max_wait_ms(100),
        );
        consumer
            .assign_all(topic, StartFrom::Earliest)
            .await
            .expect("skiff consumer assigns");
        next_records(&mut consumer, n)
            .await
            .into_iter()
            .map(|r| ((r.partition, r.offset), r))
            .collect()
    }

    /// Produces `n` records through skiff's client, round-robin over
    /// `partitions`: key `skiff-key-I`, value `skiff-value-I`, headers
    /// `origin: skiff` and `i: I`, timestamp `SKIFF_TIMESTAMP_MS + I`.
    /// Returns them by (partition, offset).
    async fn skiff_produce(
        &self,
        topic: &str,
        partitions: u32,
        n: usize,
    ) -> BTreeMap<(u32, u64), Expected> {
        let producer = Producer::new(self.client.clone(), ProducerConfig::default());
        let mut out = BTreeMap::new();
        for i in 0..n {
            let partition = i as u32 % partitions;
            let ack = producer
                .send(
                    ProducerRecord::new(topic, format!("skiff-value-{i}"))
                        .key(format!("skiff-key-{i}"))
                        .header("origin", "skiff")
                        .header("i", i.to_string())
                        .partition(partition)
                        .timestamp_ms(SKIFF_TIMESTAMP_MS + i as i64),
                )
                .await
                .expect("skiff produce acknowledged");
            out.insert(
                (ack.partition, ack.offset),
                Expected {
                    key: Some(format!("skiff-key-{i}")),
                    value: format!("skiff-value-{i}"),
                    headers: vec![
                        ("origin".into(), "skiff".into()),
                        ("i".into(), i.to_string()),
                    ],
                    timestamp_ms: Some(SKIFF_TIMESTAMP_MS + i as i64),
                },
            );
        }
        out
    }
}

/// What a record should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    key: Option<String>,
    value: String,
    headers: Vec<(String, String)>,
    timestamp_ms: Option<i64>,
}

impl Expected {
    /// The records the client programs produce: `key-I`, `value-I`, one
    /// header `h: hv-I`.
    fn from_program(i: usize, timestamp_ms: Option<i64>) -> Expected {
        Expected {
            key: Some(format!("key-{i}")),
            value: format!("value-{i}"),
            headers: vec![("h".into(), format!("hv-{i}"))],
            timestamp_ms,
        }
    }

    fn of_skiff(r: &ConsumedRecord) -> Expected {
        Expected {
            key: r.key.as_ref().map(|k| utf8(k)),
            value: utf8(&r.value),
            headers: r
                .headers
                .iter()
                .map(|h| (h.key.clone(), utf8(&h.value)))
                .collect(),
            timestamp_ms: Some(r.timestamp_ms),
        }
    }

    /// A `record` event of a client program.
    fn of_event(e: &Value) -> Expected {
        Expected {
            key: e["key"].as_str().map(str::to_owned),
            value: str_field(e, "value").to_owned(),
            headers: e["headers"]
                .as_array()
                .unwrap_or_else(|| panic!("no headers in {e}"))
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap_or_default().into(),
                        h[1].as_str().unwrap_or_default().into(),
                    )
                })
                .collect(),
            timestamp_ms: e["timestamp"].as_i64(),
        }
    }
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("test records are UTF-8")
}

fn str_field<'a>(e: &'a Value, field: &str) -> &'a str {
    e[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {e}"))
}

fn u64_field(e: &Value, field: &str) -> u64 {
    e[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {field} in {e}"))
}

fn position(e: &Value) -> (u32, u64) {
    (u64_field(e, "partition") as u32, u64_field(e, "offset"))
}

/// Runs a client program to completion within `CLIENT_TIMEOUT`; fails the
/// test with its stderr when it exits non-zero. Returns its stdout.
async fn run_text(what: &str, mut cmd: Command, stdin: &[u8]) -> String {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin).await.expect("writes stdin");
    drop(input);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstderr: {}\nstdout: {stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a client program that must fail within `CLIENT_TIMEOUT`; returns
/// its stdout and stderr (for the test to check why it failed).
async fn run_failing(what: &str, mut cmd: Command) -> (String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{what} succeeded but should have failed:\nstderr: {stderr}\nstdout: {stdout}"
    );
    (stdout, stderr)
}

/// Runs a client program that prints JSON lines; returns the events.
async fn run_json(what: &str, cmd: Command) -> Vec<Value> {
    run_text(what, cmd, b"")
        .await
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: bad line {l:?}: {e}")))
        .collect()
}

fn events<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == kind).collect()
}

/// Checks that the `produced` events of a program that produced `n`
/// records match what skiff's consumer reads at those offsets.
async fn check_produced_through_skiff(s: &Setup, topic: &str, produced: &[&Value], n: usize) {
    assert_eq!(produced.len(), n, "one ack per record: {produced:?}");
    let stored = s.skiff_read(topic, n).await;
    for e in produced {
        let at = position(e);
        let i: usize = str_field(e, "value")
            .strip_prefix("value-")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("unexpected value in {e}"));
        let record = stored
            .get(&at)
            .unwrap_or_else(|| panic!("skiff has no record at {at:?} acknowledged by {e}"));
        let mut expected = Expected::from_program(i, e["timestamp"].as_i64());
        if expected.timestamp_ms.is_none() {
            // The client does not report the timestamp it sent (kafkajs).
            expected.timestamp_ms = Some(record.timestamp_ms);
        }
        assert_eq!(Expected::of_skiff(record), expected, "record at {at:?}");
    }
}

/// Checks that the `record` events a Kafka client read are exactly
/// `expected`, at the same partitions and offsets.
fn check_read_by_client(read: &[&Value], expected: &BTreeMap<(u32, u64), Expected>) {
    let got: BTreeMap<(u32, u64), Expected> = read
        .iter()
        .map(|e| (position(e), Expected::of_event(e)))
        .collect();
    assert_eq!(got.len(), read.len(), "no record read twice: {read:?}");
    assert_eq!(&got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_lists_produces_and_consumes() {
    if !have("kcat_lists_produces_and_consumes", &[Tool::Kcat]) {
        return;
    }
    let s = setup().await;
    s.create_topic("kcat", 2).await;

    // -L: the topic with its two partitions, led by the one broker.
    let mut list = Tool::Kcat.command(&s.bootstrap);
    list.args(["-L", "-J", "-t", "kcat"]);
    let metadata: Value = serde_json::from_str(run_text("kcat -L", list, b"").await.trim())
        .expect("kcat -L -J prints JSON");
    let topic = &metadata["topics"][0];
    assert_eq!(topic["topic"], "kcat", "{metadata}");
    assert_eq!(
        topic["partitions"].as_array().map(Vec::len),
        Some(2),
        "{metadata}"
    );

    // -P: keys, values and a header, into partition 1.
    let mut produce = Tool::Kcat.command(&s.bootstrap);
    produce.args(["-P", "-t", "kcat", "-p", "1", "-K", ":", "-H", "h=kcat"]);
    run_text("kcat -P", produce, b"k0:v0\nk1:v1\nk2:v2\n").await;
    let stored = s.skiff_read("kcat", 3).await;
    let got: Vec<_> = stored
        .iter()
        .map(|(at, r)| (*at, Expected::of_skiff(r)))
        .map(|(at, e)| (at, e.key, e.value, e.headers))
        .collect();
    let want: Vec<_> = (0..3u64)
        .map(|i| {
            (
                (1, i),
                Some(format!("k{i}")),
                format!("v{i}"),
                vec![("h".to_owned(), "kcat".to_owned())],
            )
        })
        .collect();
    assert_eq!(got, want);

    // -C -o beginning -e: what skiff's client produced, with its
    // timestamps and headers (-J: one JSON object per record; headers as a
    // flat [name, value, ...] list).
    s.create_topic("kcat-back", 1).await;
    let expected = s.skiff_produce("kcat-back", 1, 4).await;
    let mut consume = Tool::Kcat.command(&s.bootstrap);
    consume.args(["-C", "-t", "kcat-back", "-o", "beginning", "-e", "-J"]);
    let out = run_text("kcat -C", consume, b"").await;
    let got: BTreeMap<(u32, u64), Expected> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let e: Value = serde_json::from_str(l).expect("kcat -J prints JSON");
            let flat: Vec<String> = e["headers"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let headers = flat
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect();
            (
                position(&e),
                Expected {
                    key: e["key"].as_str().map(str::to_owned),
                    value: str_field(&e, "payload").to_owned(),
                    headers,
                    timestamp_ms: e["ts"].as_i64(),
                },
            )
        })
        .collect();
    assert_eq!(got, expected);
}

/// kcat -P into a topic that does not exist yet (created through Metadata),
/// with each compression codec and with an idempotent producer: skiff's
/// client reads every record at consecutive offsets, kcat reads them back
/// (compressed batches re-encoded with their codec), and -L names this
/// broker at its advertised (bound) address. (Folded in from the former
/// tests/kafka_kcat.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_compressed_and_idempotent_batches_into_an_auto_created_topic() {
    if !have(
        "kcat_compressed_and_idempotent_batches_into_an_auto_created_topic",
        &[Tool::Kcat],
    ) {
        return;
    }
    let s = setup().await;
    let kcat = |args: &[&str]| {
        let mut cmd = Tool::Kcat.command(&s.bootstrap);
        cmd.args(args);
        cmd
    };
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let input = format!("{codec}:{}\n", codec.repeat(50));
        run_text(
            &format!("kcat -P -z {codec}"),
            kcat(&["-P", "-t", "packed", "-K", ":", "-z", codec]),
            input.as_bytes(),
        )
        .await;
    }
    run_text(
        "kcat -P idempotent",
        kcat(&[
            "-P",
            "-t",
            "packed",
            "-K",
            ":",
            "-X",
            "enable.idempotence=true",
        ]),
        b"idem:one\nidem:two\n",
    )
    .await;

    let listing = run_text("kcat -L", kcat(&["-L", "-t", "packed"]), b"").await;
    assert!(
        listing.contains(&format!("broker 0 at {}", s.bootstrap)),
        "{listing}"
    );
    assert!(
        listing.contains("topic \"packed\" with 1 partitions"),
        "{listing}"
    );

    let stored = s.skiff_read("packed", 6).await;
    let got: Vec<(u64, String, String)> = stored
        .iter()
        .map(|((_, offset), r)| {
            let e = Expected::of_skiff(r);
            (*offset, e.key.unwrap_or_default(), e.value)
        })
        .collect();
    let mut want: Vec<(u64, String, String)> = codecs
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64, (*c).to_owned(), c.repeat(50)))
        .collect();
    want.push((4, "idem".into(), "one".into()));
    want.push((5, "idem".into(), "two".into()));
    assert_eq!(got, want);

    let consumed = run_text(
        "kcat -C",
        kcat(&[
            "-C",
            "-t",
            "packed",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%o\n",
        ]),
        b"",
    )
    .await;
    assert_eq!(
        consumed.lines().collect::<Vec<_>>(),
        ["gzip=0", "snappy=1", "lz4=2", "zstd=3", "idem=4", "idem=5"]
    );
}

/// kcat -G: a balanced consumer group reads every partition and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_group_consumer_reads_and_commits() {
    if !have("kcat_group_consumer_reads_and_commits", &[Tool::Kcat]) {
        return;
    }
    let s = setup().await;
    s.create_topic("kcat-group", 3).await;
    let expected = s.skiff_produce("kcat-group", 3, 9).await;
    let mut group = Tool::Kcat.command(&s.bootstrap);
    group.args([
        "-G",
        "kcat-g",
        "kcat-group",
        "-o",
        "beginning",
        "-e",
        "-J",
        "-X",
        "enable.auto.commit=true",
        "-X",
        "auto.commit.interval.ms=100",
    ]);
    let out = run_text("kcat -G", group, b"").await;
    let got: BTreeSet<(u32, u64)> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| position(&serde_json::from_str(l).expect("kcat -J prints JSON")))
        .collect();
    assert_eq!(got, expected.keys().copied().collect::<BTreeSet<_>>());
    // kcat commits what it read when it leaves the group (-e).
    let described = s
        .client
        .admin()
        .describe_group("kcat-g")
        .await
        .expect("skiff describes the Kafka group");
    let committed: Vec<_> = described.partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, vec![Some(3), Some(3), Some(3)], "{described:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_idempotent_producer_and_consumer() {
    if !have(
        "confluent_kafka_idempotent_producer_and_consumer",
        &[Tool::Confluent],
    ) {
        return;
    }
    let s = setup().await;
    s.create_topic("rdkafka", 2).await;
    let mut produce = Tool::Confluent.command(&s.bootstrap);
    produce.args(["--topic", "rdkafka", "--count", "20", "produce"]);
    let out = run_json("confluent-kafka produce", produce).await;
    check_produced_through_skiff(&s, "rdkafka", &events(&out, "produced"), 20).await;

    s.create_topic("rdkafka-back", 3).await;
    let expected = s.skiff_produce("rdkafka-back", 3, 9).await;
    let mut consume = Tool::Confluent.command(&s.bootstrap);
    consume.args(["--topic", "rdkafka-back", "--count", "9", "consume"]);
    let out = run_json("confluent-kafka consume", consume).await;
    check_read_by_client(&events(&out, "record"), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_admin_creates_and_deletes_topics() {
    if !have(
        "confluent_kafka_admin_creates_and_deletes_topics",
        &[Tool::Confluent],
    ) {
        return;
    }
    let s = setup().await;
    let mut create = Tool::Confluent.command(&s.bootstrap);
    create.args([
        "--topic",
        "made-by-rdkafka",
        "--partitions",
        "3",
        "create-topic",
    ]);
    run_json("confluent-kafka create-topic", create).await;
    let described = s
        .client
        .admin()
        .describe_topic("made-by-rdkafka")
        .await
        .expect("skiff sees the topic");
    assert_eq!(described.config.partitions, 3, "{described:?}");

    let mut delete = Tool::Confluent.command(&s.bootstrap);
    delete.args(["--topic", "made-by-rdkafka", "delete-topic"]);
    run_json("confluent-kafka delete-topic", delete).await;
    let topics = s.client.admin().list_topics().await.expect("lists topics");
    assert!(
        topics.iter().all(|t| t.name != "made-by-rdkafka"),
        "deleted through Kafka, still listed by skiff: {topics:?}"
    );
}

/// CreatePartitions through confluent-kafka's AdminClient: skiff cannot
/// grow a topic, so growth (also with validate_only) and a count not above
/// the current one are INVALID_PARTITIONS with the reason, and the topic
/// keeps its partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_create_partitions_is_refused_with_the_reason() {
    if !have(
        "confluent_kafka_create_partitions_is_refused_with_the_reason",
        &[Tool::Confluent],
    ) {
        return;
    }
    let s = setup().await;
    s.create_topic("fixed", 2).await;
    for (partitions, validate_only, reason) in [
        ("4", false, "cannot add partitions"),
        ("4", true, "cannot add partitions"),
        ("2", false, "already has 2 partitions"),
    ] {
        let mut cmd = Tool::Confluent.command(&s.bootstrap);
        cmd.args(["--topic", "fixed", "--partitions", partitions]);
        if validate_only {
            cmd.arg("--validate-only");
        }
        cmd.arg("create-partitions");
        let out = run_json("confluent-kafka create-partitions", cmd).await;
        let result = events(&out, "create-partitions")[0];
        assert_eq!(result["error"], "INVALID_PARTITIONS", "{out:?}");
        let message = str_field(result, "message");
        assert!(message.contains(reason), "{message}");
    }
    let described = s
        .client
        .admin()
        .describe_topic("fixed")
        .await
        .expect("skiff describes the topic");
    assert_eq!(described.config.partitions, 2, "{described:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_round_trip() {
    if !have("kafka_python_round_trip", &[Tool::KafkaPython]) {
        return;
    }
    let s = setup().await;
    s.create_topic("kpy", 1).await;
    let mut produce = Tool::KafkaPython.command(&s.bootstrap);
    produce.args(["--topic", "kpy", "--count", "10", "produce"]);
    let out = run_json("kafka-python produce", produce).await;
    let produced = events(&out, "produced");
    check_produced_through_skiff(&s, "kpy", &produced, 10).await;

    // skiff's client appends more; kafka-python reads both kinds back.
    let mut expected: BTreeMap<(u32, u64), Expected> = produced
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                position(e),
                Expected::from_program(i, e["timestamp"].as_i64()),
            )
        })
        .collect();
    expected.extend(s.skiff_produce("kpy", 1, 5).await);
    let mut consume = Tool::KafkaPython.command(&s.bootstrap);
    consume.args(["--topic", "kpy", "--count", "15", "consume"]);
    let out = run_json("kafka-python consume", consume).await;
    check_read_by_client(&events(&out, "record"), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_produces_for_skiff() {
    if !have("kafkajs_produces_for_skiff", &[Tool::Kafkajs]) {
        return;
    }
    let s = setup().await;
    s.create_topic("kjs", 2).await;
    let mut produce = Tool::Kafkajs.command(&s.bootstrap);
    produce.args(["--topic", "kjs", "--count", "10", "produce"]);
    let out = run_json("kafkajs produce", produce).await;
    check_produced_through_skiff(&s, "kjs", &events(&out, "produced"), 10).await;
}

/// kafkajs consumes only in a group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_group_consumer_reads_skiff_records() {
    if !have(
        "kafkajs_group_consumer_reads_skiff_records",
        &[Tool::Kafkajs],
    ) {
        return;
    }
    let s = setup().await;
    s.create_topic("kjs-back", 2).await;
    let expected = s.skiff_produce("kjs-back", 2, 8).await;
    let mut consume = Tool::Kafkajs.command(&s.bootstrap);
    consume.args([
        "--topic", "kjs-back", "--count", "8", "--group", "kjs-g", "consume",
    ]);
    let out = run_json("kafkajs consume", consume).await;
    check_read_by_client(&events(&out, "record"), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_produces_and_consumes() {
    if !have("franz_go_produces_and_consumes", &[Tool::FranzGo]) {
        return;
    }
    let s = setup().await;
    s.create_topic("franz", 3).await;
    let mut produce = Tool::FranzGo.command(&s.bootstrap);
    produce.args(["-topic", "franz", "-count", "20", "produce"]);
    let out = run_json("franz-go produce", produce).await;
    check_produced_through_skiff(&s, "franz", &events(&out, "produced"), 20).await;

    s.create_topic("franz-back", 3).await;
    let expected = s.skiff_produce("franz-back", 3, 9).await;
    let mut consume = Tool::FranzGo.command(&s.bootstrap);
    consume.args(["-topic", "franz-back", "-count", "9", "consume"]);
    let out = run_json("franz-go consume", consume).await;
    check_read_by_client(&events(&out, "record"), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_idempotent_producer_and_consumer() {
    if !have("java_idempotent_producer_and_consumer", &[Tool::Java]) {
        return;
    }
    let s = setup().await;
    s.create_topic("java", 3).await;
    let mut produce = Tool::Java.command(&s.bootstrap);
    produce.args(["--topic", "java", "--count", "30", "produce"]);
    let out = run_json("Java produce", produce).await;
    check_produced_through_skiff(&s, "java", &events(&out, "produced"), 30).await;

    s.create_topic("java-back", 3).await;
    let expected = s.skiff_produce("java-back", 3, 9).await;
    let mut consume = Tool::Java.command(&s.bootstrap);
    consume.args(["--topic", "java-back", "--count", "9", "consume"]);
    let out = run_json("Java consume", consume).await;
    check_read_by_client(&events(&out, "record"), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_admin_creates_lists_describes_and_deletes_topics() {
    if !have(
        "java_admin_creates_lists_describes_and_deletes_topics",
        &[Tool::Java],
    ) {
        return;
    }
    let s = setup().await;
    s.create_topic("made-by-skiff", 2).await;
    let admin = |mode: &str, topic: &str| {
        let mut cmd = Tool::Java.command(&s.bootstrap);
        cmd.args(["--topic", topic, "--partitions", "4", mode]);
        cmd
    };
    run_json("Java create-topic", admin("create-topic", "made-by-java")).await;
    let described = s
        .client
        .admin()
        .describe_topic("made-by-java")
        .await
        .expect("skiff sees the topic");
    assert_eq!(described.config.partitions, 4, "{described:?}");

    let out = run_json("Java list-topics", admin("list-topics", "-")).await;
    let listed = &events(&out, "list-topics")[0]["topics"];
    assert_eq!(
        listed,
        &serde_json::json!(["made-by-java", "made-by-skiff"]),
        "{out:?}"
    );
    let out = run_json(
        "Java describe-topic",
        admin("describe-topic", "made-by-skiff"),
    )
    .await;
    assert_eq!(
        events(&out, "describe-topic")[0]["partitions"],
        2,
        "{out:?}"
    );

    run_json("Java delete-topic", admin("delete-topic", "made-by-java")).await;
    let topics = s.client.admin().list_topics().await.expect("lists topics");
    let names: Vec<_> = topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["made-by-skiff"]);
}

/// A group member program running in the background: its events arrive
/// on one channel shared by all members, tagged with the member's index.
struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// What a member's stdout said, or that it ended.
#[derive(Debug)]
enum MemberEvent {
    Event(Value),
    /// stdout closed; the stderr it wrote.
    Exited(String),
}

impl Member {
    fn start(
        mut cmd: Command,
        index: usize,
        tx: mpsc::UnboundedSender<(usize, MemberEvent)>,
    ) -> Member {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("group member starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(event) = serde_json::from_str(&line) {
                    if tx.send((index, MemberEvent::Event(event))).is_err() {
                        return;
                    }
                }
            }
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            let _ = tx.send((index, MemberEvent::Exited(text)));
        });
        Member {
            stdin: child.stdin.take(),
            child,
        }
    }

    /// Asks the member to commit and leave its group.
    async fn leave(&mut self) {
        let mut stdin = self.stdin.take().expect("asked to leave once");
        stdin
            .write_all(b"leave\n")
            .await
            .expect("writes to the member");
        drop(stdin);
    }

    /// Waits for the member's process to exit 0.
    async fn exited_cleanly(mut self) {
        let status = tokio::time::timeout(CLIENT_TIMEOUT, self.child.wait())
            .await
            .expect("member exits in time")
            .expect("member exit status");
        assert!(status.success(), "member exited with {status}");
    }
}

/// The members' state as their events tell it.
#[derive(Debug, Default)]
struct GroupView {
    owned: BTreeMap<usize, BTreeSet<u64>>,
    read: BTreeSet<(u32, u64)>,
    left: BTreeSet<usize>,
}

impl GroupView {
    /// Applies events until `done(self)` holds; fails the test when a
    /// member exits before leaving or nothing arrives within
    /// `GROUP_EVENT_TIMEOUT`.
    async fn until(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<(usize, MemberEvent)>,
        what: &str,
        done: impl Fn(&GroupView) -> bool,
    ) {
        while !done(self) {
            let (member, event) = tokio::time::timeout(GROUP_EVENT_TIMEOUT, rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("waiting for {what}: nothing for {GROUP_EVENT_TIMEOUT:?}; {self:?}")
                })
                .expect("members' channel open");
            match event {
                MemberEvent::Event(e) => match e["event"].as_str() {
                    Some("owned") => {
                        let parts = e["partitions"]
                            .as_array()
                            .unwrap_or_else(|| panic!("no partitions in {e}"))
                            .iter()
                            .filter_map(Value::as_u64)
                            .collect();
                        self.owned.insert(member, parts);
                    }
                    Some("record") => {
                        self.read.insert(position(&e));
                    }
                    Some("left") => {
                        self.left.insert(member);
                        self.owned.remove(&member);
                    }
                    _ => {}
                },
                MemberEvent::Exited(stderr) => {
                    assert!(
                        self.left.contains(&member),
                        "waiting for {what}: member {member} exited without leaving: {stderr}"
                    );
                }
            }
        }
    }

    fn owns(&self, member: usize) -> BTreeSet<u64> {
        self.owned.get(&member).cloned().unwrap_or_default()
    }
}

/// Two members of one group with a client-side cooperative assignor share
/// four partitions; when one leaves, the other ends up with all four,
/// reads what is produced next, and commits. skiff's admin sees the
/// committed offsets.
async fn group_hand_over(test: &str, tool: Tool, group: &str) {
    if !have(test, &[tool]) {
        return;
    }
    let s = setup().await;
    let topic = format!("{group}-topic");
    s.create_topic(&topic, 4).await;
    let mut expected = s.skiff_produce(&topic, 4, 8).await;
    let member = |i: usize, tx| {
        let mut cmd = tool.command(&s.bootstrap);
        let timeout = format!("{}", CLIENT_TIMEOUT.as_millis());
        match tool {
            Tool::FranzGo => cmd.args([
                "-topic",
                &topic,
                "-group",
                group,
                "-timeout",
                &format!("{timeout}ms"),
                "group",
            ]),
            _ => cmd.args([
                "--topic",
                &topic,
                "--group",
                group,
                "--timeout-ms",
                &timeout,
                "group",
            ]),
        };
        Member::start(cmd, i, tx)
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let all: BTreeSet<u64> = (0..4).collect();
    let mut view = GroupView::default();

    let mut first = member(0, tx.clone());
    view.until(&mut rx, "the first member to own every partition", |v| {
        v.owns(0) == all
    })
    .await;
    let second = member(1, tx.clone());
    view.until(&mut rx, "the two members to share the partitions", |v| {
        let (a, b) = (v.owns(0), v.owns(1));
        !a.is_empty()
            && !b.is_empty()
            && a.is_disjoint(&b)
            && a.union(&b).copied().collect::<BTreeSet<_>>() == all
    })
    .await;

    first.leave().await;
    view.until(&mut rx, "the second member to own every partition", |v| {
        v.left.contains(&0) && v.owns(1) == all
    })
    .await;
    first.exited_cleanly().await;

    expected.extend(s.skiff_produce(&topic, 4, 8).await);
    let positions: BTreeSet<(u32, u64)> = expected.keys().copied().collect();
    view.until(&mut rx, "every record read", |v| {
        v.read.is_superset(&positions)
    })
    .await;
    let mut second = second;
    second.leave().await;
    view.until(&mut rx, "the second member to leave", |v| {
        v.left.contains(&1)
    })
    .await;
    second.exited_cleanly().await;

    let described = s
        .client
        .admin()
        .describe_group(group)
        .await
        .expect("skiff describes the Kafka group");
    assert!(described.members.is_empty(), "{described:?}");
    let committed: Vec<_> = described
        .partitions
        .iter()
        .map(|p| (p.partition.partition, p.committed))
        .collect();
    assert_eq!(
        committed,
        vec![(0, Some(4)), (1, Some(4)), (2, Some(4)), (3, Some(4))],
        "{described:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_cooperative_sticky_group_hands_over_and_commits() {
    group_hand_over(
        "java_cooperative_sticky_group_hands_over_and_commits",
        Tool::Java,
        "java-g",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_cooperative_group_hands_over_and_commits() {
    group_hand_over(
        "franz_go_cooperative_group_hands_over_and_commits",
        Tool::FranzGo,
        "franz-g",
    )
    .await;
}

/// The topic the SASL tests' `writer` may produce to and consume from.
const SECURE_TOPIC: &str = "secure";

/// A broker with users, its Kafka listener speaking TLS when `tls` (the
/// test PKI's server certificate, as skiff's own listener): `admin`
/// (password `admin-pw`; the `Setup`'s client signs in as it), `writer`
/// (`writer-pw`: produce and consume on [`SECURE_TOPIC`], consume on every
/// group) and `nobody` (`nobody-pw`, no grant). Passwords set through
/// PutUser, so each has SCRAM credentials. The topic exists, with one
/// partition.
async fn secure_setup(tls: bool) -> (Setup, Option<pki::Pki>) {
    use skiff_protocol::messages::{Operations, ResourceKind, ResourcePattern};
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = tls.then(pki::Pki::generate);
    let broker = skiff_broker::Broker::start(skiff_broker::BrokerConfig {
        users: vec![
            skiff_broker::BootstrapUser::from_password("admin", "admin-pw", true).expect("hash"),
        ],
        tls_cert_file: pki.as_ref().map(|p| p.server_cert.clone()),
        tls_key_file: pki.as_ref().map(|p| p.server_key.clone()),
        // No per-address throttle: a refused client retries its login until
        // its own timeout (librdkafka, kafka-python), and every client here
        // comes from 127.0.0.1. tests/kafka_protocol.rs tests the throttle.
        auth_failures_per_address_max: 0,
        ..common::kafka::kafka_config(dir.path())
    })
    .await
    .expect("broker starts");
    let mut config =
        ClientConfig::new(broker.local_addr().to_string()).password("admin", "admin-pw");
    if let Some(pki) = &pki {
        config = config.tls_ca_file(&pki.ca);
    }
    let client = Client::connect(config).await.expect("admin connects");
    let security = client.security();
    for user in ["writer", "nobody"] {
        security
            .put_user(user, format!("{user}-pw"), false)
            .await
            .expect("user added");
    }
    let pattern = |kind, name: &str, prefix| ResourcePattern {
        kind,
        name: name.to_owned(),
        prefix,
    };
    let ops = |list| Operations::parse(list).expect("valid operations");
    security
        .grant(
            "writer",
            pattern(ResourceKind::Topic, SECURE_TOPIC, false),
            ops("produce,consume"),
        )
        .await
        .expect("granted");
    security
        .grant(
            "writer",
            pattern(ResourceKind::Group, "", true),
            ops("consume"),
        )
        .await
        .expect("granted");
    let s = Setup {
        bootstrap: kafka_addr(&broker).to_string(),
        _broker: broker,
        client,
        _dir: dir,
    };
    s.create_topic(SECURE_TOPIC, 1).await;
    (s, pki)
}

/// librdkafka's properties (kcat `-X`, confluent-kafka) for a SASL login,
/// over TLS with `ca` as the trusted CA when given.
fn rdkafka_sasl(mechanism: &str, user: &str, password: &str, ca: Option<&Path>) -> Vec<String> {
    let protocol = if ca.is_some() {
        "SASL_SSL"
    } else {
        "SASL_PLAINTEXT"
    };
    let mut props = vec![
        format!("security.protocol={protocol}"),
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ];
    if let Some(ca) = ca {
        props.push(format!("ssl.ca.location={}", ca.display()));
    }
    props
}

/// The Java client's properties for a SASL login over TLS (the CA as a PEM
/// trust store).
fn java_sasl(mechanism: &str, user: &str, password: &str, ca: &Path) -> Vec<String> {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    vec![
        "security.protocol=SASL_SSL".to_owned(),
        format!("sasl.mechanism={mechanism}"),
        format!("sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";"),
        "ssl.truststore.type=PEM".to_owned(),
        format!("ssl.truststore.location={}", ca.display()),
    ]
}

/// Adds `props` to a command as `flag prop` pairs.
fn with_props(cmd: &mut Command, flag: &str, props: &[String]) {
    for p in props {
        cmd.args([flag, p]);
    }
}

/// kcat over SASL_SSL with SCRAM-SHA-256: a wrong password is refused, a
/// user without the grant sees TOPIC_AUTHORIZATION_FAILED, the writer
/// produces and consumes (and skiff's client reads what it wrote).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_sasl_scram_over_tls() {
    if !have("kcat_sasl_scram_over_tls", &[Tool::Kcat]) {
        return;
    }
    let (s, pki) = secure_setup(true).await;
    let ca = pki.as_ref().map(|p| p.ca.as_path());
    let kcat = |user: &str, password: &str| {
        let mut cmd = Tool::Kcat.command(&s.bootstrap);
        with_props(
            &mut cmd,
            "-X",
            &rdkafka_sasl("SCRAM-SHA-256", user, password, ca),
        );
        cmd
    };

    let mut wrong = kcat("writer", "wrong-pw");
    wrong.args(["-L", "-t", SECURE_TOPIC, "-m", "5"]);
    let (_, stderr) = run_failing("kcat -L with a wrong password", wrong).await;
    assert!(
        stderr.to_lowercase().contains("authentication"),
        "refused for its password: {stderr}"
    );

    let mut refused = kcat("nobody", "nobody-pw");
    refused.args(["-L", "-J", "-t", SECURE_TOPIC]);
    let metadata: Value = serde_json::from_str(
        run_text("kcat -L without the grant", refused, b"")
            .await
            .trim(),
    )
    .expect("kcat -L -J prints JSON");
    let error = metadata["topics"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Topic authorization failed"), "{metadata}");

    let mut produce = kcat("writer", "writer-pw");
    produce.args(["-P", "-t", SECURE_TOPIC, "-K", ":"]);
    run_text("kcat -P as writer", produce, b"k0:v0\nk1:v1\n").await;
    let stored = s.skiff_read(SECURE_TOPIC, 2).await;
    let values: Vec<String> = stored.values().map(|r| utf8(&r.value)).collect();
    assert_eq!(values, ["v0", "v1"]);
    let mut consume = kcat("writer", "writer-pw");
    consume.args([
        "-C",
        "-t",
        SECURE_TOPIC,
        "-o",
        "beginning",
        "-e",
        "-f",
        "%k=%s\n",
    ]);
    let out = run_text("kcat -C as writer", consume, b"").await;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["k0=v0", "k1=v1"]);
}

/// confluent-kafka over SASL_PLAINTEXT: PLAIN with a wrong password is
/// refused at once, a user without the grant gets TOPIC_AUTHORIZATION_FAILED
/// (SCRAM-SHA-512), the writer produces idempotently (SCRAM-SHA-512) and
/// consumes (PLAIN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_sasl_plain_and_scram() {
    if !have("confluent_kafka_sasl_plain_and_scram", &[Tool::Confluent]) {
        return;
    }
    let (s, _) = secure_setup(false).await;
    let client = |mechanism: &str, user: &str, password: &str, mode: &str, count: &str| {
        let mut cmd = Tool::Confluent.command(&s.bootstrap);
        with_props(
            &mut cmd,
            "--config",
            &rdkafka_sasl(mechanism, user, password, None),
        );
        cmd.args(["--topic", SECURE_TOPIC, "--count", count, mode]);
        cmd
    };

    let wrong = client("PLAIN", "writer", "wrong-pw", "metadata", "0");
    let (stdout, stderr) = run_failing("confluent-kafka with a wrong password", wrong).await;
    assert!(
        stdout.contains("\"auth-failed\""),
        "refused as a failed login: {stdout} {stderr}"
    );

    let refused = client("SCRAM-SHA-512", "nobody", "nobody-pw", "metadata", "0");
    let out = run_json("confluent-kafka metadata without the grant", refused).await;
    assert_eq!(
        events(&out, "metadata")[0]["error"],
        "TOPIC_AUTHORIZATION_FAILED",
        "{out:?}"
    );

    let produce = client("SCRAM-SHA-512", "writer", "writer-pw", "produce", "5");
    let out = run_json("confluent-kafka produce as writer", produce).await;
    let produced = events(&out, "produced");
    check_produced_through_skiff(&s, SECURE_TOPIC, &produced, 5).await;
    let consume = client("PLAIN", "writer", "writer-pw", "consume", "5");
    let out = run_json("confluent-kafka consume as writer", consume).await;
    assert_eq!(events(&out, "record").len(), 5, "{out:?}");
}

/// The Java client over SASL_SSL: SCRAM-SHA-512 with a wrong password is
/// refused (SaslAuthenticationException), PLAIN as a user without the grant
/// gets TopicAuthorizationException, the writer's idempotent producer
/// (SCRAM-SHA-256) and consumer work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_sasl_over_tls() {
    if !have("java_sasl_over_tls", &[Tool::Java]) {
        return;
    }
    let (s, pki) = secure_setup(true).await;
    let ca = pki.as_ref().map(|p| p.ca.clone()).expect("TLS");
    let java = |mechanism: &str, user: &str, password: &str, mode: &str| {
        let mut cmd = Tool::Java.command(&s.bootstrap);
        with_props(
            &mut cmd,
            "--config",
            &java_sasl(mechanism, user, password, &ca),
        );
        cmd.args([
            "--topic",
            SECURE_TOPIC,
            "--count",
            "5",
            "--timeout-ms",
            "20000",
            mode,
        ]);
        cmd
    };

    let wrong = java("SCRAM-SHA-512", "writer", "wrong-pw", "produce");
    let (_, stderr) = run_failing("Java produce with a wrong password", wrong).await;
    assert!(stderr.contains("SaslAuthenticationException"), "{stderr}");

    let refused = java("PLAIN", "nobody", "nobody-pw", "produce");
    let (_, stderr) = run_failing("Java produce without the grant", refused).await;
    assert!(stderr.contains("TopicAuthorizationException"), "{stderr}");

    let produce = java("SCRAM-SHA-256", "writer", "writer-pw", "produce");
    let out = run_json("Java produce as writer", produce).await;
    check_produced_through_skiff(&s, SECURE_TOPIC, &events(&out, "produced"), 5).await;
    let consume = java("SCRAM-SHA-256", "writer", "writer-pw", "consume");
    let out = run_json("Java consume as writer", consume).await;
    assert_eq!(events(&out, "record").len(), 5, "{out:?}");
}

/// kafka-python (its own SASL and SCRAM code, no librdkafka) over SASL_SSL:
/// a wrong password is refused, the writer produces with SCRAM-SHA-512 and
/// consumes with SCRAM-SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_sasl_scram_over_tls() {
    if !have("kafka_python_sasl_scram_over_tls", &[Tool::KafkaPython]) {
        return;
    }
    let (s, pki) = secure_setup(true).await;
    let ca = pki.as_ref().map(|p| p.ca.clone()).expect("TLS");
    let client = |sasl: &str, mode: &str, timeout_s: &str| {
        let mut cmd = Tool::KafkaPython.command(&s.bootstrap);
        cmd.args(["--sasl", sasl, "--ca"]).arg(&ca);
        cmd.args(["--topic", SECURE_TOPIC, "--count", "5"]);
        cmd.args(["--timeout-s", timeout_s, mode]);
        cmd
    };

    let produce = client("SCRAM-SHA-512:writer:writer-pw", "produce", "20");
    let out = run_json("kafka-python produce as writer", produce).await;
    check_produced_through_skiff(&s, SECURE_TOPIC, &events(&out, "produced"), 5).await;
    let wrong = client("SCRAM-SHA-256:writer:wrong-pw", "produce", "5");
    let (_, stderr) = run_failing("kafka-python with a wrong password", wrong).await;
    // The broker answers error 58 and keeps the connection open 100 ms
    // before it closes it. kafka-python over TLS has still been seen (once,
    // in a full CI run) to report only the disconnect and then fail to
    // bootstrap; either way it never got in, which its failing exit shows.
    let stderr_lower = stderr.to_lowercase();
    assert!(
        stderr_lower.contains("authentication") || stderr_lower.contains("unable to bootstrap"),
        "refused for its password: {stderr}"
    );

    let consume = client("SCRAM-SHA-256:writer:writer-pw", "consume", "20");
    let out = run_json("kafka-python consume as writer", consume).await;
    assert_eq!(events(&out, "record").len(), 5, "{out:?}");
}

/// kafkajs (its own SASL and SCRAM code) over SASL_SSL with SCRAM-SHA-256:
/// a wrong password is refused, `nobody` (no grant) is refused the topic
/// with TOPIC_AUTHORIZATION_FAILED, the writer produces and consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_sasl_scram_over_tls() {
    if !have("kafkajs_sasl_scram_over_tls", &[Tool::Kafkajs]) {
        return;
    }
    let (s, pki) = secure_setup(true).await;
    let ca = pki.as_ref().map(|p| p.ca.clone()).expect("TLS");
    let client = |user: &str, password: &str, mode: &str| {
        let mut cmd = Tool::Kafkajs.command(&s.bootstrap);
        let sasl = format!("SCRAM-SHA-256:{user}:{password}");
        cmd.args(["--sasl", &sasl, "--ca"]).arg(&ca);
        cmd.args(["--topic", SECURE_TOPIC, "--count", "5", "--timeout-s", "20"]);
        cmd.args(["--group", "kjs-secure", mode]);
        cmd
    };

    let out = run_json(
        "kafkajs produce as writer",
        client("writer", "writer-pw", "produce"),
    )
    .await;
    check_produced_through_skiff(&s, SECURE_TOPIC, &events(&out, "produced"), 5).await;

    let wrong = client("writer", "wrong-pw", "produce");
    let (_, stderr) = run_failing("kafkajs with a wrong password", wrong).await;
    assert!(
        stderr.contains("KafkaJSSASLAuthenticationError"),
        "refused for its password: {stderr}"
    );

    let nobody = client("nobody", "nobody-pw", "produce");
    let (_, stderr) = run_failing("kafkajs as a user without grants", nobody).await;
    assert!(
        stderr.contains("error type TOPIC_AUTHORIZATION_FAILED"),
        "refused the topic: {stderr}"
    );

    let out = run_json(
        "kafkajs consume as writer",
        client("writer", "writer-pw", "consume"),
    )
    .await;
    assert_eq!(events(&out, "record").len(), 5, "{out:?}");
}

/// franz-go over SASL_PLAINTEXT with PLAIN: a wrong password is refused,
/// `nobody` (no grant) is refused the topic with TOPIC_AUTHORIZATION_FAILED,
/// the writer produces (idempotent, franz-go's default) and consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_sasl_plain() {
    if !have("franz_go_sasl_plain", &[Tool::FranzGo]) {
        return;
    }
    let (s, _) = secure_setup(false).await;
    let client = |login: &str, mode: &str| {
        let mut cmd = Tool::FranzGo.command(&s.bootstrap);
        cmd.args(["-sasl-plain", login, "-topic", SECURE_TOPIC]);
        cmd.args(["-count", "5", "-timeout", "20s", mode]);
        cmd
    };

    let out = run_json(
        "franz-go produce as writer",
        client("writer:writer-pw", "produce"),
    )
    .await;
    check_produced_through_skiff(&s, SECURE_TOPIC, &events(&out, "produced"), 5).await;

    // A produce would retry the refused login until its timeout; a ping
    // reports it.
    let wrong = client("writer:wrong-pw", "ping");
    let (_, stderr) = run_failing("franz-go with a wrong password", wrong).await;
    assert!(
        stderr.contains("SASL_AUTHENTICATION_FAILED"),
        "refused for its password: {stderr}"
    );

    let nobody = client("nobody:nobody-pw", "produce");
    let (_, stderr) = run_failing("franz-go as a user without grants", nobody).await;
    assert!(
        stderr.contains("TOPIC_AUTHORIZATION_FAILED"),
        "refused the topic: {stderr}"
    );

    let out = run_json(
        "franz-go consume as writer",
        client("writer:writer-pw", "consume"),
    )
    .await;
    assert_eq!(events(&out, "record").len(), 5, "{out:?}");
}

/// The programs the tests run exist where the tests look for them (a
/// renamed file would otherwise turn every test into a skip).
#[test]
fn client_programs_are_in_the_tree() {
    for program in [
        "python/confluent_client.py",
        "python/kafka_python_client.py",
        "python/requirements.txt",
        "node/kafkajs_client.js",
        "node/package-lock.json",
        "go/main.go",
        "go/go.sum",
        "java/pom.xml",
        "java/src/main/java/skiff/kc/Main.java",
    ] {
        assert!(programs().join(program).is_file(), "{program} missing");
    }
    assert!(Path::new(&repo().join(".ci/kafka-clients")).is_file());
}
