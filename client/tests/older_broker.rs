//! The client against a broker from before Heartbeat v1, DescribeGroup v1
//! and Produce v1 (magic-2 batches): a fake broker on 127.0.0.1:0 that
//! speaks skiff's framing, answers the newer versions `UnsupportedVersion`
//! (as a real older broker's table does) and serves version 0. The group
//! consumer falls back to polling heartbeats in v0, `Admin::describe_group`
//! asks again in v0, and the producer sends its batches again in magic 1
//! (Produce v0), in order, none lost. A consumer's Fetch v1 (magic 2 read
//! back) is refused too, and it fetches again in v0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use skiff_client::protocol::PROTOCOL_VERSION;
use skiff_client::protocol::batch;
use skiff_client::protocol::frame::{OutgoingResponse, RequestFrame, ServerCodec};
use skiff_client::protocol::messages::{
    ApiKey, DescribeGroupResponse, FetchRequest, FetchResponse, GroupState, HandshakeResponse,
    HeartbeatRequest, HeartbeatResponse, InitProducerIdResponse, JoinGroupResponse,
    LeaveGroupResponse, PartitionProgress, ProduceRequest, ProduceResponse, TopicPartition,
};
use skiff_client::protocol::primitives::decode_body_version;
use skiff_client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, ErrorCode, GroupConfig, Producer,
    ProducerConfig, ProducerRecord, StartFrom,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// Bound on every wait of the test.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The fake's heartbeat interval: short, so v0 polls come quickly.
const HEARTBEAT_INTERVAL_MS: u32 = 50;

/// What the fake saw: (api, version) of every request after the handshake,
/// and whether every v0 heartbeat body decoded strictly as v0.
#[derive(Default)]
struct Seen {
    requests: Vec<(ApiKey, u16)>,
    v0_heartbeats_well_formed: bool,
    /// The values of the records stored through Produce v0, per
    /// partition, in order.
    stored: std::collections::BTreeMap<u32, Vec<Vec<u8>>>,
    /// Magic bytes of the batches stored.
    stored_magics: Vec<u8>,
    /// The batches stored, base offsets stamped, per partition: what a
    /// v0 fetch serves.
    batches: std::collections::BTreeMap<u32, Vec<bytes::Bytes>>,
    /// Whether this fake hands out producer ids (InitProducerId); without
    /// them the producer sends plain batches.
    gives_producer_ids: bool,
    /// Per partition, every stored batch's (producer id, base sequence,
    /// record count).
    sequences: std::collections::BTreeMap<u32, Vec<(u64, u16, u32, u32)>>,
}

/// The producer id the fake hands out.
const FAKE_PRODUCER_ID: u64 = 7;
/// The epoch the fake hands out with it (not 0, so a batch that dropped it
/// shows).
const FAKE_PRODUCER_EPOCH: u16 = 3;

/// Starts the fake older broker, handing out producer ids or not; returns
/// a client connected to it and what it saw.
async fn connected(gives_producer_ids: bool) -> (Client, Arc<Mutex<Seen>>) {
    let (addr, seen) = older_broker(gives_producer_ids).await;
    let client = Client::connect(ClientConfig::new(addr))
        .await
        .expect("connects");
    (client, seen)
}

/// Starts the fake older broker, handing out producer ids or not; returns
/// its address and what it saw.
async fn older_broker(gives_producer_ids: bool) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(Mutex::new(Seen {
        v0_heartbeats_well_formed: true,
        gives_producer_ids,
        ..Seen::default()
    }));
    let shared = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&shared)));
        }
    });
    (addr, seen)
}

async fn serve(stream: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut framed = Framed::new(stream, ServerCodec::new(1 << 20));
    while let Some(Ok(frame)) = framed.next().await {
        let response = answer(&frame, &seen);
        if framed.send(response).await.is_err() {
            return;
        }
    }
}

