//! Helpers for the Kafka front end's black-box tests (and the third-party
//! client tests that reuse them): a broker with its Kafka listener on
//! 127.0.0.1:0, a raw Kafka connection that encodes requests and decodes
//! responses with kafka-protocol (as a Kafka client would), and a runner
//! for command-line Kafka clients (kcat) bounded by `timeout`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use skiff_broker::{Broker, BrokerConfig, BrokerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::STEP_TIMEOUT;

/// A test broker config with the Kafka listener on port 0 and topic
/// auto-creation on (Kafka clients create topics through Metadata).
pub fn kafka_config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        kafka_listen: Some("127.0.0.1:0".parse().expect("valid address")),
        auto_create_topics: true,
        ..super::test_config(dir)
    }
}

/// Starts a broker with [`kafka_config`]; its Kafka port is
/// `broker.kafka_addr()`, its skiff port `broker.local_addr()`.
pub async fn start_kafka_broker(dir: &Path) -> BrokerHandle {
    Broker::start(kafka_config(dir))
        .await
        .expect("broker starts")
}

/// The Kafka listener's address of a broker started with a Kafka listener.
pub fn kafka_addr(broker: &BrokerHandle) -> SocketAddr {
    broker.kafka_addr().expect("the Kafka listener is on")
}

/// A raw Kafka connection: one request at a time, or raw bytes.
pub struct KafkaConn {
    stream: TcpStream,
    next_id: i32,
}

impl KafkaConn {
    pub async fn connect(addr: SocketAddr) -> KafkaConn {
        KafkaConn {
            stream: TcpStream::connect(addr).await.expect("connects"),
            next_id: 1,
        }
    }

    /// Sends `req` at `version` and decodes its response.
    pub async fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let correlation_id = self.send(req, version).await;
        let mut frame = self.recv().await.expect("a response, not a close");
        let header = ResponseHeader::decode(
            &mut frame,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("response header decodes");
        assert_eq!(header.correlation_id, correlation_id);
        let response = R::Response::decode(&mut frame, version).expect("response decodes");
        assert!(!frame.has_remaining(), "no bytes after the response");
        response
    }

    /// Sends `req` at `version` without waiting; returns its correlation id.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> i32 {
        let correlation_id = self.next_id;
        self.next_id += 1;
        let api = ApiKey::try_from(R::KEY).expect("known api");
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("skiff-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .expect("header encodes");
        req.encode(&mut body, version).expect("request encodes");
        self.write_frame(&body).await;
        correlation_id
    }

    /// Signs in with SASL PLAIN (SaslHandshake v1, then SaslAuthenticate
    /// v2), as current clients do; returns the SaslAuthenticate answer.
    pub async fn sasl_plain(&mut self, user: &str, password: &str) -> SaslAuthenticateResponse {
        let handshake = self
            .call(
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
                1,
            )
            .await;
        assert_eq!(handshake.error_code, 0, "PLAIN is served");
        self.call(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(format!("\0{user}\0{password}"))),
            2,
        )
        .await
    }

    /// Writes one frame: size prefix, then `body`.
    pub async fn write_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(body);
        self.write_bytes(&frame).await;
    }

    /// Writes raw bytes.
    pub async fn write_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    /// The next response frame (without its size), or `None` once the
    /// broker closed the connection.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let read = async {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await.ok()?;
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(STEP_TIMEOUT, read)
            .await
            .expect("the broker answers or closes in time")
    }

    /// Asserts the broker closes the connection (after any answer).
    pub async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(STEP_TIMEOUT, self.stream.read_to_end(&mut rest))
            .await
            .expect("the broker closes in time");
        // A reset counts as closed too.
        let _ = read;
    }
}

/// Runs a command-line program with `args` (and `stdin`), killed after
/// `limit` by coreutils' `timeout`, and returns its output.
pub fn run_bounded(program: &str, args: &[&str], stdin: Option<&[u8]>, limit: Duration) -> Output {
    use std::io::Write;
    let mut cmd = Command::new("timeout");
    cmd.arg(format!("{}", limit.as_secs().max(1)))
        .arg(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).expect("writes stdin");
    }
    child.wait_with_output().expect("waits for the program")
}

/// Whether `program` is on the PATH.
pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
