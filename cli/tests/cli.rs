//! The `skiff` binary against an embedded broker: exit codes, output
//! formats, stdin handling and the broken-pipe rule.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;

use common::TestBroker;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn topic_commands() {
    let b = TestBroker::start();
    let out = b.run(&["topic", "create", "orders", "--partitions", "3"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(&["topic", "list"], "");
    assert_eq!(text(&out.stdout), "orders\t3\n");
    let out = b.run(&["topic", "describe", "orders", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["partitions"].as_array().map(Vec::len), Some(3));
    let out = b.run(&["topic", "create", "orders"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    let out = b.run(&["topic", "delete", "orders"], "");
    assert!(out.status.success());
    let out = b.run(&["topic", "list", "--json"], "");
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn produce_then_consume() {
    let b = TestBroker::start();
    assert!(
        b.run(&["topic", "create", "t", "--partitions", "2"], "")
            .status
            .success()
    );
    let out = b.run(
        &[
            "produce",
            "t",
            "--key-separator",
            ":",
            "--header",
            "src=test",
        ],
        "k1:one\nk2:two\nk1:three\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "produced 3 messages to t\n");
    let out = b.run(&["produce", "t", "--value", "four", "--partition", "1"], "");
    assert_eq!(text(&out.stderr), "produced 1 message to t\n");

    let out = b.run(&["consume", "t", "--max-messages", "4", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(records.len(), 4);
    let mut values: Vec<&str> = records.iter().filter_map(|r| r["value"].as_str()).collect();
    values.sort_unstable();
    assert_eq!(values, ["four", "one", "three", "two"]);
    let one = records.iter().find(|r| r["value"] == "one").expect("one");
    let three = records
        .iter()
        .find(|r| r["value"] == "three")
        .expect("three");
    assert_eq!(one["key"], "k1");
    assert_eq!(
        one["partition"], three["partition"],
        "same key, same partition"
    );
    assert_eq!(one["headers"][0]["key"], "src");

    // Plain output, one partition, from an offset, ended by idleness.
    let out = b.run(
        &[
            "consume",
            "t",
            "--partition",
            "1",
            "--from",
            "0",
            "--idle-timeout-ms",
            "300",
        ],
        "",
    );
    assert!(out.status.success());
    assert!(text(&out.stdout).lines().any(|l| l == "four"));
}

#[test]
fn errors_and_exit_codes() {
    let b = TestBroker::start();
    let out = b.run(&["consume", "missing", "--max-messages", "1"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: unknown topic \"missing\"\n");
    let out = b.run(&["consume", "t", "--from", "yesterday"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = b.run(&["produce", "missing"], "a\nb\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown topic"),
        "{}",
        text(&out.stderr)
    );
    assert!(b.run(&["topic", "create", "k"], "").status.success());
    let out = b.run(
        &["produce", "k", "--key-separator", "="],
        "a=1\nno separator\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_is_a_clean_exit() {
    let b = TestBroker::start();
    assert!(b.run(&["topic", "create", "many"], "").status.success());
    let lines: String = (0..5_000).map(|i| format!("message {i}\n")).collect();
    assert!(b.run(&["produce", "many"], &lines).status.success());
    let mut child = b
        .skiff(&["consume", "many", "--idle-timeout-ms", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skiff runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read a line");
    assert_eq!(first, "message 0\n");
    drop(stdout);
    let out = child.wait_with_output().expect("skiff finishes");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    text(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Total lag and member count of a group, from `skiff group describe --json`.
fn lag_and_members(b: &TestBroker, group: &str) -> (u64, usize) {
    let out = b.run(&["group", "describe", group, "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let parts = v["partitions"].as_array().expect("partitions");
    assert!(!parts.is_empty());
    let lag = parts
        .iter()
        .map(|p| p["lag"].as_u64().expect("every partition committed"))
        .sum();
    (lag, v["members"].as_array().expect("members").len())
}

#[test]
fn group_consume_commits_what_it_printed() {
    let b = TestBroker::start();
    assert!(
        b.run(&["topic", "create", "t", "--partitions", "3"], "")
            .status
            .success()
    );
    let lines: String = (0..9).map(|i| format!("k{i}:m{i}\n")).collect();
    assert!(
        b.run(&["produce", "t", "--key-separator", ":"], &lines)
            .status
            .success()
    );

    // Everything, then the group is at the end: lag 0, nothing re-read.
    let out = b.run(
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--idle-timeout-ms",
            "1000",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out.stdout).len(), 9);
    assert_eq!(lag_and_members(&b, "g"), (0, 0));
    let out = b.run(
        &["consume", "t", "--group", "g", "--idle-timeout-ms", "500"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");

    // --max-messages commits exactly what was printed.
    assert!(
        b.run(&["produce", "t", "--partition", "0"], "a\nb\nc\n")
            .status
            .success()
    );
    let out = b.run(&["consume", "t", "--group", "g", "--max-messages", "2"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\nb\n");
    assert_eq!(lag_and_members(&b, "g"), (1, 0));

    let out = b.run(&["group", "list", "--json"], "");
    let groups = json_lines(&out.stdout);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["group"], "g");
    let out = b.run(&["group", "describe", "g"], "");
    assert!(text(&out.stdout).contains("LAG"), "{}", text(&out.stdout));

    // A member that is still running blocks reset-offsets and delete; Ctrl-C
    // ends it cleanly, committing what it printed.
    let mut child = b
        .skiff(&["consume", "t", "--group", "g"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skiff runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read a line");
    assert_eq!(line, "c\n");
    let out = b.run(
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("has members"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = b.run(&["group", "delete", "g"], "");
    assert_eq!(out.status.code(), Some(1));
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let out = child.wait_with_output().expect("skiff finishes");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lag_and_members(&b, "g"), (0, 0));

    // Reset to the start: the group reads all 12 again; then delete it.
    let out = b.run(
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(
        &["consume", "t", "--group", "g", "--idle-timeout-ms", "1000"],
        "",
    );
    assert_eq!(text(&out.stdout).lines().count(), 12);
    let out = b.run(&["group", "delete", "g"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(&["group", "list", "--json"], "");
    assert_eq!(text(&out.stdout), "");

    let out = b.run(&["group", "describe", "nope"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    let out = b.run(&["consume", "t", "--group", "g", "--partition", "0"], "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "--group and --partition conflict"
    );
    let out = b.run(&["group", "reset-offsets", "g", "--topic", "t"], "");
    assert_eq!(out.status.code(), Some(2), "a target is required");
}

/// Keyless records of separate `skiff produce` runs spread over the
/// partitions: each run's producer starts at a random partition (it used to
/// start every run at partition 0, so all of them landed there).
#[test]
fn keyless_runs_spread_over_the_partitions() {
    let b = TestBroker::start();
    assert!(
        b.run(&["topic", "create", "orders", "--partitions", "3"], "")
            .status
            .success()
    );
    // 12 runs, each one batch of 10 lines. With a random start per run, all
    // 12 on one partition has chance 3 * (1/3)^12, about 6e-6: a false
    // failure is that rare.
    let runs = 12;
    let lines: String = (1..=10).map(|i| format!("{i}\n")).collect();
    for _ in 0..runs {
        let out = b.run(&["produce", "orders"], &lines);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = b.run(&["topic", "describe", "orders", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ends: Vec<u64> = v["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["log_end_offset"].as_u64().expect("log_end_offset"))
        .collect();
    assert_eq!(ends.iter().sum::<u64>(), runs * 10, "{ends:?}");
    assert!(
        ends.iter().filter(|&&end| end > 0).count() > 1,
        "every run landed on one partition: {ends:?}"
    );
}
