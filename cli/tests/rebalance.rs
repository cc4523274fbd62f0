//! Group hand-overs are pushed, not polled: with the members' heartbeat
//! interval far above the test's waits (10 s), a member joining a running
//! group gets its partitions and reads records produced after it joined
//! before any heartbeat interval could have passed. Real broker, real
//! `skiff consume --group` processes, real sockets.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestBroker;

/// The members' heartbeat interval: no heartbeat-driven step can happen
/// within [`WAIT_MAX`] of a member starting.
const HEARTBEAT_INTERVAL_MS: u32 = 20_000;
/// The members' session timeout: at least three heartbeat intervals, or
/// the broker shortens the interval.
const SESSION_TIMEOUT_MS: u32 = 60_000;
/// How long the test waits for the first member's reads, and for the whole
/// hand-over to the second member (from its start to its reads); well below
/// the heartbeat interval, so only a pushed assignment can meet it.
const WAIT_MAX: Duration = Duration::from_secs(8);
const PARTITIONS: u32 = 4;

/// A `skiff consume --group` process and the records it printed, each as
/// `(partition, value)`, read on a thread.
struct Member {
    child: Child,
    records: mpsc::Receiver<(u64, String)>,
}

impl Member {
    fn start(b: &TestBroker) -> Member {
        let mut child = b
            .skiff(&["consume", "t", "--group", "g", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("skiff runs");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, records) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { return };
                let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
                let record = (
                    v["partition"].as_u64().expect("partition"),
                    v["value"].as_str().expect("value").to_owned(),
                );
                if tx.send(record).is_err() {
                    return;
                }
            }
        });
        Member { child, records }
    }

    /// Records printed until `deadline` or until `done` says enough.
    fn read_until(
        &self,
        deadline: Instant,
        seen: &mut Vec<(u64, String)>,
        done: impl Fn(&[(u64, String)]) -> bool,
    ) {
        while !done(seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.records.recv_timeout(left) {
                Ok(record) => seen.push(record),
                Err(_) => return,
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn produce(b: &TestBroker, partition: u32, value: &str) {
    let out = b.run(
        &["produce", "t", "--partition", &partition.to_string()],
        &format!("{value}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `skiff group describe g --json`.
fn describe(b: &TestBroker) -> serde_json::Value {
    let out = b.run(&["group", "describe", "g", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Polls `describe` until `ok` holds, failing at `deadline`.
fn wait_for_group(
    b: &TestBroker,
    deadline: Instant,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) {
    loop {
        let d = describe(b);
        if ok(&d) {
            return;
        }
        assert!(Instant::now() < deadline, "group never {what}: {d}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_joining_member_reads_new_records_before_any_heartbeat() {
    let b = TestBroker::start_with(|c| {
        c.heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS;
        c.session_timeout_ms_default = SESSION_TIMEOUT_MS;
    });
    let out = b.run(
        &[
            "topic",
            "create",
            "t",
            "--partitions",
            &PARTITIONS.to_string(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in 0..PARTITIONS {
        produce(&b, p, &format!("before-{p}"));
    }

    // The first member reads everything there is.
    let a = Member::start(&b);
    let mut read_a = Vec::new();
    a.read_until(Instant::now() + WAIT_MAX, &mut read_a, |r| {
        r.len() == PARTITIONS as usize
    });
    assert_eq!(read_a.len(), PARTITIONS as usize, "{read_a:?}");

    // A second member joins: the broker moves half the partitions to it,
    // which takes a revocation on the first member and a grant on the
    // second, each before a heartbeat interval could have told them.
    // One deadline for the whole hand-over and the reads after it.
    let deadline = Instant::now() + WAIT_MAX;
    let second = Member::start(&b);
    wait_for_group(
        &b,
        deadline,
        "split its partitions between two members",
        |d| {
            let members = d["members"].as_array().expect("members");
            d["state"] == "stable"
                && members.len() == 2
                && members
                    .iter()
                    .all(|m| m["partitions"].as_array().is_some_and(|p| p.len() == 2))
        },
    );
    // Records produced after it joined: every one is read, by one member
    // or the other, and the new member reads its share, all by the
    // deadline, well before its first heartbeat (the first member may
    // heartbeat earlier, to retry an auto-commit refused for its stale
    // generation; the new member has nothing to commit).
    for p in 0..PARTITIONS {
        produce(&b, p, &format!("after-{p}"));
    }
    let mut read_second = Vec::new();
    second.read_until(deadline, &mut read_second, |r| {
        r.iter().filter(|(_, v)| v.starts_with("after-")).count() == 2
    });
    a.read_until(deadline, &mut read_a, |r| {
        r.iter().filter(|(_, v)| v.starts_with("after-")).count() == 2
    });
    let after = |r: &[(u64, String)]| -> BTreeSet<u64> {
        r.iter()
            .filter(|(_, v)| v.starts_with("after-"))
            .map(|(p, _)| *p)
            .collect()
    };
    let (by_a, by_second) = (after(&read_a), after(&read_second));
    assert_eq!(by_second.len(), 2, "new member read {read_second:?}");
    assert_eq!(by_a.len(), 2, "first member read {read_a:?}");
    assert!(by_a.is_disjoint(&by_second), "{by_a:?} {by_second:?}");
    // The new member started from the committed offsets: it re-read none
    // of the records the first member had already printed.
    assert!(
        read_second.iter().all(|(_, v)| v.starts_with("after-")),
        "{read_second:?}"
    );
}
