//! Black-box tests of Kafka consumer groups on skiffd's Kafka listener: a
//! real broker on 127.0.0.1:0, raw Kafka requests (kafka-protocol's types,
//! one connection per member as real clients have), librdkafka through
//! `kcat -G`, and skiff's own client looking at the same groups.
//!
//! What a user would see: members get each other's partitions through the
//! classic protocol (MEMBER_ID_REQUIRED, join and sync long polls,
//! REBALANCE_IN_PROGRESS, LeaveGroup), commits land in the offset store
//! `skiff group describe` reads, and one group name never has skiff and
//! Kafka members at once.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::STEP_TIMEOUT;
use common::kafka::{KafkaConn, installed, kafka_addr, start_kafka_broker};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use skiff_broker::BrokerHandle;
use skiff_client::{
    Client, ClientConfig, Consumer, GroupConfig, Producer, ProducerConfig, ProducerRecord, ResetTo,
    TopicConfig,
};
use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{GroupState, TopicPartition};

const NONE: i16 = 0;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const NON_EMPTY_GROUP: i16 = 68;
const MEMBER_ID_REQUIRED: i16 = 79;

/// A broker with a Kafka listener, and a skiff client of it.
async fn start() -> (tempfile::TempDir, BrokerHandle, SocketAddr, Client) {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let kafka = kafka_addr(&broker);
    let client = Client::connect(ClientConfig::new(broker.local_addr().to_string()))
        .await
        .expect("client connects");
    (dir, broker, kafka, client)
}

async fn create_topic(client: &Client, name: &str, partitions: u32) {
    client
        .admin()
        .create_topic(
            name,
            TopicConfig {
                partitions,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("topic created");
}

fn group(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_owned()))
}

fn kstr(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A consumer-protocol subscription (v0) to `topic`.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

/// A consumer-protocol assignment (v0) of `partitions` of `topic`.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

const JOIN_VERSION: i16 = 5;

fn join_request(group_name: &str, member_id: &str, topic: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_name))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(kstr(member_id))
        .with_protocol_type(kstr("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(kstr("range"))
                .with_metadata(subscription(topic)),
        ])
}

/// A new member's join: MEMBER_ID_REQUIRED with an id, then the join with
/// it, which is returned still running (a long poll).
async fn join_new(
    kafka: SocketAddr,
    group_name: &'static str,
    topic: &'static str,
) -> (
    String,
    tokio::task::JoinHandle<(KafkaConn, JoinGroupResponse)>,
) {
    let mut conn = KafkaConn::connect(kafka).await;
    let first = conn
        .call(&join_request(group_name, "", topic), JOIN_VERSION)
        .await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.as_str().to_owned();
    assert!(!id.is_empty(), "the broker hands out the member id");
    let member_id = id.clone();
    let join = tokio::spawn(async move {
        let r = conn
            .call(&join_request(group_name, &member_id, topic), JOIN_VERSION)
            .await;
        (conn, r)
    });
    (id, join)
}

async fn rejoin(
    conn: &mut KafkaConn,
    group_name: &str,
    id: &str,
    topic: &str,
) -> JoinGroupResponse {
    conn.call(&join_request(group_name, id, topic), JOIN_VERSION)
        .await
}

fn sync_request(
    group_name: &str,
    id: &str,
    generation: i32,
    assignments: Vec<(&str, Bytes)>,
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(group(group_name))
        .with_generation_id(generation)
        .with_member_id(kstr(id))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(kstr(m))
                        .with_assignment(a)
                })
                .collect(),
        )
}

async fn heartbeat(conn: &mut KafkaConn, group_name: &str, id: &str, generation: i32) -> i16 {
    conn.call(
        &HeartbeatRequest::default()
            .with_group_id(group(group_name))
            .with_generation_id(generation)
            .with_member_id(kstr(id)),
        3,
    )
    .await
    .error_code
}

/// Heartbeats until the group says a rebalance started (a join that is
/// still on its way is not one yet).
async fn await_rebalance(conn: &mut KafkaConn, group_name: &str, id: &str, generation: i32) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        match heartbeat(conn, group_name, id, generation).await {
            REBALANCE_IN_PROGRESS => return,
            NONE => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no rebalance started"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => panic!("heartbeat answered {other} while waiting for a rebalance"),
        }
    }
}

