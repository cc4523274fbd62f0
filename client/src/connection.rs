//! One TCP connection to a broker (plaintext or TLS, see [`crate::tls`]): a
//! writer task, a reader task, and a map of pending requests keyed by
//! correlation id.
//!
//! Requests are pipelined: [`Connection::send`] registers a oneshot sender
//! under a fresh correlation id, queues the frame for the writer task and
//! waits; the reader task hands each response to the sender registered under
//! its correlation id, in whatever order the broker answers.
//!
//! Invariants:
//! - Once the connection breaks (read error, write error, EOF, an oversized
//!   or malformed frame), it is marked closed under the same lock as the
//!   pending map, and every pending request fails at once with
//!   [`Error::ConnectionClosed`] naming the broker and the cause. Nothing is
//!   registered after that: later sends fail immediately.
//! - A request whose future is dropped (cancelled, timed out) removes its own
//!   map entry; a response that arrives for it later is discarded.
//! - Response frames are checked against `frame_bytes_max` before any buffer
//!   is reserved for them (the protocol's codec does this).
//! - Dropping the last handle stops both tasks and closes the socket.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use skiff_protocol::frame::{ClientCodec, OutgoingRequest, ResponseFrame};
use skiff_protocol::messages::{HandshakeRequest, Request};
use skiff_protocol::primitives::{Reader, decode_body, decode_body_version};
use skiff_protocol::{ErrorCode, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::tls::{BrokerAddress, TlsConnector, TlsFailure};

/// Frames queued for the writer task. Senders wait when it is full, which
/// pushes back on callers when the socket cannot keep up; 256 frames is
/// plenty to keep one socket busy.
const WRITE_QUEUE_FRAMES_MAX: usize = 256;

type ResponseSender = oneshot::Sender<Result<ResponseFrame>>;

/// A handle to one broker connection. Cheap to clone; every clone shares the
/// socket, and many requests may be in flight at once.
///
/// Most code uses [`crate::Client`], which reconnects; use `Connection`
/// directly for one-shot tools or tests.
///
/// ```no_run
/// use skiff_client::{ClientConfig, Connection};
/// use skiff_protocol::messages::ListTopicsRequest;
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let conn = Connection::connect(&ClientConfig::new("127.0.0.1:9400")).await?;
/// let topics = conn.send(ListTopicsRequest).await?;
/// println!("{} topics", topics.topics.len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: mpsc::Sender<OutgoingRequest>,
    next_correlation_id: AtomicU32,
    request_timeout_ms: u64,
    broker_version: Mutex<String>,
    shutdown: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// State shared with the reader and writer tasks.
struct Shared {
    broker: String,
    pending: Mutex<Pending>,
    /// Whether the stream is a TLS session (tells how a read error reads).
    tls: bool,
    /// The TLS failure that broke the connection, if one did: the connect
    /// reports it rather than the bare close.
    tls_failure: OnceLock<TlsFailure>,
}

struct Pending {
    requests: HashMap<u32, ResponseSender>,
    /// Why the connection closed; `None` while it is open.
    closed: Option<String>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert/remove/drain).
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn closed_error(&self, reason: &str) -> Error {
        Error::ConnectionClosed {
            broker: self.broker.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Marks the connection closed and fails every pending request. Only the
    /// first reason is kept.
    fn close(&self, reason: String) {
        let drained: Vec<ResponseSender> = {
            let mut pending = self.lock();
            if pending.closed.is_none() {
                pending.closed = Some(reason);
            }
            pending.requests.drain().map(|(_, tx)| tx).collect()
        };
        if drained.is_empty() {
            return;
        }
        let reason = self.lock().closed.clone().unwrap_or_default();
        tracing::debug!(broker = %self.broker, %reason, failed = drained.len(), "connection closed");
        for tx in drained {
            let _ = tx.send(Err(self.closed_error(&reason)));
        }
    }

    fn deliver(&self, frame: ResponseFrame) {
        let tx = self.lock().requests.remove(&frame.correlation_id);
        match tx {
            // The receiver may be gone (request cancelled just now): fine.
            Some(tx) => drop(tx.send(Ok(frame))),
            None => tracing::debug!(
                broker = %self.broker,
                correlation_id = frame.correlation_id,
                "response for a request no longer waiting (cancelled or timed out)"
            ),
        }
    }
}

/// Removes a request's map entry when its future is dropped, whatever the
/// reason (answered, timed out, cancelled).
struct PendingGuard {
    shared: Arc<Shared>,
    correlation_id: u32,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.shared.lock().requests.remove(&self.correlation_id);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.inner.shared.broker)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `config.broker` and performs the handshake, all within
    /// `config.connect_timeout_ms`; with TLS (a `skiffs://` address or a
    /// `tls_ca_file`), the TLS handshake first.
    pub async fn connect(config: &ClientConfig) -> Result<Connection> {
        let address = BrokerAddress::parse(&config.broker)?;
        let use_tls = TlsConnector::wanted(config, &address)?;
        let broker = address.host_port.to_owned();
        let attempt = async {
            let tls = if use_tls {
                Some(TlsConnector::load_in_background(config).await?)
            } else {
                None
            };
            let stream = TcpStream::connect(&broker).await.map_err(|e| Error::Io {
                broker: broker.clone(),
                error: Arc::new(e),
            })?;
            // Small requests (acks, fetch polls) must not wait for Nagle.
            stream.set_nodelay(true).map_err(|e| Error::Io {
                broker: broker.clone(),
                error: Arc::new(e),
            })?;
            let conn = match &tls {
                None => Connection::from_stream(stream, broker.clone(), config),
                Some(tls) => {
                    let stream = tls.connect(stream, &broker).await?;
                    Connection::open(stream, broker.clone(), config, true)
                }
            };
            match conn.handshake(config).await {
                Ok(()) => Ok(conn),
                Err(e) => Err(match conn.inner.shared.tls_failure.get() {
                    Some(failure) => failure.clone().into_error(&broker),
                    None => e,
                }),
            }
        };
        tokio::time::timeout(Duration::from_millis(config.connect_timeout_ms), attempt)
            .await
            .map_err(|_| Error::Timeout {
                operation: format!("connect to {broker}"),
                timeout_ms: config.connect_timeout_ms,
            })?
    }

    /// Wraps an already-connected byte stream (no handshake is sent). Used
    /// by [`Connection::connect`] and by tests over in-memory pipes.
    pub fn from_stream<S>(stream: S, broker: String, config: &ClientConfig) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        Connection::open(stream, broker, config, false)
    }

    /// [`Connection::from_stream`], telling whether `stream` is a TLS session.
    fn open<S>(stream: S, broker: String, config: &ClientConfig, tls: bool) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            broker,
            pending: Mutex::new(Pending {
                requests: HashMap::new(),
                closed: None,
            }),
            tls,
            tls_failure: OnceLock::new(),
        });
        let shutdown = CancellationToken::new();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_FRAMES_MAX);
        tokio::spawn(write_loop(
            FramedWrite::new(write, ClientCodec::new(config.frame_bytes_max)),
            rx,
            Arc::clone(&shared),
            shutdown.clone(),
        ));
        tokio::spawn(read_loop(
            FramedRead::new(read, ClientCodec::new(config.frame_bytes_max)),
            Arc::clone(&shared),
            shutdown.clone(),
        ));
        Connection {
            inner: Arc::new(Inner {
                shared,
                tx,
                next_correlation_id: AtomicU32::new(1),
                request_timeout_ms: config.request_timeout_ms,
                broker_version: Mutex::new(String::new()),
                shutdown,
            }),
        }
    }

    async fn handshake(&self, config: &ClientConfig) -> Result<()> {
        let resp = self
            .send(HandshakeRequest {
                protocol_version: PROTOCOL_VERSION,
                client_id: config.client_id.clone(),
                credentials: config.credentials.clone(),
            })
            .await?;
        if resp.protocol_version != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion {
                broker: self.broker().to_owned(),
                broker_version: resp.protocol_version,
                client_version: PROTOCOL_VERSION,
            });
        }
        *self
            .inner
            .broker_version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = resp.broker_version;
        Ok(())
    }

    /// The broker's address.
    pub fn broker(&self) -> &str {
        &self.inner.shared.broker
    }

    /// The broker's software version from the handshake (empty before it).
    pub fn broker_version(&self) -> String {
        self.inner
            .broker_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the connection has broken or been shut down. A closed
    /// connection never reopens; [`crate::Client`] makes a new one.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.lock().closed.is_some()
    }

    /// Requests waiting for their response.
    pub fn pending_requests(&self) -> usize {
        self.inner.shared.lock().requests.len()
    }

    /// Closes the connection: pending requests fail with
    /// [`Error::ConnectionClosed`].
    pub fn close(&self) {
        self.inner.shared.close("closed by the client".to_owned());
        self.inner.shutdown.cancel();
    }

    /// Sends a request and waits up to the configured `request_timeout_ms`
    /// for its response.
    pub async fn send<R: Request>(&self, req: R) -> Result<R::Response> {
        let timeout = Duration::from_millis(self.inner.request_timeout_ms);
        self.send_with_timeout(req, timeout).await
    }

    /// Like [`Connection::send`] in an older `version` of the request's
    /// API (see [`Connection::enqueue_version`]).
    pub async fn send_version<R: Request>(&self, req: R, version: u16) -> Result<R::Response> {
        let timeout = Duration::from_millis(self.inner.request_timeout_ms);
        self.send_version_with_timeout(req, version, timeout).await
    }

    /// Sends a request and waits up to `timeout` for its response. On
    /// timeout the request is forgotten (a late response is discarded) and
    /// the connection stays open.
    pub async fn send_with_timeout<R: Request>(
        &self,
        req: R,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.send_version_with_timeout(req, R::API_VERSION, timeout)
            .await
    }

    /// Like [`Connection::send_with_timeout`] in an older `version` of the
    /// request's API (see [`Connection::enqueue_version`]).
    pub async fn send_version_with_timeout<R: Request>(
        &self,
        req: R,
        version: u16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let exchange = async {
            self.enqueue_version(req, version)
                .await?
                .wait_untimed()
                .await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timeout_error::<R>(self.broker(), timeout))?
    }

    /// Queues a request for writing and returns its [`PendingResponse`].
    /// Requests queued by successive `enqueue` calls are written, and so
    /// reach the broker, in call order; this is what keeps a producer's
    /// batches of one partition in order with several in flight. Waits only
    /// while the write queue is full.
    pub async fn enqueue<R: Request>(&self, req: R) -> Result<PendingResponse<R>> {
        self.enqueue_version(req, R::API_VERSION).await
    }

    /// Like [`Connection::enqueue`], in the layout of `version` of the
    /// request's API (an older one, for a broker that does not serve the
    /// newest: it answers `ErrorCode::UnsupportedVersion`); the response is
    /// read in the same version's layout.
    pub async fn enqueue_version<R: Request>(
        &self,
        req: R,
        version: u16,
    ) -> Result<PendingResponse<R>> {
        let shared = &self.inner.shared;
        let mut body = BytesMut::new();
        if version == R::API_VERSION {
            req.encode(&mut body);
        } else {
            req.encode_version(&mut body, version);
        }
        // Take the queue slot first, so registering and queueing happen
        // together and a failure leaves nothing behind.
        let permit = self.inner.tx.reserve().await.map_err(|_| {
            let reason = shared.lock().closed.clone();
            shared.closed_error(reason.as_deref().unwrap_or("the writer task has stopped"))
        })?;
        let (tx, rx) = oneshot::channel();
        let correlation_id = {
            let mut pending = shared.lock();
            if let Some(reason) = &pending.closed {
                return Err(shared.closed_error(reason));
            }
            let mut id = self
                .inner
                .next_correlation_id
                .fetch_add(1, Ordering::Relaxed);
            // Skip ids still in use after a wrap-around (a request pending
            // for four billion requests).
            while pending.requests.contains_key(&id) {
                id = self
                    .inner
                    .next_correlation_id
                    .fetch_add(1, Ordering::Relaxed);
            }
            pending.requests.insert(id, tx);
            id
        };
        permit.send(OutgoingRequest {
            correlation_id,
            api_key: R::API_KEY as u16,
            api_version: version,
            body: body.freeze(),
        });
        Ok(PendingResponse {
            version,
            rx,
            guard: PendingGuard {
                shared: Arc::clone(shared),
                correlation_id,
            },
            _request: PhantomData,
        })
    }
}

