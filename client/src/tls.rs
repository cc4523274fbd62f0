//! TLS to the broker: which addresses mean TLS, the rustls client settings
//! read from PEM files, and TLS failures put into words.
//!
//! A connection uses TLS when the address is `skiffs://host:port`, or a
//! plain `host:port` with a CA file configured (`tls_ca_file`); a plain
//! `host:port` without one is plaintext. `skiff://host:port` is always
//! plaintext: with a CA file it is an error, so a TLS setting is never
//! silently dropped nor a plaintext address silently upgraded. The broker's
//! certificate is verified against that CA file only: this client trusts no
//! system roots (skiff brokers usually run with a private CA, and many hosts
//! have no trust store), so `skiffs://` without a CA file is an error that
//! says so. The name checked against the certificate is the address's host
//! unless `tls_server_name` overrides it.
//!
//! Invariants:
//! - TLS settings that a plaintext connection would ignore (a client
//!   certificate or `tls_server_name` without a CA file) are
//!   [`Error::TlsConfig`], checked before connecting.
//! - The PEM files are read on every connect, so a reconnect picks up a
//!   renewed certificate; they are read on the blocking pool
//!   ([`TlsConnector::load_in_background`]), within the connect timeout,
//!   never on a runtime thread. A missing or invalid file is
//!   [`Error::TlsConfig`] naming the setting and the file.
//! - Certificate and protocol failures are [`Error::Tls`], which is not a
//!   connection error: reconnecting would fail the same way, so
//!   [`crate::Client`] does not retry it.
//! - The crypto provider (ring) is passed explicitly, so nothing depends on
//!   a process-wide default provider.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skiff_protocol::frame::FrameError;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// Scheme of a plaintext broker address (the default without a scheme).
pub const SCHEME_PLAIN: &str = "skiff://";
/// Scheme of a TLS broker address.
pub const SCHEME_TLS: &str = "skiffs://";

/// A broker address split into what the socket and TLS need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerAddress<'a> {
    /// `host:port`, for the socket and error messages.
    pub host_port: &'a str,
    /// The host alone (IPv6 without brackets), the default TLS server name.
    pub host: &'a str,
    /// The address said `skiffs://`.
    pub tls_scheme: bool,
    /// The address said `skiff://` (explicitly plaintext).
    pub plain_scheme: bool,
}

impl<'a> BrokerAddress<'a> {
    /// Parses `host:port`, `skiff://host:port` or `skiffs://host:port`.
    pub(crate) fn parse(broker: &'a str) -> Result<BrokerAddress<'a>> {
        let (host_port, tls_scheme, plain_scheme) = if let Some(rest) =
            broker.strip_prefix(SCHEME_TLS)
        {
            (rest, true, false)
        } else if let Some(rest) = broker.strip_prefix(SCHEME_PLAIN) {
            (rest, false, true)
        } else if broker.contains("://") {
            return Err(Error::InvalidArgument(format!(
                "broker address {broker:?}: unknown scheme (use host:port, {SCHEME_PLAIN}host:port or {SCHEME_TLS}host:port)"
            )));
        } else {
            (broker, false, false)
        };
        let host = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "broker address {broker:?}: expected host:port"
                )));
            }
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(BrokerAddress {
            host_port,
            host,
            tls_scheme,
            plain_scheme,
        })
    }
}