async fn commit(
    conn: &mut KafkaConn,
    group_name: &str,
    id: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    commit_at(conn, 8, group_name, id, generation, topic, offsets).await
}

/// [`commit`] at a given OffsetCommit version.
async fn commit_at(
    conn: &mut KafkaConn,
    version: i16,
    group_name: &str,
    id: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let partitions = offsets
        .iter()
        .map(|(p, o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
        })
        .collect();
    let r = conn
        .call(
            &OffsetCommitRequest::default()
                .with_group_id(group(group_name))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(kstr(id))
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(kstr(topic)))
                        .with_partitions(partitions),
                ]),
            version,
        )
        .await;
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// Two raw Kafka members share a topic through the classic protocol; the
/// group, its members, owners and commits show through skiff's admin API.
#[tokio::test]
async fn two_kafka_members_rebalance_commit_leave_and_show_in_skiff() {
    let (_dir, _broker, kafka, client) = start().await;
    create_topic(&client, "orders", 4).await;
    let mut admin = KafkaConn::connect(kafka).await;

    // This node coordinates every group, one key (v3) or many (v4).
    let found = admin
        .call(&FindCoordinatorRequest::default().with_key(kstr("g")), 3)
        .await;
    assert_eq!(found.error_code, NONE);
    assert_eq!(found.port, i32::from(kafka.port()));
    let found = admin
        .call(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![kstr("g"), kstr("h")]),
            4,
        )
        .await;
    assert_eq!(found.coordinators.len(), 2);
    assert!(
        found
            .coordinators
            .iter()
            .all(|c| c.error_code == NONE && c.port == i32::from(kafka.port()))
    );

    // a alone: generation 1, a leads and takes everything.
    let (a, join_a) = join_new(kafka, "g", "orders").await;
    let (mut conn_a, ja) = join_a.await.unwrap();
    assert_eq!((ja.error_code, ja.generation_id), (NONE, 1));
    assert_eq!(ja.leader.as_str(), a);
    assert_eq!(ja.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    let sa = conn_a
        .call(
            &sync_request("g", &a, 1, vec![(&a, assignment("orders", &[0, 1, 2, 3]))]),
            3,
        )
        .await;
    assert_eq!(sa.error_code, NONE);
    assert_eq!(heartbeat(&mut conn_a, "g", &a, 1).await, NONE);

    // b joins: its join waits until a rejoins, which a learns by heartbeat.
    // (b's second join runs in a task: a's heartbeats answer NONE until
    // it has arrived.)
    let (b, join_b) = join_new(kafka, "g", "orders").await;
    await_rebalance(&mut conn_a, "g", &a, 1).await;
    let ja = rejoin(&mut conn_a, "g", &a, "orders").await;
    let (mut conn_b, jb) = join_b.await.unwrap();
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja.leader.as_str(), a, "the leader stays");
    assert_eq!(
        ja.members.len(),
        2,
        "the leader gets every member's metadata"
    );
    assert!(
        ja.members
            .iter()
            .all(|m| m.metadata == subscription("orders"))
    );
    assert!(jb.members.is_empty());

    // b's sync waits for the leader's assignments.
    let b_id = b.clone();
    let sync_b: tokio::task::JoinHandle<(KafkaConn, SyncGroupResponse)> =
        tokio::spawn(async move {
            let r = conn_b.call(&sync_request("g", &b_id, 2, vec![]), 3).await;
            (conn_b, r)
        });
    let sa = conn_a
        .call(
            &sync_request(
                "g",
                &a,
                2,
                vec![
                    (&a, assignment("orders", &[0, 1])),
                    (&b, assignment("orders", &[2, 3])),
                ],
            ),
            3,
        )
        .await;
    assert_eq!(sa.assignment, assignment("orders", &[0, 1]));
    let (mut conn_b, sb) = sync_b.await.unwrap();
    assert_eq!(
        (sb.error_code, sb.assignment.clone()),
        (NONE, assignment("orders", &[2, 3]))
    );

    // Commits: current members at the current generation only.
    assert_eq!(
        commit(&mut conn_a, "g", &a, 2, "orders", &[(0, 7), (1, 3)]).await,
        vec![NONE, NONE]
    );
    assert_eq!(
        commit(&mut conn_b, "g", &b, 1, "orders", &[(2, 5)]).await,
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(
        commit(&mut conn_b, "g", "ghost", 2, "orders", &[(2, 5)]).await,
        vec![UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        commit(&mut conn_b, "g", &b, 2, "orders", &[(2, 5)]).await,
        vec![NONE]
    );

    // skiff's describe: a Kafka group with its members, owners and offsets.
    let d = client.admin().describe_group("g").await.unwrap();
    assert_eq!(
        (d.state, d.generation, d.members.len()),
        (GroupState::Stable, 2, 2)
    );
    let owner_of = |p: u32| {
        d.partitions
            .iter()
            .find(|x| x.partition == TopicPartition::new("orders", p))
            .and_then(|x| x.owner.clone())
    };
    assert_eq!(owner_of(1).as_deref(), Some(a.as_str()));
    assert_eq!(owner_of(3).as_deref(), Some(b.as_str()));
    let committed: BTreeMap<u32, Option<u64>> = d
        .partitions
        .iter()
        .map(|p| (p.partition.partition, p.committed))
        .collect();
    assert_eq!(
        committed,
        BTreeMap::from([(0, Some(7)), (1, Some(3)), (2, Some(5)), (3, None)])
    );
    assert!(d.members.iter().all(|m| m.client_id == "skiff-test"));

    // Kafka's own views of the same group.
    let described = admin
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![group("g")]),
            5,
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        (NONE, "Stable", "consumer", "range")
    );
    assert_eq!(g.members.len(), 2);
    let fetched = admin
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(group("g"))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(kstr("orders")))
                        .with_partition_indexes(vec![0, 3]),
                ])),
            5,
        )
        .await;
    let offsets: Vec<(i32, i64)> = fetched.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 7), (3, -1)]);
    let fetched = admin
        .call(
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group("g"))
                    .with_topics(None),
            ]),
            8,
        )
        .await;
    assert_eq!(
        fetched.groups[0].topics[0].partitions.len(),
        3,
        "every committed partition"
    );
    let deleted = admin
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![group("g")]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);
    let err = client
        .admin()
        .reset_offsets("g", "orders", ResetTo::Earliest)
        .await
        .expect_err("no reset while Kafka members are in");
    assert_eq!(err.code(), Some(ErrorCode::GroupNotEmpty), "{err}");

    // a leaves (v3 batch form): b is told to rejoin and forms generation 3
    // alone, as its leader.
    let left = conn_a
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(group("g"))
                .with_members(vec![MemberIdentity::default().with_member_id(kstr(&a))]),
            3,
        )
        .await;
    assert_eq!((left.error_code, left.members[0].error_code), (NONE, NONE));
    assert_eq!(
        heartbeat(&mut conn_b, "g", &b, 2).await,
        REBALANCE_IN_PROGRESS
    );
    let jb = rejoin(&mut conn_b, "g", &b, "orders").await;
    assert_eq!(
        (jb.generation_id, jb.leader.as_str(), jb.members.len()),
        (3, b.as_str(), 1)
    );
    assert_eq!(heartbeat(&mut conn_a, "g", &a, 3).await, UNKNOWN_MEMBER_ID);

    // b leaves (v0 form): the group is empty, its offsets stay, and it can
    // be deleted from Kafka's side.
    let left = conn_b
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(group("g"))
                .with_member_id(kstr(&b)),
            0,
        )
        .await;
    assert_eq!(left.error_code, NONE);
    let listed = admin.call(&ListGroupsRequest::default(), 4).await;
    let listed: Vec<(&str, &str)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.0.as_str(), g.group_state.as_str()))
        .collect();
    assert_eq!(listed, vec![("g", "Empty")]);
    let skiff_listed = client.admin().list_groups().await.unwrap();
    assert_eq!(skiff_listed.len(), 1);
    assert_eq!(skiff_listed[0].state, GroupState::Empty);
    // skiff's reset-offsets moves a Kafka group's offsets; Kafka sees them.
    client
        .admin()
        .reset_offsets("g", "orders", ResetTo::Earliest)
        .await
        .expect("reset of the empty group");
    let fetched = admin
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(group("g"))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(kstr("orders")))
                        .with_partition_indexes(vec![0, 3]),
                ])),
            5,
        )
        .await;
    let offsets: Vec<(i32, i64)> = fetched.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 0), (3, 0)]);
    let deleted = admin
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![group("g")]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, NONE);
    assert!(client.admin().list_groups().await.unwrap().is_empty());
}

