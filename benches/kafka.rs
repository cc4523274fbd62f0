//! The Kafka front end's per-batch cost (`skiff_protocol::kafka_batch`),
//! per batch shape and codec:
//! - `produce`: a Kafka produce batch taken into skiff's form (a header
//!   rewrite, magic 2) and checked as the log checks any produced batch
//!   (every record walked, a compressed one inflated);
//! - `fetch-magic2`: a stored magic-2 batch (what Kafka producers wrote)
//!   served as a Kafka batch: a header rewrite and a CRC-32C;
//! - `fetch-magic1`: a stored magic-1 batch (what skiff's own producer
//!   writes) served as a Kafka batch: every record re-encoded (and
//!   compressed again when it was).
//!
//! Throughput is counted in uncompressed record bytes. The batches are ~64
//! KiB, a producer's usual size; compare with `codec/validate` and
//! `codec/decode` (the native path's per-batch work) in `benches/codec.rs`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_protocol::batch::{
    BATCH_HEADER_BYTES, BatchBuilder, Header, Record, RecordEncoding, ValidBatch,
};
use skiff_protocol::compression::{Compression, Level};
use skiff_protocol::kafka_batch::{kafka_to_skiff, skiff_to_kafka};
use skiff_protocol::testdata::JsonEvents;

/// A ~64 KiB batch of `value_bytes`-byte values (keyed, one header each).
fn fixed(value_bytes: usize) -> BatchBuilder {
    let mut b = BatchBuilder::new();
    let n = 64 * 1024 / (value_bytes + 40);
    for i in 0..n {
        b.push(Record {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i:06}"))),
            value: Bytes::from(vec![b'x'; value_bytes]),
            headers: vec![Header {
                key: "trace".into(),
                value: Bytes::from_static(b"abc"),
            }],
        });
    }
    b
}

/// ~64 KiB of JSON order events (compressible as real payloads are).
fn json() -> BatchBuilder {
    let mut b = BatchBuilder::new();
    for (i, value) in JsonEvents::new(2024)
        .fill(64 * 1024)
        .into_iter()
        .enumerate()
    {
        b.push(Record {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("ord-{i:06}"))),
            value,
            headers: vec![],
        });
    }
    b
}

fn bench_translate(c: &mut Criterion) {
    let mut g = c.benchmark_group("kafka");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    let shapes = [
        ("100B", fixed(100), Compression::None),
        ("1KiB", fixed(1024), Compression::None),
        ("json", json(), Compression::None),
        ("json-lz4", json(), Compression::Lz4),
        ("json-zstd", json(), Compression::Zstd),
        ("json-gzip", json(), Compression::Gzip),
        ("json-snappy", json(), Compression::Snappy),
    ];
    for (name, builder, codec) in shapes {
        let plain_bytes = builder.encoded_bytes() - BATCH_HEADER_BYTES;
        let skiff = builder
            .build_compressed(codec, Level::Default)
            .expect("builds");
        let mut kafka = Vec::new();
        skiff_to_kafka(&skiff, &mut kafka).expect("translates");
        let kafka = Bytes::from(kafka);
        let stored_kafka_records = kafka_to_skiff(&kafka).expect("translates");
        assert_eq!(
            ValidBatch::check(stored_kafka_records.clone())
                .expect("valid")
                .header()
                .encoding(),
            Ok(RecordEncoding::Kafka)
        );
        g.throughput(Throughput::Bytes(plain_bytes as u64));
        g.bench_function(format!("produce/{name}"), |b| {
            b.iter(|| {
                let skiff = kafka_to_skiff(&kafka).expect("translates");
                ValidBatch::check(skiff).expect("the log accepts it")
            })
        });
        for (form, stored) in [("magic2", &stored_kafka_records), ("magic1", &skiff)] {
            g.bench_function(format!("fetch-{form}/{name}"), |b| {
                b.iter(|| {
                    let mut out = Vec::with_capacity(kafka.len());
                    skiff_to_kafka(stored, &mut out).expect("translates");
                    out
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_translate);
criterion_main!(benches);
