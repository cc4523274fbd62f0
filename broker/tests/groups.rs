//! Consumer groups, black-box: a real broker on 127.0.0.1:0, spoken to over
//! real sockets with a tiny protocol helper (no skiff-client). Session
//! timeouts are shortened (hundreds of milliseconds) and every wait is a
//! bounded loop, so the tests are quick and cannot hang.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use skiff_broker::{Broker, BrokerConfig, BrokerHandle};
use skiff_protocol::ErrorCode;
use skiff_protocol::batch::{BatchBuilder, Record};
use skiff_protocol::frame::{ClientCodec, OutgoingRequest};
use skiff_protocol::messages::{
    CommitOffsetsRequest, CreateTopicRequest, DeleteGroupRequest, DescribeGroupRequest,
    DescribeGroupResponse, FetchOffsetsRequest, GroupState, HandshakeRequest, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest,
    OffsetCommit, ProduceRequest, Request, ResetOffsetsRequest, ResetTo, TopicConfig,
    TopicPartition,
};
use skiff_protocol::primitives::decode_body_version;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Session timeout the tests' members ask for, in milliseconds.
const SESSION_MS: u32 = 300;
/// Bound on every settle loop.
const ROUNDS_MAX: usize = 100;

/// One connection speaking the protocol, one request at a time.
struct Conn {
    framed: Framed<TcpStream, ClientCodec>,
    next_id: u32,
}

type Refusal = (ErrorCode, String);

impl Conn {
    async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut conn = Conn {
            framed: Framed::new(
                stream,
                ClientCodec::new(skiff_protocol::FRAME_BYTES_MAX_DEFAULT),
            ),
            next_id: 1,
        };
        conn.call(&HandshakeRequest {
            protocol_version: skiff_protocol::PROTOCOL_VERSION,
            client_id: "groups-test".into(),
            credentials: Default::default(),
        })
        .await
        .expect("handshake");
        conn
    }

    async fn call<R: Request>(&mut self, req: &R) -> Result<R::Response, Refusal> {
        self.call_version(req, R::API_VERSION).await
    }

    /// A call in the layout of API version `version` (an older client).
    async fn call_version<R: Request>(
        &mut self,
        req: &R,
        version: u16,
    ) -> Result<R::Response, Refusal> {
        let mut body = BytesMut::new();
        req.encode_version(&mut body, version);
        let correlation_id = self.next_id;
        self.next_id += 1;
        self.framed
            .send(OutgoingRequest {
                correlation_id,
                api_key: R::API_KEY as u16,
                api_version: version,
                body: body.freeze(),
            })
            .await
            .expect("send");
        let frame = tokio::time::timeout(Duration::from_secs(10), self.framed.next())
            .await
            .expect("response within 10 s")
            .expect("connection open")
            .expect("valid frame");
        assert_eq!(frame.correlation_id, correlation_id);
        if frame.error_code != ErrorCode::None {
            let message: String = {
                let mut r = skiff_protocol::primitives::Reader::new(frame.body);
                r.string("message").expect("error message")
            };
            return Err((frame.error_code, message));
        }
        Ok(decode_body_version(frame.body, version).expect("response decodes"))
    }
}

fn config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        session_timeout_ms_min: 100,
        session_timeout_ms_default: SESSION_MS,
        heartbeat_interval_ms: 50,
        ..BrokerConfig::default()
    }
}

async fn start(dir: &Path) -> (BrokerHandle, Conn) {
    let broker = Broker::start(config(dir)).await.expect("broker starts");
    let conn = Conn::connect(broker.local_addr()).await;
    (broker, conn)
}

async fn create_topic(conn: &mut Conn, name: &str, partitions: u32) {
    conn.call(&CreateTopicRequest {
        name: name.into(),
        config: TopicConfig {
            partitions,
            ..TopicConfig::default()
        },
    })
    .await
    .expect("create topic");
}

/// Produces `records` one-record batches, the i-th stamped
/// 1_700_000_000_000 + i ms (one record per batch, so timestamp lookups,
/// which are batch-granular, land on exact offsets).
async fn produce(conn: &mut Conn, topic: &str, partition: u32, records: usize) {
    for i in 0..records {
        let mut builder = BatchBuilder::new();
        builder.push(Record {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: None,
            value: Bytes::from(format!("v{i}")),
            headers: Vec::new(),
        });
        conn.call(&ProduceRequest {
            topic: topic.into(),
            partition,
            batch: builder.build(),
        })
        .await
        .expect("produce");
    }
}

