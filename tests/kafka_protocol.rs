//! The Kafka front end at the protocol level, over a real socket with
//! requests encoded as a Kafka client encodes them (kafka-protocol):
//! ApiVersions (flexible and v0 fallback), the data path's answers (acks
//! 0, idempotent duplicates and gaps, long-poll fetch, list offsets, topic
//! admin and configs), and hostile input: oversized and negative lengths,
//! garbage, unknown API keys and versions, truncated and malformed
//! requests get an error or a closed connection, and both ports keep
//! serving.

mod common;

use bytes::{Bytes, BytesMut};
use common::kafka::{KafkaConn, kafka_addr, start_kafka_broker};
use common::{RawConn, STEP_TIMEOUT};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use skiff_protocol::messages::StatusRequest;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// One Kafka batch of `values`, with producer fields.
fn batch(values: &[&str], producer_id: i64, base_sequence: i32) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol's encoder starts a new batch wherever offset -
            // sequence changes; the batch's base sequence is then -1.
            sequence: base_sequence + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encodes");
    buf.freeze()
}

/// Metadata for `topic`, creating it when the broker allows.
fn metadata_creating(topic: &str) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic))),
        ]))
        .with_allow_auto_topic_creation(true)
}

fn produce(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

/// (error code, base offset) of the only partition of a produce answer.
fn produced(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn create(conn: &mut KafkaConn, topic: &str) {
    let r = conn
        .call(
            &CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(1)
                    .with_replication_factor(-1),
            ]),
            7,
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

#[tokio::test]
async fn api_versions_answers_from_the_table_and_falls_back_to_v0() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    for version in [0, 3, 4] {
        let r = conn.call(&ApiVersionsRequest::default(), version).await;
        assert_eq!(r.error_code, 0);
        let produce = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .expect("produce served");
        assert_eq!((produce.min_version, produce.max_version), (3, 11));
        let join = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::JoinGroup as i16)
            .expect("join served");
        assert_eq!((join.min_version, join.max_version), (0, 9));
        assert!(
            r.api_keys
                .iter()
                .all(|k| k.api_key != ApiKey::TxnOffsetCommit as i16)
        );
    }
    // An unserved ApiVersions version: error 35 and the ranges in v0 form.
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&77i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    frame.extend_from_slice(&[0]); // no tagged fields (header v2)
    conn.write_frame(&frame).await;
    let mut answer = conn.recv().await.expect("answered");
    let header = ResponseHeader::decode(&mut answer, 0).unwrap();
    assert_eq!(header.correlation_id, 77);
    let r = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn metadata_describe_cluster_and_topic_admin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let addr = kafka_addr(&broker);
    let mut conn = KafkaConn::connect(addr).await;
    // Auto-creation through Metadata, and the advertised (bound) address.
    let r = conn.call(&metadata_creating("auto"), 12).await;
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(r.brokers[0].port, i32::from(addr.port()));
    assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(*r.controller_id, 0);
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(*r.topics[0].partitions[0].leader_id, 0);
    // Not allowed to create: UNKNOWN_TOPIC_OR_PARTITION.
    let r = conn
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name("absent"))),
                ]))
                .with_allow_auto_topic_creation(false),
            12,
        )
        .await;
    assert_eq!(r.topics[0].error_code, 3);

    // CreateTopics with configs, refusals, DescribeConfigs, DeleteTopics.
    let r = conn
        .call(
            &CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("configured"))
                    .with_num_partitions(3)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("3600000"))),
                    ]),
                CreatableTopic::default()
                    .with_name(name("replicated"))
                    .with_num_partitions(1)
                    .with_replication_factor(3),
                CreatableTopic::default()
                    .with_name(name("compacted"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("cleanup.policy"))
                            .with_value(Some(StrBytes::from_static_str("compact"))),
                    ]),
                CreatableTopic::default()
                    .with_name(name("auto"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
            7,
        )
        .await;
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 38, 40, 36]);
    assert_eq!(r.topics[0].num_partitions, 3);
    let r = conn
        .call(
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("configured"))
                    .with_configuration_keys(None),
            ]),
            4,
        )
        .await;
    let configs: Vec<(String, String)> = r.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        configs.contains(&("retention.ms".into(), "3600000".into())),
        "{configs:?}"
    );
    assert!(
        configs.contains(&("cleanup.policy".into(), "delete".into())),
        "{configs:?}"
    );
    assert!(
        configs.iter().any(|(k, _)| k == "segment.bytes"),
        "{configs:?}"
    );

    let r = conn.call(&DescribeClusterRequest::default(), 1).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.brokers[0].port, i32::from(addr.port()));

    let r = conn
        .call(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![name("configured"), name("nope")]),
            5,
        )
        .await;
    let codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 3]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn produce_acks_idempotence_fetch_and_list_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    create(&mut conn, "t").await;

    // acks = 1 and -1 are answered; acks = 0 is not, and the next request's
    // answer comes next, in order.
    let r = conn
        .call(&produce("t", 1, batch(&["a", "b"], -1, -1)), 9)
        .await;
    assert_eq!(produced(&r), (0, 0));
    let r = conn
        .call(&produce("t", -1, batch(&["c"], -1, -1)), 11)
        .await;
    assert_eq!(produced(&r), (0, 2));
    conn.send(&produce("t", 0, batch(&["d"], -1, -1)), 7).await;
    let r = conn.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, 0);

    // Idempotent producer: a retry gets its original offset, a gap is
    // OUT_OF_ORDER_SEQUENCE_NUMBER.
    let id = conn.call(&InitProducerIdRequest::default(), 4).await;
    assert_eq!(id.error_code, 0);
    let pid = *id.producer_id;
    assert!(pid >= 0);
    let first = batch(&["e", "f"], pid, 0);
    let r = conn.call(&produce("t", -1, first.clone()), 9).await;
    assert_eq!(produced(&r), (0, 4));
    let r = conn.call(&produce("t", -1, first), 9).await;
    assert_eq!(
        produced(&r),
        (0, 4),
        "a retried batch gets its first answer"
    );
    let r = conn.call(&produce("t", -1, batch(&["g"], pid, 5)), 9).await;
    assert_eq!(produced(&r).0, 45);
    // A transactional producer is refused at once.
    let r = conn
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))),
            4,
        )
        .await;
    assert_eq!(r.error_code, 53);
    // A corrupted batch: CORRUPT_MESSAGE, and the connection goes on.
    let mut bad = batch(&["h"], -1, -1).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r = conn.call(&produce("t", 1, Bytes::from(bad)), 9).await;
    assert_eq!(produced(&r).0, 2);

    // Fetch from an offset inside the first batch: the whole batch comes.
    let fetch = |offset: i64, wait_ms: i32| {
        FetchRequest::default()
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    let r = conn.call(&fetch(1, 0), 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 6));
    let mut records = p.records.clone().expect("records");
    let sets = RecordBatchDecoder::decode_all(&mut records).expect("kafka batches");
    let offsets: Vec<i64> = sets
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    assert_eq!(sets[0].records[1].value.as_deref(), Some(&b"b"[..]));
    // Out of range.
    let r = conn.call(&fetch(99, 0), 12).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 1);
    // A long poll at the end answers once a record arrives (from another
    // connection).
    let waiting = conn.send(&fetch(6, 10_000), 12).await;
    let mut other = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = other
        .call(&produce("t", 1, batch(&["late"], -1, -1)), 9)
        .await;
    assert_eq!(produced(&r), (0, 6));
    let mut answer = conn.recv().await.expect("the long poll answers");
    let header = ResponseHeader::decode(&mut answer, 1).unwrap();
    assert_eq!(header.correlation_id, waiting);
    let r = FetchResponse::decode(&mut answer, 12).unwrap();
    let mut records = r.responses[0].partitions[0].records.clone().unwrap();
    let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
    assert_eq!(sets[0].records[0].value.as_deref(), Some(&b"late"[..]));

    // ListOffsets: earliest, latest, by timestamp (the first record at or
    // after it, with its timestamp).
    let r = conn
        .call(
            &ListOffsetsRequest::default().with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default().with_timestamp(-2),
                        ListOffsetsPartition::default().with_timestamp(-1),
                        ListOffsetsPartition::default().with_timestamp(1_700_000_000_001),
                        ListOffsetsPartition::default().with_timestamp(i64::MAX),
                    ]),
            ]),
            7,
        )
        .await;
    let got: Vec<(i16, i64, i64)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.offset, p.timestamp))
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, -1),
            (0, 7, -1),
            (0, 1, 1_700_000_000_001),
            (0, -1, -1)
        ]
    );
    broker.shutdown().await.unwrap();
}

