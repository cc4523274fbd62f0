//! SASL on a Kafka connection: SaslHandshake (v0-v1) and SaslAuthenticate
//! (v0-v2) with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, over skiff's users
//! and tokens. The connection answers them itself (they fix its session),
//! before dispatch; see `api.rs`'s table.
//!
//! The checks are a native handshake's (`server/handshake.rs`): a PLAIN
//! password is one argon2 run under the broker-wide permits and the
//! per-address failed-login throttle; a PLAIN password in a token's form
//! (`skt_...`) is checked as that token and must belong to the user named;
//! SCRAM is refused unchecked from a throttled address and its failures
//! count against it. The session signed in is a native one, so every Kafka
//! handler authorizes through the same checks (`server/authorize.rs`).
//!
//! Kafka's semantics, which clients rely on:
//! - a v1 handshake carries the tokens in SaslAuthenticate requests; a v0
//!   handshake (old clients) carries them as bare size-prefixed frames,
//!   answered the same way (PLAIN's success is an empty frame);
//! - a failed login is answered with SASL_AUTHENTICATION_FAILED and its
//!   message (v1 framing; a bare-token failure gets no answer, as in
//!   Kafka), then the connection closes; so does an unsupported mechanism
//!   (UNSUPPORTED_SASL_MECHANISM, with the mechanisms served);
//! - until the exchange is done only ApiVersions and the SASL requests are
//!   served when authentication is on, and mid-exchange only the next
//!   SaslAuthenticate: anything else closes the connection (see
//!   [`SaslState::admits`]);
//! - after it, another SaslHandshake or SaslAuthenticate gets
//!   ILLEGAL_SASL_STATE and the connection stays (no re-authentication).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use skiff_protocol::ErrorCode;
use tokio::time::Instant;

use super::api::decode;
use super::errors;
use super::handlers::kstr;
use super::header;
use crate::auth::{ScramLogin, ScramMechanism, parse_plain};
use crate::server::Shared;
use crate::server::authorize::Session;
use crate::server::failure::Failure;
use crate::server::handshake::{authenticate, note_failed_login, throttled};

/// The mechanisms served, in the order SaslHandshake lists them.
pub(crate) const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A served mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }
}

/// How the SASL tokens travel, fixed by the handshake's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// v1: in SaslAuthenticate requests and responses.
    Kafka,
    /// v0: as bare size-prefixed frames, without a request header.
    Raw,
}

/// Where a connection is in its SASL exchange.
#[derive(Debug, Default)]
pub(crate) enum SaslState {
    /// No handshake yet.
    #[default]
    Start,
    /// A mechanism chosen; its first token is next.
    Chosen {
        mechanism: Mechanism,
        framing: Framing,
    },
    /// A SCRAM login between the client's first and final messages (boxed:
    /// the exchange's state is large, and rare next to `Done`).
    Scram {
        login: Box<ScramLogin>,
        framing: Framing,
    },
    /// Signed in.
    Done,
}

impl SaslState {
    /// Whether the next frame is a bare SASL token (after a v0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(
            self,
            SaslState::Chosen {
                framing: Framing::Raw,
                ..
            } | SaslState::Scram {
                framing: Framing::Raw,
                ..
            }
        )
    }

    /// Whether the connection has signed in.
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self, SaslState::Done)
    }

    /// Whether a request of `api` may be served now; if not, the connection
    /// closes, as Kafka closes it ("unexpected request during SASL
    /// handshake"). `auth_on`: the broker has users.
    pub(crate) fn admits(&self, api: ApiKey, auth_on: bool) -> bool {
        match self {
            SaslState::Start => {
                !auth_on
                    || matches!(
                        api,
                        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
                    )
            }
            SaslState::Chosen { .. } | SaslState::Scram { .. } => api == ApiKey::SaslAuthenticate,
            SaslState::Done => true,
        }
    }
}

/// Who is signing in: what the checks and their log lines need.
pub(crate) struct Peer<'a> {
    pub shared: &'a Arc<Shared>,
    pub addr: SocketAddr,
    /// When the login must be done by (the connection's handshake
    /// deadline): a PLAIN check waits for a permit at most until then.
    pub deadline: Instant,
}

/// What answering one SASL request or token ends with.
#[derive(Debug)]
pub(crate) struct Step {
    /// The answer to queue (`None`: close without one).
    pub frame: Option<Bytes>,
    /// The session signed in, when this step finished the login.
    pub session: Option<Session>,
    /// Close the connection after the answer.
    pub close: bool,
}

/// A refused login: the Kafka error code and the message for the client.
struct Refusal {
    code: i16,
    message: String,
}

impl Refusal {
    fn failed(failure: Failure) -> Refusal {
        Refusal {
            code: errors::SASL_AUTHENTICATION_FAILED,
            message: failure.message,
        }
    }
}

/// One token answered: the reply token and, when done, the session.
struct Exchanged {
    reply: Bytes,
    session: Option<Session>,
}

