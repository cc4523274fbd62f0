//! Black-box operations tests: the Prometheus endpoint scraped over HTTP,
//! live topic changes (AlterTopic) that survive a restart, the Status
//! request, and the one-line embedded broker.

mod common;

use std::net::SocketAddr;

use common::{STEP_TIMEOUT, http_get, sample};
use skiff_broker::{Broker, BrokerConfig};
use skiff_client::{
    AlterTopicRequest, Client, ClientConfig, ConfigChange, Consumer, ConsumerConfig, Error,
    Producer, ProducerConfig, ProducerRecord, ResetTo, StartFrom, TopicConfig,
};
use skiff_protocol::ErrorCode;

async fn client_for(addr: SocketAddr) -> Client {
    Client::connect(ClientConfig::new(addr.to_string()))
        .await
        .expect("client connects")
}

#[tokio::test]
async fn metrics_endpoint_figures_move_after_producing() {
    let broker = Broker::start_temp_with(BrokerConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..BrokerConfig::default()
    })
    .await
    .expect("starts");
    let metrics = broker.handle().metrics_addr().expect("metrics endpoint");
    let client = client_for(broker.local_addr()).await;
    let admin = client.admin();
    admin
        .create_topic(
            "metered",
            TopicConfig {
                partitions: 2,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let (status, before) = http_get(metrics, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let series = |name: &str| format!("{name}{{topic=\"metered\"}}");

    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..5u32 {
        producer
            .send(ProducerRecord::new("metered", format!("m{i}")).partition(i % 2))
            .await
            .expect("acked");
    }
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default().max_wait_ms(100));
    consumer
        .assign_all("metered", StartFrom::Earliest)
        .await
        .unwrap();
    for _ in 0..5 {
        tokio::time::timeout(STEP_TIMEOUT, consumer.next())
            .await
            .expect("in time")
            .expect("stream goes on")
            .expect("record");
    }

    // A member-less group with committed offsets at 1: lag is the rest.
    admin
        .reset_offsets("lagging", "metered", ResetTo::Offset(1))
        .await
        .unwrap();

    let (_, after) = http_get(metrics, "/metrics").await;
    let moved = |name: &str| sample(&after, &series(name)) - sample(&before, &series(name));
    assert_eq!(moved("skiff_messages_in_total"), 5.0, "{after}");
    assert!(moved("skiff_bytes_in_total") > 0.0, "{after}");
    assert_eq!(moved("skiff_messages_out_total"), 5.0, "{after}");
    assert!(moved("skiff_bytes_out_total") > 0.0, "{after}");
    assert!(
        sample(&after, "skiff_log_bytes{topic=\"metered\"}") > 0.0,
        "{after}"
    );
    assert!(
        sample(&after, "skiff_produce_latency_seconds_count") >= 5.0,
        "{after}"
    );
    assert!(
        sample(&after, "skiff_fetch_latency_seconds_count") >= 1.0,
        "{after}"
    );
    // Each fetch read is counted by where it ran (page cache on the
    // network thread, or the blocking pool); which one is the kernel's call.
    let fetch_reads = |path: &str| {
        sample(
            &after,
            &format!("skiff_fetch_reads_total{{path=\"{path}\"}}"),
        )
    };
    assert!(
        fetch_reads("inline") + fetch_reads("blocking") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "skiff_fsync_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "skiff_fsync_batches_count") >= 1.0,
        "{after}"
    );
    assert!(sample(&after, "skiff_partitions") >= 2.0, "{after}");
    assert!(sample(&after, "skiff_connections_open") >= 1.0, "{after}");
    assert!(
        after.contains("skiff_produce_latency_seconds_bucket"),
        "{after}"
    );
    let lag = |p: u32| {
        sample(
            &after,
            &format!("skiff_group_lag{{group=\"lagging\",topic=\"metered\",partition=\"{p}\"}}"),
        )
    };
    // Partition 0 got m0, m2, m4; partition 1 got m1, m3.
    assert_eq!((lag(0), lag(1)), (2.0, 1.0), "{after}");

    let (status, _) = http_get(metrics, "/nope").await;
    assert!(status.contains("404"), "{status}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn out_of_range_segment_sizes_are_refused_over_the_wire_naming_key_value_and_range() {
    let broker = Broker::start_temp().await.expect("start");
    let admin = client_for(broker.local_addr()).await.admin();
    for segment_bytes in [1023, 2 * 1024 * 1024 * 1024 + 1] {
        let refused = admin
            .create_topic(
                "sized",
                TopicConfig {
                    partitions: 1,
                    segment_bytes: Some(segment_bytes),
                    ..TopicConfig::default()
                },
            )
            .await;
        let wanted =
            format!("segment_bytes = {segment_bytes} is out of range: allowed 1024..=2147483648");
        assert!(
            matches!(refused, Err(Error::Broker { code: ErrorCode::InvalidConfig, ref message }) if message.contains(&wanted)),
            "{refused:?}"
        );
    }
    assert!(
        admin.list_topics().await.unwrap().is_empty(),
        "nothing was created"
    );
    admin
        .create_topic(
            "sized",
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let refused = admin
        .alter_topic(AlterTopicRequest {
            name: "sized".into(),
            segment_bytes: ConfigChange::Set(2 * 1024 * 1024 * 1024 + 1),
            ..AlterTopicRequest::default()
        })
        .await;
    assert!(
        matches!(refused, Err(Error::Broker { code: ErrorCode::InvalidConfig, ref message }) if message.contains("segment_bytes = 2147483649")),
        "{refused:?}"
    );
    let described = admin.describe_topic("sized").await.unwrap();
    assert_eq!(
        described.config.segment_bytes, None,
        "the setting is unchanged"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn alter_topic_applies_live_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let broker = Broker::start(config.clone()).await.unwrap();
    let admin = client_for(broker.local_addr()).await.admin();
    admin
        .create_topic(
            "altered",
            TopicConfig {
                partitions: 2,
                retention_bytes: Some(1 << 20),
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let after = admin
        .alter_topic(AlterTopicRequest {
            name: "altered".into(),
            retention_ms: ConfigChange::Set(60_000),
            retention_bytes: ConfigChange::Reset,
            segment_bytes: ConfigChange::Set(4096),
            ..AlterTopicRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(after.retention_ms, Some(60_000));
    assert_eq!(after.retention_bytes, None);
    assert_eq!(after.segment_bytes, Some(4096));
    assert_eq!(after.partitions, 2);

    let refused = admin
        .alter_topic(AlterTopicRequest {
            name: "altered".into(),
            segment_bytes: ConfigChange::Set(10),
            ..AlterTopicRequest::default()
        })
        .await;
    assert!(
        matches!(refused, Err(Error::Broker { ref message, .. }) if message.contains("segment_bytes")),
        "{refused:?}"
    );
    let unknown = admin
        .alter_topic(AlterTopicRequest {
            name: "missing".into(),
            retention_ms: ConfigChange::Set(1),
            ..AlterTopicRequest::default()
        })
        .await;
    assert!(
        matches!(unknown, Err(Error::UnknownTopic { ref topic, .. }) if topic == "missing"),
        "{unknown:?}"
    );
    broker.shutdown().await.unwrap();

    let broker = Broker::start(config).await.unwrap();
    let admin = client_for(broker.local_addr()).await.admin();
    let described = admin.describe_topic("altered").await.unwrap();
    assert_eq!(described.config.retention_ms, Some(60_000));
    assert_eq!(described.config.retention_bytes, None);
    assert_eq!(described.config.segment_bytes, Some(4096));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_reports_version_counts_and_disk_usage() {
    let broker = Broker::start_temp().await.expect("one-line start");
    let data_dir = broker.data_dir().to_owned();
    assert!(data_dir.exists());
    let client = client_for(broker.local_addr()).await;
    let admin = client.admin();
    for (name, partitions) in [("a", 1), ("b", 3)] {
        admin
            .create_topic(
                name,
                TopicConfig {
                    partitions,
                    ..TopicConfig::default()
                },
            )
            .await
            .unwrap();
    }
    Producer::new(client.clone(), ProducerConfig::default())
        .send(ProducerRecord::new("a", "x"))
        .await
        .unwrap();
    let s = admin.status().await.unwrap();
    assert_eq!(s.broker_version, env!("CARGO_PKG_VERSION"));
    assert_eq!((s.topics, s.partitions), (2, 4));
    assert!(s.connections >= 1 && s.connections <= s.connections_max);
    assert!(s.log_bytes > 0);
    assert_eq!(s.data_dir, data_dir.display().to_string());
    broker.shutdown().await.unwrap();
    assert!(!data_dir.exists(), "the temp dir goes with the broker");
}
