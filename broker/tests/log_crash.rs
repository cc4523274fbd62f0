//! Partition log under process death and write failures.
//!
//! Both tests re-run this test binary as a child process (selected by an
//! environment variable) so the child can be SIGKILLed or given a file-size
//! limit without touching the other tests.

mod log_support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log_support::*;
use rand::Rng;
use skiff_broker::log::{Durability, LogConfig, LogError, PartitionLog};
use skiff_protocol::batch::{BatchIter, decode_records};

const CRASH_DIR_ENV: &str = "SKIFF_LOG_CRASH_CHILD_DIR";
const CRASH_CYCLE_ENV: &str = "SKIFF_LOG_CRASH_CHILD_CYCLE";
const FSIZE_DIR_ENV: &str = "SKIFF_LOG_FSIZE_CHILD_DIR";
/// Appender threads in the crash child.
const CRASH_THREADS: u64 = 4;

fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        durability: Durability::Always,
        ..LogConfig::default()
    }
}

fn child(test: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test binary path"));
    c.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Child: appends from several threads forever, printing every acknowledged
/// batch as `ACK <tag> <base_offset> <last_offset>`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return; // only meaningful as the child of the test below
    };
    let cycle: u64 = std::env::var(CRASH_CYCLE_ENV)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (log, _) = PartitionLog::open(dir.as_ref(), crash_config()).expect("child open");
    let log = Arc::new(log);
    let threads: Vec<_> = (0..CRASH_THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0.. {
                    let tag = cycle * 1_000_000 + t * 100_000 + i;
                    let records = 1 + (tag % 5) as usize;
                    let info = log
                        .append(batch(tag, records, 64 + (i % 300) as usize, 0))
                        .expect("child append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {tag} {} {}", info.base_offset, info.last_offset)
                        .expect("stdout");
                    out.flush().expect("stdout");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    if std::env::var(CRASH_DIR_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::thread_rng();
    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    let started = Instant::now();
    for cycle in 0..5u64 {
        let mut proc = child(
            "crash_child",
            &[
                (CRASH_DIR_ENV, dir.path().display().to_string()),
                (CRASH_CYCLE_ENV, cycle.to_string()),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
        let stdout = proc.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() != Some("ACK") {
                    continue;
                }
                let nums: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
                if let [tag, base, last] = nums[..] {
                    acks.push((tag, base, last));
                }
            }
            acks
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..450)));
        proc.kill().expect("SIGKILL child");
        proc.wait().expect("reap child");
        let acks = reader.join().expect("reader");
        acked.extend(acks);

        // Every acknowledged batch is there, whole, at its offset.
        let (log, report) = PartitionLog::open(dir.path(), crash_config()).expect("reopen");
        assert!(!report.clean);
        let end = log.log_end_offset();
        for &(tag, base, last) in &acked {
            assert!(
                last < end,
                "acked batch {tag} at {base} beyond end {end} (cycle {cycle})"
            );
            let chunk = log.read(base, 1).expect("read acked batch");
            let first = BatchIter::new(chunk)
                .next()
                .expect("a batch")
                .expect("whole batch");
            let records = decode_records(&first).expect("valid batch");
            assert_eq!(records[0].offset, base, "batch {tag}");
            assert_eq!(records.last().expect("records").offset, last, "batch {tag}");
            assert_eq!(tag_of(&records[0]), tag);
        }
        // And the whole log is contiguous and readable.
        let all = read_all(&log, 256 * 1024);
        assert!(all.iter().enumerate().all(|(i, r)| r.offset == i as u64));
        drop(log);
    }
    let distinct: HashSet<u64> = acked.iter().map(|a| a.1).collect();
    assert_eq!(distinct.len(), acked.len(), "distinct offsets");
    assert!(
        acked.len() > 10,
        "child acknowledged only {} batches",
        acked.len()
    );
    // Typically 5-10 s; the bound is loose so a loaded machine does not flake.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

fn set_fsize_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer; affects only this child process.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// Child: hits a file-size limit mid-append, checks nothing half-written is
/// visible, then lifts the limit and appends again.
#[test]
fn fsize_child() {
    let Ok(dir) = std::env::var(FSIZE_DIR_ENV) else {
        return;
    };
    // SAFETY: ignoring SIGXFSZ makes writes past the limit fail with EFBIG
    // instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let config = LogConfig {
        segment_bytes: 1024 * 1024,
        ..LogConfig::default()
    };
    let (log, _) = PartitionLog::open(dir.as_ref(), config.clone()).expect("open");
    let log = Arc::new(log);
    let b = batch(1, 10, 100, 0);
    for _ in 0..10 {
        log.append(b.clone()).expect("append");
    }
    let size = log.size_bytes();
    set_fsize_limit(size + b.len() as u64 * 2 + b.len() as u64 / 2);
    assert!(log.append(b.clone()).is_ok());
    assert!(log.append(b.clone()).is_ok());
    let good_size = log.size_bytes();
    let good_end = log.log_end_offset();
    match log.append(b.clone()) {
        Err(LogError::Io {
            op: "write",
            source,
            ..
        }) => assert_eq!(source.raw_os_error(), Some(libc::EFBIG)),
        other => panic!("expected a write error, got {other:?}"),
    }
    assert_eq!(log.size_bytes(), good_size);
    assert_eq!(log.log_end_offset(), good_end);
    let seg = files(dir.as_ref(), "log").pop().expect("segment");
    assert_eq!(
        std::fs::metadata(&seg).expect("meta").len(),
        good_size,
        "partial write rolled back"
    );
    // A group of concurrent appends fails together, leaving nothing behind.
    let results: Vec<_> = (0..8)
        .map(|_| {
            let (log, b) = (Arc::clone(&log), b.clone());
            std::thread::spawn(move || log.append(b))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), good_size);
    assert_eq!(read_all(&log, 1 << 20).len() as u64, good_end);
    // Space is back: appends continue at the right offset.
    set_fsize_limit(libc::RLIM_INFINITY);
    assert_eq!(log.append(b.clone()).expect("append").base_offset, good_end);
    drop(log);
    let (log, report) = PartitionLog::open(dir.as_ref(), config).expect("reopen");
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), good_end + 10);
    println!("FSIZE-CHILD-OK");
}

#[test]
fn write_failure_rolls_back_and_appends_resume() {
    if std::env::var(FSIZE_DIR_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = child(
        "fsize_child",
        &[(FSIZE_DIR_ENV, dir.path().display().to_string())],
    )
    .output()
    .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("FSIZE-CHILD-OK"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