fn answer(frame: &RequestFrame, seen: &Mutex<Seen>) -> OutgoingResponse {
    let id = frame.correlation_id;
    let Some(api) = ApiKey::from_u16(frame.api_key) else {
        return OutgoingResponse::error(id, ErrorCode::UnsupportedApi, "unknown api");
    };
    if api != ApiKey::Handshake {
        seen.lock().unwrap().requests.push((api, frame.api_version));
    }
    let unsupported = || {
        OutgoingResponse::error(
            id,
            ErrorCode::UnsupportedVersion,
            &format!(
                "api {api:?} version {} is not supported; this broker serves version 0",
                frame.api_version
            ),
        )
    };
    match api {
        ApiKey::Handshake => OutgoingResponse::ok(
            id,
            &HandshakeResponse {
                protocol_version: PROTOCOL_VERSION,
                broker_version: "older".into(),
                user: String::new(),
            },
        ),
        ApiKey::JoinGroup => OutgoingResponse::ok(
            id,
            &JoinGroupResponse {
                member_id: "m-1".into(),
                generation: 1,
                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                session_timeout_ms: 10_000,
                assignment: Vec::new(),
            },
        ),
        ApiKey::Heartbeat if frame.api_version > 0 => unsupported(),
        ApiKey::Heartbeat => {
            let strict = decode_body_version::<HeartbeatRequest>(frame.body.clone(), 0).is_ok();
            seen.lock().unwrap().v0_heartbeats_well_formed &= strict;
            OutgoingResponse::ok_version(
                id,
                &HeartbeatResponse {
                    generation: 1,
                    owned: Vec::new(),
                    revoke: Vec::new(),
                    rejoin: false,
                },
                0,
            )
        }
        ApiKey::DescribeGroup if frame.api_version > 0 => unsupported(),
        ApiKey::DescribeGroup => OutgoingResponse::ok_version(
            id,
            &DescribeGroupResponse {
                group: "g".into(),
                state: GroupState::Stable,
                generation: 1,
                members: Vec::new(),
                partitions: vec![PartitionProgress {
                    partition: TopicPartition {
                        topic: "t".into(),
                        partition: 0,
                    },
                    owner: None,
                    committed: Some(3),
                    log_end_offset: 5,
                    lag: Some(2),
                    waiting_ms: None,
                }],
            },
            0,
        ),
        ApiKey::LeaveGroup => OutgoingResponse::ok(id, &LeaveGroupResponse),
        ApiKey::Produce if frame.api_version > 0 => unsupported(),
        ApiKey::Produce => {
            let req: ProduceRequest =
                decode_body_version(frame.body.clone(), 0).expect("a v0 produce body");
            let records = batch::decode_records(&req.batch).expect("a batch this broker reads");
            let mut seen = seen.lock().unwrap();
            seen.stored_magics.push(req.batch[16]);
            let log = seen.stored.entry(req.partition).or_default();
            let base = log.len() as u64;
            log.extend(records.iter().map(|r| r.value.to_vec()));
            let header = batch::BatchHeader::parse(&req.batch).expect("a batch header");
            seen.sequences.entry(req.partition).or_default().push((
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.record_count,
            ));
            let mut stamped = req.batch.to_vec();
            batch::stamp_base_offset(&mut stamped, base);
            seen.batches
                .entry(req.partition)
                .or_default()
                .push(stamped.into());
            OutgoingResponse::ok(
                id,
                &ProduceResponse {
                    partition: req.partition,
                    base_offset: base,
                    last_offset: base + records.len() as u64 - 1,
                },
            )
        }
        ApiKey::InitProducerId if seen.lock().unwrap().gives_producer_ids => OutgoingResponse::ok(
            id,
            &InitProducerIdResponse {
                producer_id: FAKE_PRODUCER_ID,
                producer_epoch: FAKE_PRODUCER_EPOCH,
            },
        ),
        ApiKey::Fetch if frame.api_version > 0 => unsupported(),
        ApiKey::Fetch => {
            let req: FetchRequest =
                decode_body_version(frame.body.clone(), 0).expect("a v0 fetch body");
            let seen = seen.lock().unwrap();
            let batches = seen
                .batches
                .get(&req.partition)
                .cloned()
                .unwrap_or_default();
            let log_end_offset = seen
                .stored
                .get(&req.partition)
                .map_or(0, |l| l.len() as u64);
            let mut records = Vec::new();
            for b in batches {
                let header = batch::BatchHeader::parse(&b).expect("a stored batch");
                if header.last_offset() >= req.offset {
                    records.extend_from_slice(&b);
                }
            }
            OutgoingResponse::ok_version(
                id,
                &FetchResponse {
                    log_start_offset: 0,
                    log_end_offset,
                    records: records.into(),
                },
                0,
            )
        }
        _ => OutgoingResponse::error(id, ErrorCode::UnsupportedApi, "not in this fake"),
    }
}

#[tokio::test]
async fn a_group_member_falls_back_to_polled_v0_heartbeats() {
    let (client, seen) = connected(false).await;
    let consumer = tokio::time::timeout(
        STEP_TIMEOUT,
        Consumer::with_group(client, GroupConfig::new("g", ["t"])),
    )
    .await
    .expect("joins in time")
    .expect("joins");
    // Wait for a few v0 heartbeats (one per interval after the refusal).
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let v0 = seen
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| **r == (ApiKey::Heartbeat, 0))
            .count();
        if v0 >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no v0 heartbeats: {:?}",
            seen.lock().unwrap().requests
        );
        tokio::time::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS.into())).await;
    }
    consumer.close().await.expect("closes");
    let seen = seen.lock().unwrap();
    assert_one_refusal_then_v0(&versions_of(&seen, ApiKey::Heartbeat));
    assert!(seen.v0_heartbeats_well_formed, "v0 bodies in v0 layout");
}

#[tokio::test]
async fn describe_group_asks_an_older_broker_again_in_v0() {
    let (client, seen) = connected(false).await;
    let described = tokio::time::timeout(STEP_TIMEOUT, Admin::new(client).describe_group("g"))
        .await
        .expect("answers in time")
        .expect("described");
    assert_eq!(described.partitions.len(), 1);
    assert_eq!(described.partitions[0].lag, Some(2));
    assert_eq!(described.partitions[0].waiting_ms, None);
    assert_eq!(
        seen.lock().unwrap().requests,
        [(ApiKey::DescribeGroup, 1), (ApiKey::DescribeGroup, 0)]
    );
}