/// Hostile input on the Kafka port: each case gets an error answer or a
/// closed connection, and afterwards both ports still serve.
#[tokio::test]
async fn hostile_input_closes_the_connection_and_both_ports_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let addr = kafka_addr(&broker);
    let header = |key: i16, version: i16| {
        let mut h = BytesMut::new();
        h.extend_from_slice(&key.to_be_bytes());
        h.extend_from_slice(&version.to_be_bytes());
        h.extend_from_slice(&5i32.to_be_bytes());
        h.extend_from_slice(&(-1i16).to_be_bytes());
        h
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized length", i32::MAX.to_be_bytes().to_vec()),
        ("negative length", (-4i32).to_be_bytes().to_vec()),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("unknown api key", frame(&header(9999, 0))),
        ("unsupported produce version", frame(&header(0, 99))),
        ("unserved api (TxnOffsetCommit)", frame(&header(28, 3))),
        ("header shorter than 8 bytes", frame(&[0, 18, 0])),
        (
            "malformed metadata body",
            frame(&[&header(3, 12)[..], &[0xff; 3]].concat()),
        ),
        (
            "truncated request then close",
            [&100i32.to_be_bytes()[..], &[0, 3, 0, 1]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let mut conn = KafkaConn::connect(addr).await;
        conn.write_bytes(&bytes).await;
        if what == "truncated request then close" {
            // The client goes away mid-frame: nothing to answer.
            drop(conn);
            continue;
        }
        tokio::time::timeout(STEP_TIMEOUT, conn.expect_closed())
            .await
            .unwrap_or_else(|_| panic!("{what}: the connection was not closed"));
    }
    // The Kafka port still serves...
    let mut conn = KafkaConn::connect(addr).await;
    let r = conn.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, 0);
    // ...and so does skiff's.
    let mut native = RawConn::handshaken(broker.local_addr()).await;
    native.call(StatusRequest).await.expect("status");
    broker.shutdown().await.unwrap();
}

