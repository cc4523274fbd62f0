//! Smoke test of `skiff bench`: the real binary against an embedded broker,
//! a few thousand messages per mode, and the JSON summary checked for sane
//! numbers (counts match, rates and latencies positive and ordered).

use serde_json::Value;

mod common;

use common::TestBroker;

/// Runs `skiff bench ARGS --json` and parses its one summary object.
fn bench(broker: &TestBroker, args: &[&str]) -> Value {
    let out = broker
        .skiff(&["bench"])
        .args(args)
        .arg("--json")
        .output()
        .expect("skiff runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "skiff bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("JSON summary")
}

fn f(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

fn assert_sane(v: &Value, messages: u64, size: u64) {
    assert_eq!(v["messages"].as_u64(), Some(messages), "{v}");
    assert_eq!(v["bytes"].as_u64(), Some(messages * size), "{v}");
    assert!(f(v, "msgs_per_s") > 0.0, "{v}");
    assert!(f(v, "mb_per_s") > 0.0, "{v}");
    assert!(f(v, "elapsed_s") > 0.0, "{v}");
    let lat = &v["latency_ms"];
    let (p50, p99, p999, max) = (f(lat, "p50"), f(lat, "p99"), f(lat, "p99_9"), f(lat, "max"));
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{lat}"
    );
    assert!(max < 30_000.0, "no request near the timeout: {lat}");
    assert!(lat["count"].as_u64().is_some_and(|n| n > 0), "{lat}");
    assert!(!v["actors"].as_array().expect("actors").is_empty(), "{v}");
}

#[test]
fn produce_then_consume_report_what_they_moved() {
    let broker = TestBroker::start();
    let produced = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "b1",
            "--messages",
            "5000",
            "--size",
            "100",
            "--batch",
            "500",
        ],
    );
    assert_sane(&produced, 5000, 100);
    assert_eq!(produced["mode"], "produce");
    // 10 batches of 500: one latency sample each.
    assert_eq!(produced["latency_ms"]["count"].as_u64(), Some(10));

    let consumed = bench(&broker, &["consume", "--topic", "b1"]);
    assert_sane(&consumed, 5000, 100);
}

#[test]
fn consume_through_a_group() {
    let broker = TestBroker::start();
    let produced = bench(&broker, &["produce", "--topic", "bg", "--messages", "2000"]);
    assert_sane(&produced, 2000, 100);
    let consumed = bench(
        &broker,
        &[
            "consume", "--topic", "bg", "--group", "bench", "--batch", "100",
        ],
    );
    assert_sane(&consumed, 2000, 100);
    assert_eq!(consumed["latency_ms"]["count"].as_u64(), Some(20));
}

#[test]
fn rebalance_measures_joins_leaves_and_a_crash() {
    let broker = TestBroker::start();
    let v = bench(
        &broker,
        &[
            "rebalance",
            "--topic",
            "rb",
            "--partitions",
            "4",
            "--rate",
            "2000",
            "--changes",
            "4",
            "--members-max",
            "3",
            "--crashes",
            "1",
            "--crash-session-timeout-ms",
            "1000",
        ],
    );
    assert_eq!(v["mode"], "rebalance", "{v}");
    let kinds: Vec<&str> = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["change"].as_str().expect("kind"))
        .collect();
    // Up to 3 members and back to 1, then the crash round: a join through
    // a link, and its cut.
    assert_eq!(
        kinds,
        ["join", "join", "leave", "leave", "join", "crash"],
        "{v}"
    );
    let crash = &v["changes"][5];
    assert!(crash["partitions_moved"].as_u64() >= Some(1), "{v}");
    assert_eq!(v["crashes"].as_u64(), Some(1), "{v}");
    assert!(f(&v, "crash_handover_max_ms") > 0.0, "{v}");
    assert!(v["handovers"].as_u64() >= Some(4), "{v}");
    assert!(f(&v["handover_ms"], "p50") > 0.0, "{v}");
    assert!(v["produced"].as_u64() > Some(0), "{v}");
    assert_eq!(v["lost"].as_u64(), Some(0), "{v}");
    // Clean hand-overs commit before they release: no record read twice
    // except after the crash.
    assert_eq!(v["duplicates"].as_u64(), Some(0), "{v}");
}