/// Answers a SaslHandshake or SaslAuthenticate request. An error is the
/// reason to close the connection unanswered (malformed request, or an
/// answer that cannot be encoded).
pub(crate) async fn answer(
    state: &mut SaslState,
    request: header::Request,
    peer: &Peer<'_>,
) -> Result<Step, String> {
    let api = request.api;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let encode = |body: &dyn EncodeAt| body.encode_at(api, correlation_id, version);
    match api {
        ApiKey::SaslHandshake => {
            let req: SaslHandshakeRequest = decode(&request)?;
            let (code, close) = handshake(state, req.mechanism.as_str(), version, peer.addr);
            let body = SaslHandshakeResponse::default()
                .with_error_code(code)
                .with_mechanisms(MECHANISMS.iter().map(|m| kstr(*m)).collect());
            Ok(Step {
                frame: Some(encode(&body)?),
                session: None,
                close,
            })
        }
        ApiKey::SaslAuthenticate => {
            let req: SaslAuthenticateRequest = decode(&request)?;
            let client_id = request
                .header
                .client_id
                .as_ref()
                .map_or("", |id| id.as_str());
            let (body, session, close) = match state {
                SaslState::Chosen {
                    framing: Framing::Kafka,
                    ..
                }
                | SaslState::Scram {
                    framing: Framing::Kafka,
                    ..
                } => match exchange(state, &req.auth_bytes, peer, client_id).await {
                    Ok(done) => (
                        SaslAuthenticateResponse::default().with_auth_bytes(done.reply),
                        done.session,
                        false,
                    ),
                    Err(refusal) => (
                        SaslAuthenticateResponse::default()
                            .with_error_code(refusal.code)
                            .with_error_message(Some(kstr(refusal.message))),
                        None,
                        true,
                    ),
                },
                SaslState::Done => (
                    illegal_state(
                        "SaslAuthenticate after a successful authentication (re-authentication is not served)",
                    ),
                    None,
                    false,
                ),
                _ => (
                    illegal_state("SaslAuthenticate before a SaslHandshake chose a mechanism"),
                    None,
                    true,
                ),
            };
            Ok(Step {
                frame: Some(encode(&body)?),
                session,
                close,
            })
        }
        other => Err(format!("{other:?} is not a SASL request")),
    }
}

/// Answers a bare SASL token (after a v0 handshake): the reply token as a
/// bare frame, or, when refused, no answer and a close (as Kafka does).
pub(crate) async fn answer_raw(state: &mut SaslState, token: Bytes, peer: &Peer<'_>) -> Step {
    match exchange(state, &token, peer, "").await {
        Ok(done) => Step {
            frame: Some(done.reply),
            session: done.session,
            close: false,
        },
        Err(refusal) => {
            tracing::debug!(peer = %peer.addr, code = refusal.code, message = %refusal.message, "kafka SASL (v0 framing) refused; closing the connection");
            Step {
                frame: None,
                session: None,
                close: true,
            }
        }
    }
}

/// A SaslHandshake: chooses the mechanism. Returns the error code and
/// whether to close after answering.
fn handshake(state: &mut SaslState, name: &str, version: i16, addr: SocketAddr) -> (i16, bool) {
    match state {
        SaslState::Start => match Mechanism::from_name(name) {
            Some(mechanism) => {
                let framing = if version == 0 {
                    Framing::Raw
                } else {
                    Framing::Kafka
                };
                *state = SaslState::Chosen { mechanism, framing };
                (errors::NONE, false)
            }
            None => {
                tracing::debug!(%addr, mechanism = %name.escape_debug(), "kafka SASL mechanism not served; closing the connection");
                (errors::UNSUPPORTED_SASL_MECHANISM, true)
            }
        },
        // Signed in: Kafka answers this and keeps the connection.
        SaslState::Done => (errors::ILLEGAL_SASL_STATE, false),
        // Mid-exchange (not admitted, so not reached): refused all the same.
        _ => (errors::ILLEGAL_SASL_STATE, true),
    }
}

fn illegal_state(message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(errors::ILLEGAL_SASL_STATE)
        .with_error_message(Some(kstr(message)))
}

