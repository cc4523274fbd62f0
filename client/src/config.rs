//! Connection settings shared by [`crate::Admin`], [`crate::Producer`] and
//! [`crate::Consumer`], and the reconnect backoff.
//!
//! Every limit is named with its unit last and has a default chosen for a
//! service on the same network as its broker.

use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use skiff_protocol::FRAME_BYTES_MAX_DEFAULT;
use skiff_protocol::Secret;
use skiff_protocol::messages::Credentials;

/// Default broker address.
pub const BROKER_DEFAULT: &str = "127.0.0.1:9400";
/// Default TCP connect + handshake limit: 10 s. Long enough for a loaded
/// broker to accept, short enough that a dead address fails visibly.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default limit on one request's round trip: 30 s. A produce waits for the
/// broker's fsync; a fetch adds its own `max_wait_ms` on top of this.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Headroom above the protocol's default frame maximum for response frames:
/// a fetch of `fetch_bytes_max` may exceed its cap by one whole batch.
pub const RESPONSE_FRAME_HEADROOM_BYTES: usize = 1024 * 1024;
/// First reconnect delay: 50 ms.
pub const RECONNECT_BACKOFF_INITIAL_MS_DEFAULT: u64 = 50;
/// Largest reconnect delay: 5 s.
pub const RECONNECT_BACKOFF_MAX_MS_DEFAULT: u64 = 5_000;
/// Connect attempts per request before its error is returned: 6 attempts
/// span about 0.05+0.1+0.2+0.4+0.8 s ≈ 1.5 s of backoff.
pub const RECONNECT_ATTEMPTS_MAX_DEFAULT: u32 = 6;

const _: () = assert!(RECONNECT_BACKOFF_INITIAL_MS_DEFAULT <= RECONNECT_BACKOFF_MAX_MS_DEFAULT);
const _: () = assert!(RECONNECT_ATTEMPTS_MAX_DEFAULT >= 1);

/// How to reach the broker and the limits on each connection.
///
/// ```
/// use skiff_client::ClientConfig;
///
/// let config = ClientConfig::new("10.0.0.5:9400")
///     .client_id("billing")
///     .request_timeout_ms(5_000);
/// assert_eq!(config.broker, "10.0.0.5:9400");
///
/// // TLS: the broker's certificate must chain to ca.pem.
/// let tls = ClientConfig::new("skiffs://broker.internal:9400").tls_ca_file("ca.pem");
/// assert!(tls.tls_ca_file.is_some());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Broker address: `host:port` (plaintext, or TLS when `tls_ca_file` is
    /// set), `skiff://host:port` (always plaintext: a `tls_ca_file` with it
    /// is an error), or `skiffs://host:port` (TLS, needs `tls_ca_file`).
    pub broker: String,
    /// Name sent in the handshake, shown in broker logs.
    pub client_id: String,
    /// Limit on TCP connect plus handshakes (TLS, then skiff), in
    /// milliseconds.
    pub connect_timeout_ms: u64,
    /// Limit on one request's round trip, in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest response frame accepted, in bytes.
    pub frame_bytes_max: usize,
    /// First delay between reconnect attempts, in milliseconds.
    pub reconnect_backoff_initial_ms: u64,
    /// Largest delay between reconnect attempts, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// Connect attempts for one request before it fails.
    pub reconnect_attempts_max: u32,
    /// PEM file with the CA certificates the broker's certificate must chain
    /// to. Set: connections to a plain `host:port` use TLS; needed for
    /// `skiffs://` (no system roots are trusted); refused with `skiff://`.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file with this client's certificate chain, for brokers that
    /// require client certificates (mutual TLS). Needs `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Name the broker's certificate must carry; unset: the address's host.
    /// For brokers reached by an address their certificate does not name.
    /// Needs `tls_ca_file` (without TLS it is refused, not ignored).
    pub tls_server_name: Option<String>,
    /// Sent in every handshake; `Credentials::None` for a broker without
    /// users. Its `Debug` output redacts the password or token.
    pub credentials: Credentials,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            broker: BROKER_DEFAULT.to_owned(),
            client_id: "skiff-client".to_owned(),
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT + RESPONSE_FRAME_HEADROOM_BYTES,
            reconnect_backoff_initial_ms: RECONNECT_BACKOFF_INITIAL_MS_DEFAULT,
            reconnect_backoff_max_ms: RECONNECT_BACKOFF_MAX_MS_DEFAULT,
            reconnect_attempts_max: RECONNECT_ATTEMPTS_MAX_DEFAULT,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_server_name: None,
            credentials: Credentials::None,
        }
    }
}

