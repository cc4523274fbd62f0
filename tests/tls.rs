//! TLS end to end: a real broker on 127.0.0.1:0 with certificates generated
//! at test time (tests/pki), the client crate over real sockets. Every
//! refusal is a clear, typed error that arrives in bounded time, and a good
//! client on the same broker keeps being served through it.

mod common;
mod pki;

use std::time::{Duration, Instant};

use common::{STEP_TIMEOUT, http_get, sample, test_config};
use pki::Pki;
use skiff_broker::{Broker, BrokerConfig, BrokerError, BrokerHandle};
use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Error, Producer, ProducerConfig,
    ProducerRecord, StartFrom, TopicConfig,
};
use tokio::io::AsyncReadExt;

/// A broker whose listener speaks TLS with the test PKI's server
/// certificate; `client_auth` also requires client certificates.
async fn tls_broker(pki: &Pki, dir: &tempfile::TempDir, client_auth: bool) -> BrokerHandle {
    Broker::start(BrokerConfig {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        tls_client_ca_file: client_auth.then(|| pki.ca.clone()),
        ..test_config(dir.path())
    })
    .await
    .expect("TLS broker starts")
}

/// Client settings for `broker` with few, quick reconnect attempts.
fn client_config(broker: &str) -> ClientConfig {
    ClientConfig::new(broker)
        .reconnect_backoff(10, 50, 2)
        .connect_timeout_ms(5_000)
}

async fn connect(config: ClientConfig) -> Result<Client, Error> {
    tokio::time::timeout(STEP_TIMEOUT, Client::connect(config))
        .await
        .expect("connect finishes in time (no hang)")
}

