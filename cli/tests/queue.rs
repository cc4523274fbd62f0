//! `skiff queue` against an embedded broker: create, list, describe,
//! consume (printing, and --exec with ack, nack and reject by exit status),
//! alter and delete; `skiff bench queue` works through every record per
//! worker count and cleans up.

mod common;

use common::TestBroker;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn queue_commands() {
    let b = TestBroker::start();
    assert!(b.run(&["topic", "create", "jobs"], "").status.success());
    let out = b.run(&["produce", "jobs"], "a\nb\nc\nd\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(
        &[
            "queue",
            "create",
            "work",
            "--topic",
            "jobs",
            "--max-deliveries",
            "1",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("jobs.work.dlq"));
    let out = b.run(&["queue", "create", "bad/name", "--topic", "jobs"], "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error before connecting"
    );
    let out = b.run(&["queue", "list", "--json"], "");
    assert_eq!(
        text(&out.stdout),
        "{\"queue\":\"work\",\"topic\":\"jobs\"}\n"
    );

    // The queue reads "jobs": consuming it as another topic's is refused.
    let out = b.run(&["queue", "consume", "other", "--queue", "work"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("reads topic \"jobs\""),
        "{}",
        text(&out.stderr)
    );
    // Two printed and acked.
    let out = b.run(
        &[
            "queue",
            "consume",
            "jobs",
            "--queue",
            "work",
            "--max-messages",
            "2",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\nb\n");
    // --exec: "c" succeeds, "d" fails and goes to dead letters (one delivery
    // allowed).
    let out = b.run(
        &[
            "queue",
            "consume",
            "jobs",
            "--queue",
            "work",
            "--exec",
            "test \"$(cat)\" = c",
            "--idle-timeout-ms",
            "1500",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(&["queue", "describe", "work", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let p = &v["partitions"][0];
    assert_eq!(
        (p["floor"].as_u64(), p["acked"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(p["dead_lettered"].as_u64(), Some(1));
    let out = b.run(
        &[
            "consume",
            "jobs.work.dlq",
            "--from",
            "earliest",
            "--max-messages",
            "1",
        ],
        "",
    );
    assert_eq!(text(&out.stdout), "d\n");

    // Replayed once: back on the topic, handed out again, and a second
    // replay finds nothing new.
    let out = b.run(
        &["queue", "replay-dlq", "work", "--idle-timeout-ms", "1000"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("replayed 1 dead letters"),
        "{}",
        text(&out.stderr)
    );
    let out = b.run(
        &["queue", "replay-dlq", "work", "--idle-timeout-ms", "1000"],
        "",
    );
    assert!(
        text(&out.stderr).contains("replayed 0 dead letters"),
        "{}",
        text(&out.stderr)
    );
    let out = b.run(
        &[
            "queue",
            "consume",
            "jobs",
            "--queue",
            "work",
            "--max-messages",
            "1",
        ],
        "",
    );
    assert_eq!(text(&out.stdout), "d\n");

    let out = b.run(&["queue", "alter", "work", "--lock-ms", "5000"], "");
    assert!(text(&out.stdout).contains("lock_ms            5000"));
    let out = b.run(&["queue", "alter", "work", "--lock-ms", "5"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("lock_ms"),
        "{}",
        text(&out.stderr)
    );
    assert!(b.run(&["queue", "delete", "work"], "").status.success());
    assert_eq!(text(&b.run(&["queue", "list", "--json"], "").stdout), "");
}

#[test]
fn bench_queue_works_through_every_record_per_worker_count() {
    let b = TestBroker::start();
    let out = b.run(
        &[
            "bench",
            "queue",
            "--topic",
            "bq",
            "--messages",
            "500",
            "--workers",
            "1,2",
            "--nack-every",
            "100",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["records"].as_u64(), Some(500));
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for (run, workers) in runs.iter().zip([1, 2]) {
        assert_eq!(run["workers"].as_u64(), Some(workers));
        assert_eq!(run["acked"].as_u64(), Some(500), "{run}");
        // Offsets 0, 100, ..., 400 nacked once each, then handed out again.
        assert_eq!(run["nacked"].as_u64(), Some(5), "{run}");
        assert_eq!(run["handed_out"].as_u64(), Some(505), "{run}");
        assert_eq!(run["redelivery_ms"]["count"].as_u64(), Some(5), "{run}");
        assert!(run["acked_per_s"].as_f64().is_some_and(|r| r > 0.0));
    }
    // Each run's queue and dead-letter topic are gone.
    assert_eq!(text(&b.run(&["queue", "list", "--json"], "").stdout), "");
    let topics = text(&b.run(&["topic", "list"], "").stdout);
    assert!(!topics.contains(".dlq"), "{topics}");
}