/// What a TLS connection needs: the rustls connector and the name the
/// broker's certificate must carry.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl TlsConnector {
    /// The TLS settings for `address`, or `None` for a plaintext
    /// connection. Reads the PEM files named in `config` (blocking).
    #[cfg(test)]
    pub(crate) fn for_address(
        config: &ClientConfig,
        address: &BrokerAddress<'_>,
    ) -> Result<Option<TlsConnector>> {
        if !TlsConnector::wanted(config, address)? {
            return Ok(None);
        }
        TlsConnector::load(config, address).map(Some)
    }

    /// Whether a connection to `address` uses TLS, without touching a file;
    /// an error when the TLS settings contradict the address or would be
    /// silently ignored.
    pub(crate) fn wanted(config: &ClientConfig, address: &BrokerAddress<'_>) -> Result<bool> {
        if config.tls_ca_file.is_some() {
            if address.plain_scheme {
                return Err(tls_config(format!(
                    "{SCHEME_PLAIN} is plaintext; use {SCHEME_TLS} with a CA file ({SCHEME_TLS}{hp}), or no CA file for plaintext ({hp})",
                    hp = address.host_port
                )));
            }
            return Ok(true);
        }
        if address.tls_scheme {
            return Err(tls_config(format!(
                "{SCHEME_TLS}{} needs a CA file to verify the broker (ClientConfig::tls_ca_file, skiff --tls-ca): this client trusts no system roots",
                address.host_port
            )));
        }
        if config.tls_cert_file.is_some() || config.tls_key_file.is_some() {
            return Err(tls_config(
                "a client certificate is only sent over TLS: also set tls_ca_file, or use a skiffs:// address".to_owned(),
            ));
        }
        if config.tls_server_name.is_some() {
            return Err(tls_config(
                "tls_server_name is only checked over TLS: also set tls_ca_file (skiff --tls-ca), or drop tls_server_name for plaintext".to_owned(),
            ));
        }
        Ok(false)
    }

    /// [`TlsConnector::load`] for `config.broker` on the blocking pool, so
    /// the file reads never stall a runtime thread.
    pub(crate) async fn load_in_background(config: &ClientConfig) -> Result<TlsConnector> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let address = BrokerAddress::parse(&config.broker)?;
            TlsConnector::load(&config, &address)
        })
        .await
        .map_err(|e| tls_config(format!("loading the TLS files failed: {e}")))?
    }

    /// Reads the PEM files named in `config` (blocking) and builds the
    /// rustls settings for `address`. Expects [`TlsConnector::wanted`].
    fn load(config: &ClientConfig, address: &BrokerAddress<'_>) -> Result<TlsConnector> {
        let Some(ca_file) = &config.tls_ca_file else {
            return Err(tls_config(
                "TLS needs a CA file (ClientConfig::tls_ca_file, skiff --tls-ca)".to_owned(),
            ));
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs("tls_ca_file", ca_file)? {
            roots.add(cert).map_err(|e| {
                tls_config(format!("cannot use tls_ca_file {}: {e}", ca_file.display()))
            })?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_config(e.to_string()))?
            .with_root_certificates(roots);
        let settings = match (&config.tls_cert_file, &config.tls_key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert_file), Some(key_file)) => {
                let certs = read_certs("tls_cert_file", cert_file)?;
                let key = read_key(key_file)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    tls_config(format!(
                        "cannot use tls_key_file {} with tls_cert_file {}: {e}",
                        key_file.display(),
                        cert_file.display()
                    ))
                })?
            }
            (Some(_), None) => return Err(tls_config("tls_cert_file needs tls_key_file".into())),
            (None, Some(_)) => return Err(tls_config("tls_key_file needs tls_cert_file".into())),
        };
        let name = config.tls_server_name.as_deref().unwrap_or(address.host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
            tls_config(format!(
                "{name:?} is not a valid TLS server name ({e}); set tls_server_name"
            ))
        })?;
        Ok(TlsConnector {
            connector: tokio_rustls::TlsConnector::from(Arc::new(settings)),
            server_name,
        })
    }

    /// Runs the client side of the handshake on a connected socket.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        broker: &str,
    ) -> Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|e| match rustls_error(&e) {
                Some(tls) => Error::Tls {
                    broker: broker.to_owned(),
                    reason: describe(tls),
                },
                // A reset or EOF mid-handshake may be a restarting broker:
                // a connection error, retried.
                None => Error::Io {
                    broker: broker.to_owned(),
                    error: Arc::new(e),
                },
            })
    }
}

/// The TLS failure behind a broken connection, in words, if it was one:
/// a rustls error (e.g. the broker refusing this client's certificate,
/// which TLS 1.3 reports only after the client's side of the handshake), or
/// a TLS record arriving on a plaintext connection. `buffered` is what the
/// reader held, undecoded, when it failed.
pub(crate) fn failure_reason(e: &FrameError, tls: bool, buffered: &[u8]) -> Option<TlsFailure> {
    match e {
        FrameError::Io(io) if tls => rustls_error(io).map(|e| TlsFailure::Refused(describe(e))),
        // A TLS record starts with its type, 0x15 (alert) or 0x16
        // (handshake), then the major version 3. Read as a skiff length
        // prefix (little-endian) these two bytes announce a frame of at
        // least 0x0315 = 789 bytes (66 KB or more with the minor version
        // 1 to 4 that follows in a real record). Only bytes the reader held
        // undecoded when the connection failed are checked, so a skiff
        // frame matches only if it was cut off mid-way.
        _ if !tls && matches!(buffered, [0x15 | 0x16, 0x03, ..]) => {
            Some(TlsFailure::BrokerSpeaksTls)
        }
        _ => None,
    }
}

/// A TLS failure noticed by the reader of an open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The TLS session failed (an alert from the broker, a bad record).
    Refused(String),
    /// A plaintext connection received TLS records.
    BrokerSpeaksTls,
}

impl TlsFailure {
    /// The error for a connect that failed this way.
    pub(crate) fn into_error(self, broker: &str) -> Error {
        match self {
            TlsFailure::Refused(reason) => Error::Tls {
                broker: broker.to_owned(),
                reason,
            },
            TlsFailure::BrokerSpeaksTls => Error::TlsRequired {
                broker: broker.to_owned(),
            },
        }
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// rustls' message, with a hint when the broker does not speak TLS at all.
fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidMessage(_) => {
            format!("{e} (is the broker's listener plaintext? then connect without TLS)")
        }
        _ => e.to_string(),
    }
}