/// A request written (or queued for writing) whose response has not been
/// read yet. Dropping it forgets the request: its map entry is removed and a
/// late response is discarded.
///
/// ```no_run
/// use std::time::Duration;
/// use skiff_client::{ClientConfig, Connection};
/// use skiff_protocol::messages::ListTopicsRequest;
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let conn = Connection::connect(&ClientConfig::default()).await?;
/// // Both requests are queued, in this order, before either answer is awaited.
/// let a = conn.enqueue(ListTopicsRequest).await?;
/// let b = conn.enqueue(ListTopicsRequest).await?;
/// let (a, b) = (a.wait(Duration::from_secs(5)).await?, b.wait(Duration::from_secs(5)).await?);
/// assert_eq!(a, b);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a PendingResponse forgets the request's response"]
pub struct PendingResponse<R: Request> {
    /// The API version the request was sent in (its response's layout).
    version: u16,
    rx: oneshot::Receiver<Result<ResponseFrame>>,
    guard: PendingGuard,
    _request: PhantomData<fn() -> R>,
}

impl<R: Request> fmt::Debug for PendingResponse<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse")
            .field("api_key", &R::API_KEY)
            .field("correlation_id", &self.guard.correlation_id)
            .finish_non_exhaustive()
    }
}

impl<R: Request> PendingResponse<R> {
    /// Waits up to `timeout` for the response.
    pub async fn wait(self, timeout: Duration) -> Result<R::Response> {
        let broker = self.guard.shared.broker.clone();
        tokio::time::timeout(timeout, self.wait_untimed())
            .await
            .map_err(|_| timeout_error::<R>(&broker, timeout))?
    }

