//! The accept loop: one task per connection, a cap on connections, accept
//! errors retried with backoff, and a stop on shutdown.
//!
//! With TLS on, the handshake runs in the connection's task (under its time
//! limit, holding the connection's permit), never here, so one slow client
//! cannot stall accepting. Plaintext connections are served on the socket's
//! owned halves (no lock per read or write); TLS ones on `tokio::io::split`
//! halves, since one TLS session reads and writes through shared state.
//!
//! The permits are the one count of open connections: the
//! `skiff_connections_open` gauge is set from them at scrape time, never
//! counted here (a process-wide gauge bumped by every broker in a test
//! process raced the scrape).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use super::Shared;
use super::{connection, tls};

/// First pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF_MS_MIN: u64 = 5;
/// Longest pause between accept retries.
const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    /// skiff's own protocol (`listen`), plaintext or TLS.
    Skiff,
    /// Kafka's (`kafka_listen`, `crate::kafka`): with TLS configured it
    /// speaks only TLS too (Kafka's SSL and SASL_SSL), with the same
    /// acceptor; else plaintext (PLAINTEXT and SASL_PLAINTEXT).
    Kafka,
}

/// Accepts connections until shutdown. Both listeners share one
/// connection cap (`connections_max`), one shutdown and one task tracker.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, front: Front) {
    let mut backoff_ms = ACCEPT_BACKOFF_MS_MIN;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown.cancelled() => return,
        };
        let accepted_at = Instant::now();
        let (mut stream, peer) = match accepted {
            Ok(conn) => {
                backoff_ms = ACCEPT_BACKOFF_MS_MIN;
                conn
            }
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MS_MAX);
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
            tracing::warn!(%peer, limit = shared.config.connections_max, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        // Small responses (acks, fetch polls) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let conn_shared = Arc::clone(&shared);
        shared.tracker.spawn(async move {
            match &conn_shared.tls {
                None if front == Front::Kafka => {
                    let (rd, wr) = stream.into_split();
                    crate::kafka::connection::serve(
                        rd,
                        wr,
                        peer,
                        Arc::clone(&conn_shared),
                        accepted_at,
                    )
                    .await;
                }
                Some(tls) if front == Front::Kafka => {
                    // As for skiff's protocol: the TLS handshake's time
                    // counts against the login deadline (from accept) too.
                    if let Some(stream) = tls.accept(stream, peer, &conn_shared.shutdown).await {
                        let (rd, wr) = tokio::io::split(stream);
                        crate::kafka::connection::serve(
                            rd,
                            wr,
                            peer,
                            Arc::clone(&conn_shared),
                            accepted_at,
                        )
                        .await;
                    }
                }
                None => {
                    // The handshake must be done within `handshake_timeout_ms`
                    // of accept, so its first bytes must come by then too;
                    // `serve` keeps the same deadline.
                    let deadline = accepted_at
                        + Duration::from_millis(conn_shared.config.handshake_timeout_ms);
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let shutdown = &conn_shared.shutdown;
                    if tls::plaintext_first_bytes_ok(&mut stream, peer, wait, shutdown).await {
                        let (rd, wr) = stream.into_split();
                        connection::serve(rd, wr, peer, Arc::clone(&conn_shared), accepted_at)
                            .await;
                    }
                }
                Some(tls) => {
                    // The TLS handshake's time counts against the skiff
                    // handshake's deadline (from accept) too.
                    if let Some(stream) = tls.accept(stream, peer, &conn_shared.shutdown).await {
                        let (rd, wr) = tokio::io::split(stream);
                        connection::serve(rd, wr, peer, Arc::clone(&conn_shared), accepted_at)
                            .await;
                    }
                }
            }
            drop(permit);
        });
    }
}