/// Every version of every group API in the table is answered, and the
/// answer decodes at that version (a field set where the version lacks it
/// would fail to encode and close the connection instead).
#[tokio::test]
async fn every_served_version_of_the_group_apis_is_answered() {
    let (_dir, _broker, kafka, client) = start().await;
    create_topic(&client, "v", 1).await;
    let mut conn = KafkaConn::connect(kafka).await;
    for version in 0..=6 {
        let (code, port) = if version >= 4 {
            let r = conn
                .call(
                    &FindCoordinatorRequest::default().with_coordinator_keys(vec![kstr("g")]),
                    version,
                )
                .await;
            (r.coordinators[0].error_code, r.coordinators[0].port)
        } else {
            let r = conn
                .call(
                    &FindCoordinatorRequest::default().with_key(kstr("g")),
                    version,
                )
                .await;
            (r.error_code, r.port)
        };
        assert_eq!(
            (code, port),
            (NONE, i32::from(kafka.port())),
            "FindCoordinator v{version}"
        );
    }
    // One group per JoinGroup version, each formed, synced and committed.
    let mut members = Vec::new();
    for version in 0..=9i16 {
        let g = format!("g{version}");
        let mut j = conn.call(&join_request(&g, "", "v"), version).await;
        if version >= 4 {
            assert_eq!(j.error_code, MEMBER_ID_REQUIRED, "JoinGroup v{version}");
            let id = j.member_id.as_str().to_owned();
            j = conn.call(&join_request(&g, &id, "v"), version).await;
        }
        assert_eq!(
            (j.error_code, j.generation_id),
            (NONE, 1),
            "JoinGroup v{version}"
        );
        assert_eq!(
            j.members.len(),
            1,
            "JoinGroup v{version}: the leader sees itself"
        );
        let id = j.member_id.as_str().to_owned();
        let s = conn
            .call(
                &sync_request(&g, &id, 1, vec![(&id, assignment("v", &[0]))]),
                version.min(5),
            )
            .await;
        assert_eq!((s.error_code, s.assignment), (NONE, assignment("v", &[0])));
        members.push((g, id));
    }
    let (g9, id9) = members[9].clone();
    for version in 0..=5 {
        let s = conn
            .call(&sync_request(&g9, &id9, 1, vec![]), version)
            .await;
        assert_eq!(
            s.assignment,
            assignment("v", &[0]),
            "SyncGroup v{version} (stable)"
        );
    }
    for version in 0..=4 {
        assert_eq!(
            conn.call(
                &HeartbeatRequest::default()
                    .with_group_id(group(&g9))
                    .with_generation_id(1)
                    .with_member_id(kstr(&id9)),
                version,
            )
            .await
            .error_code,
            NONE,
            "Heartbeat v{version}"
        );
    }
    for version in 2..=9 {
        let codes = commit_at(
            &mut conn,
            version,
            &g9,
            &id9,
            1,
            "v",
            &[(0, i64::from(version))],
        )
        .await;
        assert_eq!(codes, vec![NONE], "OffsetCommit v{version}");
    }
    for version in 1..=9 {
        let offset = if version >= 8 {
            let r = conn
                .call(
                    &OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(group(&g9))
                            .with_topics(None),
                    ]),
                    version,
                )
                .await;
            r.groups[0].topics[0].partitions[0].committed_offset
        } else {
            let r = conn
                .call(
                    &OffsetFetchRequest::default()
                        .with_group_id(group(&g9))
                        .with_topics(Some(vec![
                            OffsetFetchRequestTopic::default()
                                .with_name(TopicName(kstr("v")))
                                .with_partition_indexes(vec![0]),
                        ])),
                    version,
                )
                .await;
            r.topics[0].partitions[0].committed_offset
        };
        assert_eq!(offset, 9, "OffsetFetch v{version}");
    }
    for version in 0..=5 {
        let r = conn.call(&ListGroupsRequest::default(), version).await;
        assert_eq!(
            (r.error_code, r.groups.len()),
            (NONE, 10),
            "ListGroups v{version}"
        );
    }
    for version in 0..=5 {
        let r = conn
            .call(
                &DescribeGroupsRequest::default().with_groups(vec![group(&g9)]),
                version,
            )
            .await;
        let d = &r.groups[0];
        assert_eq!(
            (d.error_code, d.group_state.as_str(), d.members.len()),
            (NONE, "Stable", 1),
            "DescribeGroups v{version}"
        );
    }
    // Leave g0..=g5 at LeaveGroup v0..=5; each keeps an offset so that
    // DeleteGroups v0..=2 finds g0..=g2.
    for version in 0..=5 {
        let (g, id) = &members[version as usize];
        let codes = commit(&mut conn, g, id, 1, "v", &[(0, 1)]).await;
        assert_eq!(codes, vec![NONE]);
        let req = LeaveGroupRequest::default().with_group_id(group(g));
        let req = if version >= 3 {
            req.with_members(vec![MemberIdentity::default().with_member_id(kstr(id))])
        } else {
            req.with_member_id(kstr(id))
        };
        let r = conn.call(&req, version).await;
        let code = r.members.first().map_or(r.error_code, |m| m.error_code);
        assert_eq!(code, NONE, "LeaveGroup v{version}");
    }
    for version in 0..=2 {
        let g = &members[version as usize].0;
        let r = conn
            .call(
                &DeleteGroupsRequest::default().with_groups_names(vec![group(g)]),
                version,
            )
            .await;
        assert_eq!(r.results[0].error_code, NONE, "DeleteGroups v{version}");
    }
}