#[test]
fn several_producers_on_partitions_with_keys() {
    let broker = TestBroker::start();
    let v = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "b2",
            "--partitions",
            "4",
            "--producers",
            "4",
            "--messages",
            "4000",
            "--batch",
            "100",
            "--key-space",
            "50",
        ],
    );
    assert_sane(&v, 4000, 100);
    assert_eq!(v["actors"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["partitions"].as_u64(), Some(4));
}

#[test]
fn e2e_at_a_rate_measures_publish_to_receive() {
    let broker = TestBroker::start();
    let v = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            "b3",
            "--messages",
            "3000",
            "--rate",
            "10000",
            "--size",
            "64",
        ],
    );
    assert_sane(&v, 3000, 64);
    // Every message is one latency sample; paced at 10,000/s it takes ~0.3 s.
    assert_eq!(v["latency_ms"]["count"].as_u64(), Some(3000));
    assert!(f(&v, "elapsed_s") >= 0.25, "{v}");
    assert!(v["produce_latency_ms"].is_object(), "{v}");
}

/// `--metrics`: the broker's stages of the run, read from its metrics
/// endpoint, and the bench's own send delay per message.
#[test]
fn e2e_breaks_the_path_into_stages() {
    let broker = TestBroker::start_with(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    });
    let metrics = broker
        .metrics_addr
        .clone()
        .expect("the metrics endpoint is on");
    let v = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            "st",
            "--messages",
            "2000",
            "--rate",
            "10000",
            "--metrics",
            &metrics,
        ],
    );
    assert_sane(&v, 2000, 100);
    assert_eq!(v["send_delay_ms"]["count"].as_u64(), Some(2000), "{v}");
    let stages = &v["broker_stages_ms"];
    // At least one request went through each stage (other tests in this
    // process may add to the broker-wide histogram, never take away).
    for stage in [
        "produce_queue",
        "produce_commit",
        "fetch_wake",
        "fetch_read",
    ] {
        let s = &stages[stage];
        assert!(s["count"].as_u64().is_some_and(|n| n >= 1), "{stage}: {v}");
        let (p50, p99) = (f(s, "p50"), f(s, "p99"));
        assert!(0.0 <= p50 && p50 <= p99, "{stage}: {s}");
    }
    let out = broker
        .skiff(&[
            "bench",
            "produce",
            "--topic",
            "st2",
            "--messages",
            "10",
            "--metrics",
            &metrics,
        ])
        .output()
        .expect("skiff runs");
    assert!(!out.status.success(), "--metrics is for e2e");
}

#[test]
fn compressed_produce_consume_and_e2e() {
    let broker = TestBroker::start();
    // 4700 of 500: the last, short batch is compressed too.
    let produced = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "bc",
            "--messages",
            "4700",
            "--batch",
            "500",
            "--compression",
            "lz4",
        ],
    );
    assert_sane(&produced, 4700, 100);
    assert_eq!(produced["compression"], "lz4");
    let consumed = bench(&broker, &["consume", "--topic", "bc"]);
    assert_sane(&consumed, 4700, 100);
    let e2e = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            "bz",
            "--messages",
            "2000",
            "--size",
            "64",
            "--compression",
            "zstd",
            "--compression-level",
            "1",
        ],
    );
    assert_sane(&e2e, 2000, 64);
    assert_eq!(e2e["compression"], "zstd");
}

