//! Record-batch codec throughput: build, validate and decode.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_protocol::batch::{BatchBuilder, Record, decode_records, validate};

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

criterion_group!(benches, bench_codec);
criterion_main!(benches);