/// A join waiting for a rebalance does not hold up shutdown: it is
/// answered COORDINATOR_NOT_AVAILABLE (or its connection closes) and the
/// broker stops well before the rebalance timeout or the shutdown grace.
#[tokio::test]
async fn shutdown_ends_a_waiting_join() {
    let dir = tempfile::tempdir().unwrap();
    let config = skiff_broker::BrokerConfig {
        shutdown_grace_ms: 120_000,
        ..common::kafka::kafka_config(dir.path())
    };
    let broker = skiff_broker::Broker::start(config)
        .await
        .expect("broker starts");
    let kafka = kafka_addr(&broker);
    let slow = |g: &str, id: &str| join_request(g, id, "t").with_rebalance_timeout_ms(120_000);
    let mut conn_a = KafkaConn::connect(kafka).await;
    let first = conn_a.call(&slow("g", ""), JOIN_VERSION).await;
    let a = first.member_id.as_str().to_owned();
    let ja = conn_a.call(&slow("g", &a), JOIN_VERSION).await;
    assert_eq!((ja.error_code, ja.generation_id), (NONE, 1));
    let sa = conn_a.call(&sync_request("g", &a, 1, vec![]), 3).await;
    assert_eq!(sa.error_code, NONE);

    // b's join waits for a, which never rejoins.
    let mut conn_b = KafkaConn::connect(kafka).await;
    let first = conn_b.call(&slow("g", ""), JOIN_VERSION).await;
    let b = first.member_id.as_str().to_owned();
    conn_b.send(&slow("g", &b), JOIN_VERSION).await;
    await_rebalance(&mut conn_a, "g", &a, 1).await;
    let answer = tokio::spawn(async move { conn_b.recv().await });

    tokio::time::timeout(STEP_TIMEOUT, broker.shutdown())
        .await
        .expect("shutdown does not wait for the rebalance")
        .expect("clean shutdown");
    if let Some(frame) = answer.await.unwrap() {
        // Response header v0 (correlation id), throttle_time_ms, error_code.
        let code = i16::from_be_bytes([frame[8], frame[9]]);
        assert_eq!(code, COORDINATOR_NOT_AVAILABLE);
    }
}

