//! Authentication, authorization and their limits, black-box: a real broker
//! with a bootstrap admin (127.0.0.1:0, temp dir), the client crate and raw
//! sockets. Each refusal is checked for its code and message, and another
//! good client is checked to keep working meanwhile.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{RawConn, STEP_TIMEOUT, http_get, sample, test_config};
use skiff_broker::{BootstrapUser, hash_password};
use skiff_broker::{Broker, BrokerConfig, BrokerHandle};
use skiff_client::ResetTo;
use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Error, GroupConfig, Operations, Producer,
    ProducerConfig, ProducerRecord, ResourceKind, ResourcePattern, StartFrom, TopicConfig,
};
use skiff_protocol::ErrorCode;
use skiff_protocol::Secret;
use skiff_protocol::messages::{
    Credentials, FetchOffsetsRequest, FetchRequest, HandshakeRequest, ListTopicsRequest,
    StatusRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin";
const ADMIN_PW: &str = "admin-pw";

fn secure_config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        users: vec![BootstrapUser {
            name: ADMIN.into(),
            password_hash: hash_password(ADMIN_PW).expect("hash"),
            scram: None,
            admin: true,
        }],
        ..test_config(dir)
    }
}

async fn secure_broker(dir: &Path) -> BrokerHandle {
    Broker::start(secure_config(dir))
        .await
        .expect("broker starts")
}

fn config(addr: SocketAddr) -> ClientConfig {
    ClientConfig::new(addr.to_string()).reconnect_backoff(10, 10, 1)
}

async fn connect(config: ClientConfig) -> Result<Client, Error> {
    tokio::time::timeout(STEP_TIMEOUT, Client::connect(config))
        .await
        .expect("connect answers in time")
}

async fn admin(addr: SocketAddr) -> Client {
    connect(config(addr).password(ADMIN, ADMIN_PW))
        .await
        .expect("admin connects")
}

fn topic(name: &str) -> ResourcePattern {
    ResourcePattern {
        kind: ResourceKind::Topic,
        name: name.into(),
        prefix: false,
    }
}

fn ops(list: &str) -> Operations {
    Operations::parse(list).expect("valid operations")
}

/// Adds a non-admin user `name` with password `{name}-pw` and the given
/// grants (resource, comma-separated operations).
async fn add_user(admin: &Client, name: &str, grants: &[(ResourcePattern, &str)]) {
    let security = admin.security();
    security
        .put_user(name, format!("{name}-pw"), false)
        .await
        .unwrap();
    for (resource, list) in grants {
        security
            .grant(name, resource.clone(), ops(list))
            .await
            .unwrap();
    }
}

