//! TLS on the client listener: the certificate chain, private key and
//! optional client CA are read from PEM files at startup and again on
//! [`TlsListener::reload`] (`BrokerHandle::reload_tls`, SIGHUP for
//! skiffd), and each new connection's handshake runs under
//! `tls_handshake_timeout_ms`.
//!
//! Invariants:
//! - A missing, unreadable or invalid file is a startup error naming the
//!   config key and the file ([`TlsError`]), never a panic. A reload that
//!   meets one returns that error and keeps the settings in use.
//! - A reload applies to handshakes that start after it; established
//!   sessions keep the certificate they were made with.
//! - The handshake runs in the connection's own task, never in the accept
//!   loop, so a slow or silent client delays no one else, and it holds its
//!   connection slot for at most the handshake timeout.
//! - A failed handshake (timeout, plaintext on the TLS port, a certificate
//!   that does not verify, no client certificate when one is required) is
//!   logged and counted in `skiff_tls_handshake_failures_total` (label
//!   `reason`: `timeout`, `refused`, `io`, or `plaintext_listener` for a
//!   TLS client on a plaintext listener); it closes that socket only.
//! - The crypto provider (ring) is passed explicitly to every rustls config,
//!   so nothing depends on a process-wide default provider.
//! - A plaintext listener answers a TLS ClientHello with one skiff error
//!   frame and closes (write side first, then it drains what the client
//!   still sends for at most a second, so no RST discards the frame), so a
//!   TLS client fails at once (its TLS stack rejects
//!   the frame as a bad record) instead of waiting for its connect timeout
//!   while the broker waits for a frame that never completes.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use skiff_protocol::ErrorCode;
use skiff_protocol::frame::{OutgoingResponse, ServerCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::telemetry::names;

/// Why the listener's TLS settings could not be loaded. Each variant names
/// the config key and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read (missing, no permission, ...).
    #[error("cannot read {key} {path}", path = path.display())]
    Read {
        /// The config key that names the file, e.g. `tls_cert_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds none of what the key asks for.
    #[error("invalid {key} {path}: {message}", path = path.display())]
    Pem {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The contents parse but rustls refuses them (a key that does not
    /// match the certificate, a malformed CA certificate).
    #[error("cannot use {key} {path}: {message}", path = path.display())]
    Refused {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        message: String,
    },
}

/// The TLS side of the client listener: a rustls acceptor (replaced by a
/// reload) and the handshake time limit.
pub(crate) struct TlsListener {
    acceptor: RwLock<tokio_rustls::TlsAcceptor>,
    /// The files it was loaded from, read again by a reload.
    files: TlsFiles,
    /// Held by a reload from reading the files to the swap, so two reloads
    /// cannot install their results out of order.
    reloading: Mutex<()>,
    handshake_timeout: Duration,
    /// Whether clients must present a certificate (for logs).
    client_auth: bool,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// Where the listener's PEM files are.
#[derive(Clone, Debug)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl TlsListener {
    /// Loads the TLS settings of `config`; `None` when TLS is off (no
    /// `tls_cert_file`). Expects a validated config (cert and key together).
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<Option<TlsListener>, TlsError> {
        let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca_file.clone(),
        };
        Ok(Some(TlsListener {
            acceptor: RwLock::new(load_acceptor(&files)?),
            handshake_timeout: Duration::from_millis(config.tls_handshake_timeout_ms),
            client_auth: files.client_ca.is_some(),
            files,
            reloading: Mutex::new(()),
        }))
    }

    /// Reads the certificate chain, key and client CA files again and uses
    /// them for handshakes from now on. On any error the settings in use
    /// stay, and the error names the key and file.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let _one_at_a_time = crate::poison::lock(&self.reloading);
        let acceptor = load_acceptor(&self.files)?;
        *crate::poison::write(&self.acceptor) = acceptor;
        Ok(())
    }

    /// Whether clients must present a certificate.
    pub(crate) fn client_auth(&self) -> bool {
        self.client_auth
    }

    /// Runs the server side of the handshake on `stream`, within the
    /// handshake timeout. `None` when it failed (logged and counted) or the
    /// broker is shutting down; the socket is then closed.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = crate::poison::read(&self.acceptor).clone();
        let handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream));
        let outcome = tokio::select! {
            outcome = handshake => outcome,
            () = shutdown.cancelled() => return None,
        };
        let reason = match outcome {
            Ok(Ok(stream)) => return Some(stream),
            Err(_elapsed) => {
                tracing::debug!(%peer, timeout_ms = self.handshake_timeout.as_millis(), "TLS handshake timed out; closing connection");
                "timeout"
            }
            // rustls reports protocol and certificate failures as InvalidData.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                // debug, not warn: any peer can cause this at will, and the
                // metric counts it.
                tracing::debug!(%peer, error = %e, "TLS handshake refused; closing connection");
                "refused"
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed; closing connection");
                "io"
            }
        };
        metrics::counter!(names::TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
        None
    }
}