/// Takes one client token of the chosen mechanism and moves the state on:
/// to `Done` with the session when the login is complete, to the next
/// SCRAM step otherwise. A refusal leaves the state at `Start` (the
/// connection closes).
async fn exchange(
    state: &mut SaslState,
    token: &[u8],
    peer: &Peer<'_>,
    client_id: &str,
) -> Result<Exchanged, Refusal> {
    let shared = peer.shared;
    let ip = peer.addr.ip();
    match std::mem::take(state) {
        SaslState::Chosen {
            mechanism: Mechanism::Plain,
            ..
        } => {
            let login = parse_plain(token).map_err(|e| {
                note_failed_login(peer.addr, "", client_id);
                Refusal::failed(Failure::from(e))
            })?;
            let refused = |failure: Failure| {
                note_failed_login(peer.addr, &login.user, client_id);
                Refusal::failed(failure)
            };
            let session = authenticate(shared, login.credentials.clone(), ip, peer.deadline)
                .await
                .map_err(refused)?;
            match &session {
                Session::User(p) if login.names(p) => {
                    *state = SaslState::Done;
                    Ok(Exchanged {
                        reply: Bytes::new(),
                        session: Some(session),
                    })
                }
                // A token of another user than the one named (or, with
                // authentication off, no user at all).
                _ => Err(refused(Failure::new(
                    ErrorCode::AuthenticationFailed,
                    "authentication failed: unknown user or wrong password or token",
                ))),
            }
        }
        SaslState::Chosen {
            mechanism: Mechanism::Scram(m),
            framing,
        } => {
            let refused = |failure: Failure| {
                note_failed_login(peer.addr, "", client_id);
                Refusal::failed(failure)
            };
            throttled(shared, ip).map_err(refused)?;
            match shared.security.scram_start(m, token) {
                Ok((login, server_first)) => {
                    *state = SaslState::Scram {
                        login: Box::new(login),
                        framing,
                    };
                    Ok(Exchanged {
                        reply: Bytes::from(server_first),
                        session: None,
                    })
                }
                Err(e) => {
                    shared
                        .login_throttle
                        .record_failure(ip, std::time::Instant::now());
                    Err(refused(Failure::from(e)))
                }
            }
        }
        SaslState::Scram { login, .. } => {
            let user = login.user().to_owned();
            match shared.security.scram_finish(*login, token) {
                Ok((principal, server_final)) => {
                    *state = SaslState::Done;
                    Ok(Exchanged {
                        reply: Bytes::from(server_final),
                        session: Some(Session::User(Arc::new(principal))),
                    })
                }
                Err(e) => {
                    shared
                        .login_throttle
                        .record_failure(ip, std::time::Instant::now());
                    note_failed_login(peer.addr, &user, client_id);
                    Err(Refusal::failed(Failure::from(e)))
                }
            }
        }
        other => {
            *state = other;
            Err(Refusal {
                code: errors::ILLEGAL_SASL_STATE,
                message: "no SASL exchange in progress".into(),
            })
        }
    }
}

/// A response body encoded with its header (the SASL responses differ in
/// type; one closure encodes either).
trait EncodeAt {
    fn encode_at(&self, api: ApiKey, correlation_id: i32, version: i16) -> Result<Bytes, String>;
}

impl<T: kafka_protocol::protocol::Encodable> EncodeAt for T {
    fn encode_at(&self, api: ApiKey, correlation_id: i32, version: i16) -> Result<Bytes, String> {
        header::encode_response(api, correlation_id, version, self)
            .map_err(|e| format!("cannot encode the {api:?} answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_listed_are_the_ones_served() {
        for name in MECHANISMS {
            assert!(Mechanism::from_name(name).is_some(), "{name}");
        }
        assert_eq!(Mechanism::from_name("GSSAPI"), None);
        assert_eq!(Mechanism::from_name("plain"), None);
    }

    #[test]
    fn until_signed_in_only_sasl_and_api_versions_are_admitted() {
        let start = SaslState::Start;
        assert!(start.admits(ApiKey::ApiVersions, true));
        assert!(start.admits(ApiKey::SaslHandshake, true));
        assert!(!start.admits(ApiKey::Metadata, true));
        assert!(start.admits(ApiKey::Metadata, false), "auth off");
        let chosen = SaslState::Chosen {
            mechanism: Mechanism::Plain,
            framing: Framing::Kafka,
        };
        assert!(chosen.admits(ApiKey::SaslAuthenticate, false));
        assert!(!chosen.admits(ApiKey::Metadata, false));
        assert!(!chosen.admits(ApiKey::SaslHandshake, true));
        assert!(!chosen.expects_raw_token());
        let raw = SaslState::Chosen {
            mechanism: Mechanism::Plain,
            framing: Framing::Raw,
        };
        assert!(raw.expects_raw_token());
        assert!(SaslState::Done.admits(ApiKey::Produce, true));
        assert!(SaslState::Done.authenticated());
    }

    #[test]
    fn a_handshake_chooses_once() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut s = SaslState::Start;
        assert_eq!(
            handshake(&mut s, "GSSAPI", 1, addr),
            (errors::UNSUPPORTED_SASL_MECHANISM, true)
        );
        assert!(matches!(s, SaslState::Start));
        assert_eq!(
            handshake(&mut s, "SCRAM-SHA-512", 0, addr),
            (errors::NONE, false)
        );
        assert!(s.expects_raw_token());
        let mut done = SaslState::Done;
        assert_eq!(
            handshake(&mut done, "PLAIN", 1, addr),
            (errors::ILLEGAL_SASL_STATE, false)
        );
        assert!(done.authenticated());
    }
}