fn frame(body: &[u8]) -> Vec<u8> {
    [&(body.len() as i32).to_be_bytes()[..], body].concat()
}

/// Every version of every API in the table gets an answer that decodes at
/// that version (a response field set where the version lacks it would
/// fail to encode and close the connection instead).
#[tokio::test]
async fn every_served_version_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    create(&mut conn, "v").await;
    for version in 0..=4 {
        assert_eq!(
            conn.call(&ApiVersionsRequest::default(), version)
                .await
                .error_code,
            0
        );
    }
    for version in 0..=12 {
        let r = conn
            .call(&MetadataRequest::default().with_topics(None), version)
            .await;
        assert_eq!(r.topics.len(), 1, "v{version}");
    }
    for version in 3..=11 {
        let r = conn
            .call(&produce("v", 1, batch(&["x"], -1, -1)), version)
            .await;
        assert_eq!(produced(&r).0, 0, "v{version}");
    }
    for version in 4..=12 {
        let r = conn
            .call(
                &FetchRequest::default().with_topics(vec![
                    FetchTopic::default()
                        .with_topic(name("v"))
                        .with_partitions(vec![
                            FetchPartition::default().with_partition_max_bytes(1 << 20),
                        ]),
                ]),
                version,
            )
            .await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0, "v{version}");
    }
    for version in 1..=7 {
        let r = conn
            .call(
                &ListOffsetsRequest::default().with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(name("v"))
                        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
                ]),
                version,
            )
            .await;
        assert_eq!(r.topics[0].partitions[0].offset, 9, "v{version}");
    }
    for version in 0..=5 {
        let r = conn.call(&InitProducerIdRequest::default(), version).await;
        assert_eq!(r.error_code, 0, "v{version}");
    }
    for version in 2..=7 {
        let topic = format!("created-{version}");
        let r = conn
            .call(
                &CreateTopicsRequest::default().with_topics(vec![
                    CreatableTopic::default()
                        .with_name(name(&topic))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
                version,
            )
            .await;
        assert_eq!(r.topics[0].error_code, 0, "v{version}");
    }
    for version in 1..=6 {
        let topic = name(&format!("created-{}", version + 1));
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(topic)),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic])
        };
        let r = conn.call(&request, version).await;
        assert_eq!(r.responses[0].error_code, 0, "v{version}");
    }
    for version in 1..=4 {
        let r = conn
            .call(
                &DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("v")),
                ]),
                version,
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "v{version}");
        assert!(!r.results[0].configs.is_empty());
    }
    for version in 0..=1 {
        let r = conn.call(&DescribeClusterRequest::default(), version).await;
        assert_eq!(r.error_code, 0, "v{version}");
    }
    // CreatePartitions: answered at every version, never applied (a skiff
    // topic cannot grow); an unknown topic is named as such.
    for version in 0..=3 {
        let grow = |topic: &str, count| {
            CreatePartitionsRequest::default()
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name(topic))
                        .with_count(count),
                ])
                .with_timeout_ms(1000)
                .with_validate_only(version % 2 == 1)
        };
        let r = conn.call(&grow("v", 3), version).await;
        assert_eq!(r.results[0].error_code, 37, "v{version}");
        let r = conn.call(&grow("missing", 3), version).await;
        assert_eq!(r.results[0].error_code, 3, "v{version}");
    }
    let r = conn
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(r.topics[0].partitions.len(), 1, "still one partition");
    // SaslHandshake at both versions, on connections of their own (a
    // handshake starts a login).
    for version in 0..=1 {
        let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
        let r = conn
            .call(
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
                version,
            )
            .await;
        assert_eq!(r.error_code, 0, "v{version}");
    }
    // SaslAuthenticate at every version (after a v1 handshake; a v0 one
    // takes bare tokens). Without users there is no one to sign in as:
    // refused, and answered in the version's form.
    for version in 0..=2 {
        let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
        conn.call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            1,
        )
        .await;
        let r = conn
            .call(
                &SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from_static(b"\0nobody\0pw")),
                version,
            )
            .await;
        assert_eq!(r.error_code, 58, "v{version}");
    }
    broker.shutdown().await.unwrap();
}

