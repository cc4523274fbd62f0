//! Black-box tests of the broker's handling of bad input on the wire: every
//! case gets a clear error response or a closed connection, never a panic or
//! a hang, and the broker keeps serving other clients afterwards.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{RawConn, start_broker};
use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{ListTopicsRequest, ProduceRequest};

#[tokio::test]
async fn requests_before_the_handshake_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let mut conn = RawConn::connect(broker.local_addr()).await;
    let err = conn.call(ListTopicsRequest).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::HandshakeRequired);
    assert!(err.1.contains("handshake"), "{}", err.1);
    assert!(conn.recv().await.is_none(), "connection is closed after");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    // A 4 GiB length prefix: refused from the prefix alone.
    let mut raw = BytesMut::new();
    raw.put_u32_le(u32::MAX);
    raw.put_u32_le(77);
    conn.write_bytes(&raw).await;
    let frame = conn.recv().await.expect("an error response");
    assert_eq!(frame.error_code, ErrorCode::FrameTooLarge);
    assert_eq!(frame.correlation_id, 77);
    let message = common::error_message(frame.body);
    assert!(message.contains("exceeds the limit"), "{message}");
    assert!(conn.recv().await.is_none(), "connection is closed after");

    let mut other = RawConn::handshaken(broker.local_addr()).await;
    other.call(ListTopicsRequest).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_large_frame_before_the_handshake_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    // A 1 MiB frame (well under frame_bytes_max) announced before any
    // handshake: refused from the prefix, nothing reserved for it.
    let mut conn = RawConn::connect(broker.local_addr()).await;
    let mut raw = BytesMut::new();
    raw.put_u32_le(1024 * 1024);
    raw.put_u32_le(5);
    conn.write_bytes(&raw).await;
    let frame = conn.recv().await.expect("an error response");
    assert_eq!(frame.error_code, ErrorCode::FrameTooLarge);
    assert_eq!(frame.correlation_id, 5);
    let message = common::error_message(frame.body);
    assert!(message.contains("handshake_frame_bytes_max"), "{message}");
    assert!(conn.recv().await.is_none(), "connection is closed after");

    // After the handshake the full limit applies: a 1 MiB request is read.
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    let frame = conn
        .send_raw(999, 0, Bytes::from(vec![0u8; 1024 * 1024]))
        .await;
    assert_eq!(frame.error_code, ErrorCode::UnsupportedApi);
    conn.call(ListTopicsRequest).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_bytes_close_the_connection_and_a_normal_client_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let mut conn = RawConn::connect(broker.local_addr()).await;
    conn.write_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Whatever the broker answers, it closes the connection.
    while conn.recv().await.is_some() {}

    let mut other = RawConn::handshaken(broker.local_addr()).await;
    let topics = other.call(ListTopicsRequest).await.unwrap();
    assert!(topics.topics.is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_apis_versions_and_bad_bodies_get_errors_on_a_live_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let mut conn = RawConn::handshaken(broker.local_addr()).await;

    let frame = conn.send_raw(999, 0, Bytes::new()).await;
    assert_eq!(frame.error_code, ErrorCode::UnsupportedApi);

    let frame = conn.send_raw(3, 42, Bytes::new()).await;
    assert_eq!(frame.error_code, ErrorCode::UnsupportedVersion);

    // CreateTopic whose body is garbage.
    let frame = conn
        .send_raw(1, 1, Bytes::from_static(&[0xff, 0xff, 1, 2, 3]))
        .await;
    assert_eq!(frame.error_code, ErrorCode::MalformedRequest);

    // CreateTopic version 0 (before the compression policy) is told the
    // version served, not misread.
    let frame = conn
        .send_raw(1, 0, Bytes::from_static(&[0xff, 0xff, 1, 2, 3]))
        .await;
    assert_eq!(frame.error_code, ErrorCode::UnsupportedVersion);
    let message = common::error_message(frame.body);
    assert!(message.contains("serves version 1"), "{message}");

    // The connection still serves well-formed requests.
    conn.create_topic("t", 1).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_batch_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    conn.create_topic("t", 1).await;
    let mut builder = skiff_protocol::batch::BatchBuilder::new();
    builder.push(skiff_protocol::batch::Record {
        timestamp_ms: 1,
        key: None,
        value: Bytes::from_static(b"hello"),
        headers: vec![],
    });
    let mut batch = BytesMut::from(&builder.build()[..]);
    let last = batch.len() - 1;
    batch[last] ^= 0x01;
    let err = conn
        .call(ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: batch.freeze(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::CorruptBatch);
    assert!(err.1.to_lowercase().contains("crc"), "{}", err.1);

    let described = conn
        .call(skiff_protocol::messages::DescribeTopicRequest { name: "t".into() })
        .await
        .unwrap();
    assert_eq!(described.partitions[0].log_end_offset, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_batch_timestamped_too_far_ahead_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.timestamp_after_ms_max = 60_000;
    let broker = skiff_broker::Broker::start(config).await.unwrap();
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    conn.create_topic("t", 1).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let batch_at = |timestamp_ms: i64| {
        let mut builder = skiff_protocol::batch::BatchBuilder::new();
        builder.push(skiff_protocol::batch::Record {
            timestamp_ms,
            key: None,
            value: Bytes::from_static(b"hello"),
            headers: vec![],
        });
        ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: builder.build(),
        }
    };
    // A year ahead: refused, naming the limit.
    let err = conn
        .call(batch_at(now_ms + 365 * 24 * 3600 * 1000))
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::InvalidRequest);
    assert!(err.1.contains("timestamp_after_ms_max"), "{}", err.1);
    // Within the limit (and any time in the past): stored.
    conn.call(batch_at(now_ms + 30_000)).await.unwrap();
    conn.call(batch_at(1)).await.unwrap();
    let described = conn
        .call(skiff_protocol::messages::DescribeTopicRequest { name: "t".into() })
        .await
        .unwrap();
    assert_eq!(described.partitions[0].log_end_offset, 2);
    broker.shutdown().await.unwrap();
}
