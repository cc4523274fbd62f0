//! `skiff bench e2e --echo`: an in-process stand-in for the broker that
//! speaks skiff's framing on 127.0.0.1 and does nothing else, so an e2e run
//! against it measures the floor that the bench itself and loopback set.
//!
//! It serves exactly what the e2e bench calls: Handshake, CreateTopic,
//! DescribeTopic, ListOffsets, Produce and Fetch. A produce is acknowledged
//! at once: its batch gets the partition's next offsets (stamped into the
//! batch as a broker does) and is handed to a fetch waiting at that offset.
//! No disk, no log, no checks beyond the frame and batch header.
//!
//! Invariants: a partition keeps only the batches its consumer has not yet
//! fetched past, at most [`RETAINED_BYTES_MAX`] of them (a produce beyond
//! that is refused with `StorageFull`, naming the limit); request frames
//! are bounded by the protocol's default `frame_bytes_max`; a fetch waits
//! at most its `max_wait_ms`. Anything else gets `UnsupportedApi`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use skiff_client::ErrorCode;
use skiff_client::protocol::FRAME_BYTES_MAX_DEFAULT;
use skiff_client::protocol::PROTOCOL_VERSION;
use skiff_client::protocol::batch::{self, BatchHeader};
use skiff_client::protocol::frame::{OutgoingResponse, RequestFrame, ServerCodec};
use skiff_client::protocol::messages::{
    ApiKey, CreateTopicRequest, CreateTopicResponse, DescribeTopicRequest, DescribeTopicResponse,
    FetchRequest, FetchResponse, HandshakeRequest, HandshakeResponse, ListOffsetsRequest,
    ListOffsetsResponse, OffsetQuery, PartitionDescription, ProduceRequest, ProduceResponse,
    TopicConfig,
};
use skiff_client::protocol::primitives::{Decode, decode_body_version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of not-yet-fetched batches one partition may hold.
const RETAINED_BYTES_MAX: usize = 256 * 1024 * 1024;
/// The software version the echo reports in its handshake.
const ECHO_VERSION: &str = "skiff-bench-echo";

/// The echo's listener task and the address it serves on.
pub(super) struct Echo {
    pub(super) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One partition: the batches produced and not yet fetched past.
#[derive(Default)]
struct Partition {
    /// The offset the next produced record gets.
    next_offset: u64,
    /// (base offset, next offset after it, stamped batch), oldest first.
    batches: VecDeque<(u64, u64, Bytes)>,
    retained_bytes: usize,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, TopicConfig>,
    partitions: HashMap<(String, u32), Partition>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every produce, for fetches waiting at the end.
    produced: Notify,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Binds 127.0.0.1:0 and serves until the returned [`Echo`] is dropped.
pub(super) async fn start() -> Result<Echo> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the echo on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                // A connection's error ends only that connection; the
                // bench reports its own side of it.
                let _ = serve(stream, &shared).await;
            });
        }
    });
    Ok(Echo { addr, task })
}

async fn serve(mut stream: TcpStream, shared: &Shared) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut codec = ServerCodec::new(FRAME_BYTES_MAX_DEFAULT);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    loop {
        while let Some(frame) = Decoder::decode(&mut codec, &mut input)? {
            let response = answer(frame, shared).await;
            Encoder::encode(&mut codec, response, &mut output)?;
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
    }
}

fn decode<T: Decode>(frame: &RequestFrame) -> Result<T, OutgoingResponse> {
    decode_body_version(frame.body.clone(), frame.api_version).map_err(|e| {
        OutgoingResponse::error(
            frame.correlation_id,
            ErrorCode::MalformedRequest,
            &e.to_string(),
        )
    })
}