/// The good client still gets answers.
async fn still_served(client: &Client) {
    tokio::time::timeout(STEP_TIMEOUT, client.admin().list_topics())
        .await
        .expect("answered in time")
        .expect("good client still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_over_tls() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(&pki, &dir, false).await;
    let port = broker.local_addr().port();
    // A CA file turns TLS on for a plain host:port; the certificate names
    // 127.0.0.1.
    let client = connect(client_config(&format!("127.0.0.1:{port}")).tls_ca_file(&pki.ca))
        .await
        .expect("TLS client connects");
    client
        .admin()
        .create_topic(
            "secure",
            TopicConfig {
                partitions: 2,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let sends: Vec<_> = (0..200)
        .map(|i| producer.send(ProducerRecord::new("secure", format!("v{i}")).key(format!("k{i}"))))
        .collect();
    for ack in tokio::time::timeout(STEP_TIMEOUT, futures::future::join_all(sends))
        .await
        .expect("acked in time")
    {
        ack.expect("produce over TLS");
    }

    // skiffs:// with a server-name override: the certificate also names
    // localhost.
    let reader = connect(
        client_config(&format!("skiffs://127.0.0.1:{port}"))
            .tls_ca_file(&pki.ca)
            .tls_server_name("localhost"),
    )
    .await
    .expect("skiffs:// client connects");
    let mut consumer = Consumer::new(reader, ConsumerConfig::default().max_wait_ms(50));
    consumer
        .assign_all("secure", StartFrom::Earliest)
        .await
        .unwrap();
    let mut values = Vec::new();
    for _ in 0..200 {
        let r = tokio::time::timeout(STEP_TIMEOUT, consumer.next())
            .await
            .expect("record in time")
            .expect("assigned")
            .expect("consume over TLS");
        values.push(String::from_utf8(r.value.to_vec()).unwrap());
    }
    values.sort_unstable();
    let mut expected: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    expected.sort_unstable();
    assert_eq!(values, expected);

    // A name the certificate does not carry is refused.
    let err = connect(
        client_config(&format!("skiffs://127.0.0.1:{port}"))
            .tls_ca_file(&pki.ca)
            .tls_server_name("elsewhere.example"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_clients_get_clear_errors_and_good_clients_keep_being_served() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(&pki, &dir, false).await;
    let addr = broker.local_addr().to_string();
    let good = connect(client_config(&addr).tls_ca_file(&pki.ca))
        .await
        .expect("good client connects");

    // The broker's certificate does not chain to this CA.
    let err = connect(client_config(&addr).tls_ca_file(&pki.other_ca))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("TLS handshake with {addr} failed"))
            && text.contains("UnknownIssuer"),
        "{text}"
    );
    assert!(!err.is_retriable(), "a certificate problem is not retried");
    still_served(&good).await;

    // A plaintext client on the TLS port: told the broker speaks TLS, at
    // once, not after its (long) connect timeout.
    let started = Instant::now();
    let err = connect(client_config(&addr).connect_timeout_ms(30_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TlsRequired { .. }), "{err}");
    assert!(err.to_string().contains("skiffs://"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused after {:?}: a timeout, not a refusal",
        started.elapsed()
    );
    still_served(&good).await;

    // skiffs:// without a CA file: refused before connecting.
    let err = connect(client_config(&format!("skiffs://{addr}")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
    assert!(err.to_string().contains("CA file"), "{err}");
    still_served(&good).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_on_a_plaintext_port_gets_a_clear_error() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start_broker(dir.path()).await;
    let addr = broker.local_addr().to_string();
    let good = connect(client_config(&addr))
        .await
        .expect("plaintext client connects");
    let err = connect(client_config(&addr).tls_ca_file(&pki.ca))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("plaintext"), "{err}");
    still_served(&good).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(&pki, &dir, true).await;
    let addr = broker.local_addr().to_string();
    let with_cert = || {
        client_config(&addr)
            .tls_ca_file(&pki.ca)
            .tls_client_cert(&pki.client_cert, &pki.client_key)
    };
    let good = connect(with_cert())
        .await
        .expect("client with a certificate connects");
    still_served(&good).await;

    // No certificate at all.
    let err = connect(client_config(&addr).tls_ca_file(&pki.ca))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    still_served(&good).await;

    // A certificate from a CA the broker does not trust.
    let err = connect(
        client_config(&addr)
            .tls_ca_file(&pki.ca)
            .tls_client_cert(&pki.other_client_cert, &pki.other_client_key),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("UnknownCA"), "{err}");
    still_served(&good).await;

    // A second good client is accepted too.
    let second = connect(with_cert()).await.expect("second good client");
    still_served(&second).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    const HANDSHAKE_TIMEOUT_MS: u64 = 300;
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        tls_handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
        // The good client and the silent socket fill every slot.
        connections_max: 2,
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..test_config(dir.path())
    })
    .await
    .expect("broker starts");
    let addr = broker.local_addr();
    let metrics = broker.metrics_addr().expect("metrics endpoint");
    let good = connect(client_config(&addr.to_string()).tls_ca_file(&pki.ca))
        .await
        .expect("good client connects");

    let (_, before) = http_get(metrics, "/metrics").await;
    let series = "skiff_tls_handshake_failures_total{reason=\"timeout\"}";
    let timeouts_before = sample(&before, series);

    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    still_served(&good).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(STEP_TIMEOUT, silent.read(&mut buf))
        .await
        .expect("the broker closes the silent connection in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(HANDSHAKE_TIMEOUT_MS - 50),
        "closed after {:?}, before the handshake timeout",
        started.elapsed()
    );
    still_served(&good).await;

    // Its slot is free again: a new client fits under connections_max. The
    // broker may release the slot a moment after closing the socket, so
    // the client retries (bounded) meanwhile.
    let next = connect(
        client_config(&addr.to_string())
            .tls_ca_file(&pki.ca)
            .reconnect_backoff(20, 200, 20),
    )
    .await
    .expect("a new client gets the freed slot");
    still_served(&next).await;

    let (_, after) = http_get(metrics, "/metrics").await;
    assert!(
        sample(&after, series) >= timeouts_before + 1.0,
        "timeout not counted:\n{after}"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_do_not_delay_shutdown() {
    // The plaintext listener waits for a connection's first bytes (to spot
    // a TLS ClientHello) and the TLS listener for the handshake; both give
    // way to shutdown at once rather than after the grace period.
    let pki = Pki::generate();
    for tls in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let broker = if tls {
            tls_broker(&pki, &dir, false).await
        } else {
            common::start_broker(dir.path()).await
        };
        let observer = if tls {
            client_config(&broker.local_addr().to_string()).tls_ca_file(&pki.ca)
        } else {
            client_config(&broker.local_addr().to_string())
        };
        let observer = connect(observer).await.expect("observer connects");
        let _silent = tokio::net::TcpStream::connect(broker.local_addr())
            .await
            .unwrap();
        // Wait (bounded) until the broker has accepted it and is waiting:
        // two connections open, the observer's and the silent one.
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let status = observer.admin().status().await.expect("status");
            if status.connections == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tls: {tls}: the silent connection was never accepted ({} open)",
                status.connections
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(observer);
        let started = Instant::now();
        broker.shutdown().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "tls: {tls}: shutdown took {:?} (grace is 10 s)",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn unusable_tls_files_are_startup_errors_naming_the_file() {
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let missing = pki.dir().join("missing-ca.pem");
    let err = Broker::start(BrokerConfig {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        tls_client_ca_file: Some(missing.clone()),
        ..test_config(dir.path())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, BrokerError::Tls(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("tls_client_ca_file") && text.contains("missing-ca.pem"),
        "{text}"
    );

    // A key that belongs to another certificate.
    let err = Broker::start(BrokerConfig {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.client_key.clone()),
        ..test_config(dir.path())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, BrokerError::Tls(_)), "{err}");
    assert!(err.to_string().contains("client.key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_the_broker_closes_ends_cleanly() {
    // The broker ends its TLS sessions with close_notify, so the client
    // reads a clean end ("the broker closed the connection"), not a
    // truncation error.
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        idle_timeout_ms: 200,
        ..test_config(dir.path())
    })
    .await
    .expect("broker starts");
    let config = client_config(&broker.local_addr().to_string()).tls_ca_file(&pki.ca);
    let conn = tokio::time::timeout(STEP_TIMEOUT, skiff_client::Connection::connect(&config))
        .await
        .expect("connects in time")
        .expect("connects");
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !conn.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the idle connection was never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = conn
        .send(skiff_protocol::messages::ListTopicsRequest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionClosed { .. }), "{err}");
    assert!(
        err.to_string().contains("the broker closed the connection"),
        "{err}"
    );
    broker.shutdown().await.unwrap();
}

/// Certificate renewal without a restart: after the files are replaced and
/// `reload_tls` runs, new handshakes use the new certificate (clients that
/// trust only the old CA are refused), while a session made before keeps
/// being served. A reload that meets a bad file says which and keeps the
/// certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_renewed_certificate_and_a_bad_one_is_refused() {
    let (old, new) = (Pki::generate(), Pki::generate());
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::copy(&old.server_cert, &cert).unwrap();
    std::fs::copy(&old.server_key, &key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        tls_cert_file: Some(cert.clone()),
        tls_key_file: Some(key.clone()),
        ..test_config(dir.path())
    })
    .await
    .expect("TLS broker starts");
    let addr = format!("127.0.0.1:{}", broker.local_addr().port());
    let before = connect(client_config(&addr).tls_ca_file(&old.ca))
        .await
        .expect("old CA trusted before the reload");

    std::fs::copy(&new.server_cert, &cert).unwrap();
    std::fs::copy(&new.server_key, &key).unwrap();
    assert!(broker.reload_tls().expect("reload"), "TLS is on");
    connect(client_config(&addr).tls_ca_file(&new.ca))
        .await
        .expect("the renewed certificate is served");
    let err = connect(client_config(&addr).tls_ca_file(&old.ca))
        .await
        .unwrap_err();
    // Both test CAs share a name, so rustls reports a bad signature.
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    still_served(&before).await;

    std::fs::write(&key, "not a key").unwrap();
    let err = broker.reload_tls().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("tls_key_file") && text.contains("key.pem"),
        "{text}"
    );
    connect(client_config(&addr).tls_ca_file(&new.ca))
        .await
        .expect("the certificate in use stays after a failed reload");
    broker.shutdown().await.unwrap();
}

/// Without TLS there is nothing to reload.
#[tokio::test]
async fn reloading_tls_on_a_plaintext_broker_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(test_config(dir.path())).await.unwrap();
    assert!(!broker.reload_tls().expect("nothing to do"));
    broker.shutdown().await.unwrap();
}

/// With TLS configured the Kafka listener speaks only TLS (Kafka's SSL and
/// SASL_SSL): a plaintext Kafka request is never answered with Kafka data,
/// only refused by the TLS handshake (an alert at most), and the
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_listener_speaks_only_tls_when_tls_is_on() {
    use tokio::io::AsyncWriteExt;
    let pki = Pki::generate();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        ..common::kafka::kafka_config(dir.path())
    })
    .await
    .expect("a TLS broker with a Kafka listener starts");
    let kafka = common::kafka::kafka_addr(&broker);
    let mut stream = tokio::net::TcpStream::connect(kafka).await.unwrap();
    // An ApiVersions v0 request in the clear: size, api key 18, version 0,
    // correlation id 7, no client id.
    let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(STEP_TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .ok();
    // A Kafka answer would start with a size and correlation id 7; a TLS
    // alert record starts with content type 0x15.
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "plaintext Kafka answered over a TLS listener: {answer:?}"
    );
    broker.shutdown().await.unwrap();
}