#[tokio::test]
async fn the_producer_sends_magic_1_to_a_broker_from_before_magic_2() {
    producer_falls_back(false).await;
}

/// The same with producer ids: the batches sent again in magic 1 keep the
/// producer id and their sequences, contiguous per partition.
#[tokio::test]
async fn an_idempotent_producer_keeps_its_sequences_through_the_fallback() {
    producer_falls_back(true).await;
}

async fn producer_falls_back(idempotent: bool) {
    let (client, seen) = connected(idempotent).await;
    // No retries: the fallback must not spend one. Several batches of
    // several partitions in flight when the first refusal comes back.
    const PARTITIONS: u32 = 3;
    let producer = Producer::new(
        client,
        ProducerConfig::default()
            .retries_max(0)
            .batch_bytes_max(200)
            .linger_ms(0),
    );
    let sends: Vec<_> = (0..120)
        .map(|i| {
            producer
                .send(ProducerRecord::new("t", format!("value-{i:03}")).partition(i % PARTITIONS))
        })
        .collect();
    all_acknowledged(sends).await;
    let seen = seen.lock().unwrap();
    for p in 0..PARTITIONS {
        let want: Vec<Vec<u8>> = (0..120)
            .filter(|i| i % PARTITIONS == p)
            .map(|i| format!("value-{i:03}").into_bytes())
            .collect();
        assert_eq!(
            seen.stored.get(&p),
            Some(&want),
            "partition {p}: every record once, in order"
        );
    }
    assert!(seen.stored_magics.iter().all(|m| *m == batch::BATCH_MAGIC));
    for (p, batches) in &seen.sequences {
        let mut next = 0;
        for &(producer_id, epoch, base_sequence, count) in batches {
            if idempotent {
                assert_eq!(producer_id, FAKE_PRODUCER_ID, "partition {p}: {batches:?}");
                assert_eq!(epoch, FAKE_PRODUCER_EPOCH, "partition {p}: {batches:?}");
                assert_eq!(base_sequence, next, "partition {p}: {batches:?}");
                next += count;
            } else {
                assert_eq!(producer_id, batch::NO_PRODUCER_ID, "partition {p}");
            }
        }
    }
    let produces = versions_of(&seen, ApiKey::Produce);
    assert_eq!(produces[0], 1, "the first produce tries v1: {produces:?}");
    let first_v0 = produces.iter().position(|v| *v == 0).expect("v0 sent");
    assert!(
        produces[first_v0..].iter().all(|v| *v == 0),
        "after the refusal, only v0: {produces:?}"
    );
}

#[tokio::test]
async fn the_consumer_fetches_in_v0_from_a_broker_from_before_magic_2() {
    let (client, seen) = connected(false).await;
    let producer = Producer::new(
        client.clone(),
        ProducerConfig::default().batch_bytes_max(200).linger_ms(0),
    );
    let sends: Vec<_> = (0..30)
        .map(|i| producer.send(ProducerRecord::new("t", format!("value-{i:02}")).partition(0)))
        .collect();
    all_acknowledged(sends).await;
    let mut consumer = Consumer::new(client, ConsumerConfig::default().max_wait_ms(10));
    consumer
        .assign("t", [0], StartFrom::Offset(0))
        .await
        .expect("assigned");
    for i in 0..30_u64 {
        let record = tokio::time::timeout(STEP_TIMEOUT, consumer.next())
            .await
            .expect("a record in time")
            .expect("the stream goes on")
            .expect("a record");
        assert_eq!(record.offset, i);
        assert_eq!(record.value, format!("value-{i:02}").into_bytes());
    }
    assert_one_refusal_then_v0(&versions_of(&seen.lock().unwrap(), ApiKey::Fetch));
}

/// Waits for every send to be acknowledged, each within the step timeout.
async fn all_acknowledged<T, E: std::fmt::Debug>(
    sends: Vec<impl std::future::Future<Output = Result<T, E>>>,
) {
    for send in sends {
        tokio::time::timeout(STEP_TIMEOUT, send)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged");
    }
}

/// The versions of every `api` request the fake saw, in order.
fn versions_of(seen: &Seen, api: ApiKey) -> Vec<u16> {
    seen.requests
        .iter()
        .filter(|(a, _)| *a == api)
        .map(|(_, v)| *v)
        .collect()
}

/// The first request tried v1, and after its refusal only v0 was sent.
fn assert_one_refusal_then_v0(versions: &[u16]) {
    assert!(versions.len() >= 2, "a refused v1, then v0: {versions:?}");
    assert_eq!(versions[0], 1, "the first request tries v1: {versions:?}");
    assert!(
        versions[1..].iter().all(|v| *v == 0),
        "after one refusal, only v0: {versions:?}"
    );
}