/// JSON events compress, random bytes do not: the wire and disk figures
/// say so, the payload (logical) bytes are the same, and consume of the
/// compressed topic counts the inflated payload.
#[test]
fn json_payload_compresses_and_random_does_not() {
    let broker = TestBroker::start();
    let run = |topic: &str, payload: &str, codec: &str| {
        bench(
            &broker,
            &[
                "produce",
                "--topic",
                topic,
                "--messages",
                "3000",
                "--size",
                "500",
                "--batch",
                "500",
                "--payload",
                payload,
                "--compression",
                codec,
            ],
        )
    };
    let json_none = run("jn", "json", "none");
    let json_zstd = run("jz", "json", "zstd");
    let random_zstd = run("rz", "random", "zstd");
    for v in [&json_none, &json_zstd, &random_zstd] {
        assert_sane(v, 3000, 500);
        assert_eq!(v["disk_messages"].as_u64(), Some(3000), "{v}");
    }
    assert_eq!(json_zstd["payload"], "json");
    // Uncompressed: wire = payload + batch and record overhead.
    let plain_ratio = f(&json_none, "compression_ratio");
    assert!(0.9 < plain_ratio && plain_ratio < 1.0, "{json_none}");
    // The JSON events shrink at least 3x under zstd; random bytes do not.
    assert!(f(&json_zstd, "compression_ratio") > 3.0, "{json_zstd}");
    assert!(f(&random_zstd, "compression_ratio") < 1.0, "{random_zstd}");
    assert!(
        f(&json_zstd, "disk_bytes") * 3.0 < f(&json_none, "disk_bytes"),
        "{json_zstd} {json_none}"
    );
    // The log stores what was sent: disk = wire for one run into a new topic.
    assert_eq!(
        json_zstd["disk_bytes"], json_zstd["wire_bytes"],
        "{json_zstd}"
    );
    let consumed = bench(&broker, &["consume", "--topic", "jz"]);
    assert_sane(&consumed, 3000, 500);
    assert_eq!(
        consumed["wire_bytes"], json_zstd["wire_bytes"],
        "{consumed}"
    );
}

/// `--protocol kafka`: the same loads through the Kafka listener; what a
/// Kafka producer wrote (compressed, keyed, over two partitions) is read
/// back in full through both protocols.
#[test]
fn produce_and_consume_through_the_kafka_listener() {
    let broker = TestBroker::start_with(|c| {
        c.kafka_listen = Some("127.0.0.1:0".parse().expect("addr"));
    });
    let kafka = broker.kafka_addr.clone().expect("the Kafka listener is on");
    let kafka_args = ["--protocol", "kafka", "--kafka-broker", kafka.as_str()];
    let mut args = vec![
        "produce",
        "--topic",
        "kb",
        "--partitions",
        "2",
        "--messages",
        "4000",
        "--batch",
        "400",
        "--key-space",
        "16",
        "--payload",
        "json",
        "--compression",
        "zstd",
    ];
    args.extend(kafka_args);
    let produced = bench(&broker, &args);
    assert_sane(&produced, 4000, 100);
    assert_eq!(produced["protocol"], "kafka");
    assert_eq!(produced["latency_ms"]["count"].as_u64(), Some(10));
    assert!(f(&produced, "compression_ratio") > 1.0, "{produced}");
    assert_eq!(produced["disk_messages"].as_u64(), Some(4000), "{produced}");

    let mut args = vec!["consume", "--topic", "kb", "--consumers", "2"];
    args.extend(kafka_args);
    let through_kafka = bench(&broker, &args);
    assert_sane(&through_kafka, 4000, 100);
    let native = bench(&broker, &["consume", "--topic", "kb"]);
    assert_sane(&native, 4000, 100);
}