fn join_request(group: &str, topic: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        group: group.into(),
        topics: vec![topic.into()],
        client_id: "worker".into(),
        session_timeout_ms: SESSION_MS,
        member_id: None,
    }
}

/// A simulated consumer: its connection and what it believes it owns.
struct Member {
    conn: Conn,
    id: String,
    generation: u32,
    owned: BTreeSet<TopicPartition>,
    /// Revoked partitions it has stopped consuming, reported next heartbeat.
    released: Vec<TopicPartition>,
}

impl Member {
    async fn join(addr: SocketAddr, group: &str, topic: &str) -> Member {
        Member::join_with(addr, join_request(group, topic)).await
    }

    async fn join_with(addr: SocketAddr, req: JoinGroupRequest) -> Member {
        let mut conn = Conn::connect(addr).await;
        let joined: JoinGroupResponse = conn.call(&req).await.expect("join");
        Member {
            conn,
            id: joined.member_id,
            generation: joined.generation,
            owned: joined.assignment.into_iter().collect(),
            released: Vec::new(),
        }
    }

    /// One heartbeat, behaving like a well-mannered consumer: whatever it is
    /// told to revoke it stops consuming at once and reports next time.
    async fn heartbeat(&mut self, group: &str) -> HeartbeatResponse {
        let response = self
            .conn
            .call(&HeartbeatRequest {
                group: group.into(),
                member_id: self.id.clone(),
                generation: self.generation,
                released: std::mem::take(&mut self.released),
                max_wait_ms: 0,
                owned: Vec::new(),
            })
            .await
            .expect("heartbeat");
        self.generation = response.generation;
        self.owned = response.owned.iter().cloned().collect();
        for tp in &response.revoke {
            self.owned.remove(tp);
            self.released.push(tp.clone());
        }
        response
    }

    async fn commit(
        &mut self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<(), Refusal> {
        let generation = self.generation;
        commit_as(&mut self.conn, group, &self.id, generation, offsets).await
    }
}

async fn commit_as(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    generation: u32,
    offsets: &[(TopicPartition, u64)],
) -> Result<(), Refusal> {
    conn.call(&CommitOffsetsRequest {
        group: group.into(),
        member_id: member_id.into(),
        generation,
        offsets: offsets
            .iter()
            .map(|(tp, offset)| OffsetCommit {
                partition: tp.clone(),
                offset: *offset,
            })
            .collect(),
    })
    .await
    .map(|_| ())
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// Asserts that no partition is consumed by two members at once.
fn assert_disjoint(members: &[Member]) {
    let mut seen = BTreeMap::new();
    for m in members {
        for p in &m.owned {
            if let Some(other) = seen.insert(p.clone(), m.id.clone()) {
                panic!("{p} owned by both {other} and {}", m.id);
            }
        }
    }
}

/// Heartbeats every member until each owns `expected[i]` partitions with
/// nothing left to revoke, checking at every step that ownership never
/// overlaps and that `keep[i]` (partitions a member must keep consuming
/// throughout) never leave their member.
async fn settle(
    group: &str,
    members: &mut [Member],
    expected: &[usize],
    keep: &[BTreeSet<TopicPartition>],
) {
    for _ in 0..ROUNDS_MAX {
        let mut done = true;
        for (i, m) in members.iter_mut().enumerate() {
            let r = m.heartbeat(group).await;
            assert!(!r.rejoin, "member {} told to rejoin", m.id);
            done &= r.revoke.is_empty() && m.released.is_empty() && m.owned.len() == expected[i];
            if let Some(keep) = keep.get(i) {
                assert!(
                    keep.is_subset(&m.owned),
                    "{} lost a partition it keeps",
                    m.id
                );
            }
        }
        assert_disjoint(members);
        if done {
            return;
        }
    }
    panic!(
        "group did not settle: {:?}",
        members.iter().map(|m| m.owned.len()).collect::<Vec<_>>()
    );
}

async fn describe(conn: &mut Conn, group: &str) -> DescribeGroupResponse {
    conn.call(&DescribeGroupRequest {
        group: group.into(),
    })
    .await
    .expect("describe")
}

#[tokio::test]
async fn two_then_three_members_share_six_partitions_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut admin) = start(dir.path()).await;
    create_topic(&mut admin, "t", 6).await;
    let addr = broker.local_addr();

