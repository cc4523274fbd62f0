//! `skiff status`, `skiff topic alter` and `skiff completions` as a user
//! runs them: the binary against an embedded broker.

use std::process::{Command, Output};

use skiff_broker::{Broker, TempBroker};

fn skiff(addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env("SKIFF_BROKER", addr)
        .args(args)
        .output()
        .expect("skiff runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn start() -> (tokio::runtime::Runtime, TempBroker, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let broker = runtime
        .block_on(Broker::start_temp())
        .expect("broker starts");
    let addr = broker.local_addr().to_string();
    (runtime, broker, addr)
}

#[test]
fn status_and_topic_alter() {
    let (runtime, broker, addr) = start();
    let out = skiff(&addr, &["topic", "create", "orders", "--partitions", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = skiff(&addr, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(status["topics"], 1);
    assert_eq!(status["partitions"], 2);
    assert_eq!(status["broker_version"], env!("CARGO_PKG_VERSION"));
    let out = skiff(&addr, &["status"]);
    assert!(
        text(&out.stdout).contains("partitions: 2"),
        "{}",
        text(&out.stdout)
    );

    let out = skiff(
        &addr,
        &[
            "topic",
            "alter",
            "orders",
            "--retention-ms",
            "60000",
            "--segment-bytes",
            "4096",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = skiff(&addr, &["topic", "describe", "orders"]);
    let described = text(&out.stdout);
    assert!(described.contains("retention_ms: 60000"), "{described}");
    assert!(described.contains("segment_bytes: 4096"), "{described}");

    let out = skiff(
        &addr,
        &["topic", "alter", "orders", "--retention-ms", "default"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = skiff(&addr, &["topic", "describe", "orders"]);
    assert!(text(&out.stdout).contains("retention_ms: default"));

    let out = skiff(&addr, &["topic", "alter", "missing", "--retention-ms", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing"),
        "{}",
        text(&out.stderr)
    );
    let out = skiff(&addr, &["topic", "alter", "orders"]);
    assert_eq!(out.status.code(), Some(2), "a change is required");

    runtime.block_on(broker.shutdown()).expect("clean shutdown");
}

#[test]
fn completions_and_help_examples() {
    for shell in ["bash", "zsh", "fish"] {
        let out = skiff("127.0.0.1:1", &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("skiff") && script.contains("alter"),
            "{shell}"
        );
    }
    for args in [
        vec!["--help"],
        vec!["status", "--help"],
        vec!["topic", "alter", "--help"],
        vec!["completions", "--help"],
    ] {
        let out = skiff("127.0.0.1:1", &args);
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("Example"), "{args:?}");
    }
}
