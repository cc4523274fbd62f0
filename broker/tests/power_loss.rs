//! Power loss, one acknowledging path at a time: a broker in-process on a
//! directory watched by `skiff_broker::fsio::power`, an acknowledged change,
//! a power cut that keeps only what completed syncs made durable (unsynced
//! bytes dropped, unless a test says otherwise; directory entries never
//! fsynced gone), a restart on that image, and a check that the change is
//! there. Each test fails if a sync on its path is removed (the README's
//! durability section lists which test catches which sync).

mod power;

use std::time::{Duration, Instant};

use power::{Rig, read_all};
use skiff_broker::Durability;
use skiff_broker::fsio::power::Tail;
use skiff_client::{
    AutoCommit, Client, Consumer, ConsumerConfig, GroupConfig, Operations, Producer,
    ProducerConfig, ProducerRecord, ResetTo, ResourceKind, ResourcePattern, TopicConfig,
};
use skiff_protocol::messages::{
    AlterTopicRequest, ConfigChange, FetchOffsetsRequest, InitProducerIdRequest, TopicPartition,
};

const TOPIC: &str = "orders";
/// Small segments: the produce tests roll several times.
const SEGMENT_BYTES: u64 = 1024;

async fn create(client: &Client, name: &str, partitions: u32) {
    create_segmented(client, name, partitions, SEGMENT_BYTES).await;
}

async fn create_segmented(client: &Client, name: &str, partitions: u32, segment_bytes: u64) {
    client
        .admin()
        .create_topic(
            name,
            TopicConfig {
                partitions,
                segment_bytes: Some(segment_bytes),
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create topic");
}

/// Produces `n` keyed records one at a time; returns (value, partition,
/// offset, when the ack arrived) per record.
async fn produce(client: &Client, n: usize, tag: &str) -> Vec<(String, u32, u64, Instant)> {
    let producer = Producer::new(client.clone(), ProducerConfig::default().linger_ms(0));
    let mut acked = Vec::new();
    for i in 0..n {
        let value = format!("{tag}-{i}-{}", "x".repeat(100));
        let ack = producer
            .send(ProducerRecord::new(TOPIC, value.clone()).key(format!("k{}", i % 3)))
            .await
            .expect("acknowledged");
        acked.push((value, ack.partition, ack.offset, Instant::now()));
    }
    acked
}

#[tokio::test]
async fn produce_acknowledged_under_always_survives_power_loss_across_rolls() {
    let mut rig = Rig::start(Durability::Always, false).await;
    let client = rig.client().await;
    create(&client, TOPIC, 2).await;
    let acked = produce(&client, 60, "a").await;
    let report = rig.power_cut(Tail::Drop).await;
    // A second round on the recovered log, then a torn tail this time.
    let client = rig.client().await;
    let more = produce(&client, 30, "b").await;
    rig.power_cut(Tail::Garbage).await;
    let cuts = format!("first cut: {report:?}");
    assert_all_present(&rig, acked.iter().chain(&more), &cuts).await;
    rig.shutdown().await;
}

/// Every acknowledged (value, partition, offset) is in TOPIC at its offset
/// on the rig's broker; `cuts` describes the power cuts for the message.
async fn assert_all_present<'a>(
    rig: &Rig,
    acked: impl Iterator<Item = &'a (String, u32, u64, Instant)>,
    cuts: &str,
) {
    let log = read_all(&rig.client().await, TOPIC).await;
    for (value, p, offset, _) in acked {
        assert_eq!(
            log.get(&(*p, *offset)).map(|v| v.as_ref()),
            Some(value.as_bytes()),
            "acknowledged {p}/{offset} lost or changed ({cuts})"
        );
    }
}

/// Under `interval` and `never`, a power cut loses at most the batches
/// acknowledged after the last sync that completed before it; the rest is
/// a gapless prefix, and a torn or garbage tail is cut, never served.
async fn unsynced_loss_is_bounded(fsync: Durability) {
    for tail in [Tail::Drop, Tail::Garbage, Tail::Random(7)] {
        let mut rig = Rig::start(fsync.clone(), false).await;
        let client = rig.client().await;
        create(&client, TOPIC, 1).await;
        let acked = produce(&client, 80, "a").await;
        let synced_from = rig.last_sync(TOPIC, 0);
        // 80 records of ~110 bytes fill several 1 KiB segments: each roll
        // syncs the old segment, whatever the mode.
        assert!(
            synced_from.is_some(),
            "{fsync:?}: no roll synced its segment"
        );
        rig.power_cut(tail).await;
        let log = read_all(&rig.client().await, TOPIC).await;
        let mut lost = 0;
        for (value, p, offset, at) in &acked {
            match log.get(&(*p, *offset)) {
                Some(v) => {
                    assert_eq!(v.as_ref(), value.as_bytes(), "{p}/{offset} changed");
                    assert_eq!(lost, 0, "{p}/{offset} survived after a lost record");
                }
                None => {
                    assert!(
                        synced_from.is_none_or(|s| *at >= s),
                        "{fsync:?}/{tail:?}: {p}/{offset} was acknowledged before the last sync and is lost"
                    );
                    lost += 1;
                }
            }
        }
        assert_eq!(log.len() + lost, acked.len(), "records nobody produced");
        rig.shutdown().await;
    }
}

#[tokio::test]
async fn interval_loses_only_batches_acknowledged_after_the_last_sync() {
    unsynced_loss_is_bounded(Durability::Interval(Duration::from_secs(3600))).await;
}

#[tokio::test]
async fn never_loses_only_batches_acknowledged_after_the_last_sync() {
    unsynced_loss_is_bounded(Durability::Never).await;
}

/// Under `interval:MS`, the broker's timer syncs every MS: a power cut loses
/// at most about MS of acknowledged batches (here with a generous margin
/// for a loaded machine).
#[tokio::test]
async fn interval_timer_bounds_the_loss_window() {
    const INTERVAL: Duration = Duration::from_millis(100);
    const MARGIN: Duration = Duration::from_millis(1500);
    let mut rig = Rig::start(Durability::Interval(INTERVAL), false).await;
    let client = rig.client().await;
    client
        .admin()
        .create_topic(
            TOPIC,
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .expect("create");
    let mut acked = Vec::new();
    let began = Instant::now();
    while began.elapsed() < INTERVAL * 30 {
        acked.extend(produce(&client, 5, "a").await);
        tokio::time::sleep(INTERVAL / 4).await;
    }
    let cut_at = Instant::now();
    rig.power_cut(Tail::Drop).await;
    let log = read_all(&rig.client().await, TOPIC).await;
    for (value, p, offset, at) in &acked {
        if cut_at.duration_since(*at) > INTERVAL + MARGIN {
            assert_eq!(
                log.get(&(*p, *offset)).map(|v| v.as_ref()),
                Some(value.as_bytes()),
                "{p}/{offset}, acknowledged {:?} before the cut, lost: the interval sync did not run",
                cut_at.duration_since(*at)
            );
        }
    }
    rig.shutdown().await;
}

#[tokio::test]
async fn created_topic_survives_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    create(&rig.client().await, TOPIC, 3).await;
    rig.power_cut(Tail::Drop).await;
    let desc = rig
        .client()
        .await
        .admin()
        .describe_topic(TOPIC)
        .await
        .expect("the acknowledged topic exists after power loss");
    assert_eq!(desc.partitions.len(), 3);
    assert_eq!(desc.config.segment_bytes, Some(SEGMENT_BYTES));
    rig.shutdown().await;
}

#[tokio::test]
async fn altered_topic_keeps_its_settings_across_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    create(&rig.client().await, TOPIC, 1).await;
    rig.power_cut(Tail::Drop).await;
    rig.client()
        .await
        .admin()
        .alter_topic(AlterTopicRequest {
            name: TOPIC.into(),
            retention_bytes: ConfigChange::Set(123_456),
            ..AlterTopicRequest::default()
        })
        .await
        .expect("alter");
    rig.power_cut(Tail::Drop).await;
    let desc = rig
        .client()
        .await
        .admin()
        .describe_topic(TOPIC)
        .await
        .expect("describe");
    assert_eq!(desc.config.retention_bytes, Some(123_456));
    rig.shutdown().await;
}