    let first = Member::join(addr, "g", "t").await;
    assert_eq!(first.owned.len(), 6, "a lone member gets every partition");
    let second = Member::join(addr, "g", "t").await;
    assert!(
        second.owned.is_empty(),
        "nothing is free yet: the first member must release before the second consumes"
    );
    assert!(second.generation > first.generation);
    let mut members = vec![first, second];
    settle("g", &mut members, &[3, 3], &[]).await;

    // Each keeps its three, the newcomer gets one from each.
    let kept: Vec<BTreeSet<_>> = members.iter().map(|m| m.owned.clone()).collect();
    members.push(Member::join(addr, "g", "t").await);
    assert!(members[2].owned.is_empty());
    // Hand-over, step by step: the first member is told to revoke one
    // partition; the newcomer gets it only once that member reports it
    // released, and nothing of the second member's until it does the same.
    let r = members[0].heartbeat("g").await;
    assert_eq!(
        r.revoke.len(),
        1,
        "one partition moves from each old member"
    );
    let moving = r.revoke[0].clone();
    assert!(kept[0].contains(&moving));
    assert!(
        members[2].heartbeat("g").await.owned.is_empty(),
        "not released yet"
    );
    members[0].heartbeat("g").await; // reports `moving` released
    let r = members[2].heartbeat("g").await;
    assert_eq!(
        r.owned,
        vec![moving.clone()],
        "released partition handed over"
    );
    assert!(!members[0].owned.contains(&moving));
    assert_disjoint(&members);
    settle("g", &mut members, &[2, 2, 2], &[]).await;
    for (m, before) in members.iter().zip(&kept) {
        assert_eq!(
            m.owned.intersection(before).count(),
            2,
            "sticky: only one partition moved away"
        );
    }
    let all: BTreeSet<_> = members
        .iter()
        .flat_map(|m| m.owned.iter().cloned())
        .collect();
    assert_eq!(all, (0..6).map(tp).collect());

