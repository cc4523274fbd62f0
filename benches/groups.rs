//! Offset-commit throughput: 100 groups, each with one member on its own
//! connection, committing as fast as their acks come back, against a real
//! broker over TCP (every ack waits for the offset store's fdatasync; group
//! commit shares one fsync among the commits queued meanwhile). A second
//! case measures the offset store alone, without the network.
//!
//! Run: `cargo bench --bench groups`. Files go to a temp dir on the default
//! temp filesystem (set TMPDIR to a real disk: fsync on tmpfs is free).
//! Criterion's `thrpt` line is commits per second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_broker::groups::{OffsetStore, OffsetStoreOptions, OffsetUpdate};
use skiff_broker::{Broker, BrokerConfig};
use skiff_protocol::ErrorCode;
use skiff_protocol::frame::encode_request_frame;
use skiff_protocol::messages::{
    CommitOffsetsRequest, CreateTopicRequest, HandshakeRequest, JoinGroupRequest,
    JoinGroupResponse, OffsetCommit, Request, TopicConfig, TopicPartition,
};
use skiff_protocol::primitives::{Decode, Reader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Groups committing concurrently.
const GROUPS: usize = 100;

/// A bare protocol connection, one request at a time.
struct Conn {
    stream: TcpStream,
    next_id: u32,
    buf: BytesMut,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut conn = Conn {
            stream,
            next_id: 0,
            buf: BytesMut::new(),
        };
        conn.call(&HandshakeRequest {
            protocol_version: skiff_protocol::PROTOCOL_VERSION,
            client_id: "bench".into(),
            credentials: Default::default(),
        })
        .await;
        conn
    }

    async fn call<R: Request>(&mut self, req: &R) -> R::Response {
        let mut body = BytesMut::new();
        req.encode(&mut body);
        self.next_id += 1;
        self.buf.clear();
        encode_request_frame(
            self.next_id,
            R::API_KEY as u16,
            R::API_VERSION,
            &body,
            &mut self.buf,
        );
        self.stream.write_all(&self.buf).await.expect("send");
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.expect("read length");
        let mut frame = vec![0u8; u32::from_le_bytes(len) as usize];
        self.stream
            .read_exact(&mut frame)
            .await
            .expect("read frame");
        let code = ErrorCode::from_u16(u16::from_le_bytes([frame[4], frame[5]]));
        assert_eq!(code, ErrorCode::None, "request refused");
        let mut r = Reader::new(bytes::Bytes::from(frame).slice(6..));
        R::Response::decode(&mut r).expect("decode")
    }
}

/// One group's member, ready to commit.
struct Committer {
    conn: Conn,
    group: String,
    member_id: String,
    generation: u32,
    offset: u64,
}

impl Committer {
    async fn commit(&mut self) {
        self.offset += 1;
        self.conn
            .call(&CommitOffsetsRequest {
                group: self.group.clone(),
                member_id: self.member_id.clone(),
                generation: self.generation,
                offsets: vec![OffsetCommit {
                    partition: TopicPartition::new("t", 0),
                    offset: self.offset,
                }],
            })
            .await;
    }
}

fn commit_over_tcp(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, committers) = runtime.block_on(async {
        let broker = Broker::start(BrokerConfig {
            data_dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            // No heartbeats during the bench: members must outlive it.
            session_timeout_ms_default: 300_000,
            ..BrokerConfig::default()
        })
        .await
        .expect("broker");
        let addr = broker.local_addr();
        let mut admin = Conn::connect(addr).await;
        admin
            .call(&CreateTopicRequest {
                name: "t".into(),
                config: TopicConfig {
                    partitions: 1,
                    ..TopicConfig::default()
                },
            })
            .await;
        let mut committers = Vec::with_capacity(GROUPS);
        for g in 0..GROUPS {
            let mut conn = Conn::connect(addr).await;
            let group = format!("bench-{g}");
            let joined: JoinGroupResponse = conn
                .call(&JoinGroupRequest {
                    group: group.clone(),
                    topics: vec!["t".into()],
                    client_id: "bench".into(),
                    session_timeout_ms: 0,
                    member_id: None,
                })
                .await;
            committers.push(Committer {
                conn,
                group,
                member_id: joined.member_id,
                generation: joined.generation,
                offset: 0,
            });
        }
        (broker, committers)
    });
    let committers = Arc::new(tokio::sync::Mutex::new(committers));

    let mut group = c.benchmark_group("offset_commit");
    group.throughput(Throughput::Elements(GROUPS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("tcp_100_groups_concurrent", |b| {
        b.iter_custom(|iters| {
            let committers = Arc::clone(&committers);
            runtime.block_on(async move {
                let mut committers = committers.lock().await;
                let start = Instant::now();
                let tasks: Vec<_> = committers
                    .drain(..)
                    .map(|mut committer| {
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                committer.commit().await;
                            }
                            committer
                        })
                    })
                    .collect();
                for task in tasks {
                    committers.push(task.await.expect("committer task"));
                }
                start.elapsed()
            })
        });
    });
    group.finish();
    runtime.block_on(async {
        broker.shutdown().await.expect("shutdown");
    });
}

fn commit_store_only(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = OffsetStore::open(dir.path(), OffsetStoreOptions::default()).expect("open");
    let store = Arc::new(store);
    let mut group = c.benchmark_group("offset_commit");
    group.throughput(Throughput::Elements(GROUPS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("store_100_groups_concurrent", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for g in 0..GROUPS {
                    let store = Arc::clone(&store);
                    s.spawn(move || {
                        let group = format!("bench-{g}");
                        for i in 0..iters {
                            store
                                .submit(OffsetUpdate::Commit {
                                    group: group.clone(),
                                    offsets: vec![(TopicPartition::new("t", 0), i)],
                                })
                                .wait_blocking()
                                .expect("commit");
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    group.finish();
    store.close();
}

criterion_group!(benches, commit_over_tcp, commit_store_only);
criterion_main!(benches);
