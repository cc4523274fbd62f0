//! Black-box tests of hostile clients: frames cut off mid-way, batches whose
//! record count lies or whose varints overflow, go negative or claim more
//! than the batch holds (each with a correct checksum), a thousand connections at
//! once, a slowloris client, a pipelining client the broker stops reading
//! (it is not taken for a slowloris), and a consumer that never reads its
//! socket.
//! In every case the broker keeps serving well-behaved clients.
//!
//! Memory bound of a client that never reads (stated here, relied on by the
//! test): its connection stops reading requests once
//! `requests_in_flight_max` are unanswered; answered responses wait in a
//! channel of `requests_in_flight_max` slots plus the one being written, so
//! at most about `(2 × requests_in_flight_max + 1) × fetch_bytes_max` bytes
//! of responses (plus kernel socket buffers) are held for it: with the
//! defaults (64, 8 MiB) about 1 GiB in the worst case, with this test's
//! settings (4, 256 KiB) about 2.3 MiB.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{RawConn, STEP_TIMEOUT, test_config};
use futures::{SinkExt, StreamExt};
use skiff_broker::Broker;
use skiff_protocol::ErrorCode;
use skiff_protocol::batch::{BatchBuilder, Record};
use skiff_protocol::frame::{ClientCodec, OutgoingRequest};
use skiff_protocol::messages::{
    ApiKey, DescribeTopicRequest, FetchRequest, HandshakeRequest, ListTopicsRequest,
    ProduceRequest, Request,
};
use skiff_protocol::primitives::Encode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Byte position of `record_count` in a batch header.
const POS_RECORD_COUNT: usize = 53;
/// Byte position of `last_offset_delta` in a batch header.
const POS_LAST_OFFSET_DELTA: usize = 19;
/// First byte covered by the batch CRC.
const CRC_START: usize = 16;

fn batch(records: usize, value_bytes: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.push(Record {
            timestamp_ms: 1,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(vec![b'v'; value_bytes]),
            headers: vec![],
        });
    }
    b.build()
}

/// Overwrites a u32 field and recomputes the CRC, so only the lie is left.
fn forge(batch: &Bytes, pos: usize, value: u32) -> Bytes {
    forge_bytes(batch, pos, &value.to_le_bytes())
}