    let d = describe(&mut admin, "g").await;
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.members.len(), 3);
    assert!(
        d.members
            .iter()
            .all(|m| m.host.starts_with("127.0.0.1:") && m.client_id == "worker")
    );
    assert!(d.partitions.iter().all(|p| p.owner.is_some()));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_member_loses_its_partitions_after_the_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut admin) = start(dir.path()).await;
    create_topic(&mut admin, "t", 6).await;
    let addr = broker.local_addr();
    // Session timeouts are per member: the one that keeps heartbeating has
    // a generous one, so a slow test machine cannot expire it by accident.
    let mut members = vec![
        Member::join_with(
            addr,
            JoinGroupRequest {
                session_timeout_ms: 5000,
                ..join_request("g", "t")
            },
        )
        .await,
        Member::join(addr, "g", "t").await,
    ];
    settle("g", &mut members, &[3, 3], &[]).await;
    let mut silent = members.pop().expect("two members");
    let mut alive = members.pop().expect("one member");
    let kept = alive.owned.clone();

    // The silent one sends nothing more (no leave). The live one heartbeats
    // every 50 ms and keeps its partitions throughout.
    let stopped = Instant::now();
    let mut taken_over = None;
    for _ in 0..ROUNDS_MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
        alive.heartbeat("g").await;
        assert!(kept.is_subset(&alive.owned));
        if alive.owned.len() == 6 {
            taken_over = Some(stopped.elapsed());
            break;
        }
    }
    let took = taken_over.expect("partitions moved within 5 s");
    assert!(
        took >= Duration::from_millis(u64::from(SESSION_MS) - 60),
        "moved after {took:?}, before the {SESSION_MS} ms session timeout"
    );
    // The expired member is told to rejoin, and its commits are refused.
    let r = silent.heartbeat("g").await;
    assert!(r.rejoin && r.owned.is_empty());
    let err = commit_as(
        &mut silent.conn,
        "g",
        &silent.id.clone(),
        silent.generation,
        &[(tp(0), 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, ErrorCode::UnknownMember, "{}", err.1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn stale_generation_and_non_owner_commits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut admin) = start(dir.path()).await;
    create_topic(&mut admin, "t", 6).await;
    let addr = broker.local_addr();
    let mut a = Member::join(addr, "g", "t").await;
    a.commit("g", &[(tp(0), 5)]).await.expect("owner commits");
    let old_generation = a.generation;

    let b = Member::join(addr, "g", "t").await;
    // a's generation is stale now, even for a partition it still owns.
    let err = a.commit("g", &[(tp(0), 6)]).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::StaleGeneration, "{}", err.1);
    assert!(err.1.contains("generation"), "{}", err.1);
    assert!(b.generation > old_generation);

    let mut members = vec![a, b];
    settle("g", &mut members, &[3, 3], &[]).await;
    let [a, b] = &mut members[..] else {
        unreachable!()
    };
    let a_owns = a.owned.iter().next().cloned().expect("a owns some");
    let b_owns = b.owned.iter().next().cloned().expect("b owns some");
    // The current generation still cannot commit another member's partition.
    let err = a.commit("g", &[(b_owns.clone(), 99)]).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::NotPartitionOwner, "{}", err.1);
    a.commit("g", &[(a_owns.clone(), 7)])
        .await
        .expect("owner commits");
    b.commit("g", &[(b_owns.clone(), 8)])
        .await
        .expect("owner commits");

    let fetched = admin
        .call(&FetchOffsetsRequest {
            group: "g".into(),
            partitions: vec![a_owns.clone(), b_owns.clone()],
        })
        .await
        .unwrap();
    let got: Vec<_> = fetched.offsets.iter().map(|o| o.offset).collect();
    assert_eq!(got, [Some(7), Some(8)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn committed_offsets_survive_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut admin) = start(dir.path()).await;
    create_topic(&mut admin, "t", 6).await;
    let mut a = Member::join(broker.local_addr(), "g", "t").await;
    let offsets: Vec<_> = (0..6).map(|p| (tp(p), 100 + u64::from(p))).collect();
    a.commit("g", &offsets).await.unwrap();
    a.commit("g", &[(tp(0), 1000)]).await.unwrap();
    drop(a);
    broker.shutdown().await.unwrap();

    let (broker, mut admin) = start(dir.path()).await;
    let fetched = admin
        .call(&FetchOffsetsRequest {
            group: "g".into(),
            partitions: Vec::new(),
        })
        .await
        .unwrap();
    let got: Vec<_> = fetched
        .offsets
        .iter()
        .map(|o| (o.partition.clone(), o.offset))
        .collect();
    let mut expected: Vec<_> = offsets
        .iter()
        .map(|(tp, o)| (tp.clone(), Some(*o)))
        .collect();
    expected[0].1 = Some(1000);
    assert_eq!(got, expected);
    // The group is listed (empty) and a new member starts from these.
    let groups = admin.call(&ListGroupsRequest).await.unwrap().groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].group.as_str(), groups[0].state),
        ("g", GroupState::Empty)
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn reset_offsets_is_refused_with_members_and_works_without() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut admin) = start(dir.path()).await;
    create_topic(&mut admin, "t", 2).await;
    produce(&mut admin, "t", 0, 5).await;
    produce(&mut admin, "t", 1, 3).await;
    let mut a = Member::join(broker.local_addr(), "g", "t").await;
    a.commit("g", &[(tp(0), 1), (tp(1), 1)]).await.unwrap();

    let reset = |to| ResetOffsetsRequest {
        group: "g".into(),
        topic: "t".into(),
        to,
    };
    let err = admin.call(&reset(ResetTo::Latest)).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::GroupNotEmpty, "{}", err.1);
    let err = admin
        .call(&DeleteGroupRequest { group: "g".into() })
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::GroupNotEmpty, "{}", err.1);

    a.conn
        .call(&LeaveGroupRequest {
            group: "g".into(),
            member_id: a.id.clone(),
        })
        .await
        .unwrap();
    let latest = admin.call(&reset(ResetTo::Latest)).await.unwrap();
    assert_eq!(latest.offsets, vec![(tp(0), 5), (tp(1), 3)]);
    let earliest = admin.call(&reset(ResetTo::Earliest)).await.unwrap();
    assert_eq!(earliest.offsets, vec![(tp(0), 0), (tp(1), 0)]);
    let exact = admin.call(&reset(ResetTo::Offset(4))).await.unwrap();
    assert_eq!(
        exact.offsets,
        vec![(tp(0), 4), (tp(1), 3)],
        "clamped to the log end"
    );
    let by_time = admin
        .call(&reset(ResetTo::Timestamp(1_700_000_000_002)))
        .await
        .unwrap();
    assert_eq!(by_time.offsets, vec![(tp(0), 2), (tp(1), 2)]);
    let d = describe(&mut admin, "g").await;
    let committed: Vec<_> = d.partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, [Some(2), Some(2)]);

    admin
        .call(&DeleteGroupRequest { group: "g".into() })
        .await
        .unwrap();
    let err = admin
        .call(&DescribeGroupRequest { group: "g".into() })
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::UnknownGroup, "{}", err.1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn describe_shows_lag_going_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut admin) = start(dir.path()).await;
    create_topic(&mut admin, "t", 2).await;
    produce(&mut admin, "t", 0, 10).await;
    produce(&mut admin, "t", 1, 4).await;
    let mut a = Member::join(broker.local_addr(), "g", "t").await;

    let d = describe(&mut admin, "g").await;
    assert_eq!(d.partitions.len(), 2);
    assert_eq!(d.partitions[0].log_end_offset, 10);
    assert_eq!(d.partitions[0].lag, None, "nothing committed yet");
    assert_eq!(d.partitions[0].owner.as_deref(), Some(a.id.as_str()));

    a.commit("g", &[(tp(0), 6), (tp(1), 1)]).await.unwrap();
    let d = describe(&mut admin, "g").await;
    let lag: Vec<_> = d.partitions.iter().map(|p| p.lag).collect();
    assert_eq!(lag, [Some(4), Some(3)]);

    a.commit("g", &[(tp(0), 10), (tp(1), 4)]).await.unwrap();
    let d = describe(&mut admin, "g").await;
    let lag: Vec<_> = d.partitions.iter().map(|p| p.lag).collect();
    assert_eq!(lag, [Some(0), Some(0)]);
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].owned, vec![tp(0), tp(1)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn limits_and_bad_joins_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        group_members_max: 2,
        groups_max: 1,
        ..config(dir.path())
    })
    .await
    .unwrap();
    let mut admin = Conn::connect(broker.local_addr()).await;
    create_topic(&mut admin, "t", 2).await;
    let addr = broker.local_addr();
    let _a = Member::join(addr, "g", "t").await;
    let _b = Member::join(addr, "g", "t").await;
    let err = admin.call(&join_request("g", "t")).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::MemberLimitReached, "{}", err.1);
    assert!(err.1.contains("group_members_max"), "{}", err.1);
    let err = admin.call(&join_request("other", "t")).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::GroupLimitReached, "{}", err.1);
    let err = admin.call(&join_request("g", "missing")).await.unwrap_err();
    assert_eq!(err.0, ErrorCode::UnknownTopic, "{}", err.1);
    let err = admin
        .call(&JoinGroupRequest {
            session_timeout_ms: 10,
            ..join_request("g", "t")
        })
        .await
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::InvalidSessionTimeout, "{}", err.1);
    broker.shutdown().await.unwrap();
}

