//! `skiff status`, `skiff topic alter` and `skiff completions` as a user
//! runs them: the binary against an embedded broker.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Runs `skiff ARGS` with stdout a pipe whose read end is already closed
/// (its only reader, another process, has exited), so the first write
/// fails with EPIPE however little is written. Waits at most 30 s.
fn run_into_closed_pipe(addr: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut reader = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("--version")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("reader runs");
    let write_end = reader.stdin.take().expect("pipe");
    assert!(reader.wait().expect("reader exits").success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env("SKIFF_BROKER", addr)
        .env("RUST_BACKTRACE", "0")
        .args(args)
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .spawn()
        .expect("skiff runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skiff {args:?} did not exit within 30 s of its stdout closing");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.code(), stderr)
}

/// The README's promise: a closed stdout pipe (`skiff ... | head -1`) is a
/// clean exit, for every command that writes to stdout. `completions` used
/// to panic (exit 101): clap_complete panics when its writer fails.
#[test]
fn a_closed_stdout_is_a_clean_exit_for_every_command() {
    let (runtime, broker, addr) = start();
    let commands: [&[&str]; 6] = [
        &["completions", "fish"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["--help"],
        &["status"],
        &["status", "--json"],
    ];
    for args in commands {
        let (code, stderr) = run_into_closed_pipe(&addr, args);
        assert_eq!(code, Some(0), "skiff {args:?}: {stderr}");
        assert_eq!(stderr, "", "skiff {args:?}");
    }
    runtime.block_on(broker.shutdown()).expect("clean shutdown");
}
