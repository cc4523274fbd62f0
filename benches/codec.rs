//! Record-batch codec throughput: build, validate and decode; and per
//! compression codec, compress and decompress a 64 KiB batch of JSON order
//! events (`skiff_protocol::testdata`), with the compression ratio printed
//! once per codec. Throughput is counted in uncompressed bytes.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_protocol::batch::{
    BATCH_HEADER_BYTES, BatchBuilder, DECOMPRESSED_BATCH_BYTES_MAX, Record, decode_records,
    validate,
};
use skiff_protocol::compression::{self, Compression, Level};
use skiff_protocol::testdata::JsonEvents;

fn records(n: usize, value_bytes: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Bytes::from(vec![b'x'; value_bytes]),
            headers: vec![],
        })
        .collect()
}

fn build(recs: &[Record]) -> Bytes {
    let mut b = BatchBuilder::new();
    for r in recs {
        b.push(r.clone());
    }
    b.build()
}

fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    for (name, n, value) in [
        ("1KiB-10rec", 10, 80),
        ("64KiB-16rec", 16, 4080),
        ("64KiB-640rec", 640, 80),
    ] {
        let recs = records(n, value);
        let batch = build(&recs);
        g.throughput(Throughput::Bytes(batch.len() as u64));
        g.bench_function(format!("build/{name}"), |b| b.iter(|| build(&recs)));
        g.bench_function(format!("validate/{name}"), |b| {
            b.iter(|| validate(&batch).expect("valid"))
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_records(&batch).expect("valid"))
        });
    }
    g.finish();
}

/// A producer-sized batch of JSON order events: ~64 KiB of values, keyed by
/// order, one header each, from a fixed seed.
fn json_batch() -> BatchBuilder {
    let mut b = BatchBuilder::new();
    for (i, value) in JsonEvents::new(2024)
        .fill(64 * 1024)
        .into_iter()
        .enumerate()
    {
        b.push(Record {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("ord-{:06}", i * 7919 % 1_000_000))),
            value,
            headers: vec![skiff_protocol::batch::Header {
                key: "content-type".into(),
                value: Bytes::from_static(b"application/json"),
            }],
        });
    }
    b
}

fn bench_compression(c: &mut Criterion) {
    let builder = json_batch();
    let plain = builder.clone().build();
    let records = &plain[BATCH_HEADER_BYTES..];
    let mut g = c.benchmark_group("compression");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(records.len() as u64));
    for codec in Compression::ALL {
        let compressed = compression::compress(codec, Level::Default, records).expect("compresses");
        let batch = builder
            .clone()
            .build_compressed(codec, Level::Default)
            .expect("builds");
        eprintln!(
            "compression/{codec}: {} records, {} bytes of records -> {} bytes, ratio {:.2}",
            builder.len(),
            records.len(),
            compressed.len(),
            records.len() as f64 / compressed.len() as f64
        );
        g.bench_function(format!("compress/{codec}"), |b| {
            b.iter(|| compression::compress(codec, Level::Default, records).expect("compresses"))
        });
        g.bench_function(format!("decompress/{codec}"), |b| {
            b.iter(|| {
                compression::decompress(codec, &compressed, DECOMPRESSED_BATCH_BYTES_MAX)
                    .expect("decompresses")
            })
        });
        // The broker's check of a produced batch: CRC, inflate, walk.
        g.bench_function(format!("validate/{codec}"), |b| {
            b.iter(|| validate(&batch).expect("valid"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_codec, bench_compression);
criterion_main!(benches);