/// With authentication on, a Kafka connection must sign in with SASL: before
/// it, anything but ApiVersions and the SASL requests closes the connection
/// (as Kafka does); a wrong password is SASL_AUTHENTICATION_FAILED with a
/// message, then a close; a signed-in user goes through the same
/// authorizer as a native session: TOPIC_AUTHORIZATION_FAILED per topic,
/// nothing created or written; a token works as a PLAIN password; the old v0 handshake (bare
/// tokens) works too.
#[tokio::test]
async fn with_authentication_on_kafka_connections_sign_in_with_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let broker = skiff_broker::Broker::start(skiff_broker::BrokerConfig {
        users: vec![
            skiff_broker::BootstrapUser::from_password("admin", "admin-password", true)
                .expect("hash"),
        ],
        // Longer than STEP_TIMEOUT: a close seen here is never the login
        // deadline's.
        handshake_timeout_ms: 60_000,
        ..common::kafka::kafka_config(dir.path())
    })
    .await
    .expect("broker starts");
    let admin = skiff_client::Client::connect(
        skiff_client::ClientConfig::new(broker.local_addr().to_string())
            .password("admin", "admin-password"),
    )
    .await
    .expect("admin connects");
    let security = admin.security();
    security
        .put_user("nobody", "nobody-pw", false)
        .await
        .unwrap();
    let (_, token) = security.create_token("nobody").await.unwrap();

    // Unauthenticated: ApiVersions is served (and lists the SASL APIs),
    // Metadata closes the connection.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let versions = conn.call(&ApiVersionsRequest::default(), 3).await;
    for (api, max) in [(ApiKey::SaslHandshake, 1), (ApiKey::SaslAuthenticate, 2)] {
        let listed = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .unwrap_or_else(|| panic!("{api:?} advertised"));
        assert_eq!(listed.max_version, max);
    }
    conn.send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(conn.recv().await, None, "closed before authentication");
    // Before the login, a frame above handshake_frame_bytes_max (64 KiB) is
    // refused from its size alone, though far below kafka_frame_bytes_max.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    conn.write_bytes(&(1024 * 1024i32).to_be_bytes()).await;
    assert_eq!(conn.recv().await, None, "a large frame before the login");

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list, closed.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn
        .call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
            1,
        )
        .await;
    assert_eq!(r.error_code, 33);
    let listed: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(listed, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert_eq!(conn.recv().await, None);

    // A wrong password: error 58 with a message, then closed.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn.sasl_plain("nobody", "wrong").await;
    assert_eq!(r.error_code, 58);
    let message = r.error_message.expect("a message");
    assert!(message.contains("authentication failed"), "{message}");
    assert_eq!(conn.recv().await, None, "closed after a failed login");

    // A token of another user than the one named is refused too.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn.sasl_plain("admin", token.expose()).await;
    assert_eq!(r.error_code, 58);

    // Signed in (with the token as the password) as a user without grants.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn.sasl_plain("nobody", token.expose()).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    // Signed in: another login is ILLEGAL_SASL_STATE, the connection stays.
    let again = conn
        .call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            1,
        )
        .await;
    assert_eq!(again.error_code, 34);
    let r = conn.call(&metadata_creating("secret"), 12).await;
    assert_eq!(r.topics[0].error_code, 29);
    let r = conn
        .call(&produce("secret", 1, batch(&["x"], -1, -1)), 9)
        .await;
    assert_eq!(produced(&r).0, 29);
    // As through skiff's protocol, any signed-in user gets a producer id.
    let r = conn.call(&InitProducerIdRequest::default(), 4).await;
    assert_eq!(r.error_code, 0);
    // A full listing shows nothing the session may not see.
    let r = conn
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert!(r.topics.is_empty());

    // The v0 handshake: the PLAIN token as a bare frame, answered with an
    // empty one; then the admin is served.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn
        .call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            0,
        )
        .await;
    assert_eq!(r.error_code, 0);
    conn.write_frame(b"\0admin\0admin-password").await;
    assert_eq!(conn.recv().await, Some(Bytes::new()), "v0 PLAIN success");
    let r = conn.call(&metadata_creating("admins"), 12).await;
    assert_eq!(r.topics[0].error_code, 0, "the admin may create a topic");
    // A wrong bare token: closed without an answer.
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    conn.call(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        0,
    )
    .await;
    conn.write_frame(b"\0admin\0nope").await;
    assert_eq!(conn.recv().await, None);
    broker.shutdown().await.unwrap();
    assert!(
        !dir.path().join("topics").join("secret").exists(),
        "nothing was created"
    );
}

