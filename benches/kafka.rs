//! The Kafka front end's translation cost (`skiff_broker::kafka::records`):
//! a Kafka produce batch checked and re-encoded as a skiff batch, and a
//! stored skiff batch re-encoded as a Kafka batch for a fetch, per batch
//! shape and codec. Throughput is counted in uncompressed record bytes.
//! The batches are ~64 KiB, a producer's usual size; compare with
//! `codec/validate` and `codec/decode` (the native path's only per-batch
//! work) in `benches/codec.rs`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_broker::kafka::records::{kafka_to_skiff, skiff_to_kafka};
use skiff_protocol::batch::{BATCH_HEADER_BYTES, BatchBuilder, Header, Record};
use skiff_protocol::compression::{Compression, Level};
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
        g.throughput(Throughput::Bytes(plain_bytes as u64));
        g.bench_function(format!("produce-kafka-to-skiff/{name}"), |b| {
            b.iter(|| kafka_to_skiff(&kafka).expect("translates"))
        });
        g.bench_function(format!("fetch-skiff-to-kafka/{name}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(kafka.len());
                skiff_to_kafka(&skiff, &mut out).expect("translates");
                out
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_translate);
criterion_main!(benches);