/// Group APIs go through the same authorizer as skiff's: a Kafka session
/// signed in as a user without grants is refused with
/// GROUP_AUTHORIZATION_FAILED everywhere, and nothing is created.
#[tokio::test]
async fn group_requests_of_a_user_without_grants_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = skiff_broker::BrokerConfig {
        users: vec![
            skiff_broker::BootstrapUser::from_password("admin", "admin-pw", true).expect("hash"),
        ],
        ..common::kafka::kafka_config(dir.path())
    };
    let broker = skiff_broker::Broker::start(config)
        .await
        .expect("broker starts");
    let admin = Client::connect(
        ClientConfig::new(broker.local_addr().to_string()).password("admin", "admin-pw"),
    )
    .await
    .expect("admin connects");
    admin
        .security()
        .put_user("nobody", "nobody-pw", false)
        .await
        .unwrap();
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    assert_eq!(conn.sasl_plain("nobody", "nobody-pw").await.error_code, 0);
    let found = conn
        .call(&FindCoordinatorRequest::default().with_key(kstr("g")), 3)
        .await;
    assert_eq!(found.error_code, GROUP_AUTHORIZATION_FAILED);
    let joined = conn.call(&join_request("g", "", "t"), JOIN_VERSION).await;
    assert_eq!(joined.error_code, GROUP_AUTHORIZATION_FAILED);
    assert_eq!(
        commit(&mut conn, "g", "", -1, "t", &[(0, 1)]).await,
        vec![GROUP_AUTHORIZATION_FAILED]
    );
    let fetched = conn
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(group("g"))
                .with_topics(None),
            5,
        )
        .await;
    assert_eq!(fetched.error_code, GROUP_AUTHORIZATION_FAILED);
    let described = conn
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![group("g")]),
            5,
        )
        .await;
    assert_eq!(described.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let deleted = conn
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![group("g")]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let listed = conn.call(&ListGroupsRequest::default(), 4).await;
    assert!(listed.groups.is_empty());
    // The admin, through skiff's protocol, sees that nothing was created.
    assert!(admin.admin().list_groups().await.unwrap().is_empty());
}