/// A Kafka connection opened while authentication was off is anonymous;
/// once the first user exists its next request (other than ApiVersions)
/// closes it, as an unauthenticated connection's would, and new
/// connections must sign in.
#[tokio::test]
async fn an_anonymous_kafka_connection_is_closed_once_authentication_turns_on() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert!(r.topics.is_empty(), "served while authentication is off");
    let admin = skiff_client::Client::connect(skiff_client::ClientConfig::new(
        broker.local_addr().to_string(),
    ))
    .await
    .expect("connects");
    admin
        .security()
        .put_user("root", "root-pw", true)
        .await
        .expect("the first user turns authentication on");
    let r = conn.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, 0, "ApiVersions needs no login");
    conn.send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(conn.recv().await, None, "closed: not signed in");
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    assert_eq!(conn.sasl_plain("root", "root-pw").await.error_code, 0);
    let r = conn
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(r.brokers.len(), 1, "served once signed in");
}

/// Kafka logins count against the same per-address throttle as native
/// ones: once an address has used up its failed logins, even the right
/// password is refused (SASL_AUTHENTICATION_FAILED, saying so), through
/// either protocol.
#[tokio::test]
async fn failed_kafka_logins_are_throttled_per_address_like_native_ones() {
    let dir = tempfile::tempdir().unwrap();
    let broker = skiff_broker::Broker::start(skiff_broker::BrokerConfig {
        users: vec![
            skiff_broker::BootstrapUser::from_password("admin", "admin-password", true)
                .expect("hash"),
        ],
        auth_failures_per_address_max: 2,
        ..common::kafka::kafka_config(dir.path())
    })
    .await
    .expect("broker starts");
    for _ in 0..2 {
        let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
        assert_eq!(conn.sasl_plain("admin", "wrong").await.error_code, 58);
    }
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    let r = conn.sasl_plain("admin", "admin-password").await;
    assert_eq!(r.error_code, 58);
    let message = r.error_message.expect("a message");
    assert!(message.contains("too many failed logins"), "{message}");
    // The native port applies the same count to the same address.
    let native = skiff_client::Client::connect(
        skiff_client::ClientConfig::new(broker.local_addr().to_string())
            .password("admin", "admin-password"),
    )
    .await;
    let err = native.expect_err("throttled on the native port too");
    assert!(err.to_string().contains("too many failed logins"), "{err}");
}