#[tokio::test]
async fn deleted_topic_stays_deleted_across_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    create(&rig.client().await, TOPIC, 2).await;
    produce(&rig.client().await, 20, "a").await;
    rig.power_cut(Tail::Drop).await;
    rig.client()
        .await
        .admin()
        .delete_topic(TOPIC)
        .await
        .expect("delete");
    rig.power_cut(Tail::Drop).await;
    let topics = rig
        .client()
        .await
        .admin()
        .list_topics()
        .await
        .expect("list");
    assert!(
        topics.iter().all(|t| t.name != TOPIC),
        "a deleted topic came back: {topics:?}"
    );
    rig.shutdown().await;
}

const GROUP: &str = "billing";

async fn committed(client: &Client, partitions: u32) -> Vec<Option<u64>> {
    let resp = client
        .send(FetchOffsetsRequest {
            group: GROUP.into(),
            partitions: (0..partitions)
                .map(|p| TopicPartition::new(TOPIC, p))
                .collect(),
        })
        .await
        .expect("fetch offsets");
    resp.offsets.into_iter().map(|c| c.offset).collect()
}

/// A group member reads `n` records and commits; returns the positions
/// acknowledged.
async fn consume_and_commit(client: &Client, n: usize) -> Vec<(u32, u64)> {
    let config = GroupConfig::new(GROUP, [TOPIC])
        .auto_commit(AutoCommit::Manual)
        .consumer(ConsumerConfig::default().max_wait_ms(20));
    let mut consumer = Consumer::with_group(client.clone(), config)
        .await
        .expect("join");
    for _ in 0..n {
        consumer.next().await.expect("a record").expect("a record");
    }
    consumer.commit().await.expect("commit acknowledged");
    consumer
        .assignment()
        .into_iter()
        .filter_map(|(t, p)| consumer.position(&t, p).map(|o| (p, o)))
        .collect()
}