    async fn wait_untimed(self) -> Result<R::Response> {
        let shared = Arc::clone(&self.guard.shared);
        let response = match self.rx.await {
            Ok(result) => result?,
            Err(_) => return Err(shared.closed_error("the response was dropped")),
        };
        drop(self.guard);
        if response.error_code != ErrorCode::None {
            let mut r = Reader::new(response.body);
            let message = r
                .string("error_message")
                .unwrap_or_else(|e| format!("(unreadable error message: {e})"));
            return Err(Error::Broker {
                code: response.error_code,
                message,
            });
        }
        if self.version == R::API_VERSION {
            Ok(decode_body::<R::Response>(response.body)?)
        } else {
            Ok(decode_body_version::<R::Response>(
                response.body,
                self.version,
            )?)
        }
    }
}

fn timeout_error<R: Request>(broker: &str, timeout: Duration) -> Error {
    Error::Timeout {
        operation: format!("{:?} request to {broker}", R::API_KEY),
        timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, ClientCodec>,
    mut rx: mpsc::Receiver<OutgoingRequest>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let failure = loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break None,
            frame = rx.recv() => frame,
        };
        // `None`: every handle is gone.
        let Some(first) = first else { break None };
        if let Err(e) = sink.feed(first).await {
            break Some(e);
        }
        // Write whatever else is queued before flushing: pipelined requests
        // share syscalls.
        let mut failed = None;
        while let Ok(more) = rx.try_recv() {
            if let Err(e) = sink.feed(more).await {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            break Some(e);
        }
        if let Err(e) = sink.flush().await {
            break Some(e);
        }
    };
    match failure {
        Some(e) => shared.close(format!("write failed: {e}")),
        None => shared.close("connection dropped by the client".to_owned()),
    }
    shutdown.cancel();
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut stream: FramedRead<R, ClientCodec>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let reason = loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break "connection dropped by the client".to_owned(),
            next = stream.next() => next,
        };
        match next {
            None => break "the broker closed the connection".to_owned(),
            Some(Err(e)) => {
                let buffered = stream.read_buffer();
                if let Some(failure) = crate::tls::failure_reason(&e, shared.tls, buffered) {
                    let _ = shared.tls_failure.set(failure);
                }
                break format!("read failed: {e}");
            }
            Some(Ok(frame)) => shared.deliver(frame),
        }
    };
    shared.close(reason);
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::frame::{OutgoingResponse, ServerCodec};
    use skiff_protocol::messages::{ListTopicsRequest, ListTopicsResponse, TopicListing};
    use tokio::io::DuplexStream;

    fn pair() -> (
        Connection,
        tokio_util::codec::Framed<DuplexStream, ServerCodec>,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let conn = Connection::from_stream(client, "test-broker".into(), &ClientConfig::default());
        let server = tokio_util::codec::Framed::new(server, ServerCodec::new(1 << 20));
        (conn, server)
    }

    fn listing(name: &str) -> ListTopicsResponse {
        ListTopicsResponse {
            topics: vec![TopicListing {
                name: name.into(),
                partitions: 1,
            }],
        }
    }

    #[tokio::test]
    async fn responses_are_matched_by_correlation_id_in_any_order() {
        let (conn, mut server) = pair();
        let a = tokio::spawn({
            let c = conn.clone();
            async move { c.send(ListTopicsRequest).await }
        });
        let first = server.next().await.unwrap().unwrap();
        let b = tokio::spawn({
            let c = conn.clone();
            async move { c.send(ListTopicsRequest).await }
        });
        let second = server.next().await.unwrap().unwrap();
        assert_ne!(first.correlation_id, second.correlation_id);
        // Answer in reverse order.
        server
            .send(OutgoingResponse::ok(
                second.correlation_id,
                &listing("second"),
            ))
            .await
            .unwrap();
        server
            .send(OutgoingResponse::ok(
                first.correlation_id,
                &listing("first"),
            ))
            .await
            .unwrap();
        assert_eq!(a.await.unwrap().unwrap().topics[0].name, "first");
        assert_eq!(b.await.unwrap().unwrap().topics[0].name, "second");
        assert_eq!(conn.pending_requests(), 0);
    }

    #[tokio::test]
    async fn every_pending_request_fails_when_the_connection_breaks() {
        let (conn, mut server) = pair();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let c = conn.clone();
            tasks.push(tokio::spawn(async move { c.send(ListTopicsRequest).await }));
        }
        for _ in 0..3 {
            server.next().await.unwrap().unwrap();
        }
        assert_eq!(conn.pending_requests(), 3);
        drop(server);
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert!(
                matches!(&err, Error::ConnectionClosed { broker, .. } if broker == "test-broker"),
                "{err:?}"
            );
        }
        assert!(conn.is_closed());
        assert_eq!(conn.pending_requests(), 0);
        // Later sends fail at once.
        let err = conn.send(ListTopicsRequest).await.unwrap_err();
        assert!(matches!(err, Error::ConnectionClosed { .. }));
    }

    #[tokio::test]
    async fn cancelled_and_timed_out_requests_remove_their_entry() {
        let (conn, mut server) = pair();
        let err = conn
            .send_with_timeout(ListTopicsRequest, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { timeout_ms: 20, .. }));
        assert_eq!(conn.pending_requests(), 0);

        let c = conn.clone();
        let task = tokio::spawn(async move { c.send(ListTopicsRequest).await });
        let late = server.next().await.unwrap().unwrap();
        let _timed_out = server.next().await.unwrap().unwrap();
        assert_eq!(conn.pending_requests(), 1);
        task.abort();
        let _ = task.await;
        assert_eq!(conn.pending_requests(), 0);

        // A late response for a forgotten request is dropped, and the
        // connection keeps working.
        server
            .send(OutgoingResponse::ok(late.correlation_id, &listing("late")))
            .await
            .unwrap();
        let c = conn.clone();
        let task = tokio::spawn(async move { c.send(ListTopicsRequest).await });
        let req = server.next().await.unwrap().unwrap();
        server
            .send(OutgoingResponse::ok(req.correlation_id, &listing("ok")))
            .await
            .unwrap();
        assert_eq!(task.await.unwrap().unwrap().topics[0].name, "ok");
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn error_responses_carry_code_and_message() {
        let (conn, mut server) = pair();
        let c = conn.clone();
        let task = tokio::spawn(async move { c.send(ListTopicsRequest).await });
        let req = server.next().await.unwrap().unwrap();
        server
            .send(OutgoingResponse::error(
                req.correlation_id,
                ErrorCode::StorageError,
                "disk on fire",
            ))
            .await
            .unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::Broker { code: ErrorCode::StorageError, message } if message == "disk on fire"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn oversized_response_frames_close_the_connection() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let conn = Connection::from_stream(
            client,
            "b".into(),
            &ClientConfig::default().frame_bytes_max(64),
        );
        let mut server = tokio_util::codec::Framed::new(server, ServerCodec::new(1 << 20));
        let c = conn.clone();
        let task = tokio::spawn(async move { c.send(ListTopicsRequest).await });
        let req = server.next().await.unwrap().unwrap();
        server
            .send(OutgoingResponse::ok(
                req.correlation_id,
                &listing(&"x".repeat(100)),
            ))
            .await
            .unwrap();
        let err = task.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::ConnectionClosed { reason, .. } if reason.contains("exceeds")),
            "{err:?}"
        );
    }
}