/// The broker as a child process, killed with SIGKILL: acknowledged commits
/// must survive.
#[tokio::test]
async fn committed_offsets_survive_sigkill_of_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_skiffd(dir.path());
    let addr = read_listen_addr(&mut child);
    let mut admin = Conn::connect(addr).await;
    create_topic(&mut admin, "t", 6).await;
    // skiffd runs with the default limits: ask for the default timeout.
    let mut a = Member::join_with(
        addr,
        JoinGroupRequest {
            session_timeout_ms: 0,
            ..join_request("g", "t")
        },
    )
    .await;
    let mut acked = BTreeMap::new();
    for round in 0..50u64 {
        let p = (round % 6) as u32;
        a.commit("g", &[(tp(p), round)]).await.expect("commit");
        acked.insert(tp(p), round);
    }
    child.kill();

    let mut child = spawn_skiffd(dir.path());
    let addr = read_listen_addr(&mut child);
    let mut admin = Conn::connect(addr).await;
    let fetched = admin
        .call(&FetchOffsetsRequest {
            group: "g".into(),
            partitions: Vec::new(),
        })
        .await
        .unwrap();
    let got: BTreeMap<_, _> = fetched
        .offsets
        .into_iter()
        .map(|o| (o.partition, o.offset.expect("listed offsets are set")))
        .collect();
    assert_eq!(got, acked);
    child.kill();
}

/// A skiffd child process, SIGKILLed (and reaped) on `kill` or drop, so a
/// failing test never leaves a broker running.
struct Skiffd(std::process::Child);