impl ClientConfig {
    /// Defaults, talking to `broker` (`host:port`).
    pub fn new(broker: impl Into<String>) -> Self {
        ClientConfig {
            broker: broker.into(),
            ..ClientConfig::default()
        }
    }

    /// Sets the client id sent in the handshake.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets the connect (+ handshake) timeout, in milliseconds.
    pub fn connect_timeout_ms(mut self, ms: u64) -> Self {
        self.connect_timeout_ms = ms;
        self
    }

    /// Sets the per-request timeout, in milliseconds.
    pub fn request_timeout_ms(mut self, ms: u64) -> Self {
        self.request_timeout_ms = ms;
        self
    }

    /// Sets the largest response frame accepted, in bytes.
    pub fn frame_bytes_max(mut self, bytes: usize) -> Self {
        self.frame_bytes_max = bytes;
        self
    }

    /// Sets the reconnect backoff: first and largest delay, in milliseconds,
    /// and the attempts per request.
    pub fn reconnect_backoff(mut self, initial_ms: u64, max_ms: u64, attempts_max: u32) -> Self {
        self.reconnect_backoff_initial_ms = initial_ms;
        self.reconnect_backoff_max_ms = max_ms.max(initial_ms);
        self.reconnect_attempts_max = attempts_max.max(1);
        self
    }

    /// Connects with TLS, verifying the broker's certificate against the CA
    /// certificates in `path` (PEM).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Presents this certificate chain and key (PEM files) to brokers that
    /// require client certificates (mutual TLS).
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_cert_file = Some(cert.into());
        self.tls_key_file = Some(key.into());
        self
    }

    /// Verifies the broker's certificate for `name` instead of the
    /// address's host (e.g. when connecting by IP address).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls_server_name = Some(name.into());
        self
    }

    /// Authenticates as `user` with `password`.
    pub fn password(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.credentials = Credentials::Password {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// Authenticates with an API token (it names its user).
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.credentials = Credentials::Token {
            token: token.into(),
        };
        self
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            self.reconnect_backoff_initial_ms,
            self.reconnect_backoff_max_ms,
        )
    }
}

/// Exponential backoff with "equal jitter": the n-th delay is drawn from
/// `[d/2, d]` where `d = min(max, initial * 2^n)`, so many clients that lost
/// the same broker do not reconnect in lockstep, yet none waits longer than
/// `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial_ms: u64, max_ms: u64) -> Self {
        Backoff {
            initial_ms,
            max_ms: max_ms.max(initial_ms),
            attempt: 0,
        }
    }

    /// The ceiling of the next delay, before jitter.
    fn ceiling_ms(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt.min(32)).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// The next delay; each call doubles the ceiling up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let floor = ceiling / 2;
        let ms = if ceiling > floor {
            rand::thread_rng().gen_range(floor..=ceiling)
        } else {
            ceiling
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_credentials() {
        let c = ClientConfig::default().password("alice", "hunter2");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let c = ClientConfig::default().token("skt_0123");
        assert!(!format!("{c:?}").contains("skt_0123"));
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let mut b = Backoff::new(50, 1_000);
        let mut ceilings = Vec::new();
        for _ in 0..40 {
            let ceiling = b.ceiling_ms();
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d} outside [{}, {ceiling}]",
                ceiling / 2
            );
            assert!(d <= 1_000);
            ceilings.push(ceiling);
        }
        assert_eq!(&ceilings[..6], &[50, 100, 200, 400, 800, 1_000]);
        assert!(ceilings.iter().all(|&c| c <= 1_000));
    }

    #[test]
    fn backoff_survives_extreme_settings() {
        let mut b = Backoff::new(u64::MAX, 0);
        for _ in 0..100 {
            let d = b.next_delay().as_millis();
            assert!(d >= u128::from(u64::MAX / 2) && d <= u128::from(u64::MAX));
        }
        let mut z = Backoff::new(0, 0);
        assert_eq!(z.next_delay(), Duration::ZERO);
    }
}
