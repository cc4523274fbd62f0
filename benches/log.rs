//! Partition-log throughput: appends under `Never` and `Always` (1 and 16
//! appender threads, group commit), and sequential reads of a large log.
//!
//! Run: `cargo bench --bench log`. Files go to a temp dir on the default
//! temp filesystem (set TMPDIR to a real disk: fsync on tmpfs is free).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skiff_broker::log::{Durability, LogConfig, PartitionLog};
use skiff_protocol::batch::{BatchBuilder, Record};

/// Size of the log the read benchmark scans.
const READ_LOG_BYTES: u64 = 1024 * 1024 * 1024;
/// Bytes asked for per read call (a typical fetch).
const READ_CHUNK_BYTES: usize = 1024 * 1024;

fn make_batch(records: usize, value_bytes: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.push(Record {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Bytes::from(vec![b'x'; value_bytes]),
            headers: vec![],
        });
    }
    b.build()
}

fn open(dir: &std::path::Path, durability: Durability) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 256 * 1024 * 1024,
        retention_bytes: Some(512 * 1024 * 1024),
        durability,
        ..LogConfig::default()
    };
    PartitionLog::open(dir, config).expect("open").0
}

/// Runs `iters` appends spread over `threads` threads; returns wall time.
fn appends(log: &Arc<PartitionLog>, batch: &Bytes, threads: u64, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    if threads == 1 {
        for _ in 0..iters {
            log.append(batch.clone()).expect("append");
        }
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..per_thread {
                        log.append(batch.clone()).expect("append");
                    }
                });
            }
        });
    }
    let took = start.elapsed();
    // Keep the disk footprint bounded, outside the timed part.
    log.enforce_retention(0).expect("retention");
    took * (iters as u32) / ((per_thread * threads) as u32).max(1)
}

fn bench_append(c: &mut Criterion) {
    let small = make_batch(10, 80); // ~1 KiB, 10 records
    let large = make_batch(16, 4080); // ~64 KiB
    let mut g = c.benchmark_group("append");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(10);
    for (mode_name, mode) in [("never", Durability::Never), ("always", Durability::Always)] {
        for (size_name, batch) in [("1KiB", &small), ("64KiB", &large)] {
            for threads in [1u64, 16] {
                if matches!(mode, Durability::Never) && threads == 16 {
                    continue;
                }
                let dir = tempfile::tempdir().expect("tempdir");
                let log = Arc::new(open(dir.path(), mode.clone()));
                // MB/s for Never, batches/s for Always (the group-commit figure).
                if matches!(mode, Durability::Never) {
                    g.throughput(Throughput::Bytes(batch.len() as u64));
                } else {
                    g.throughput(Throughput::Elements(1));
                }
                let id =
                    BenchmarkId::new(format!("{mode_name}/{size_name}"), format!("{threads}thr"));
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| appends(&log, batch, threads, iters))
                });
            }
        }
    }
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        durability: Durability::Never,
        ..LogConfig::default()
    };
    let (log, _) = PartitionLog::open(dir.path(), config).expect("open");
    let batch = make_batch(16, 4080);
    while log.size_bytes() < READ_LOG_BYTES {
        log.append(batch.clone()).expect("append");
    }
    log.flush().expect("flush");
    let end = log.log_end_offset();
    let per_read = log.read(0, READ_CHUNK_BYTES).expect("read").len() as u64;
    let mut g = c.benchmark_group("read");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(per_read));
    let mut offset = 0u64;
    g.bench_function("sequential/1GiB-log/1MiB-reads", |b| {
        b.iter(|| {
            let chunk = log.read(offset, READ_CHUNK_BYTES).expect("read");
            // Next offset: last batch's base + its records (16 per batch).
            offset += (chunk.len() / batch.len()) as u64 * 16;
            if offset >= end {
                offset = 0;
            }
            chunk
        })
    });
    g.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