fn tls_config(reason: String) -> Error {
    Error::TlsConfig { reason }
}

fn read_file(setting: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| tls_config(format!("cannot read {setting} {}: {e}", path.display())))
}

/// Every certificate in a PEM file; at least one.
fn read_certs(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_config(format!("invalid {setting} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_config(format!(
            "invalid {setting} {}: no PEM section \"CERTIFICATE\" found",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file("tls_key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let reason = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PEM section \"PRIVATE KEY\" found".to_owned()
            }
            other => other.to_string(),
        };
        tls_config(format!("invalid tls_key_file {}: {reason}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_a_scheme() {
        let a = BrokerAddress::parse("127.0.0.1:9400").unwrap();
        assert_eq!(
            (a.host_port, a.host, a.tls_scheme),
            ("127.0.0.1:9400", "127.0.0.1", false)
        );
        assert!(!a.plain_scheme);
        let a = BrokerAddress::parse("skiff://broker.local:9400").unwrap();
        assert_eq!(
            (a.host_port, a.host, a.tls_scheme),
            ("broker.local:9400", "broker.local", false)
        );
        assert!(a.plain_scheme);
        let a = BrokerAddress::parse("skiffs://[::1]:9400").unwrap();
        assert_eq!(
            (a.host_port, a.host, a.tls_scheme),
            ("[::1]:9400", "::1", true)
        );
        for bad in ["http://h:1", "skiffs://h", "h:port", ":9400", "skiffs://"] {
            let err = BrokerAddress::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_scheme_without_a_ca_file_says_a_ca_file_is_needed() {
        let config = ClientConfig::new("skiffs://127.0.0.1:9400");
        let address = BrokerAddress::parse(&config.broker).unwrap();
        let err = TlsConnector::for_address(&config, &address)
            .err()
            .expect("refused");
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        assert!(err.to_string().contains("CA file"), "{err}");
        let plain = ClientConfig::new("127.0.0.1:9400");
        let address = BrokerAddress::parse(&plain.broker).unwrap();
        assert!(
            TlsConnector::for_address(&plain, &address)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn tls_settings_a_plaintext_connection_would_ignore_are_refused() {
        let wanted = |config: &ClientConfig| {
            TlsConnector::wanted(config, &BrokerAddress::parse(&config.broker).unwrap())
        };
        // An explicit skiff:// stays plaintext: a CA file contradicts it.
        let err =
            wanted(&ClientConfig::new("skiff://127.0.0.1:9400").tls_ca_file("ca.pem")).unwrap_err();
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("skiff:// is plaintext; use skiffs:// with a CA file"),
            "{err}"
        );
        // A server name without a CA file would never be checked.
        let err =
            wanted(&ClientConfig::new("127.0.0.1:9400").tls_server_name("broker")).unwrap_err();
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        assert!(err.to_string().contains("tls_server_name"), "{err}");
        // So would a client certificate.
        let err = wanted(&ClientConfig::new("127.0.0.1:9400").tls_client_cert("c.pem", "k.pem"))
            .unwrap_err();
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        // A plain host:port with a CA file is TLS; without one, plaintext.
        let tls = ClientConfig::new("127.0.0.1:9400")
            .tls_ca_file("ca.pem")
            .tls_server_name("broker");
        assert!(wanted(&tls).unwrap());
        assert!(!wanted(&ClientConfig::new("skiff://127.0.0.1:9400")).unwrap());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let config = ClientConfig::new("127.0.0.1:9400").tls_ca_file("/nonexistent/ca.pem");
        let address = BrokerAddress::parse(&config.broker).unwrap();
        let err = TlsConnector::for_address(&config, &address)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("tls_ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn connect_reads_the_files_on_the_blocking_pool_and_names_a_missing_one() {
        let config = ClientConfig::new("127.0.0.1:9400")
            .tls_ca_file("/nonexistent/ca.pem")
            .connect_timeout_ms(5_000);
        let err = crate::connection::Connection::connect(&config)
            .await
            .expect_err("refused");
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn tls_records_on_a_plaintext_connection_are_recognised() {
        let eof = FrameError::Io(std::io::ErrorKind::UnexpectedEof.into());
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        assert_eq!(
            failure_reason(&eof, false, &alert),
            Some(TlsFailure::BrokerSpeaksTls)
        );
        assert_eq!(failure_reason(&eof, true, &alert), None);
        assert_eq!(failure_reason(&eof, false, &[0x15, 0x00, 0x00]), None);
        assert_eq!(failure_reason(&eof, false, &[]), None);
    }
}
