//! [`Client`]: a shared handle that holds the current broker connection and
//! replaces it, with bounded jittered backoff, once it breaks.
//!
//! Invariants: at most one reconnect runs at a time (callers queue on an
//! async lock and share its result); a request that was in flight when the
//! connection broke fails with that error and is not resent here (resending
//! is the caller's decision: the producer retries produce requests, the
//! consumer re-fetches).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use skiff_protocol::messages::Request;

use crate::admin::Admin;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::Result;

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
    current: tokio::sync::Mutex<Option<Connection>>,
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
                current: tokio::sync::Mutex::new(None),
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
    /// jittered backoff before returning the last error.
    pub async fn connection(&self) -> Result<Connection> {
        let mut current = self.inner.current.lock().await;
        if let Some(conn) = current.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        *current = None;
        let config = &self.inner.config;
        let mut backoff = config.backoff();
        let mut attempt = 1;
        loop {
            match Connection::connect(config).await {
                Ok(conn) => {
                    tracing::debug!(broker = %config.broker, attempt, "connected");
                    *current = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if attempt >= config.reconnect_attempts_max || !e.is_connection_error() => {
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
}
