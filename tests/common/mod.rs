//! Shared helpers for the black-box tests: a real broker on 127.0.0.1:0 in a
//! temporary directory, and a raw framed connection for protocol-level tests.

#![allow(dead_code)]

pub mod kafka;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use skiff_broker::{Broker, BrokerConfig, BrokerHandle};
use skiff_protocol::ErrorCode;
use skiff_protocol::frame::{ClientCodec, OutgoingRequest, ResponseFrame};
use skiff_protocol::messages::{CreateTopicRequest, HandshakeRequest, Request, TopicConfig};
use skiff_protocol::primitives::{Reader, decode_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long any single step of a test may wait before it fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The next `n` records of `consumer`, each arriving within
/// [`STEP_TIMEOUT`]; any error fails the test.
pub async fn next_records(
    consumer: &mut skiff_client::Consumer,
    n: usize,
) -> Vec<skiff_client::ConsumedRecord> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let record = tokio::time::timeout(STEP_TIMEOUT, consumer.next())
            .await
            .expect("records arrive in time")
            .expect("stream goes on")
            .expect("no error");
        out.push(record);
    }
    out
}

/// A broker config for tests: port 0 in `dir`.
pub fn test_config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("valid address"),
        ..BrokerConfig::default()
    }
}

/// Starts a broker with the test config in `dir`.
pub async fn start_broker(dir: &Path) -> BrokerHandle {
    Broker::start(test_config(dir))
        .await
        .expect("broker starts")
}

/// A raw protocol connection: frames in, frames out, no client library.
pub struct RawConn {
    framed: Framed<TcpStream, ClientCodec>,
    next_id: u32,
}

impl RawConn {
    /// Connects without a handshake.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connects");
        RawConn {
            framed: Framed::new(stream, ClientCodec::new(64 * 1024 * 1024)),
            next_id: 1,
        }
    }

    /// Connects from `source` (any 127.0.0.0/8 address works on loopback),
    /// without a handshake.
    #[allow(dead_code)] // not every test binary uses every helper
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> RawConn {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(source, 0)).expect("binds");
        let stream = socket.connect(addr).await.expect("connects");
        RawConn {
            framed: Framed::new(stream, ClientCodec::new(64 * 1024 * 1024)),
            next_id: 1,
        }
    }

    /// Connects and completes the handshake.
    pub async fn handshaken(addr: SocketAddr) -> RawConn {
        let mut conn = RawConn::connect(addr).await;
        conn.call(HandshakeRequest {
            protocol_version: skiff_protocol::PROTOCOL_VERSION,
            client_id: "test".into(),
            credentials: Default::default(),
        })
        .await
        .expect("handshake succeeds");
        conn
    }

    /// Sends a request and waits for its response.
    pub async fn call<R: Request>(&mut self, req: R) -> Result<R::Response, (ErrorCode, String)> {
        let mut body = BytesMut::new();
        req.encode(&mut body);
        let frame = self
            .send_raw(R::API_KEY as u16, R::API_VERSION, body.freeze())
            .await;
        if frame.error_code != ErrorCode::None {
            return Err((frame.error_code, error_message(frame.body)));
        }
        Ok(decode_body(frame.body).expect("response decodes"))
    }

    /// Creates topic `name` with `partitions` partitions (the broker's
    /// defaults otherwise); any error fails the test.
    pub async fn create_topic(&mut self, name: &str, partitions: u32) {
        self.call(CreateTopicRequest {
            name: name.into(),
            config: TopicConfig {
                partitions,
                ..TopicConfig::default()
            },
        })
        .await
        .expect("topic created");
    }

    /// Sends one frame with any header values and waits for a response.
    pub async fn send_raw(&mut self, api_key: u16, api_version: u16, body: Bytes) -> ResponseFrame {
        let correlation_id = self.next_id;
        self.next_id += 1;
        self.framed
            .send(OutgoingRequest {
                correlation_id,
                api_key,
                api_version,
                body,
            })
            .await
            .expect("send");
        let frame = self
            .recv()
            .await
            .expect("a response, not a closed connection");
        assert_eq!(frame.correlation_id, correlation_id);
        frame
    }

    /// Writes raw bytes to the socket.
    pub async fn write_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.framed.get_mut().write_all(bytes).await.expect("write");
    }

    /// The next response frame, or `None` when the broker closed the
    /// connection.
    pub async fn recv(&mut self) -> Option<ResponseFrame> {
        match tokio::time::timeout(STEP_TIMEOUT, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no response within {STEP_TIMEOUT:?}"),
        }
    }
}

/// The message of an error response.
pub fn error_message(body: Bytes) -> String {
    Reader::new(body)
        .string("message")
        .unwrap_or_else(|e| format!("<undecodable error message: {e}>"))
}

/// GETs `path` over plain HTTP/1.1 and returns (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let mut text = String::new();
    tokio::time::timeout(STEP_TIMEOUT, s.read_to_string(&mut text))
        .await
        .expect("answers in time")
        .expect("reads");
    let (head, body) = text.split_once("\r\n\r\n").expect("has a head");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample whose name-and-labels part is exactly `series`.
pub fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}