impl Skiffd {
    fn kill(&mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Skiffd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_skiffd(dir: &Path) -> Skiffd {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_skiffd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--log-level", "warn"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn skiffd");
    Skiffd(child)
}

fn read_listen_addr(child: &mut Skiffd) -> SocketAddr {
    use std::io::BufRead;
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read skiffd stdout");
    line.trim()
        .strip_prefix("skiffd listening on ")
        .unwrap_or_else(|| panic!("unexpected skiffd output {line:?}"))
        .parse()
        .expect("address")
}

/// Heartbeat v1 is a long poll: a member waiting for partitions is answered
/// the moment the old owner releases them, with a heartbeat interval (5 s)
/// far above the test's bound (3 s); `describe` shows the partitions
/// waiting until their new owner reads its offsets. An older client's
/// Heartbeat v0 is answered at once, as before.
#[tokio::test]
async fn a_waiting_member_is_answered_when_its_partitions_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        session_timeout_ms_default: 30_000,
        heartbeat_interval_ms: 5_000,
        ..config(dir.path())
    })
    .await
    .expect("broker starts");
    let addr = broker.local_addr();
    let mut admin = Conn::connect(addr).await;
    create_topic(&mut admin, "t", 4).await;
    let long_join = |group: &str| JoinGroupRequest {
        session_timeout_ms: 30_000,
        ..join_request(group, "t")
    };
    let mut a = Member::join_with(addr, long_join("g")).await;
    assert_eq!(a.owned.len(), 4);
    let mut b = Member::join_with(addr, long_join("g")).await;
    assert!(b.owned.is_empty());

    // b waits for partitions in a held heartbeat.
    let b_poll = HeartbeatRequest {
        group: "g".into(),
        member_id: b.id.clone(),
        generation: b.generation,
        released: vec![],
        max_wait_ms: 5_000,
        owned: vec![],
    };
    let mut b_conn = b.conn;
    let waiting = tokio::spawn(async move {
        let answer = b_conn.call(&b_poll).await.expect("heartbeat");
        (b_conn, answer)
    });

    // a's view is out of date (a new generation): answered at once, with
    // half its partitions to revoke. An older client gets the same answer.
    let view = |m: &Member| m.owned.iter().cloned().collect::<Vec<_>>();
    let a_poll = HeartbeatRequest {
        group: "g".into(),
        member_id: a.id.clone(),
        generation: a.generation,
        released: vec![],
        max_wait_ms: 5_000,
        owned: view(&a),
    };
    let answer = a.conn.call(&a_poll).await.expect("heartbeat");
    assert_eq!(answer.revoke.len(), 2);
    let old = a.conn.call_version(&a_poll, 0).await.expect("heartbeat v0");
    assert_eq!(old, answer);
    let d = describe(&mut admin, "g").await;
    let moving: Vec<TopicPartition> = d
        .partitions
        .iter()
        .filter(|p| p.waiting_ms.is_some())
        .map(|p| p.partition.clone())
        .collect();
    assert_eq!(moving, answer.revoke);

    // a releases them; b's held heartbeat answers with them.
    let release = HeartbeatRequest {
        generation: answer.generation,
        released: answer.revoke.clone(),
        max_wait_ms: 0,
        owned: answer
            .owned
            .iter()
            .filter(|tp| !answer.revoke.contains(tp))
            .cloned()
            .collect(),
        ..a_poll
    };
    a.conn.call(&release).await.expect("release");
    let (mut b_conn, b_answer) = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("b answered before its heartbeat interval")
        .expect("task");
    assert_eq!(b_answer.owned, answer.revoke);
    assert!(!b_answer.rejoin && b_answer.revoke.is_empty());

    // The partitions wait until b reads their committed offsets.
    assert!(
        describe(&mut admin, "g")
            .await
            .partitions
            .iter()
            .any(|p| p.waiting_ms.is_some())
    );
    b_conn
        .call(&FetchOffsetsRequest {
            group: "g".into(),
            partitions: b_answer.owned.clone(),
        })
        .await
        .expect("fetch offsets");
    let d = describe(&mut admin, "g").await;
    assert_eq!(d.state, GroupState::Stable);
    assert!(d.partitions.iter().all(|p| p.waiting_ms.is_none()), "{d:?}");
    // An older client's describe has no waiting times to decode.
    let old: DescribeGroupResponse = admin
        .call_version(&DescribeGroupRequest { group: "g".into() }, 0)
        .await
        .expect("describe v0");
    assert_eq!(old.partitions.len(), 4);
    b.conn = b_conn;
    drop((a, b));
    broker.shutdown().await.expect("shutdown");
}
