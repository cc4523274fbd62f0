//! `skiff bench fsync`: the bare fdatasync loop, the disk's own floor that
//! a durable broker's `--fsync always` latency is judged against.
//!
//! One thread appends `--size` bytes to a file and calls `fdatasync` after
//! each append, paced at `--rate` syncs/s from each sync's *intended* time:
//! a slow sync delays the ones behind it, and that wait is in their
//! latency (no coordinated omission). Latency is per append+sync, from its
//! intended start to the sync returning. No broker is involved.
//!
//! With `--prezero` the loop first writes zeros over as many bytes as the
//! run will write (at most [`FILE_BYTES_MAX`]) and syncs them, then
//! overwrites them from the start: each fdatasync then has no file size or
//! block allocation to make durable, only the data (on ext4, no journal
//! commit).
//!
//! Invariants: the file lives in `--dir` (default: a fresh temporary
//! directory, removed at the end; to compare with a broker it must be on
//! the broker's data disk) and never grows past [`FILE_BYTES_MAX`]: it is
//! truncated to empty when it would (pre-zeroed: written over from the start
//! again), so any duration runs in bounded disk.

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
/// Bytes of zeros written per `write` when pre-zeroing.
const ZERO_CHUNK_BYTES: usize = 1024 * 1024;
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
    let zeroed = if args.prezero {
        let syncs = args.messages.unwrap_or_else(|| {
            let secs = deadline.map_or(DURATION_S_DEFAULT, |d| d.as_secs_f64());
            (secs * rate as f64).ceil() as u64
        });
        let want = syncs.saturating_mul(args.size as u64);
        let len = want.clamp(args.size as u64, FILE_BYTES_MAX);
        prezero(&file, &path, len)?;
        Some(len)
    } else {
        None
    };
    let looped = sync_loop(
        file,
        &path,
        args.size,
        rate,
        args.messages,
        deadline,
        zeroed,
    );
    let removed = std::fs::remove_file(&path);
    let (latency, elapsed) = looped?;
    removed.with_context(|| format!("removing {}", path.display()))?;
    let syncs = latency.len();
    let summary = json!({
        "mode": "fsync",
        "dir": dir.display().to_string(),
        "size": args.size,
        "prezero": args.prezero,
        "zeroed_bytes": zeroed.unwrap_or(0),
        "rate": rate,
        "syncs": syncs,
        "syncs_per_s": syncs as f64 / elapsed.as_secs_f64().max(1e-9),
        "elapsed_s": elapsed.as_secs_f64(),
        "latency_kind": "intended start to fdatasync returned, per append",
        "latency_ms": percentiles(&latency),
    });
    output::summary(args.json, &summary, print_human)
}

/// Writes zeros over the first `len` bytes of `file` and syncs them (data
/// and size).
fn prezero(file: &File, path: &Path, len: u64) -> Result<()> {
    let zeros = vec![0_u8; ZERO_CHUNK_BYTES];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(ZERO_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .with_context(|| format!("writing zeros to {}", path.display()))?;
        at += n as u64;
    }
    file.sync_all()
        .with_context(|| format!("fsync of {} after writing zeros", path.display()))
}

/// Appends and syncs until `syncs` are done or `deadline` has passed since
/// the start; returns the latency of each and the time taken. With
/// `zeroed` (the length [`prezero`] wrote) it overwrites those bytes
/// instead, from the start again when the next write would pass them.
fn sync_loop(
    file: File,
    path: &Path,
    size: usize,
    rate: u64,
    syncs: Option<u64>,
    deadline: Option<Duration>,
    zeroed: Option<u64>,
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
        if let Some(len) = zeroed {
            if written + size as u64 > len {
                written = 0;
            }
        } else if written + size as u64 > FILE_BYTES_MAX {
            file.set_len(0)
                .with_context(|| format!("truncating {}", path.display()))?;
            written = 0;
        }
        // Positioned at the bytes written so far (the end when appending,
        // the next zeroed bytes when pre-zeroed): after a truncate a cursor
        // would be left past the end.
        file.write_all_at(&block, written)
            .with_context(|| format!("writing to {}", path.display()))?;
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
        "fdatasync loop in {}: {} {} of {} bytes, each synced, at {} syncs/s ({:.0} done/s) in {:.2} s",
        s["dir"].as_str().unwrap_or(""),
        s["syncs"],
        if s["prezero"].as_bool() == Some(true) {
            "overwrites (pre-zeroed)"
        } else {
            "appends"
        },
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
