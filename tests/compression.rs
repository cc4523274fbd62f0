//! Black-box tests of compressed batches: a real broker and the client
//! crate. Every codec round-trips keys, headers and values; codecs mix in
//! one partition; a consumer starting inside a compressed batch gets only
//! the records from its offset on; a compressed batch whose records do not
//! inflate, whose inflated records lie, or that inflates past
//! `DECOMPRESSED_BATCH_BYTES_MAX` (a compression bomb) is refused with
//! `CorruptBatch`, its CRC correct, and the log end does not move. A topic's
//! compression policy (`producer` or a codec) decides what is stored: a
//! `zstd` topic holds only zstd batches whatever the producer sent, the
//! records unchanged; the policy is altered live and survives a restart.

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use common::{RawConn, next_records, start_broker};
use skiff_client::{
    AlterTopicRequest, Client, ClientConfig, Compression, CompressionLevel, ConsumedRecord,
    Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartFrom,
    TopicCompression, TopicConfig,
};
use skiff_protocol::ErrorCode;
use skiff_protocol::batch::{
    BATCH_HEADER_BYTES, BatchBuilder, BatchIter, Record, batch_compression, validate,
};
use skiff_protocol::compression::compress;
use skiff_protocol::messages::{
    CreateTopicRequest, DescribeTopicRequest, FetchRequest, ListTopicsRequest, ProduceRequest,
    ProduceResponse, Request,
};
use skiff_protocol::primitives::{Encode, decode_body};

/// Byte position of the attributes in a batch header.
const POS_ATTRIBUTES: usize = 17;
/// Byte position of `record_count` in a batch header.
const POS_RECORD_COUNT: usize = 53;
/// First byte covered by the batch CRC.
const CRC_START: usize = 16;

async fn client_for(addr: std::net::SocketAddr) -> Client {
    Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("client connects")
}

async fn create(client: &Client, topic: &str) {
    client
        .admin()
        .create_topic(
            topic,
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create topic");
}

fn producer(client: &Client, codec: Compression) -> Producer {
    let config = ProducerConfig::default()
        .linger_ms(20)
        .compression(codec)
        .compression_level(CompressionLevel::Default);
    Producer::new(client.clone(), config)
}

fn record(topic: &str, i: usize) -> ProducerRecord {
    ProducerRecord::new(topic, format!("value {i} {}", "abc".repeat(i % 40)))
        .key(format!("key-{}", i % 5))
        .header("index", i.to_string())
        .header("empty", "")
        .partition(0)
        .timestamp_ms(1_700_000_000_000 + i as i64)
}

/// Sends `records` as one burst (so they share batches) and returns their
/// offsets.
async fn send_all(producer: &Producer, records: Vec<ProducerRecord>) -> Vec<u64> {
    let futures: Vec<_> = records.into_iter().map(|r| producer.send(r)).collect();
    futures::future::join_all(futures)
        .await
        .into_iter()
        .map(|a| a.expect("acknowledged").offset)
        .collect()
}

async fn consume_from(client: &Client, topic: &str, from: u64, n: usize) -> Vec<ConsumedRecord> {
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign(topic, [0], StartFrom::Offset(from))
        .await
        .expect("assign");
    next_records(&mut consumer, n).await
}

fn assert_same(got: &ConsumedRecord, sent: &ProducerRecord, offset: u64) {
    assert_eq!(got.offset, offset);
    assert_eq!(got.key, sent.key, "key at {offset}");
    assert_eq!(got.value, sent.value, "value at {offset}");
    assert_eq!(got.headers, sent.headers, "headers at {offset}");
    assert_eq!(
        Some(got.timestamp_ms),
        sent.timestamp_ms,
        "timestamp at {offset}"
    );
}

async fn end_offset(conn: &mut RawConn, topic: &str) -> u64 {
    conn.call(DescribeTopicRequest { name: topic.into() })
        .await
        .expect("describe")
        .partitions[0]
        .log_end_offset
}

async fn produce_raw(conn: &mut RawConn, topic: &str, batch: Bytes) -> (ErrorCode, String) {
    conn.call(ProduceRequest {
        topic: topic.into(),
        partition: 0,
        batch,
    })
    .await
    .expect_err("the batch is refused")
}

fn builder(records: usize) -> BatchBuilder {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.push(Record {
            timestamp_ms: 1,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(vec![b'v'; 10]),
            headers: vec![],
        });
    }
    b
}