#[test]
fn kafka_protocol_needs_its_listener_and_a_plain_load() {
    let broker = TestBroker::start();
    let refused = |args: &[&str], says: &str| {
        let out = broker
            .skiff(&["bench"])
            .args(args)
            .output()
            .expect("skiff runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} refused");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(
        &["produce", "--topic", "k", "--protocol", "kafka"],
        "--kafka-broker",
    );
    refused(
        &[
            "e2e",
            "--topic",
            "k",
            "--protocol",
            "kafka",
            "--kafka-broker",
            "127.0.0.1:1",
        ],
        "--protocol kafka runs the produce and consume benches",
    );
}

/// Runs `skiff bench ARGS` with no broker (modes that need none).
fn skiff_alone(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("bench")
        .args(args)
        .output()
        .expect("skiff runs")
}

/// `skiff bench ARGS --json` with no broker: it must succeed; its summary.
fn skiff_alone_json(args: &[&str]) -> Value {
    let out = skiff_alone(&[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

/// `bench fsync`: the bare append+fdatasync loop, in a given directory
/// (the file is gone afterwards) and in a temporary one; bad sizes and a
/// missing directory are refused by name.
#[test]
fn fsync_loop_times_each_append_and_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let v = skiff_alone_json(&[
        "fsync",
        "--dir",
        d,
        "--messages",
        "200",
        "--rate",
        "5000",
        "--size",
        "2500",
    ]);
    assert_eq!(v["mode"], "fsync");
    assert_eq!(v["syncs"].as_u64(), Some(200), "{v}");
    assert_eq!(v["zeroed_bytes"].as_u64(), Some(0), "{v}");
    assert_eq!(v["size"].as_u64(), Some(2500), "{v}");
    assert_eq!(v["dir"].as_str(), Some(d), "{v}");
    let lat = &v["latency_ms"];
    assert_eq!(lat["count"].as_u64(), Some(200), "{v}");
    let (p50, p90, p99, p999, max) = (
        f(lat, "p50"),
        f(lat, "p90"),
        f(lat, "p99"),
        f(lat, "p99_9"),
        f(lat, "max"),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{lat}"
    );
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "the loop's file is removed"
    );

    // Default directory, a duration, the human table.
    let out = skiff_alone(&["fsync", "--duration", "0.2", "--rate", "500"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("fdatasync loop in"), "{table}");
    assert!(table.contains("p99.9"), "{table}");

    // Pre-zeroed: 30 syncs overwrite the 3,000 zeroed bytes, and the file
    // is still removed.
    let v = skiff_alone_json(&[
        "fsync",
        "--dir",
        d,
        "--messages",
        "30",
        "--size",
        "100",
        "--rate",
        "5000",
        "--prezero",
    ]);
    assert_eq!(v["prezero"], true, "{v}");
    assert_eq!(v["syncs"].as_u64(), Some(30), "{v}");
    assert_eq!(v["zeroed_bytes"].as_u64(), Some(3000), "{v}");
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "the pre-zeroed file is removed"
    );

    for (args, named) in [
        (&["fsync", "--size", "0", "--messages", "1"][..], "--size"),
        (&["fsync", "--rate", "0", "--messages", "1"][..], "--rate"),
        (&["fsync", "--duration=-1"][..], "--duration"),
        (&["fsync", "--duration", "NaN"][..], "--duration"),
        (
            &[
                "fsync",
                "--dir",
                "/nonexistent/skiff-bench",
                "--messages",
                "1",
            ][..],
            "/nonexistent/skiff-bench",
        ),
        // Options of one mode are refused in the others, by name.
        (&["e2e", "--topic", "t", "--prezero"][..], "--prezero"),
        (
            &["produce", "--topic", "t", "--pacing-tick-us", "50"][..],
            "--pacing-tick-us",
        ),
        (
            &["e2e", "--topic", "t", "--pacing-tick-us", "50"][..],
            "--rate",
        ),
        (
            &[
                "e2e",
                "--topic",
                "t",
                "--rate",
                "10",
                "--pacing-tick-us",
                "5",
            ][..],
            "--pacing-tick-us",
        ),
    ] {
        let out = skiff_alone(args);
        assert!(!out.status.success(), "{args:?} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{args:?}: {err}");
    }
    // Every other mode still needs its topic.
    let out = skiff_alone(&["e2e", "--messages", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--topic"));
}

/// `e2e --echo`: the same paced producer and consumer against the bench's
/// in-process echo of the framing, no broker at all (none is started).
#[test]
fn e2e_against_the_echo_needs_no_broker() {
    let out = skiff_alone(&[
        "e2e",
        "--echo",
        "--topic",
        "floor",
        "--messages",
        "3000",
        "--rate",
        "10000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_sane(&v, 3000, 100);
    assert_eq!(v["echo"], true, "{v}");
    assert_eq!(v["latency_ms"]["count"].as_u64(), Some(3000), "{v}");
    assert_eq!(v["send_delay_ms"]["count"].as_u64(), Some(3000), "{v}");
    assert_eq!(v["disk_bytes"].as_u64(), Some(0), "nothing on disk: {v}");

    // A 1 ms pacing tick: the producer sleeps at least that long between
    // sends, so a message waits for the end of its tick, half of it at the
    // median (a floor set by the sleep, not by how fast the machine is).
    let v = skiff_alone_json(&[
        "e2e",
        "--echo",
        "--topic",
        "ticks",
        "--messages",
        "2000",
        "--rate",
        "10000",
        "--pacing-tick-us",
        "1000",
    ]);
    assert_sane(&v, 2000, 100);
    let waited = f(&v["send_delay_ms"], "p50");
    assert!(
        waited >= 0.3,
        "send delay p50 {waited} ms with a 1 ms tick: {v}"
    );

    // Two partitions, two consumers: each gets its own partition's batches.
    let out = skiff_alone(&[
        "e2e",
        "--echo",
        "--topic",
        "floor2",
        "--partitions",
        "2",
        "--consumers",
        "2",
        "--messages",
        "2000",
        "--rate",
        "10000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_sane(&v, 2000, 100);

    let out = skiff_alone(&["produce", "--echo", "--topic", "x", "--messages", "1"]);
    assert!(!out.status.success(), "--echo is for e2e");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--echo"));
}

/// `--protocol kafka` against a broker with users: the bench's Kafka
/// connections sign in with SASL PLAIN as `--user`; a token cannot name the
/// user and is refused, named.
#[test]
fn the_kafka_bench_signs_in_with_the_cli_credentials() {
    let broker = TestBroker::start_with(|c| {
        c.kafka_listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.users = vec![
            skiff_broker::BootstrapUser::from_password("admin", "admin-pw", true).expect("hash"),
        ];
    });
    let kafka = broker.kafka_addr.clone().expect("the Kafka listener is on");
    let signed_in = ["--user", "admin", "--password", "admin-pw"];
    let kafka_args = ["--protocol", "kafka", "--kafka-broker", kafka.as_str()];
    for mode in ["produce", "consume"] {
        let mut args = signed_in.to_vec();
        args.extend(["bench", mode, "--topic", "ks", "--messages", "2000"]);
        args.extend(kafka_args);
        let out = broker.skiff(&args).arg("--json").output().expect("runs");
        assert!(
            out.status.success(),
            "{mode} signed in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
        assert_sane(&v, 2000, 100);
    }

    // A token: SASL PLAIN names its user, so the bench refuses it.
    let created = broker
        .skiff(&["--user", "admin", "--password", "admin-pw"])
        .args(["user", "token", "create", "admin"])
        .output()
        .expect("runs");
    assert!(created.status.success(), "token created");
    let token = String::from_utf8(created.stdout).expect("utf-8");
    let token = token.trim();
    let mut args = vec!["--token", token, "bench", "consume", "--topic", "ks"];
    args.extend(["--messages", "2000"]);
    args.extend(kafka_args);
    let out = broker.skiff(&args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a token alone is refused");
    assert!(
        stderr.contains("give --user and --password instead of --token"),
        "{stderr}"
    );
}