/// Overwrites bytes at `pos` and recomputes the CRC.
fn forge_bytes(batch: &Bytes, pos: usize, bytes: &[u8]) -> Bytes {
    let mut b = batch.to_vec();
    b[pos..pos + bytes.len()].copy_from_slice(bytes);
    let crc = crc32fast::hash(&b[CRC_START..]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(b)
}

async fn end_offset(conn: &mut RawConn, topic: &str) -> u64 {
    conn.call(DescribeTopicRequest { name: topic.into() })
        .await
        .expect("describe")
        .partitions[0]
        .log_end_offset
}

fn request_bytes<R: Request>(correlation_id: u32, req: &R) -> Vec<u8> {
    let mut body = BytesMut::new();
    req.encode(&mut body);
    let mut out = Vec::new();
    out.put_u32_le((8 + body.len()) as u32);
    out.put_u32_le(correlation_id);
    out.put_u16_le(R::API_KEY as u16);
    out.put_u16_le(R::API_VERSION);
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn a_frame_cut_off_midway_then_closed_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(test_config(dir.path())).await.expect("start");
    let mut admin = RawConn::handshaken(broker.local_addr()).await;
    admin.create_topic("t", 1).await;
    let produce = ProduceRequest {
        topic: "t".into(),
        partition: 0,
        batch: batch(3, 100),
    };
    let whole = request_bytes(9, &produce);
    for cut in [1, 4, 7, 12, whole.len() / 2, whole.len() - 1] {
        let mut stream = TcpStream::connect(broker.local_addr())
            .await
            .expect("connect");
        let hello = request_bytes(
            1,
            &HandshakeRequest {
                protocol_version: skiff_protocol::PROTOCOL_VERSION,
                client_id: "cut".into(),
                credentials: Default::default(),
            },
        );
        stream.write_all(&hello).await.expect("write");
        stream.write_all(&whole[..cut]).await.expect("write");
        stream.shutdown().await.expect("shutdown");
        // The broker answers the handshake, then closes: no answer to the
        // half frame, no panic, no hang.
        let mut rest = Vec::new();
        tokio::time::timeout(STEP_TIMEOUT, stream.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert!(!rest.is_empty(), "handshake answered");
    }
    assert_eq!(end_offset(&mut admin, "t").await, 0, "nothing was written");
    admin.call(ListTopicsRequest).await.expect("still served");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn overflowing_negative_and_oversized_varints_are_refused_with_a_correct_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(test_config(dir.path())).await.expect("start");
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    conn.create_topic("t", 1).await;
    // One record, key "k0", 10-byte value: its fields start right after the
    // 57-byte header, each length a one-byte varint.
    let honest = batch(1, 10);
    let record = 57;
    assert_eq!(
        &honest[record..record + 5],
        &[17, 0, 0, 4, b'k'],
        "record layout: length 17, offset delta 0, timestamp delta 0, key length 2 (zigzag 4)"
    );
    let lies = [
        // A varint of ten continuation bytes: overflows 64 bits.
        forge_bytes(&honest, record, &[0xFF; 10]),
        // The record's length claims more than the batch holds.
        forge_bytes(&honest, record, &[0x7F]),
        // Key length -3 (zigzag 5): negative, and not the -1 of "no key".
        forge_bytes(&honest, record + 3, &[5]),
        // Key length i64::MIN (zigzag u64::MAX as a 10-byte varint).
        forge_bytes(
            &honest,
            record + 3,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        // Value length 127: more than is left.
        forge_bytes(&honest, record + 6, &[0x7F]),
    ];
    for lie in lies {
        let err = conn
            .call(ProduceRequest {
                topic: "t".into(),
                partition: 0,
                batch: lie,
            })
            .await
            .expect_err("a batch with a bad varint is refused");
        assert_eq!(err.0, ErrorCode::CorruptBatch, "{}", err.1);
    }
    assert_eq!(end_offset(&mut conn, "t").await, 0, "nothing was written");
    conn.call(ProduceRequest {
        topic: "t".into(),
        partition: 0,
        batch: honest,
    })
    .await
    .expect("the honest batch is stored");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_record_count_that_lies_is_refused_with_a_correct_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(test_config(dir.path())).await.expect("start");
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    conn.create_topic("t", 1).await;
    let honest = batch(3, 10);
    let lies = [
        forge(&honest, POS_RECORD_COUNT, 4),
        forge(&honest, POS_RECORD_COUNT, 2),
        forge(&honest, POS_RECORD_COUNT, u32::MAX),
        forge(&honest, POS_RECORD_COUNT, 0),
        // record count agrees with itself but not with last_offset_delta
        forge(&honest, POS_LAST_OFFSET_DELTA, 1_000_000),
    ];
    for lie in lies {
        let err = conn
            .call(ProduceRequest {
                topic: "t".into(),
                partition: 0,
                batch: lie,
            })
            .await
            .expect_err("a lying batch is refused");
        assert_eq!(err.0, ErrorCode::CorruptBatch, "{}", err.1);
    }
    assert_eq!(end_offset(&mut conn, "t").await, 0, "nothing was written");
    let ok = conn
        .call(ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: honest,
        })
        .await
        .expect("the honest batch is stored");
    assert_eq!((ok.base_offset, ok.last_offset), (0, 2));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_thousand_connections_at_once_and_others_are_still_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.connections_max = 1_000 + 8;
    let broker = Broker::start(config).await.expect("start");
    let addr = broker.local_addr();
    let conns = futures::future::join_all((0..1_000).map(|_| TcpStream::connect(addr))).await;
    let conns: Vec<TcpStream> = conns.into_iter().map(|c| c.expect("connect")).collect();
    let started = Instant::now();
    let mut client = RawConn::handshaken(addr).await;
    client.call(ListTopicsRequest).await.expect("served");
    assert!(started.elapsed() < STEP_TIMEOUT);
    drop(conns);
    client.call(ListTopicsRequest).await.expect("still served");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn connections_over_connections_max_are_closed_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.connections_max = 10;
    let broker = Broker::start(config).await.expect("start");
    let addr = broker.local_addr();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(RawConn::handshaken(addr).await);
    }
    let mut closed = 0;
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut buf = [0u8; 1];
        // Closed: end of stream or a reset; still open: the read times out.
        let r = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = r {
            closed += 1;
        }
    }
    assert_eq!(closed, 5, "connections over the cap are closed");
    for conn in &mut held {
        conn.call(ListTopicsRequest)
            .await
            .expect("held ones still served");
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_slowloris_client_is_closed_by_the_idle_timeout_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.idle_timeout_ms = 1_500;
    let broker = Broker::start(config).await.expect("start");
    let addr = broker.local_addr();
    let slow = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let frame = request_bytes(1, &ListTopicsRequest);
        let started = Instant::now();
        // One byte at a time; the frame would take far longer than the
        // idle timeout to complete.
        for _ in 0..40 {
            for &b in &frame {
                if stream.write_all(&[b]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut buf = [0u8; 64];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
                {
                    return started.elapsed();
                }
            }
        }
        panic!("slowloris connection was never closed");
    });
    let mut good = RawConn::handshaken(addr).await;
    for _ in 0..10 {
        good.call(ListTopicsRequest)
            .await
            .expect("served meanwhile");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lived = slow.await.expect("slowloris task");
    assert!(
        lived >= Duration::from_millis(1_400) && lived < Duration::from_secs(5),
        "closed after {lived:?}"
    );
    good.call(ListTopicsRequest).await.expect("still served");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_consumer_that_never_reads_does_not_stall_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.requests_in_flight_max = 4;
    config.fetch_bytes_max = 256 * 1024;
    let broker = Broker::start(config).await.expect("start");
    let addr = broker.local_addr();
    let mut good = RawConn::handshaken(addr).await;
    good.create_topic("t", 1).await;
    for _ in 0..8 {
        good.call(ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: batch(4, 64 * 1024),
        })
        .await
        .expect("produce");
    }
    // The stuck consumer: handshake, then fetch after fetch, never reading.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut sink = FramedWrite::new(stream, ClientCodec::new(1 << 20));
    let handshake = HandshakeRequest {
        protocol_version: skiff_protocol::PROTOCOL_VERSION,
        client_id: "stuck".into(),
        credentials: Default::default(),
    };
    let mut body = BytesMut::new();
    handshake.encode(&mut body);
    sink.send(OutgoingRequest {
        correlation_id: 0,
        api_key: ApiKey::Handshake as u16,
        api_version: 0,
        body: body.freeze(),
    })
    .await
    .expect("send handshake");
    let fetch = FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_bytes: 256 * 1024,
        max_wait_ms: 0,
    };
    let mut body = BytesMut::new();
    fetch.encode(&mut body);
    let body = body.freeze();
    // Writes block once the broker stops reading (in-flight cap reached
    // and socket buffers full): keep pushing for a while, in the background.
    let stuck = tokio::spawn(async move {
        for id in 1..u32::MAX {
            let req = OutgoingRequest {
                correlation_id: id,
                api_key: ApiKey::Fetch as u16,
                api_version: FetchRequest::API_VERSION,
                body: body.clone(),
            };
            if sink.send(req).await.is_err() {
                break;
            }
        }
        sink
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stuck.is_finished(),
        "the stuck client's writes are held back"
    );
    for _ in 0..5 {
        let started = Instant::now();
        let resp = good
            .call(FetchRequest {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                max_bytes: 256 * 1024,
                max_wait_ms: 0,
            })
            .await
            .expect("others are served");
        assert!(!resp.records.is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
        good.call(ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: batch(1, 10),
        })
        .await
        .expect("produce served");
    }
    stuck.abort();
    broker.shutdown().await.expect("shutdown");
}