/// A batch with `header`'s fields (attributes set to `codec`) followed by
/// `payload` as its records section, batch_len and CRC made right.
fn forge(header: &[u8], codec: Compression, payload: &[u8]) -> Bytes {
    let mut b = header[..BATCH_HEADER_BYTES].to_vec();
    b.extend_from_slice(payload);
    let batch_len = (b.len() - 12) as u32;
    b[8..12].copy_from_slice(&batch_len.to_le_bytes());
    b[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&codec.attribute().to_le_bytes());
    let crc = crc32fast::hash(&b[CRC_START..]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(b)
}

#[tokio::test]
async fn every_codec_round_trips_keys_headers_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    for codec in Compression::ALL {
        let topic = format!("c-{codec}");
        create(&client, &topic).await;
        let records: Vec<_> = (0..200).map(|i| record(&topic, i)).collect();
        let offsets = send_all(&producer(&client, codec), records.clone()).await;
        assert_eq!(offsets, (0..200).collect::<Vec<u64>>(), "{codec}");
        let got = consume_from(&client, &topic, 0, 200).await;
        for (i, (g, s)) in got.iter().zip(&records).enumerate() {
            assert_same(g, s, i as u64);
        }
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn codecs_mix_in_one_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    create(&client, "mixed").await;
    let mut sent = Vec::new();
    for round in 0..2 {
        for codec in Compression::ALL {
            let records: Vec<_> = (0..30)
                .map(|i| record("mixed", sent.len() + i + round))
                .collect();
            let offsets = send_all(&producer(&client, codec), records.clone()).await;
            assert_eq!(offsets[0], sent.len() as u64, "{codec}");
            sent.extend(records);
        }
    }
    let got = consume_from(&client, "mixed", 0, sent.len()).await;
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_same(g, s, i as u64);
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_consumer_starting_inside_a_compressed_batch_gets_records_from_its_offset_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    create(&client, "mid").await;
    // One batch of 50 records: build it ourselves so it is one batch for sure.
    let mut b = BatchBuilder::new();
    for i in 0..50 {
        b.push(Record {
            timestamp_ms: 1_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(format!("v{i}")),
            headers: vec![],
        });
    }
    let batch = b
        .build_compressed(Compression::Zstd, CompressionLevel::Default)
        .expect("compresses");
    assert_eq!(batch_compression(&batch).expect("codec"), Compression::Zstd);
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let ok = conn
        .call(ProduceRequest {
            topic: "mid".into(),
            partition: 0,
            batch,
        })
        .await
        .expect("stored");
    assert_eq!((ok.base_offset, ok.last_offset), (0, 49));
    let got = consume_from(&client, "mid", 37, 13).await;
    let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (37..50).collect::<Vec<u64>>());
    assert_eq!(got[0].value, Bytes::from("v37"));
    assert_eq!(got[12].key, Some(Bytes::from("k49")));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn corrupt_compressed_records_with_a_valid_crc_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    create(&client, "t").await;
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let honest = builder(3).build();

    // Records that are not a zstd stream at all.
    let garbage = forge(
        &honest,
        Compression::Zstd,
        b"this is not a zstd frame, not at all",
    );
    let (code, message) = produce_raw(&mut conn, "t", garbage).await;
    assert_eq!(code, ErrorCode::CorruptBatch, "{message}");
    assert!(message.contains("compressed records refused"), "{message}");
    assert!(message.contains("zstd"), "{message}");

    // Every codec: well-formed compression of records that disagree with
    // the header (3 records, header says 4).
    let records = &honest[BATCH_HEADER_BYTES..];
    let mut lying_header = honest.to_vec();
    lying_header[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&4u32.to_le_bytes());
    for codec in Compression::ALL.into_iter().skip(1) {
        let payload = compress(codec, CompressionLevel::Default, records).expect("compresses");
        let lie = forge(&lying_header, codec, &payload);
        let (code, message) = produce_raw(&mut conn, "t", lie).await;
        assert_eq!(code, ErrorCode::CorruptBatch, "{codec}: {message}");
        assert!(
            message.contains(&format!("{codec}-compressed records")),
            "{codec}: {message}"
        );
    }
    assert_eq!(end_offset(&mut conn, "t").await, 0, "nothing was stored");

    // The same records, honestly compressed, are stored.
    let ok = builder(3)
        .build_compressed(Compression::Lz4, CompressionLevel::Default)
        .expect("compresses");
    let stored = conn
        .call(ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: ok,
        })
        .await
        .expect("stored");
    assert_eq!((stored.base_offset, stored.last_offset), (0, 2));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_compression_bomb_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    create(&client, "bomb").await;
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    // 64 MiB of zeros compress to a few KiB; the header says 1 record.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let one = builder(1).build();
    for codec in [Compression::Zstd, Compression::Gzip, Compression::Lz4] {
        let payload = compress(codec, CompressionLevel::Default, &zeros).expect("compresses");
        assert!(
            payload.len() < 4 * 1024 * 1024,
            "{codec}: {}",
            payload.len()
        );
        let bomb = forge(&one, codec, &payload);
        let (code, message) = produce_raw(&mut conn, "bomb", bomb).await;
        assert_eq!(code, ErrorCode::CorruptBatch, "{codec}: {message}");
        assert!(
            message.contains("inflates past the limit of 16777216 bytes"),
            "{codec}: {message}"
        );
    }
    assert_eq!(end_offset(&mut conn, "bomb").await, 0, "nothing was stored");
    broker.shutdown().await.expect("shutdown");
}