/// SCRAM over the old v0 handshake, as Kafka serves it: after SaslHandshake
/// v0 names SCRAM-SHA-256, the client-first, server-first, client-final and
/// server-final messages travel as bare frames without a Kafka header; the
/// signed-in user is then served. A wrong password's final message gets no
/// answer (v0 framing has no error field): the connection is closed.
#[tokio::test]
async fn scram_signs_in_over_v0_bare_token_framing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = skiff_broker::Broker::start(skiff_broker::BrokerConfig {
        users: vec![
            skiff_broker::BootstrapUser::from_password("admin", "admin-password", true)
                .expect("hash"),
        ],
        ..common::kafka::kafka_config(dir.path())
    })
    .await
    .expect("broker starts");
    let admin = skiff_client::Client::connect(
        skiff_client::ClientConfig::new(broker.local_addr().to_string())
            .password("admin", "admin-password"),
    )
    .await
    .expect("admin connects");
    admin
        .security()
        .put_user("svc", "svc-password", true)
        .await
        .unwrap();

    // The exchange up to the client-final-message as `svc` with `password`;
    // returns the connection waiting for the server-final-message.
    async fn scram_v0(broker: &skiff_broker::BrokerHandle, password: &str) -> KafkaConn {
        let mut conn = KafkaConn::connect(kafka_addr(broker)).await;
        let r = conn
            .call(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
                0,
            )
            .await;
        assert_eq!(r.error_code, 0, "SCRAM-SHA-256 over v0 is served");
        let first_bare = "n=svc,r=v0clientnonce";
        conn.write_frame(format!("n,,{first_bare}").as_bytes())
            .await;
        let server_first = conn.recv().await.expect("a bare server-first-message");
        let server_first = std::str::from_utf8(&server_first).expect("text");
        assert!(
            server_first.starts_with("r=v0clientnonce") && server_first.len() > 20,
            "the server's nonce extends the client's: {server_first}"
        );
        let fin = skiff_broker::scram_client_final(
            skiff_broker::ScramMechanism::Sha256,
            password,
            first_bare,
            server_first,
            "",
        )
        .expect("a well-formed server-first-message");
        conn.write_frame(fin.as_bytes()).await;
        conn
    }

    let mut conn = scram_v0(&broker, "svc-password").await;
    let server_final = conn.recv().await.expect("a bare server-final-message");
    assert!(
        server_final.starts_with(b"v="),
        "the server's signature: {server_final:?}"
    );
    let r = conn.call(&metadata_creating("scram-v0"), 12).await;
    assert_eq!(r.topics[0].error_code, 0, "the signed-in admin is served");

    let mut conn = scram_v0(&broker, "wrong-password").await;
    assert_eq!(conn.recv().await, None, "a wrong proof: closed, no answer");
    broker.shutdown().await.unwrap();
}

