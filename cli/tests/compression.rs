//! `skiff produce --compression`: what `skiff consume` prints is the same
//! as for an uncompressed run.

mod common;

use common::TestBroker;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Produces `input` to a new one-partition topic with `extra` flags and
/// returns what `skiff consume` prints for it.
fn round_trip(b: &TestBroker, topic: &str, extra: &[&str], input: &str, n: usize) -> String {
    let out = b.run(&["topic", "create", topic, "--partitions", "1"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut args = vec!["produce", topic, "--key-separator", ":"];
    args.extend_from_slice(extra);
    let out = b.run(&args, input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let n = n.to_string();
    let out = b.run(&["consume", topic, "--max-messages", &n], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn zstd_produce_then_consume_prints_what_an_uncompressed_run_prints() {
    let b = TestBroker::start();
    let input: String = (0..500)
        .map(|i| format!("k{}:value number {i} {}\n", i % 7, "x".repeat(i % 50)))
        .collect();
    let plain = round_trip(&b, "plain", &[], &input, 500);
    let zstd = round_trip(
        &b,
        "zstd",
        &["--compression", "zstd", "--compression-level", "5"],
        &input,
        500,
    );
    assert_eq!(plain.lines().count(), 500);
    assert_eq!(zstd, plain);
    let gzip = round_trip(&b, "gzip", &["--compression", "gzip"], &input, 500);
    assert_eq!(gzip, plain);
}

#[test]
fn a_level_outside_the_codec_range_is_refused_before_sending() {
    let b = TestBroker::start();
    let out = b.run(
        &[
            "produce",
            "t",
            "--value",
            "v",
            "--compression",
            "gzip",
            "--compression-level",
            "10",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--compression-level"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn topic_compression_is_set_shown_altered_and_bad_values_are_named() {
    let b = TestBroker::start();
    let out = b.run(
        &[
            "topic",
            "create",
            "z",
            "--partitions",
            "1",
            "--compression",
            "zstd",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(&["topic", "describe", "z"], "");
    assert!(
        text(&out.stdout).contains("compression: zstd"),
        "{}",
        text(&out.stdout)
    );
    let out = b.run(&["topic", "alter", "z", "--compression", "producer"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("compression=producer"),
        "{}",
        text(&out.stderr)
    );
    let out = b.run(&["topic", "describe", "z", "--json"], "");
    assert!(
        text(&out.stdout).contains(r#""compression":"producer""#),
        "{}",
        text(&out.stdout)
    );
    for args in [
        &["topic", "create", "y", "--compression", "brotli"][..],
        &["topic", "alter", "z", "--compression", "brotli"][..],
    ] {
        let out = b.run(args, "");
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("brotli") && err.contains("producer, none"),
            "{err}"
        );
    }
    // Nothing changed or appeared.
    let out = b.run(&["topic", "list"], "");
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
    let out = b.run(&["topic", "describe", "z"], "");
    assert!(
        text(&out.stdout).contains("compression: producer"),
        "{}",
        text(&out.stdout)
    );
}