/// The codec of every batch stored in partition 0 of `topic`, read from the
/// raw bytes a fetch returns (the stored bytes, as the log holds them).
async fn stored_codecs(conn: &mut RawConn, topic: &str) -> Vec<Compression> {
    let fetched = conn
        .call(FetchRequest {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            max_bytes: 16 << 20,
            max_wait_ms: 0,
        })
        .await
        .expect("fetch");
    BatchIter::new(fetched.records)
        .map(|b| {
            let b = b.expect("whole batch");
            validate(&b).expect("stored batch is valid");
            batch_compression(&b).expect("codec")
        })
        .collect()
}

async fn create_with(client: &Client, topic: &str, compression: TopicCompression) {
    client
        .admin()
        .create_topic(
            topic,
            TopicConfig {
                partitions: 1,
                compression,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create topic");
}

#[tokio::test]
async fn a_zstd_topic_stores_zstd_batches_whatever_the_producer_sent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    let zstd = TopicCompression::Codec(Compression::Zstd);
    create_with(&client, "policed", zstd).await;
    create_with(&client, "as-sent", TopicCompression::Producer).await;
    let mut sent = Vec::new();
    let mut offsets = Vec::new();
    for (round, codec) in [Compression::None, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let p = producer(&client, codec);
        let records: Vec<_> = (round * 200..(round + 1) * 200)
            .map(|i| record("policed", i))
            .collect();
        let as_sent: Vec<_> = (round * 200..(round + 1) * 200)
            .map(|i| record("as-sent", i))
            .collect();
        offsets.extend(send_all(&p, records.clone()).await);
        send_all(&p, as_sent).await;
        sent.extend(records);
        p.flush().await.expect("flush");
    }
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let policed = stored_codecs(&mut conn, "policed").await;
    assert!(policed.len() >= 3, "{policed:?}");
    assert!(
        policed.iter().all(|c| *c == Compression::Zstd),
        "{policed:?}"
    );
    // The control topic keeps each producer's codec.
    let as_sent = stored_codecs(&mut conn, "as-sent").await;
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        assert!(as_sent.contains(&codec), "{codec} missing in {as_sent:?}");
    }
    // Records, offsets, timestamps, keys and headers are what was sent.
    assert_eq!(offsets, (0..sent.len() as u64).collect::<Vec<_>>());
    let got = consume_from(&client, "policed", 0, sent.len()).await;
    assert_eq!(got.len(), sent.len());
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_same(g, s, i as u64);
    }
    let d = client.admin().describe_topic("policed").await.unwrap();
    assert_eq!(d.config.compression, zstd);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn compression_is_altered_live_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    create(&client, "t").await;
    let p = producer(&client, Compression::Lz4);
    let mut sent: Vec<_> = (0..50).map(|i| record("t", i)).collect();
    send_all(&p, sent.clone()).await;
    let none = TopicCompression::Codec(Compression::None);
    let config = client
        .admin()
        .alter_topic(AlterTopicRequest {
            name: "t".into(),
            compression: Some(none),
            ..AlterTopicRequest::default()
        })
        .await
        .expect("alter");
    assert_eq!(config.compression, none);
    let more: Vec<_> = (50..100).map(|i| record("t", i)).collect();
    send_all(&p, more.clone()).await;
    sent.extend(more);
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let codecs = stored_codecs(&mut conn, "t").await;
    // Batches stored before the change stay lz4; later ones are plain.
    assert_eq!(codecs.first(), Some(&Compression::Lz4), "{codecs:?}");
    assert_eq!(codecs.last(), Some(&Compression::None), "{codecs:?}");
    assert!(
        codecs.is_sorted_by_key(|c| *c == Compression::None),
        "{codecs:?}"
    );
    drop((p, conn, client));
    broker.shutdown().await.unwrap();

    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    let d = client.admin().describe_topic("t").await.unwrap();
    assert_eq!(d.config.compression, none);
    let p = producer(&client, Compression::Lz4);
    let last: Vec<_> = (100..150).map(|i| record("t", i)).collect();
    send_all(&p, last.clone()).await;
    sent.extend(last);
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let codecs = stored_codecs(&mut conn, "t").await;
    assert_eq!(codecs.last(), Some(&Compression::None), "{codecs:?}");
    let got = consume_from(&client, "t", 0, sent.len()).await;
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_same(g, s, i as u64);
    }
    assert_eq!(got.len(), sent.len());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unknown_compression_on_the_wire_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let mut body = BytesMut::new();
    CreateTopicRequest {
        name: "t".into(),
        config: TopicConfig {
            partitions: 1,
            ..TopicConfig::default()
        },
    }
    .encode(&mut body);
    // The last byte is the compression tag: 9 names no policy.
    let last = body.len() - 1;
    body[last] = 9;
    let frame = conn.send_raw(1, 1, body.freeze()).await;
    assert_eq!(frame.error_code, ErrorCode::MalformedRequest);
    let message = common::error_message(frame.body);
    assert!(message.contains("compression"), "{message}");
    let topics = conn.call(ListTopicsRequest).await.unwrap();
    assert!(topics.topics.is_empty(), "nothing was created");
    broker.shutdown().await.unwrap();
}