async fn answer(frame: RequestFrame, shared: &Shared) -> OutgoingResponse {
    let id = frame.correlation_id;
    let version = frame.api_version;
    let result = match ApiKey::from_u16(frame.api_key) {
        Some(ApiKey::Handshake) => decode::<HandshakeRequest>(&frame).map(|_| {
            let resp = HandshakeResponse {
                protocol_version: PROTOCOL_VERSION,
                broker_version: ECHO_VERSION.to_owned(),
                user: String::new(),
            };
            OutgoingResponse::ok_version(id, &resp, version)
        }),
        Some(ApiKey::CreateTopic) => decode::<CreateTopicRequest>(&frame).map(|req| {
            let mut state = shared.state();
            if state.topics.contains_key(&req.name) {
                return OutgoingResponse::error(
                    id,
                    ErrorCode::TopicAlreadyExists,
                    &format!("topic {:?} exists", req.name),
                );
            }
            for p in 0..req.config.partitions {
                state
                    .partitions
                    .insert((req.name.clone(), p), Partition::default());
            }
            state.topics.insert(req.name, req.config);
            OutgoingResponse::ok_version(id, &CreateTopicResponse, version)
        }),
        Some(ApiKey::DescribeTopic) => decode::<DescribeTopicRequest>(&frame).map(|req| {
            let state = shared.state();
            match state.topics.get(&req.name) {
                None => unknown_topic(id, &req.name),
                Some(config) => {
                    let partitions = (0..config.partitions)
                        .map(|p| {
                            let part = state.partitions.get(&(req.name.clone(), p));
                            PartitionDescription {
                                partition: p,
                                log_start_offset: part.map_or(0, first_retained),
                                log_end_offset: part.map_or(0, |part| part.next_offset),
                                // Nothing is ever on disk.
                                size_bytes: 0,
                            }
                        })
                        .collect();
                    let resp = DescribeTopicResponse {
                        name: req.name.clone(),
                        config: config.clone(),
                        partitions,
                    };
                    OutgoingResponse::ok_version(id, &resp, version)
                }
            }
        }),
        Some(ApiKey::ListOffsets) => decode::<ListOffsetsRequest>(&frame).map(|req| {
            let state = shared.state();
            match state.partitions.get(&(req.topic.clone(), req.partition)) {
                None => unknown_partition(id, &req.topic, req.partition),
                Some(part) => {
                    let offset = match req.query {
                        OffsetQuery::Earliest => first_retained(part),
                        OffsetQuery::Latest | OffsetQuery::Timestamp(_) => part.next_offset,
                    };
                    OutgoingResponse::ok_version(id, &ListOffsetsResponse { offset }, version)
                }
            }
        }),
        Some(ApiKey::Produce) => decode::<ProduceRequest>(&frame).map(|req| {
            let resp = produce(shared, id, version, req);
            shared.produced.notify_waiters();
            resp
        }),
        Some(ApiKey::Fetch) => match decode::<FetchRequest>(&frame) {
            Ok(req) => Ok(fetch(shared, id, version, req).await),
            Err(e) => Err(e),
        },
        _ => Ok(OutgoingResponse::error(
            id,
            ErrorCode::UnsupportedApi,
            &format!(
                "api {} is not served by the bench's echo (e2e only)",
                frame.api_key
            ),
        )),
    };
    result.unwrap_or_else(|error| error)
}

fn first_retained(part: &Partition) -> u64 {
    part.batches
        .front()
        .map_or(part.next_offset, |(base, _, _)| *base)
}

fn unknown_topic(id: u32, topic: &str) -> OutgoingResponse {
    OutgoingResponse::error(id, ErrorCode::UnknownTopic, &format!("no topic {topic:?}"))
}

fn unknown_partition(id: u32, topic: &str, partition: u32) -> OutgoingResponse {
    OutgoingResponse::error(
        id,
        ErrorCode::UnknownPartition,
        &format!("no partition {partition} of topic {topic:?}"),
    )
}

/// Stamps the batch with the partition's next offsets and keeps it for
/// the partition's consumer; answers at once.
fn produce(shared: &Shared, id: u32, version: u16, req: ProduceRequest) -> OutgoingResponse {
    let header = match BatchHeader::parse(&req.batch) {
        Ok(h) => h,
        Err(e) => return OutgoingResponse::error(id, ErrorCode::CorruptBatch, &e.to_string()),
    };
    let mut state = shared.state();
    let Some(part) = state
        .partitions
        .get_mut(&(req.topic.clone(), req.partition))
    else {
        return unknown_partition(id, &req.topic, req.partition);
    };
    if part.retained_bytes + req.batch.len() > RETAINED_BYTES_MAX {
        return OutgoingResponse::error(
            id,
            ErrorCode::StorageFull,
            &format!(
                "the echo holds {} unfetched bytes of partition {} (RETAINED_BYTES_MAX {RETAINED_BYTES_MAX})",
                part.retained_bytes, req.partition
            ),
        );
    }
    let base = part.next_offset;
    let next = base + u64::from(header.record_count);
    let mut stamped = BytesMut::from(&req.batch[..]);
    batch::stamp_base_offset(&mut stamped, base);
    part.retained_bytes += stamped.len();
    part.batches.push_back((base, next, stamped.freeze()));
    part.next_offset = next;
    let resp = ProduceResponse {
        partition: req.partition,
        base_offset: base,
        last_offset: next.saturating_sub(1),
    };
    OutgoingResponse::ok_version(id, &resp, version)
}

/// Answers with the batches from `req.offset` on (at least one, then up to
/// `max_bytes`), waiting up to `max_wait_ms` for one to be produced.
/// Batches wholly before the offset are dropped: the consumer is past them.
async fn fetch(shared: &Shared, id: u32, version: u16, req: FetchRequest) -> OutgoingResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.into());
    let key = (req.topic.clone(), req.partition);
    loop {
        // Registered before looking, so a produce in between still wakes us.
        let produced = shared.produced.notified();
        {
            let mut state = shared.state();
            let Some(part) = state.partitions.get_mut(&key) else {
                return unknown_partition(id, &req.topic, req.partition);
            };
            while part
                .batches
                .front()
                .is_some_and(|(_, next, _)| *next <= req.offset)
            {
                if let Some((_, _, b)) = part.batches.pop_front() {
                    part.retained_bytes -= b.len();
                }
            }
            let mut records = BytesMut::new();
            for (_, _, b) in &part.batches {
                if !records.is_empty() && records.len() + b.len() > req.max_bytes as usize {
                    break;
                }
                records.extend_from_slice(b);
            }
            if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                let resp = FetchResponse {
                    log_start_offset: first_retained(part),
                    log_end_offset: part.next_offset,
                    records: records.freeze(),
                };
                return OutgoingResponse::ok_version(id, &resp, version);
            }
        }
        let _ = tokio::time::timeout_at(deadline, produced).await;
    }
}