/// One group name has members of one kind at a time: the later kind is
/// refused with a clear error on either side, until the others leave.
#[tokio::test]
async fn a_group_name_never_has_skiff_and_kafka_members_at_once() {
    let (_dir, _broker, kafka, client) = start().await;
    create_topic(&client, "events", 2).await;

    // A skiff member first: a Kafka join is INCONSISTENT_GROUP_PROTOCOL.
    let skiff_member = Consumer::with_group(client.clone(), GroupConfig::new("shared", ["events"]))
        .await
        .expect("skiff member joins");
    let mut conn = KafkaConn::connect(kafka).await;
    let refused = conn
        .call(&join_request("shared", "", "events"), JOIN_VERSION)
        .await;
    assert_eq!(refused.error_code, INCONSISTENT_GROUP_PROTOCOL);
    // A simple (generation -1) Kafka commit is refused too.
    let codes = commit(&mut conn, "shared", "", -1, "events", &[(0, 1)]).await;
    assert_eq!(codes, vec![INCONSISTENT_GROUP_PROTOCOL]);

    // A Kafka member first: a skiff join gets group_kind_conflict naming
    // the group and the Kafka members.
    let (k, join_k) = join_new(kafka, "kgroup", "events").await;
    let (mut conn_k, jk) = join_k.await.unwrap();
    assert_eq!(jk.error_code, NONE);
    let err = Consumer::with_group(client.clone(), GroupConfig::new("kgroup", ["events"]))
        .await
        .expect_err("a skiff join of a Kafka group is refused");
    assert_eq!(err.code(), Some(ErrorCode::GroupKindConflict), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("kgroup") && message.contains("Kafka member"),
        "{message}"
    );

    // Once each side's members leave, the name takes the other kind.
    skiff_member.close().await.expect("skiff member leaves");
    let (_, join) = join_new(kafka, "shared", "events").await;
    assert_eq!(join.await.unwrap().1.error_code, NONE);
    let left = conn_k
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(group("kgroup"))
                .with_members(vec![MemberIdentity::default().with_member_id(kstr(&k))]),
            5,
        )
        .await;
    assert_eq!(left.members[0].error_code, NONE);
    let skiff_member = Consumer::with_group(client.clone(), GroupConfig::new("kgroup", ["events"]))
        .await
        .expect("the group is free for skiff members again");
    skiff_member.close().await.unwrap();
}

