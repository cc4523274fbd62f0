//! `skiff bench fsync`: the bare fdatasync loop, the disk's own floor that
//! a durable broker's `--fsync always` latency is judged against.
//!
//! One thread appends `--size` bytes to a file and calls `fdatasync` after
//! each append, paced at `--rate` syncs/s from each sync's *intended* time:
//! a slow sync delays the ones behind it, and that wait is in their
//! latency (no coordinated omission). Latency is per append+sync, from its
//! intended start to the sync returning. No broker is involved.
//!
//! Invariants: the file lives in `--dir` (default: a fresh temporary
//! directory, removed at the end; to compare with a broker it must be on
//! the broker's data disk) and never grows past [`FILE_BYTES_MAX`]: it is
//! truncated to empty when it would, so any duration runs in bounded disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{new_histogram, percentiles, record_latency};
use crate::args::BenchArgs;
use crate::output;

/// Syncs per second when `--rate` is not given.
const RATE_DEFAULT: u64 = 2000;
/// Seconds run when neither `--duration` nor `--messages` is given.
const DURATION_S_DEFAULT: f64 = 5.0;
/// Largest append: one write of up to this many bytes per sync.
const SIZE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The file is truncated to empty before it would grow past this, in bytes.
const FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Name of the file appended to inside `--dir`.
const FILE_NAME: &str = "skiff-bench-fsync.dat";

/// Runs the loop on the calling thread (it blocks on the disk by design)
/// and prints its summary.
pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if args.size == 0 || args.size > SIZE_BYTES_MAX {
        bail!("fsync needs --size between 1 and {SIZE_BYTES_MAX} bytes");
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    let rate = args.rate.unwrap_or(RATE_DEFAULT);
    let temp;
    let dir: &Path = match &args.dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new()
                .prefix("skiff-bench-fsync")
                .tempdir()
                .context("creating a temporary directory for the fsync loop")?;
            temp.path()
        }
    };
    let path = dir.join(FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {} for the fsync loop", path.display()))?;
    let deadline = match (args.messages, args.duration) {
        (Some(_), _) => None,
        (None, d) => Some(Duration::from_secs_f64(d.unwrap_or(DURATION_S_DEFAULT))),
    };
    let looped = sync_loop(file, &path, args.size, rate, args.messages, deadline);
    let removed = std::fs::remove_file(&path);
    let (latency, elapsed) = looped?;
    removed.with_context(|| format!("removing {}", path.display()))?;
    let syncs = latency.len();
    let summary = json!({
        "mode": "fsync",
        "dir": dir.display().to_string(),
        "size": args.size,
        "rate": rate,
        "syncs": syncs,
        "syncs_per_s": syncs as f64 / elapsed.as_secs_f64().max(1e-9),
        "elapsed_s": elapsed.as_secs_f64(),
        "latency_kind": "intended start to fdatasync returned, per append",
        "latency_ms": percentiles(&latency),
    });
    output::summary(args.json, &summary, print_human)
}

/// Appends and syncs until `syncs` are done or `deadline` has passed since
/// the start; returns the latency of each and the time taken.
fn sync_loop(
    file: File,
    path: &Path,
    size: usize,
    rate: u64,
    syncs: Option<u64>,
    deadline: Option<Duration>,
) -> Result<(Histogram<u64>, Duration)> {
    let block = vec![0xa5_u8; size];
    let mut latency = new_histogram();
    let mut written: u64 = 0;
    let started = Instant::now();
    let mut k: u64 = 0;
    loop {
        if syncs.is_some_and(|n| k >= n) || deadline.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let intended = started + Duration::from_secs_f64(k as f64 / rate as f64);
        let ahead = intended.saturating_duration_since(Instant::now());
        if !ahead.is_zero() {
            std::thread::sleep(ahead);
        }
        if written + size as u64 > FILE_BYTES_MAX {
            file.set_len(0)
                .with_context(|| format!("truncating {}", path.display()))?;
            written = 0;
        }
        // Positioned at the known length (the end): after a truncate a
        // cursor would be left past the end.
        file.write_all_at(&block, written)
            .with_context(|| format!("appending to {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync of {}", path.display()))?;
        record_latency(&mut latency, intended.elapsed());
        written += size as u64;
        k += 1;
    }
    Ok((latency, started.elapsed()))
}

fn print_human(out: &mut output::Stdout, s: &Value) -> std::io::Result<()> {
    let lat = &s["latency_ms"];
    let ms = |k: &str| lat[k].as_f64().unwrap_or(0.0);
    writeln!(
        out,
        "fdatasync loop in {}: {} appends of {} bytes, each synced, at {} syncs/s ({:.0} done/s) in {:.2} s",
        s["dir"].as_str().unwrap_or(""),
        s["syncs"],
        s["size"],
        s["rate"],
        s["syncs_per_s"].as_f64().unwrap_or(0.0),
        s["elapsed_s"].as_f64().unwrap_or(0.0),
    )?;
    writeln!(
        out,
        "append+sync from intended start: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms",
        ms("p50"),
        ms("p90"),
        ms("p99"),
        ms("p99_9"),
        ms("max"),
    )
}