/// A rustls acceptor from the PEM files (ring provider, safe default
/// protocol versions, client certificates required when `client_ca` is
/// set).
fn load_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs("tls_cert_file", &files.cert)?;
    let key_pem = read_file("tls_key_file", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        key: "tls_key_file",
        path: files.key.clone(),
        message: pem_message(e, "PRIVATE KEY"),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Refused {
            key: "tls_cert_file",
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("tls_client_ca_file", ca_file)? {
                roots.add(cert).map_err(|e| TlsError::Refused {
                    key: "tls_client_ca_file",
                    path: ca_file.clone(),
                    message: e.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsError::Refused {
                key: "tls_client_ca_file",
                path: ca_file.clone(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Refused {
            key: "tls_key_file",
            path: files.key.clone(),
            message: format!(
                "{e} (does the key belong to the certificate in {}?)",
                files.cert.display()
            ),
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// On a plaintext listener: waits (up to `wait`, the handshake timeout, or
/// until shutdown) for the connection's first bytes and tells whether it
/// may be served. A TLS ClientHello (record type
/// 0x16, version 3.1 to 3.4) is answered with an error frame and refused;
/// as a little-endian length prefix those bytes announce a first frame of
/// at least 66 KB, far beyond any handshake request, so no skiff client is
/// mistaken for one. A connection that sends nothing within `wait` is
/// refused too, as the handshake timeout would close it anyway.
pub(crate) async fn plaintext_first_bytes_ok(
    stream: &mut TcpStream,
    peer: SocketAddr,
    wait: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let mut head = [0u8; 3];
    let peeked = tokio::select! {
        peeked = tokio::time::timeout(wait, stream.peek(&mut head)) => peeked,
        () = shutdown.cancelled() => return false,
    };
    let peeked = match peeked {
        Ok(Ok(n)) => n,
        Ok(Err(_)) => return false,
        Err(_elapsed) => {
            tracing::debug!(%peer, "closing a connection that sent no handshake in time");
            return false;
        }
    };
    if peeked < head.len() || !matches!(head, [0x16, 0x03, 0x01..=0x04]) {
        return true;
    }
    tracing::debug!(%peer, "TLS ClientHello on the plaintext listener; refusing");
    metrics::counter!(names::TLS_HANDSHAKE_FAILURES, "reason" => "plaintext_listener").increment(1);
    let response = OutgoingResponse::error(
        0,
        ErrorCode::MalformedRequest,
        "this listener speaks plaintext skiff, not TLS",
    );
    let mut frame = BytesMut::new();
    // A small frame into a fresh socket's empty send buffer: never blocks.
    if ServerCodec::new(usize::MAX)
        .encode(response, &mut frame)
        .is_ok()
    {
        let _ = stream.write_all(&frame).await;
    }
    // Closing with the ClientHello unread would make the kernel send a RST,
    // which may discard the error frame before the client reads it (it then
    // sees a bare "connection reset"). So: FIN after the frame, then read
    // and discard what the client still sends, until it closes, or a bound
    // in bytes or time is reached.
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < PLAINTEXT_REFUSAL_DRAIN_BYTES_MAX {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(PLAINTEXT_REFUSAL_DRAIN_TIMEOUT, drain) => {}
        () = shutdown.cancelled() => {}
    }
    false
}

/// How long a refused TLS client on the plaintext listener is given to
/// close after the error frame, before its socket is dropped anyway.
const PLAINTEXT_REFUSAL_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How many bytes from a refused TLS client are read and discarded at most.
const PLAINTEXT_REFUSAL_DRAIN_BYTES_MAX: usize = 64 * 1024;

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(key, path)?;
    let invalid = |message| TlsError::Pem {
        key,
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(pem_message(e, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(invalid("no PEM section \"CERTIFICATE\" found".to_owned()));
    }
    Ok(certs)
}

/// A PEM error as a message; "no items" says what was looked for.
fn pem_message(e: rustls_pki_types::pem::Error, wanted: &str) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("no PEM section {wanted:?} found"),
        other => other.to_string(),
    }
}