/// One log, two protocols, one stored form: a batch a Kafka producer sends
/// is stored with its records section as sent (skiff's magic 2), so a Kafka
/// fetch gets those bytes back (a null value stays null, lz4 stays the
/// same lz4 frame); skiff's Fetch v1 gets the magic-2 batch and Fetch v0
/// (a reader from before magic 2) the same records re-encoded in magic 1.
/// A magic-1 batch (what skiff's producer wrote before magic 2) reads the same through
/// Kafka.
#[tokio::test]
async fn kafka_batches_are_stored_as_sent_and_read_by_both_protocols() {
    use skiff_protocol::batch::{self as sbatch, BatchBuilder, BatchIter, Record as SRecord};
    use skiff_protocol::messages::{
        FetchRequest as SFetch, FetchResponse as SFetched, ProduceRequest as SProduce,
    };
    use skiff_protocol::primitives::{Encode, decode_body};

    let dir = tempfile::tempdir().unwrap();
    let broker = start_kafka_broker(dir.path()).await;
    let mut conn = KafkaConn::connect(kafka_addr(&broker)).await;
    create(&mut conn, "t").await;

    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // One batch: kafka-protocol starts a new one where offset -
            // sequence changes; its base sequence is -1 (none).
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: (i != 1).then(|| Bytes::from(format!("value {i} ").repeat(20))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut plain = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut plain,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encodes");
    // Compressed with lz4 as a Kafka client does: the records section in an
    // LZ4 frame, the codec in the attributes, the CRC-32C over them.
    let packed = skiff_protocol::compression::compress(
        skiff_protocol::Compression::Lz4,
        skiff_protocol::compression::Level::Default,
        &plain[61..],
    )
    .expect("compresses");
    let mut sent = plain[..61].to_vec();
    sent.extend_from_slice(&packed);
    let batch_len = (sent.len() - 12) as i32;
    sent[8..12].copy_from_slice(&batch_len.to_be_bytes());
    sent[22] |= 3; // attributes (big-endian i16 at 21): codec 3, lz4
    let crc = crc32c::crc32c(&sent[21..]);
    sent[17..21].copy_from_slice(&crc.to_be_bytes());
    let sent = Bytes::from(sent);
    let r = conn.call(&produce("t", -1, sent.clone()), 9).await;
    assert_eq!(
        produced(&r),
        (0, 0),
        "{:?}",
        r.responses[0].partition_responses[0].error_message
    );

    // Kafka fetch: the same records section, byte for byte.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![
                    FetchPartition::default().with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r = conn.call(&fetch, 12).await;
    let got = r.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    assert_eq!(got.len(), sent.len());
    assert_eq!(got[61..], sent[61..], "records section served as stored");
    // Inflated again (kafka-protocol is built without codecs) and read by
    // kafka-protocol: the null value is null again.
    let inflated = skiff_protocol::compression::decompress(
        skiff_protocol::Compression::Lz4,
        &got[61..],
        1 << 20,
    )
    .expect("inflates");
    let mut plain_again = got[..61].to_vec();
    plain_again.extend_from_slice(&inflated);
    let batch_len = (plain_again.len() - 12) as i32;
    plain_again[8..12].copy_from_slice(&batch_len.to_be_bytes());
    plain_again[22] &= !7;
    let crc = crc32c::crc32c(&plain_again[21..]);
    plain_again[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut decoded = Bytes::from(plain_again);
    let sets = RecordBatchDecoder::decode_all(&mut decoded).expect("decodes");
    let values: Vec<Option<Bytes>> = sets[0].records.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        records.iter().map(|r| r.value.clone()).collect::<Vec<_>>()
    );

    // skiff's fetch, version 1 then version 0.
    let mut native = RawConn::handshaken(broker.local_addr()).await;
    let request = SFetch {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
    };
    let mut body = BytesMut::new();
    request.encode(&mut body);
    let mut by_version = Vec::new();
    for version in [1u16, 0] {
        let frame = native
            .send_raw(
                skiff_protocol::messages::ApiKey::Fetch as u16,
                version,
                body.clone().freeze(),
            )
            .await;
        let fetched: SFetched = decode_body(frame.body).expect("fetch answer");
        let batches: Vec<Bytes> = BatchIter::new(fetched.records)
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(batches.len(), 1);
        let header = sbatch::validate(&batches[0]).expect("valid");
        assert_eq!(
            header.magic,
            if version == 1 { 2 } else { 1 },
            "version {version}"
        );
        by_version.push(sbatch::decode_records(&batches[0]).expect("decodes"));
    }
    assert_eq!(by_version[0], by_version[1]);
    let native_values: Vec<Bytes> = by_version[0].iter().map(|r| r.value.clone()).collect();
    let want: Vec<Bytes> = records
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        native_values, want,
        "a null value reads as empty through skiff"
    );
    assert_eq!(by_version[0][2].headers[0].key, "h");

    // A magic-1 batch (skiff's encoding, as written before magic 2) through Kafka.
    let mut b = BatchBuilder::new();
    b.push(SRecord {
        timestamp_ms: 1_700_000_000_100,
        key: None,
        value: Bytes::from_static(b"native"),
        headers: vec![],
    });
    native
        .call(SProduce {
            topic: "t".into(),
            partition: 0,
            batch: b.build(),
        })
        .await
        .expect("native produce");
    let r = conn
        .call(
            &fetch.clone().with_topics(vec![
                FetchTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_fetch_offset(3)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
            12,
        )
        .await;
    let mut got = r.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let sets = RecordBatchDecoder::decode_all(&mut got).expect("decodes");
    assert_eq!(sets[0].records[0].offset, 3);
    assert_eq!(sets[0].records[0].value.as_deref(), Some(&b"native"[..]));
    broker.shutdown().await.unwrap();
}