fn one_partition() -> TopicConfig {
    TopicConfig {
        partitions: 1,
        ..TopicConfig::default()
    }
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> (ErrorCode, String) {
    let e = result.expect_err("refused");
    (e.code().unwrap_or(ErrorCode::Unknown), e.to_string())
}

/// The admin client still lists topics: a refusal elsewhere did not harm it.
async fn still_works(admin: &Client) {
    admin
        .admin()
        .list_topics()
        .await
        .expect("admin still served");
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;

    let (c, msg) = code(connect(config(addr)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
    assert!(msg.contains("requires credentials"), "{msg}");
    let (c, msg) = code(connect(config(addr).password(ADMIN, "guess-8731")).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    assert!(
        !msg.contains("guess-8731"),
        "the password is not echoed: {msg}"
    );
    let (c, _) = code(connect(config(addr).password("ghost", ADMIN_PW)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    let (c, _) = code(connect(config(addr).token("skt_made_up")).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_works_until_it_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    let security = admin.security();
    assert!(security.put_user("svc", "svc-pw", false).await.unwrap());
    security
        .grant("svc", topic("t"), ops("describe"))
        .await
        .unwrap();
    admin
        .admin()
        .create_topic("t", one_partition())
        .await
        .unwrap();
    let (id, token) = security.create_token("svc").await.unwrap();
    assert!(!format!("{token:?}").contains(token.expose()));
    let users = security.list_users().await.unwrap();
    let svc = users.iter().find(|u| u.name == "svc").expect("listed");
    assert_eq!(svc.token_ids, vec![id.clone()]);

    let svc_client = connect(config(addr).token(token.clone()))
        .await
        .expect("token accepted");
    let topics = svc_client.admin().list_topics().await.unwrap();
    assert_eq!(topics.len(), 1);
    security.revoke_token("svc", &id).await.unwrap();
    let (c, _) = code(connect(config(addr).token(token)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn grants_decide_per_topic_and_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    for t in ["orders", "payments", "logs.web", "logs.db"] {
        admin
            .admin()
            .create_topic(t, one_partition())
            .await
            .unwrap();
    }
    let security = admin.security();
    add_user(&admin, "alice", &[(topic("orders"), "produce")]).await;
    let logs = ResourcePattern {
        prefix: true,
        ..topic("logs.")
    };
    security
        .grant("alice", logs.clone(), ops("consume"))
        .await
        .unwrap();
    let acls = security.list_acls(Some("alice")).await.unwrap();
    assert_eq!(acls.len(), 2);

    let alice = connect(config(addr).password("alice", "alice-pw"))
        .await
        .unwrap();
    let producer = Producer::new(alice.clone(), ProducerConfig::default());
    producer
        .send(ProducerRecord::new("orders", "ok"))
        .await
        .expect("alice may produce to orders");
    let (c, msg) = code(producer.send(ProducerRecord::new("payments", "no")).await);
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    assert!(
        msg.contains("user 'alice' may not produce to topic 'payments'"),
        "{msg}"
    );

    // Listing shows only what alice may describe (any grant implies it).
    let mut listed: Vec<String> = alice
        .admin()
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    listed.sort();
    assert_eq!(listed, ["logs.db", "logs.web", "orders"]);

    // The prefix grant: consume logs.*, but not produce to them.
    let mut consumer = Consumer::new(alice.clone(), ConsumerConfig::default().max_wait_ms(50));
    consumer
        .assign_all("logs.web", StartFrom::Earliest)
        .await
        .expect("prefix grant covers logs.web");
    let (c, msg) = code(producer.send(ProducerRecord::new("logs.web", "no")).await);
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    let (c, msg) = code(alice.admin().delete_topic("orders").await);
    assert_eq!(c, ErrorCode::NotAuthorized);
    assert!(msg.contains("may not delete topic 'orders'"), "{msg}");

    // Revoking applies to the open connection at its next request.
    security
        .revoke("alice", topic("orders"), ops("produce"))
        .await
        .unwrap();
    let (c, _) = code(
        Producer::new(alice.clone(), ProducerConfig::default())
            .send(ProducerRecord::new("orders", "late"))
            .await,
    );
    assert_eq!(c, ErrorCode::NotAuthorized);
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn consuming_in_a_group_needs_a_group_grant() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    admin
        .admin()
        .create_topic("orders", one_partition())
        .await
        .unwrap();
    let security = admin.security();
    add_user(&admin, "bob", &[(topic("orders"), "consume")]).await;
    let bob = connect(config(addr).password("bob", "bob-pw"))
        .await
        .unwrap();

    let refused = Consumer::with_group(bob.clone(), GroupConfig::new("billing", ["orders"])).await;
    let (c, msg) = code(refused.map(|_| ()));
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    assert!(
        msg.contains("user 'bob' may not consume from group 'billing'"),
        "{msg}"
    );

    let group = ResourcePattern {
        kind: ResourceKind::Group,
        name: "bill".into(),
        prefix: true,
    };
    security.grant("bob", group, ops("consume")).await.unwrap();
    let consumer = Consumer::with_group(bob.clone(), GroupConfig::new("billing", ["orders"]))
        .await
        .expect("the group grant lets bob join");
    consumer.close().await.expect("leaves");
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_admins_manage_users_and_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    admin
        .admin()
        .create_topic("orders", one_partition())
        .await
        .unwrap();
    let security = admin.security();
    add_user(&admin, "carol", &[(topic("orders"), "produce")]).await;
    let (_, token) = security.create_token("carol").await.unwrap();

    let carol = connect(config(addr).password("carol", "carol-pw"))
        .await
        .unwrap();
    let (c, msg) = code(carol.security().put_user("mallory", "pw", true).await);
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    assert!(msg.contains("user 'carol' may not manage users"), "{msg}");
    let (c, _) = code(carol.security().list_users().await);
    assert_eq!(c, ErrorCode::NotAuthorized);
    let (c, msg) = code(security.delete_user(ADMIN).await);
    assert_eq!(c, ErrorCode::InvalidRequest);
    assert!(msg.contains("last admin"), "{msg}");
    still_works(&admin).await;
    drop((admin, carol));
    broker.shutdown().await.unwrap();

    // Restart without bootstrap users: everything came from security.json.
    let broker = Broker::start(test_config(dir.path())).await.unwrap();
    let addr = broker.local_addr();
    let (c, _) = code(connect(config(addr)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed, "auth stays on");
    let carol = connect(config(addr).token(token))
        .await
        .expect("token survived");
    Producer::new(carol.clone(), ProducerConfig::default())
        .send(ProducerRecord::new("orders", "after restart"))
        .await
        .expect("grant survived");
    let admin = admin_after_restart(addr).await;
    let users: Vec<String> = admin
        .security()
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(users, [ADMIN, "carol"]);
    drop((admin, carol));
    broker.shutdown().await.unwrap();

    // A damaged file stops the broker at start, naming the file.
    std::fs::write(dir.path().join("security.json"), b"{ broken").unwrap();
    let err = Broker::start(test_config(dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("security.json"), "{err}");
}

async fn admin_after_restart(addr: SocketAddr) -> Client {
    admin(addr).await
}

#[tokio::test]
async fn without_users_everything_is_allowed_and_the_first_user_turns_auth_on() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(test_config(dir.path())).await.unwrap();
    let addr = broker.local_addr();
    let open = connect(config(addr))
        .await
        .expect("anonymous while auth is off");
    open.admin()
        .create_topic("t", one_partition())
        .await
        .unwrap();
    open.security()
        .put_user("root", "root-pw", true)
        .await
        .unwrap();
    // The anonymous connection predates auth: it is refused from now on.
    let (c, msg) = code(open.admin().create_topic("u", one_partition()).await);
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    let (c, _) = code(connect(config(addr)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    let root = connect(config(addr).password("root", "root-pw"))
        .await
        .unwrap();
    root.admin()
        .create_topic("u", one_partition())
        .await
        .unwrap();
    broker.shutdown().await.unwrap();
}

fn handshake(password: &str) -> HandshakeRequest {
    HandshakeRequest {
        protocol_version: skiff_protocol::PROTOCOL_VERSION,
        client_id: "raw".into(),
        credentials: Credentials::Password {
            user: ADMIN.into(),
            password: password.into(),
        },
    }
}

#[tokio::test]
async fn repeated_failed_authentication_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        auth_failures_max: 3,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let admin = admin(addr).await;

    // Retrying on the same connection works below the limit...
    let mut raw = RawConn::connect(addr).await;
    let (c, _) = raw.call(handshake("bad-1")).await.unwrap_err();
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    raw.call(handshake(ADMIN_PW))
        .await
        .expect("second try succeeds");
    raw.call(ListTopicsRequest).await.expect("served");

    // ...and the failure that reaches it closes the connection.
    let mut raw = RawConn::connect(addr).await;
    for i in 0..3 {
        let (c, _) = raw.call(handshake(&format!("bad-{i}"))).await.unwrap_err();
        assert_eq!(c, ErrorCode::AuthenticationFailed);
    }
    assert!(raw.recv().await.is_none(), "closed after 3 failures");
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

/// Waits until the broker closes `stream` (EOF or reset) and returns how
/// long that took from `since`.
async fn closed_after(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(STEP_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open after {STEP_TIMEOUT:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        handshake_timeout_ms: 500,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let admin = admin(addr).await;
    let lived = closed_after(&mut silent, started).await;
    assert!(
        lived >= Duration::from_millis(450) && lived < Duration::from_secs(5),
        "closed after {lived:?}"
    );

    // Past the listener's wait for the first bytes, the connection's own
    // deadline closes it: a handshake that fails authentication (below
    // auth_failures_max), then silence...
    let started = Instant::now();
    let mut raw = RawConn::connect(addr).await;
    let (c, _) = raw.call(handshake("wrong")).await.unwrap_err();
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    assert!(
        raw.recv().await.is_none(),
        "closed by the handshake deadline"
    );
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(450) && lived < Duration::from_secs(5),
        "closed after {lived:?}"
    );
    // ...or the first bytes of a handshake frame, then silence (far sooner
    // than the frame-read timeout).
    let started = Instant::now();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(&100u32.to_le_bytes()).await.unwrap();
    partial.write_all(&[1]).await.unwrap();
    let lived = closed_after(&mut partial, started).await;
    assert!(
        lived >= Duration::from_millis(450) && lived < Duration::from_secs(5),
        "closed after {lived:?}"
    );
    // One deadline from accept: a client that waits before its first bytes
    // does not get a fresh one when they arrive (else it would live 400 +
    // 500 ms).
    let started = Instant::now();
    let mut raw = RawConn::connect(addr).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (c, _) = raw.call(handshake("wrong")).await.unwrap_err();
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    assert!(
        raw.recv().await.is_none(),
        "closed by the handshake deadline"
    );
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(450) && lived < Duration::from_millis(850),
        "closed after {lived:?}"
    );
    still_works(&admin).await;
    broker.shutdown().await.unwrap();

    // Without users too: the handshake deadline applies to everyone.
    let open_dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        handshake_timeout_ms: 500,
        ..test_config(open_dir.path())
    })
    .await
    .unwrap();
    let started = Instant::now();
    let mut silent = TcpStream::connect(broker.local_addr()).await.unwrap();
    let lived = closed_after(&mut silent, started).await;
    assert!(lived < Duration::from_secs(5), "closed after {lived:?}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_half_sent_frame_is_closed_after_the_frame_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        frame_read_timeout_ms: 500,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    // An authenticated connection that then stalls mid-frame.
    let mut raw = RawConn::connect(addr).await;
    raw.call(handshake(ADMIN_PW)).await.expect("authenticated");
    // A length prefix promising 100 bytes, and 3 of them; the clock starts
    // before the first byte is sent, so the lower bound cannot be missed.
    let started = Instant::now();
    raw.write_bytes(&100u32.to_le_bytes()).await;
    raw.write_bytes(&[1, 0, 0]).await;
    assert!(raw.recv().await.is_none(), "closed mid-frame");
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(400) && lived < Duration::from_secs(5),
        "{lived:?}"
    );
    still_works(&admin).await;

    // Before the handshake too, and far sooner than the idle timeout.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(&100u32.to_le_bytes()).await.unwrap();
    let lived = closed_after(&mut slow, Instant::now()).await;
    assert!(lived < Duration::from_secs(5), "{lived:?}");
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn failures_and_refusals_are_counted_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let metrics = broker.metrics_addr().expect("metrics endpoint");
    let admin = admin(addr).await;
    admin
        .admin()
        .create_topic("t", one_partition())
        .await
        .unwrap();
    admin
        .security()
        .put_user("dave", "dave-pw", false)
        .await
        .unwrap();
    assert!(connect(config(addr).password("dave", "bad")).await.is_err());
    let dave = connect(config(addr).password("dave", "dave-pw"))
        .await
        .unwrap();
    let refused = Producer::new(dave, ProducerConfig::default())
        .send(ProducerRecord::new("t", "x"))
        .await;
    assert_eq!(code(refused).0, ErrorCode::NotAuthorized);

    let (_, body) = http_get(metrics, "/metrics").await;
    assert!(sample(&body, "skiff_auth_failures_total") >= 1.0, "{body}");
    assert!(
        sample(&body, "skiff_authz_denied_total{api=\"Produce\"}") >= 1.0,
        "{body}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_version_1_handshake_is_told_the_version_not_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let mut raw = RawConn::connect(broker.local_addr()).await;
    // Version 1's body: the version and the client id, no credentials.
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&3u16.to_le_bytes());
    body.extend_from_slice(b"old");
    let frame = raw.send_raw(0, 0, body.into()).await;
    assert_eq!(frame.error_code, ErrorCode::UnsupportedVersion);
    let message = common::error_message(frame.body);
    assert!(message.contains("protocol version 1"), "{message}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn auto_creating_a_topic_by_producing_needs_create() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        auto_create_topics: true,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    let security = admin.security();
    security.put_user("erin", "erin-pw", false).await.unwrap();
    let events = ResourcePattern {
        prefix: true,
        ..topic("events.")
    };
    security
        .grant("erin", events.clone(), ops("produce"))
        .await
        .unwrap();
    let erin = connect(config(addr).password("erin", "erin-pw"))
        .await
        .unwrap();
    let (c, msg) = code(
        Producer::new(erin.clone(), ProducerConfig::default())
            .send(ProducerRecord::new("events.a", "x"))
            .await,
    );
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    assert!(
        msg.contains("user 'erin' may not create topic 'events.a'"),
        "{msg}"
    );
    assert!(
        admin.admin().list_topics().await.unwrap().is_empty(),
        "not created"
    );

    security.grant("erin", events, ops("create")).await.unwrap();
    Producer::new(erin, ProducerConfig::default())
        .send(ProducerRecord::new("events.a", "x"))
        .await
        .expect("created and stored");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_consumer_whose_grant_is_revoked_gets_not_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    admin
        .admin()
        .create_topic("feed", one_partition())
        .await
        .unwrap();
    let security = admin.security();
    add_user(&admin, "finn", &[(topic("feed"), "consume")]).await;
    let finn = connect(config(addr).password("finn", "finn-pw"))
        .await
        .unwrap();
    let mut consumer = Consumer::new(finn, ConsumerConfig::default().max_wait_ms(50));
    consumer
        .assign_all("feed", StartFrom::Earliest)
        .await
        .unwrap();
    security
        .revoke("finn", topic("feed"), ops("consume"))
        .await
        .unwrap();
    let next = tokio::time::timeout(STEP_TIMEOUT, consumer.next())
        .await
        .expect("answers in time")
        .expect("an item");
    let (c, msg) = code(next);
    assert_eq!(c, ErrorCode::NotAuthorized, "{msg}");
    assert!(
        msg.contains("user 'finn' may not consume from topic 'feed'"),
        "{msg}"
    );
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

/// Password guessing across connections: after `auth_failures_per_address_max`
/// failed logins from one address, even the right password is refused
/// from it (unchecked) until the window ends; other addresses and open
/// sessions are not affected, and a login without credentials is not a
/// guess.
#[cfg(target_os = "linux")] // binds 127.0.0.2, which only Linux has by default
#[tokio::test]
async fn failed_logins_from_one_address_are_limited_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        auth_failures_per_address_max: 3,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    // Anonymous attempts are refused but not counted.
    for _ in 0..5 {
        let (c, msg) = code(connect(config(addr)).await);
        assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
    }
    for guess in ["guess-1", "guess-2", "guess-3"] {
        let (c, msg) = code(connect(config(addr).password(ADMIN, guess)).await);
        assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
        assert!(!msg.contains("too many failed logins"), "{msg}");
    }
    let (c, msg) = code(connect(config(addr).password(ADMIN, ADMIN_PW)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
    assert!(msg.contains("too many failed logins"), "{msg}");
    assert!(msg.contains("try again in"), "{msg}");
    // Tokens are not guesses: the blocked address may still use one.
    let (_, token) = admin.security().create_token(ADMIN).await.unwrap();
    connect(config(addr).token(token))
        .await
        .expect("a token still logs in");
    // Another address logs in; the session opened before is still served.
    let mut other = RawConn::connect_from(addr, "127.0.0.2".parse().unwrap()).await;
    other
        .call(HandshakeRequest {
            protocol_version: skiff_protocol::PROTOCOL_VERSION,
            client_id: "other".into(),
            credentials: pw(ADMIN, ADMIN_PW),
        })
        .await
        .expect("another address logs in");
    other.call(ListTopicsRequest).await.expect("served");
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

/// Sends `n` logins with wrong passwords at once, each on its own
/// connection; all are refused with `authentication_failed`. Returns how
/// many refusals say `why`.
async fn wrong_logins_at_once(addr: SocketAddr, n: usize, why: &str) -> usize {
    let attempts: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(async move {
                let mut raw = RawConn::connect(addr).await;
                raw.call(handshake(&format!("wrong-{i}")))
                    .await
                    .unwrap_err()
            })
        })
        .collect();
    let mut matching = 0;
    for attempt in attempts {
        let (c, msg) = attempt.await.unwrap();
        assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
        if msg.contains(why) {
            matching += 1;
        }
    }
    matching
}

/// Logins sent at once cannot all pass the per-address limit while none
/// has failed yet: it is tested again once a password check may start, so
/// at most `auth_checks_concurrent_max` more than the limit are checked.
#[tokio::test]
async fn parallel_guesses_are_held_to_the_per_address_limit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        auth_failures_per_address_max: 3,
        auth_checks_concurrent_max: 1,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    let throttled = wrong_logins_at_once(addr, 16, "too many failed logins").await;
    assert!(
        throttled >= 16 - 3 - 1,
        "{throttled} of 16 refused unchecked"
    );
    broker.shutdown().await.unwrap();
}

/// A raw connection authenticated with `credentials`.
async fn raw_as(addr: SocketAddr, credentials: Credentials) -> RawConn {
    let mut raw = RawConn::connect(addr).await;
    raw.call(HandshakeRequest {
        protocol_version: skiff_protocol::PROTOCOL_VERSION,
        client_id: "raw".into(),
        credentials,
    })
    .await
    .expect("authenticated");
    raw.call(ListTopicsRequest).await.expect("served");
    raw
}

fn pw(user: &str, password: &str) -> Credentials {
    Credentials::Password {
        user: user.into(),
        password: password.into(),
    }
}

/// The next request is refused as a stale session, then the broker closes.
async fn ended(raw: &mut RawConn, why: &str) {
    let (c, msg) = raw.call(StatusRequest).await.unwrap_err();
    assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
    assert!(msg.contains("session no longer valid"), "{msg}");
    assert!(msg.contains(why), "{msg}");
    assert!(raw.recv().await.is_none(), "closed after: {msg}");
}

#[tokio::test]
async fn open_sessions_end_when_their_credentials_do() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    let security = admin.security();
    for user in ["gone", "dana", "svc", "ray", "keep"] {
        security.put_user(user, "pw-1", false).await.unwrap();
    }
    let (token_id, token) = security.create_token("svc").await.unwrap();
    let (_, kept_token) = security.create_token("keep").await.unwrap();

    let mut gone = raw_as(addr, pw("gone", "pw-1")).await;
    let mut dana = raw_as(addr, pw("dana", "pw-1")).await;
    let mut svc = raw_as(
        addr,
        Credentials::Token {
            token: token.clone(),
        },
    )
    .await;
    let mut ray = raw_as(addr, pw("ray", "pw-1")).await;
    let mut keep = raw_as(addr, pw("keep", "pw-1")).await;
    let mut keep_token = raw_as(
        addr,
        Credentials::Token {
            token: Secret::new(kept_token.expose()),
        },
    )
    .await;

    security.delete_user("gone").await.unwrap();
    security.put_user("dana", "pw-2", false).await.unwrap();
    security.revoke_token("svc", &token_id).await.unwrap();
    // Removed and created again with the same name and password: the old
    // sessions do not get the new user's rights.
    security.delete_user("ray").await.unwrap();
    security.put_user("ray", "pw-1", true).await.unwrap();

    ended(&mut gone, "removed").await;
    ended(&mut dana, "password").await;
    ended(&mut svc, "token was revoked").await;
    ended(&mut ray, "removed").await;

    // Everyone else keeps working, and the new credentials work.
    keep.call(StatusRequest).await.expect("keep still served");
    keep_token
        .call(StatusRequest)
        .await
        .expect("keep's token still served");
    raw_as(addr, pw("dana", "pw-2")).await;
    raw_as(addr, pw("ray", "pw-1")).await;
    let (c, _) = code(connect(config(addr).token(token)).await);
    assert_eq!(c, ErrorCode::AuthenticationFailed);
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn describing_a_group_shows_only_topics_the_user_may_describe() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    for t in ["orders", "secret"] {
        admin
            .admin()
            .create_topic(t, one_partition())
            .await
            .unwrap();
        admin
            .admin()
            .reset_offsets("billing", t, ResetTo::Earliest)
            .await
            .unwrap();
    }
    let security = admin.security();
    security.put_user("gus", "gus-pw", false).await.unwrap();
    let group = ResourcePattern {
        kind: ResourceKind::Group,
        name: "billing".into(),
        prefix: false,
    };
    security.grant("gus", group, ops("describe")).await.unwrap();
    security
        .grant("gus", topic("orders"), ops("consume"))
        .await
        .unwrap();

    let all = admin.admin().describe_group("billing").await.unwrap();
    assert_eq!(all.partitions.len(), 2, "{all:?}");
    let gus = connect(config(addr).password("gus", "gus-pw"))
        .await
        .unwrap();
    let seen = gus.admin().describe_group("billing").await.unwrap();
    let topics: Vec<&str> = seen
        .partitions
        .iter()
        .map(|p| p.partition.topic.as_str())
        .collect();
    assert_eq!(topics, ["orders"], "{seen:?}");

    let mut raw = raw_as(addr, pw("gus", "gus-pw")).await;
    let offsets = raw
        .call(FetchOffsetsRequest {
            group: "billing".into(),
            partitions: Vec::new(),
        })
        .await
        .unwrap();
    let topics: Vec<&str> = offsets
        .offsets
        .iter()
        .map(|o| o.partition.topic.as_str())
        .collect();
    assert_eq!(topics, ["orders"], "{offsets:?}");
    let mut raw = raw_as(addr, pw(ADMIN, ADMIN_PW)).await;
    let offsets = raw
        .call(FetchOffsetsRequest {
            group: "billing".into(),
            partitions: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(offsets.offsets.len(), 2, "{offsets:?}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn password_checks_beyond_the_limit_wait_then_are_refused_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        auth_checks_concurrent_max: 1,
        // 64 checks of at least a few ms each, one at a time, cannot all
        // start within this.
        handshake_timeout_ms: 250,
        // All 64 come from one address: this test is about the busy path.
        auth_failures_per_address_max: 0,
        ..secure_config(dir.path())
    })
    .await
    .unwrap();
    let addr = broker.local_addr();
    // Many logins at once: one check runs at a time, so with a short
    // handshake deadline some cannot start theirs in time and are refused
    // with a clear message; none is left hanging.
    let busy = wrong_logins_at_once(addr, 64, "too many logins in progress").await;
    assert!(busy > 0, "some logins were refused as busy");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_long_poll_that_outlives_its_session_hands_out_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = secure_broker(dir.path()).await;
    let addr = broker.local_addr();
    let admin = admin(addr).await;
    admin
        .admin()
        .create_topic("feed", one_partition())
        .await
        .unwrap();
    let security = admin.security();
    add_user(&admin, "hal", &[(topic("feed"), "consume")]).await;
    let mut hal = raw_as(addr, pw("hal", "hal-pw")).await;
    let poll = tokio::spawn(async move {
        hal.call(FetchRequest {
            topic: "feed".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            max_wait_ms: 5_000,
        })
        .await
    });
    // Let the fetch start waiting, then end the session and add a record.
    tokio::time::sleep(Duration::from_millis(200)).await;
    security.delete_user("hal").await.unwrap();
    Producer::new(admin.clone(), ProducerConfig::default())
        .send(ProducerRecord::new("feed", "after hal left"))
        .await
        .unwrap();
    let (c, msg) = poll
        .await
        .unwrap()
        .expect_err("no records for a removed user");
    assert_eq!(c, ErrorCode::AuthenticationFailed, "{msg}");
    assert!(msg.contains("session no longer valid"), "{msg}");
    still_works(&admin).await;
    broker.shutdown().await.unwrap();
}