/// Batch `i` of the pipelining test: `records` JSON events whose keys name
/// the batch, compressed with `codec`.
fn tagged_batch(i: usize, records: usize, codec: Compression) -> Bytes {
    let mut events = skiff_protocol::testdata::JsonEvents::new(i as u64);
    let mut b = BatchBuilder::new();
    for r in 0..records {
        b.push(Record {
            timestamp_ms: 1,
            key: Some(Bytes::from(format!("{i}:{r}"))),
            value: Bytes::from(events.next_json()),
            headers: Vec::new(),
        });
    }
    b.build_compressed(codec, CompressionLevel::Default)
        .expect("compresses")
}

/// Pipelined produces on one connection, alternating big zstd batches
/// (checked on the blocking pool) and small plain ones (checked in place),
/// are stored in the order they were sent, on a topic that stores them as
/// sent and on one that recompresses every batch: the ordered pipeline
/// waits for each check before the next produce starts.
#[tokio::test]
async fn pipelined_plain_and_compressed_produces_land_in_send_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = client_for(broker.local_addr()).await;
    create_with(&client, "as-sent", TopicCompression::Producer).await;
    create_with(&client, "lz4", TopicCompression::Codec(Compression::Lz4)).await;
    const BATCHES: usize = 16;
    for topic in ["as-sent", "lz4"] {
        let mut conn = RawConn::handshaken(broker.local_addr()).await;
        let mut wire = BytesMut::new();
        let mut sizes = Vec::new();
        for i in 0..BATCHES {
            let (records, codec) = if i % 2 == 0 {
                (2000, Compression::Zstd)
            } else {
                (3, Compression::None)
            };
            sizes.push(records as u64);
            let mut body = BytesMut::new();
            ProduceRequest {
                topic: topic.into(),
                partition: 0,
                batch: tagged_batch(i, records, codec),
            }
            .encode(&mut body);
            skiff_protocol::frame::encode_request_frame(
                1000 + i as u32,
                ProduceRequest::API_KEY as u16,
                ProduceRequest::API_VERSION,
                &body,
                &mut wire,
            );
        }
        // Every request in one write: they are all in the pipeline at once.
        conn.write_bytes(&wire).await;
        let mut base = BTreeMap::new();
        for _ in 0..BATCHES {
            let frame = conn.recv().await.expect("a response");
            assert_eq!(frame.error_code, ErrorCode::None, "{topic}");
            let r: ProduceResponse = decode_body(frame.body).expect("decodes");
            base.insert(frame.correlation_id - 1000, r.base_offset);
        }
        // Offsets follow the send order: batch i starts where i - 1 ended.
        let mut expected = 0;
        for (i, size) in sizes.iter().enumerate() {
            assert_eq!(base.get(&(i as u32)), Some(&expected), "{topic}: batch {i}");
            expected += size;
        }
        let total = expected as usize;
        let got = consume_from(&client, topic, 0, total).await;
        assert_eq!(got.len(), total);
        let order: Vec<usize> = got
            .iter()
            .map(|r| {
                let key =
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
                key.split(':')
                    .next()
                    .and_then(|b| b.parse().ok())
                    .expect("batch tag")
            })
            .collect();
        assert!(order.is_sorted(), "{topic}: records out of send order");
    }
    broker.shutdown().await.unwrap();
}
