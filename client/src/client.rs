//! [`Client`]: a shared handle that holds the current broker connection and
//! replaces it, with bounded jittered backoff, once it breaks.
//!
//! Invariants: at most one reconnect runs at a time, and callers that
//! queued behind it share its result, success or failure: a caller waits for
//! at most one reconnect cycle (`reconnect_attempts_max` attempts), never
//! for one cycle per caller ahead of it in the queue; a request that was in flight when the
//! connection broke fails with that error and is not resent here (resending
//! is the caller's decision: the producer retries produce requests, the
//! consumer re-fetches).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use skiff_protocol::messages::Request;

use crate::admin::Admin;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// A reconnecting handle to one broker, shared by [`Admin`],
/// [`crate::Producer`] and [`crate::Consumer`]. Cheap to clone.
///
/// ```no_run
/// use skiff_client::{Client, ClientConfig};
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let client = Client::connect(ClientConfig::new("127.0.0.1:9400")).await?;
/// for topic in client.admin().list_topics().await? {
///     println!("{} ({} partitions)", topic.name, topic.partitions);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    current: tokio::sync::Mutex<Slot>,
    /// Reconnect cycles that ended in failure; read before queueing on
    /// `current`, so a caller can tell that a cycle failed while it waited.
    cycles_failed: AtomicU64,
}

/// The connection, and how the last reconnect cycle failed.
#[derive(Default)]
struct Slot {
    conn: Option<Connection>,
    last_failure: Option<Error>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.inner.config.broker)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects now (with retries), so a wrong address fails here.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let client = Client::lazy(config);
        client.connection().await?;
        Ok(client)
    }

    /// A client that connects on its first request.
    pub fn lazy(config: ClientConfig) -> Client {
        Client {
            inner: Arc::new(Inner {
                config,
                current: tokio::sync::Mutex::new(Slot::default()),
                cycles_failed: AtomicU64::new(0),
            }),
        }
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// An admin handle on this client.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A user, token and ACL management handle on this client.
    pub fn security(&self) -> crate::security::SecurityAdmin {
        crate::security::SecurityAdmin::new(self.clone())
    }

    /// The current connection, opening a new one when there is none or it
    /// broke. Tries `reconnect_attempts_max` times with exponential,
    /// jittered backoff before returning the last error. A caller that
    /// waited while another caller's reconnect cycle failed gets that
    /// failure rather than starting a cycle of its own.
    pub async fn connection(&self) -> Result<Connection> {
        let failed_before = self.inner.cycles_failed.load(Ordering::Acquire);
        let mut current = self.inner.current.lock().await;
        if let Some(conn) = current.conn.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        if self.inner.cycles_failed.load(Ordering::Acquire) != failed_before {
            if let Some(e) = current.last_failure.clone() {
                return Err(e);
            }
        }
        current.conn = None;
        let config = &self.inner.config;
        let mut backoff = config.backoff();
        let mut attempt = 1;
        loop {
            match Connection::connect(config).await {
                Ok(conn) => {
                    tracing::debug!(broker = %config.broker, attempt, "connected");
                    current.conn = Some(conn.clone());
                    current.last_failure = None;
                    return Ok(conn);
                }
                Err(e) if attempt >= config.reconnect_attempts_max || !e.is_connection_error() => {
                    current.last_failure = Some(e.clone());
                    self.inner.cycles_failed.fetch_add(1, Ordering::AcqRel);
                    return Err(e);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::debug!(broker = %config.broker, attempt, error = %e, ?delay, "connect failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Sends one request on the current connection (reconnecting first if
    /// needed), waiting up to `request_timeout_ms`. Not resent on failure.
    pub async fn send<R: Request>(&self, req: R) -> Result<R::Response> {
        self.connection().await?.send(req).await
    }

    /// Like [`Client::send`] with an explicit response timeout.
    pub async fn send_with_timeout<R: Request>(
        &self,
        req: R,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.connection()
            .await?
            .send_with_timeout(req, timeout)
            .await
    }

    /// Like [`Client::send`] in an older `version` of the request's API,
    /// for a broker that does not serve the newest one.
    pub async fn send_version<R: Request>(&self, req: R, version: u16) -> Result<R::Response> {
        self.connection().await?.send_version(req, version).await
    }

    /// Like [`Client::send_with_timeout`] in an older `version` of the
    /// request's API, for a broker that does not serve the newest one
    /// (see [`Connection::enqueue_version`]).
    pub async fn send_version_with_timeout<R: Request>(
        &self,
        req: R,
        version: u16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.connection()
            .await?
            .send_version_with_timeout(req, version, timeout)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::messages::ListTopicsRequest;
    use std::sync::atomic::AtomicUsize;

    /// A "broker" that accepts connections and closes them at once, so
    /// every connect attempt fails with a connection error; returns its
    /// address and a count of the connections it accepted.
    async fn closing_listener() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn callers_queued_behind_a_failed_reconnect_share_its_failure() {
        let (addr, accepted) = closing_listener().await;
        let attempts_max = 3;
        let client = Client::lazy(ClientConfig::new(addr).reconnect_backoff(1, 5, attempts_max));
        let callers = 10;
        let results =
            futures::future::join_all((0..callers).map(|_| client.send(ListTopicsRequest))).await;
        assert!(
            results.iter().all(|r| r.is_err()),
            "no broker: every call fails"
        );
        // One cycle for all of them, not one cycle per queued caller.
        assert_eq!(accepted.load(Ordering::SeqCst), attempts_max as usize);
        // A later call starts a cycle of its own.
        assert!(client.send(ListTopicsRequest).await.is_err());
        assert_eq!(accepted.load(Ordering::SeqCst), 2 * attempts_max as usize);
    }
}