/// A running `kcat -G` and what it printed: (partition, offset) per
/// record, from `-f '%p %o\n'`, read by a thread into a channel.
struct Kcat {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Kcat {
    fn start(kafka: SocketAddr, group_name: &str, topic: &str) -> Self {
        assert!(
            installed("kcat"),
            "kcat is not installed (apt-get install -y kcat; .ci/run does)"
        );
        let mut child = std::process::Command::new("kcat")
            .args([
                "-b",
                &kafka.to_string(),
                "-G",
                group_name,
                "-u",
                "-q",
                "-f",
                "%p %o\\n",
                "-X",
                "auto.offset.reset=earliest",
                "-X",
                "auto.commit.interval.ms=100",
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
                topic,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kcat runs (install it: apt-get install kcat)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Reads records until `done` says the ones seen are enough.
    async fn read_until(
        &mut self,
        seen: &mut Vec<(u32, u64)>,
        done: impl Fn(&[(u32, u64)]) -> bool,
    ) {
        while !done(seen) {
            let line = tokio::time::timeout(STEP_TIMEOUT * 3, self.lines.recv())
                .await
                .expect("kcat prints in time")
                .expect("kcat still running");
            let (p, o) = line.split_once(' ').expect("partition and offset");
            seen.push((p.parse().unwrap(), o.parse().unwrap()));
        }
    }

    /// Stops kcat the way a user does (SIGTERM: it commits and leaves the
    /// group) and waits for it to exit.
    async fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) of a child this test spawned and has not reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM sent");
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT * 3;
        while self.child.try_wait().expect("kcat status").is_none() {
            assert!(tokio::time::Instant::now() < deadline, "kcat exits in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Kcat {
    fn drop(&mut self) {
        // A failed test must not leave kcat running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls skiff's describe of `group` until `check` holds.
async fn wait_for_group(
    client: &Client,
    group_name: &str,
    what: &str,
    check: impl Fn(&skiff_protocol::messages::DescribeGroupResponse) -> bool,
) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT * 3;
    loop {
        if let Ok(d) = client.admin().describe_group(group_name).await {
            if check(&d) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn all_committed(d: &skiff_protocol::messages::DescribeGroupResponse, offset: u64) -> bool {
    d.partitions.len() == 4 && d.partitions.iter().all(|p| p.committed == Some(offset))
}

/// librdkafka's group consumer (kcat -G): two members split the
/// partitions, the one left takes them all when the other stops, and the
/// commits are what skiff's describe shows.
#[tokio::test]
async fn kcat_group_members_share_hand_over_and_commit() {
    let (_dir, _broker, kafka, client) = start().await;
    create_topic(&client, "clicks", 4).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let produce = |n: u32| {
        let producer = producer.clone();
        async move {
            for p in 0..4 {
                for i in 0..n {
                    producer
                        .send(ProducerRecord::new("clicks", format!("v{i}")).partition(p))
                        .await
                        .expect("produced");
                }
            }
        }
    };
    produce(10).await;

    // a alone reads everything and commits it.
    let mut a = Kcat::start(kafka, "clickers", "clicks");
    let mut seen_a = Vec::new();
    a.read_until(&mut seen_a, |s| s.len() >= 40).await;
    wait_for_group(&client, "clickers", "a commits all 40", |d| {
        d.members.len() == 1 && all_committed(d, 10)
    })
    .await;

    // b joins: the partitions are split between the two.
    let mut b = Kcat::start(kafka, "clickers", "clicks");
    wait_for_group(
        &client,
        "clickers",
        "two members with two partitions each",
        |d| {
            d.state == GroupState::Stable
                && d.members.len() == 2
                && d.members.iter().all(|m| m.owned.len() == 2)
        },
    )
    .await;

    // a stops (leaves the group): b takes all four, and reads new records
    // from the committed offsets on.
    a.stop().await;
    wait_for_group(&client, "clickers", "b owns all four partitions", |d| {
        d.state == GroupState::Stable && d.members.len() == 1 && d.members[0].owned.len() == 4
    })
    .await;
    produce(5).await;
    let mut seen_b = Vec::new();
    b.read_until(&mut seen_b, |s| {
        (0..4).all(|p| (10..15).all(|o| s.contains(&(p, o))))
    })
    .await;
    assert!(
        seen_b.iter().all(|(_, o)| *o >= 10),
        "b starts at the committed offsets, not the beginning: {seen_b:?}"
    );
    wait_for_group(&client, "clickers", "b commits all 60", |d| {
        all_committed(d, 15)
    })
    .await;

    b.stop().await;
    wait_for_group(&client, "clickers", "the group is empty", |d| {
        d.state == GroupState::Empty && d.members.is_empty() && all_committed(d, 15)
    })
    .await;
}
