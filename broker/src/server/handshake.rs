//! The handshake: the first request on every connection. Checks the
//! protocol version and the credentials (a password check is bounded
//! broker-wide and per client address), and fixes the connection's
//! [`Session`]. Names a client claims are logged only short and escaped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use skiff_protocol::ErrorCode;
use skiff_protocol::frame::RequestFrame;
use skiff_protocol::messages::{ApiKey, Credentials, HandshakeRequest, HandshakeResponse};
use skiff_protocol::primitives::decode_body;
use tokio::time::Instant;

use super::Shared;
use super::authorize::Session;
use super::dispatch::check_version;
use super::failure::Failure;
use super::handlers::blocking;

/// How long past `handshake_timeout_ms` a password check that started in
/// time may run before the connection is closed unanswered (one argon2 run
/// takes tens of milliseconds).
pub(crate) const HANDSHAKE_ANSWER_GRACE: Duration = Duration::from_secs(1);

/// Checks the handshake and its credentials; returns the response and the
/// connection's session.
pub(crate) async fn handshake(
    shared: &Arc<Shared>,
    frame: &RequestFrame,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<(HandshakeResponse, Session), Failure> {
    if frame.api_key != ApiKey::Handshake as u16 {
        return Err(Failure::new(
            ErrorCode::HandshakeRequired,
            format!(
                "the first request on a connection must be a handshake (api key 0), got api key {}",
                frame.api_key
            ),
        ));
    }
    check_version::<HandshakeRequest>(frame)?;
    // The version comes first in every handshake version: read it before
    // the rest, so a client of another version is told so, not "malformed".
    let version = frame
        .body
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    if let Some(version) = version.filter(|v| *v != skiff_protocol::PROTOCOL_VERSION) {
        return Err(Failure::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {version} is not supported; this broker speaks {}",
                skiff_protocol::PROTOCOL_VERSION
            ),
        ));
    }
    let req: HandshakeRequest = decode_body(frame.body.clone())?;
    let credentials = req.credentials;
    let claimed = match &credentials {
        Credentials::Password { user, .. } => user.clone(),
        _ => String::new(),
    };
    // A password check waits for one of the broker-wide permits, at most
    // until the handshake's deadline.
    let authenticated = authenticate(shared, credentials, peer.ip(), deadline).await;
    let session = match authenticated {
        Ok(session) => session,
        Err(failure) => {
            if failure.code == ErrorCode::AuthenticationFailed {
                note_failed_login(peer, &claimed, &req.client_id);
            }
            return Err(failure);
        }
    };
    Ok((
        HandshakeResponse {
            protocol_version: skiff_protocol::PROTOCOL_VERSION,
            broker_version: env!("CARGO_PKG_VERSION").to_owned(),
            user: session.user().to_owned(),
        },
        session,
    ))
}

/// Counts and logs a failed login (of either front end). Both names are
/// the client's claims: logged only in a short, escaped form, so they
/// cannot forge log lines or flood logs.
pub(crate) fn note_failed_login(peer: SocketAddr, claimed_user: &str, client_id: &str) {
    metrics::counter!(crate::telemetry::names::AUTH_FAILURES).increment(1);
    tracing::warn!(%peer, user = %loggable_user(claimed_user), client_id = %loggable_claim(client_id), "authentication failed");
}

/// Characters of a client-claimed name kept in a log line.
const LOGGED_CLAIM_CHARS_MAX: usize = 64;

/// A user name claimed in a failed login, fit for a log line: as-is when it
/// is a valid user name, else [`loggable_claim`].
fn loggable_user(claimed: &str) -> String {
    if crate::auth::validate_user_name(claimed).is_ok() {
        claimed.to_owned()
    } else {
        loggable_claim(claimed)
    }
}

/// Any client-claimed string fit for a log line: escaped (no newlines or
/// control characters), quoted, and cut to [`LOGGED_CLAIM_CHARS_MAX`]
/// characters, noting the full length when cut.
fn loggable_claim(claimed: &str) -> String {
    let kept: String = claimed.chars().take(LOGGED_CLAIM_CHARS_MAX).collect();
    if kept.len() == claimed.len() {
        format!("{kept:?}")
    } else {
        format!("{kept:?}... ({} bytes)", claimed.len())
    }
}

/// Checks a handshake's credentials; returns the session. A password check
/// (one argon2 run, about 19 MiB) first takes one of the broker-wide
/// `auth_checks_concurrent_max` permits, waiting at most until `deadline`
/// (the handshake's): so password guessing over many connections cannot
/// fill the blocking pool (which produces, fetches and commits share) nor
/// take more than that many times an argon2 run's memory. A password from
/// an address that has used up its failed logins
/// (`auth_failures_per_address_max`) is refused unchecked, tested again once
/// the permit is held (so logins sent at once cannot all pass while none
/// has failed yet); each failed password check counts against `peer`.
/// Tokens are not counted: 256 random bits cannot be guessed, and a cheap
/// check must not let anyone flood the table.
pub(crate) async fn authenticate(
    shared: &Arc<Shared>,
    credentials: Credentials,
    peer: IpAddr,
    deadline: Instant,
) -> Result<Session, Failure> {
    let principal = match credentials {
        Credentials::Password { .. } => {
            throttled(shared, peer)?;
            let checks = Arc::clone(&shared.auth_checks);
            let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, checks.acquire_owned()).await
            else {
                metrics::counter!(crate::telemetry::names::AUTH_CHECKS_BUSY).increment(1);
                return Err(Failure::new(
                    ErrorCode::AuthenticationFailed,
                    "authentication failed: too many logins in progress; try again later",
                ));
            };
            throttled(shared, peer)?;
            let checker = Arc::clone(shared);
            // Counted in the check's own task: a handshake whose deadline
            // drops this future still counts its failure.
            blocking(move || {
                let out = checker.security.authenticate(&credentials);
                drop(permit);
                let out = out.map_err(Failure::from);
                if let Err(failure) = &out
                    && failure.code == ErrorCode::AuthenticationFailed
                {
                    checker
                        .login_throttle
                        .record_failure(peer, std::time::Instant::now());
                }
                out
            })
            .await?
        }
        // No credentials or a token: a map lookup, checked in place.
        other => shared.security.authenticate(&other)?,
    };
    Ok(match principal {
        Some(p) => Session::User(Arc::new(p)),
        None => Session::Anonymous,
    })
}

/// Refuses a password login from an address that has used up its failed
/// logins (`auth_failures_per_address_max`).
pub(crate) fn throttled(shared: &Shared, peer: IpAddr) -> Result<(), Failure> {
    let Err(retry_after) = shared.login_throttle.check(peer, std::time::Instant::now()) else {
        return Ok(());
    };
    metrics::counter!(crate::telemetry::names::AUTH_THROTTLED).increment(1);
    Err(Failure::new(
        ErrorCode::AuthenticationFailed,
        format!(
            "authentication failed: too many failed logins from this address; try again in {} s",
            retry_after.as_millis().div_ceil(1000)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_names_are_logged_short_and_escaped() {
        assert_eq!(loggable_user("alice@example.com"), "alice@example.com");
        let forged = "x\n2026-01-01 WARN admin logged in";
        let logged = loggable_user(forged);
        assert!(!logged.contains('\n'), "{logged}");
        assert!(logged.starts_with("\"x\\n"), "{logged}");
        let huge = "p".repeat(64 * 1024);
        let logged = loggable_claim(&huge);
        assert!(logged.len() < 100, "{logged}");
        assert!(logged.ends_with("(65536 bytes)"), "{logged}");
        assert_eq!(loggable_claim("cli"), "\"cli\"");
    }
}