/// The next response frame, or `None` once the broker closed the connection.
async fn next(
    responses: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, ClientCodec>,
) -> Option<skiff_protocol::frame::ResponseFrame> {
    match tokio::time::timeout(STEP_TIMEOUT, responses.next()).await {
        Ok(Some(Ok(frame))) => Some(frame),
        Ok(_) => None,
        Err(_) => panic!("no response within {STEP_TIMEOUT:?}"),
    }
}

/// The frame-read clock counts only time the broker spends reading: a
/// pipelining client whose next frame is half-buffered when the broker stops
/// reading (all `requests_in_flight_max` permits held by long polls, far
/// longer than `frame_read_timeout_ms`) is not closed when it sends the rest
/// once the broker reads again.
#[tokio::test]
async fn a_pipelining_client_held_back_by_the_in_flight_cap_is_not_taken_for_a_slowloris() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.requests_in_flight_max = 2;
    config.frame_read_timeout_ms = 500;
    let broker = Broker::start(config).await.expect("start");
    let addr = broker.local_addr();
    let mut admin = RawConn::handshaken(addr).await;
    admin.create_topic("t", 1).await;

    let poll = |max_wait_ms| FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_bytes: 1024,
        max_wait_ms,
    };
    let list = request_bytes(4, &ListTopicsRequest);
    // Handshake, two long polls (3 times the frame-read timeout) filling the
    // in-flight cap, a third request the broker decodes and then waits for
    // a permit with, and the first bytes of the next frame: all in one
    // write, so they are buffered when the broker stops reading.
    let mut burst = request_bytes(
        0,
        &HandshakeRequest {
            protocol_version: skiff_protocol::PROTOCOL_VERSION,
            client_id: "pipelining".into(),
            credentials: Default::default(),
        },
    );
    burst.extend(request_bytes(1, &poll(1_500)));
    burst.extend(request_bytes(2, &poll(1_500)));
    burst.extend(request_bytes(3, &poll(0)));
    let (head, tail) = list.split_at(6);
    burst.extend_from_slice(head);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (rd, mut wr) = stream.into_split();
    let mut responses = FramedRead::new(rd, ClientCodec::new(1 << 20));
    wr.write_all(&burst).await.expect("write");

    let first = next(&mut responses).await.expect("handshake answered");
    assert_eq!(
        (first.correlation_id, first.error_code),
        (0, ErrorCode::None)
    );
    // The first long poll ends: a permit frees, the broker reads again.
    let polled = next(&mut responses)
        .await
        .expect("a long poll answered, connection open");
    assert!([1, 2].contains(&polled.correlation_id), "{polled:?}");
    // The rest of the frame, well within the frame-read timeout of reading
    // resuming, though long after its first bytes arrived.
    tokio::time::sleep(Duration::from_millis(100)).await;
    wr.write_all(tail).await.expect("write the rest");
    let mut answered = vec![polled.correlation_id];
    while answered.len() < 4 {
        let frame = next(&mut responses)
            .await
            .unwrap_or_else(|| panic!("closed; answered so far: {answered:?}"));
        assert_eq!(frame.error_code, ErrorCode::None, "{frame:?}");
        answered.push(frame.correlation_id);
    }
    answered.sort_unstable();
    assert_eq!(answered, [1, 2, 3, 4]);
    admin.call(ListTopicsRequest).await.expect("still served");
    broker.shutdown().await.expect("shutdown");
}