#[tokio::test]
async fn committed_offsets_survive_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    let client = rig.client().await;
    create(&client, TOPIC, 1).await;
    produce(&client, 10, "a").await;
    let positions = consume_and_commit(&client, 10).await;
    assert_eq!(positions, vec![(0, 10)]);
    rig.power_cut(Tail::Drop).await;
    assert_eq!(committed(&rig.client().await, 1).await, vec![Some(10)]);
    rig.shutdown().await;
}

#[tokio::test]
async fn group_reset_and_delete_survive_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    let client = rig.client().await;
    create(&client, TOPIC, 1).await;
    produce(&client, 10, "a").await;
    consume_and_commit(&client, 10).await;
    // The member left when it was dropped; wait until the group is empty.
    let admin = client.admin();
    let reset = loop {
        match admin.reset_offsets(GROUP, TOPIC, ResetTo::Offset(4)).await {
            Ok(r) => break r,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(reset, vec![(TopicPartition::new(TOPIC, 0), 4)]);
    rig.power_cut(Tail::Drop).await;
    let client = rig.client().await;
    assert_eq!(committed(&client, 1).await, vec![Some(4)], "reset lost");
    client
        .admin()
        .delete_group(GROUP)
        .await
        .expect("delete group");
    rig.power_cut(Tail::Drop).await;
    assert_eq!(
        committed(&rig.client().await, 1).await,
        vec![None],
        "deleted group's offsets came back"
    );
    rig.shutdown().await;
}

#[tokio::test]
async fn producer_ids_are_never_reused_after_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    let first = rig
        .client()
        .await
        .send(InitProducerIdRequest)
        .await
        .expect("id")
        .producer_id;
    rig.power_cut(Tail::Drop).await;
    let second = rig
        .client()
        .await
        .send(InitProducerIdRequest)
        .await
        .expect("id")
        .producer_id;
    assert!(
        second > first,
        "producer id {second} handed out again after power loss (first {first})"
    );
    rig.shutdown().await;
}

fn topic_pattern(name: &str) -> ResourcePattern {
    ResourcePattern {
        kind: ResourceKind::Topic,
        name: name.into(),
        prefix: false,
    }
}

#[tokio::test]
async fn users_tokens_and_grants_survive_power_loss() {
    let mut rig = Rig::start(Durability::Always, true).await;
    let security = rig.client().await.security();
    security
        .put_user("alice", "alice-pw-1", false)
        .await
        .expect("user");
    let produce_ops = Operations::parse("produce").expect("ops");
    security
        .grant("alice", topic_pattern(TOPIC), produce_ops)
        .await
        .expect("grant");
    let (token_id, _) = security.create_token("alice").await.expect("token");
    rig.power_cut(Tail::Drop).await;

    let security = rig.client().await.security();
    let users = security.list_users().await.expect("users");
    let alice = users
        .iter()
        .find(|u| u.name == "alice")
        .expect("created user lost");
    assert_eq!(alice.token_ids, vec![token_id.clone()], "token lost");
    let acls = security.list_acls(Some("alice")).await.expect("acls");
    assert_eq!(acls.len(), 1, "grant lost: {acls:?}");

    security
        .revoke_token("alice", &token_id)
        .await
        .expect("revoke token");
    security
        .revoke("alice", topic_pattern(TOPIC), produce_ops)
        .await
        .expect("revoke grant");
    rig.power_cut(Tail::Drop).await;
    let security = rig.client().await.security();
    let users = security.list_users().await.expect("users");
    let alice = users.iter().find(|u| u.name == "alice").expect("user");
    assert!(alice.token_ids.is_empty(), "revoked token came back");
    let acls = security.list_acls(Some("alice")).await.expect("acls");
    assert!(acls.is_empty(), "revoked grant came back: {acls:?}");

    security.delete_user("alice").await.expect("delete user");
    rig.power_cut(Tail::Drop).await;
    let users = rig
        .client()
        .await
        .security()
        .list_users()
        .await
        .expect("users");
    assert!(
        users.iter().all(|u| u.name != "alice"),
        "deleted user came back"
    );
    rig.shutdown().await;
}

/// Under `always` with segments large enough for the runway (zeros laid
/// ahead of the batches, see `log::runway`) to be laid and topped up
/// several times: appends overwrite bytes a sync made durable as zeros,
/// and every acknowledged one must still be there after a cut that keeps
/// a random part of what no sync covered, then after one that keeps none.
#[tokio::test]
async fn produce_acknowledged_inside_the_runway_survives_power_loss() {
    let mut rig = Rig::start(Durability::Always, false).await;
    let client = rig.client().await;
    create_segmented(&client, TOPIC, 1, 4 * 1024 * 1024).await;
    // About 600 KiB of batches: the 256 KiB runway is topped up twice.
    let acked = produce(&client, 3000, "a").await;
    let first = rig.power_cut(Tail::Random(7)).await;
    let client = rig.client().await;
    let more = produce(&client, 300, "b").await;
    let second = rig.power_cut(Tail::Drop).await;
    let cuts = format!("cuts: {first:?}, {second:?}");
    assert_all_present(&rig, acked.iter().chain(&more), &cuts).await;
    rig.shutdown().await;
}
