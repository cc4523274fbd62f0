//! One client connection: reads request frames, dispatches them, writes
//! responses. Generic over the byte stream's read and write halves (a TCP
//! socket's owned halves, or a TLS session's), so the plaintext path has no
//! indirection.
//!
//! Requests are pipelined: each one runs as its own task and its response is
//! written when ready, matched by correlation id, so a long-polling fetch
//! never delays a produce on the same connection. Produce requests are the
//! exception to "any order": they are queued on their logs in the order they
//! arrived (per connection), so a producer's batches for one partition keep
//! their order; their waits for durability overlap, so pipelined batches
//! share one group commit.
//!
//! Bounds: at most `requests_in_flight_max` requests run at once per
//! connection (the reader stops reading until one finishes), frames above
//! `frame_bytes_max` (`handshake_frame_bytes_max` until the handshake has
//! succeeded) are refused before they are buffered, and a connection
//! with nothing in flight that sends nothing for `idle_timeout_ms` is closed.
//! A connection must complete its handshake within `handshake_timeout_ms`
//! of being accepted, may fail authentication at most `auth_failures_max`
//! times, and must deliver every frame it starts within
//! `frame_read_timeout_ms` of its first byte (counting only time the
//! broker is reading: not while it waits for an in-flight permit, the
//! response queue or a password check); otherwise it is closed.
//! An oversized or impossibly short frame gets an error response, then the
//! connection is closed, since the byte stream can no longer be trusted; a
//! well-framed request with a malformed body only gets an error response.
//!
//! Every request after the handshake is authorized at dispatch (see
//! [`super::authorize`]) before any work is started for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use skiff_protocol::ErrorCode;
use skiff_protocol::frame::{FrameError, OutgoingResponse, RequestFrame, ServerCodec};
use skiff_protocol::messages::{
    AlterTopicRequest, ApiKey, CommitOffsetsRequest, CreateTokenRequest, CreateTopicRequest,
    Credentials, DeleteGroupRequest, DeleteTopicRequest, DeleteUserRequest, DescribeGroupRequest,
    DescribeTopicRequest, FetchOffsetsRequest, FetchRequest, GrantAclRequest, HandshakeRequest,
    HandshakeResponse, HeartbeatRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListAclsRequest, ListGroupsRequest, ListOffsetsRequest, ListTopicsRequest,
    ListUsersRequest, Operation, ProduceRequest, PutUserRequest, Request, ResetOffsetsRequest,
    ResourceKind, RevokeAclRequest, RevokeTokenRequest, StatusRequest,
};
use skiff_protocol::primitives::{Decode, Encode, decode_body};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::Shared;
use super::authorize::{self, Session};
use super::failure::Failure;
use super::frame_timing::TimedDecoder;
use super::{group_handlers, handlers, ops_handlers, security_handlers};

/// Serves one connection until the client closes it, it breaks, it idles
/// out, or the broker shuts down (in-flight requests still get answered).
/// `accepted_at` is when the socket was accepted: the handshake deadline
/// runs from then (the listener's first-bytes wait and any TLS handshake
/// count against it).
pub(crate) async fn serve<R, W>(
    rd: R,
    wr: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
    accepted_at: Instant,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    // Until the handshake succeeds only a small frame is accepted, so an
    // unauthenticated connection cannot reserve `frame_bytes_max`.
    let mut frames = FramedRead::new(
        rd,
        TimedDecoder::new(ServerCodec::new(
            config.handshake_frame_bytes_max.min(config.frame_bytes_max),
        )),
    );
    let (tx, rx) = mpsc::channel::<OutgoingResponse>(config.requests_in_flight_max);
    let writer = shared.tracker.spawn(write_responses(
        FramedWrite::new(wr, ServerCodec::new(config.frame_bytes_max)),
        rx,
    ));
    let in_flight = Arc::new(Semaphore::new(config.requests_in_flight_max));
    let idle = Duration::from_millis(config.idle_timeout_ms);
    // Produces are appended in arrival order: each waits for the previous
    // one on this connection to be stored before it appends.
    let (produce_tx, produce_rx) = mpsc::channel::<ProduceJob>(config.requests_in_flight_max);
    shared
        .tracker
        .spawn(run_produces(Arc::clone(&shared), produce_rx, tx.clone()));
    let frame_read = Duration::from_millis(config.frame_read_timeout_ms);
    // One deadline from accept for the whole handshake, its password check
    // included.
    let handshake_deadline = accepted_at + Duration::from_millis(config.handshake_timeout_ms);
    // `None` until the handshake succeeds.
    let mut session: Option<Session> = None;
    let mut auth_failures: u32 = 0;
    let mut last_read = Instant::now();

    loop {
        // Reading resumes: the time spent handling the last frame (waiting
        // for a permit, for the response queue, for the password check) is
        // time the client could not send, so no read clock counts it.
        // Nor does the idle clock.
        let now = Instant::now();
        if frames.decoder_mut().resume(now) {
            last_read = now;
        }
        // Wake at the earliest deadline that applies: idle, handshake, and
        // the partial frame's (or soon enough to notice one starting).
        let partial_since = frames.decoder().partial_since();
        let mut deadline =
            (last_read + idle).min(partial_since.unwrap_or_else(Instant::now) + frame_read);
        if session.is_none() {
            deadline = deadline.min(handshake_deadline);
        }
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, frames.next()) => next,
            () = shared.shutdown.cancelled() => break,
            () = tx.closed() => break,
        };
        let frame = match next {
            Err(_elapsed) => {
                let now = Instant::now();
                if let Some(since) = frames.decoder().partial_since() {
                    if now >= since + frame_read {
                        tracing::debug!(%peer, limit_ms = config.frame_read_timeout_ms, "closing connection: frame not completed within frame_read_timeout_ms");
                        break;
                    }
                }
                if session.is_none() && now >= handshake_deadline {
                    tracing::debug!(%peer, limit_ms = config.handshake_timeout_ms, "closing connection: no handshake within handshake_timeout_ms");
                    break;
                }
                if now >= last_read + idle {
                    if in_flight.available_permits() == config.requests_in_flight_max {
                        tracing::debug!(%peer, "closing idle connection");
                        break;
                    }
                    last_read = now;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                refuse_stream(&tx, peer, e, session.is_none()).await;
                break;
            }
        };
        last_read = Instant::now();
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let correlation_id = frame.correlation_id;
        let Some(current) = &session else {
            // Waiting for a password-check slot ends at the deadline with
            // a "too many logins" answer; a check that started before it
            // may finish and be answered, within HANDSHAKE_ANSWER_GRACE.
            let checked = tokio::time::timeout_at(
                handshake_deadline + HANDSHAKE_ANSWER_GRACE,
                handshake(&shared, &frame, peer, handshake_deadline),
            )
            .await;
            let Ok(checked) = checked else {
                tracing::debug!(%peer, limit_ms = config.handshake_timeout_ms, "closing connection: handshake not completed within handshake_timeout_ms");
                break;
            };
            match checked {
                Ok((response, established)) => {
                    session = Some(established);
                    // Applies from the next frame: none is decoded yet.
                    frames
                        .decoder_mut()
                        .codec_mut()
                        .set_frame_bytes_max(config.frame_bytes_max);
                    let _ = tx
                        .send(OutgoingResponse::ok(correlation_id, &response))
                        .await;
                    continue;
                }
                Err(failure) => {
                    tracing::debug!(%peer, message = %failure.message, "handshake refused");
                    let auth_failed = failure.code == ErrorCode::AuthenticationFailed;
                    let _ = tx.send(failure.into_response(correlation_id)).await;
                    if auth_failed {
                        auth_failures += 1;
                        if auth_failures < config.auth_failures_max {
                            continue;
                        }
                        tracing::warn!(%peer, failures = auth_failures, "closing connection after auth_failures_max failed authentications");
                    }
                    break;
                }
            }
        };
        // A body that fails to decode is answered with an error; the frame
        // boundaries are intact, so the connection stays usable.
        if let Err(failure) =
            dispatch(&shared, current, frame, permit, &tx, &produce_tx, peer).await
        {
            // After the handshake, `AuthenticationFailed` means the session
            // is no longer valid (user removed, password changed, token
            // revoked): answer, then close.
            let session_ended = failure.code == ErrorCode::AuthenticationFailed;
            let _ = tx.send(failure.into_response(correlation_id)).await;
            if session_ended {
                tracing::info!(%peer, user = current.user(), "closing connection: session no longer valid");
                break;
            }
        }
    }
    // Dropping our senders lets the writer finish once every in-flight
    // request has answered.
    drop(produce_tx);
    drop(tx);
    let _ = writer.await;
}

/// Answers a frame the codec refused, then the caller closes the connection.
async fn refuse_stream(
    tx: &mpsc::Sender<OutgoingResponse>,
    peer: SocketAddr,
    e: FrameError,
    before_handshake: bool,
) {
    let (correlation_id, code, message) = match &e {
        FrameError::TooLarge {
            correlation_id,
            size,
            max,
        } if before_handshake => (
            correlation_id.unwrap_or(0),
            ErrorCode::FrameTooLarge,
            format!(
                "frame of {size} bytes exceeds the limit of {max} bytes before the handshake (handshake_frame_bytes_max)"
            ),
        ),
        FrameError::TooLarge { correlation_id, .. } => (
            correlation_id.unwrap_or(0),
            ErrorCode::FrameTooLarge,
            e.to_string(),
        ),
        FrameError::TooShort { .. } => (0, ErrorCode::MalformedRequest, e.to_string()),
        _ => {
            tracing::debug!(%peer, error = %e, "connection read failed");
            return;
        }
    };
    tracing::warn!(%peer, error = %e, "refusing frame and closing connection");
    let _ = tx
        .send(OutgoingResponse::error(correlation_id, code, &message))
        .await;
}

/// Checks the handshake and its credentials; returns the response and the
/// connection's session.
async fn handshake(
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
    let authenticated =
        security_handlers::authenticate(shared, credentials, peer.ip(), deadline).await;
    let session = match authenticated {
        Ok(session) => session,
        Err(failure) => {
            if failure.code == ErrorCode::AuthenticationFailed {
                metrics::counter!(crate::telemetry::names::AUTH_FAILURES).increment(1);
                // Both names are the client's claims: logged only in a short,
                // escaped form, so they cannot forge log lines or flood logs.
                tracing::warn!(%peer, user = %loggable_user(&claimed), client_id = %loggable_claim(&req.client_id), "authentication failed");
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

fn check_version<R: Request>(frame: &RequestFrame) -> Result<(), Failure> {
    if frame.api_version != R::API_VERSION {
        return Err(Failure::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "api {:?} version {} is not supported; this broker serves version {}",
                R::API_KEY,
                frame.api_version,
                R::API_VERSION
            ),
        ));
    }
    Ok(())
}

fn decode<R: Request + Decode>(frame: RequestFrame) -> Result<R, Failure> {
    check_version::<R>(&frame)?;
    Ok(decode_body(frame.body)?)
}

/// Starts the work for one request. Returns an error only for failures known
/// before any task is spawned; later failures are answered by the task.
async fn dispatch(
    shared: &Arc<Shared>,
    session: &Session,
    frame: RequestFrame,
    permit: OwnedSemaphorePermit,
    tx: &mpsc::Sender<OutgoingResponse>,
    produce_tx: &mpsc::Sender<ProduceJob>,
    peer: SocketAddr,
) -> Result<(), Failure> {
    let id = frame.correlation_id;
    let Some(api) = ApiKey::from_u16(frame.api_key) else {
        return Err(Failure::new(
            ErrorCode::UnsupportedApi,
            format!("unknown api key {}", frame.api_key),
        ));
    };
    metrics::counter!(crate::telemetry::names::REQUESTS).increment(1);
    match api {
        ApiKey::Handshake => Err(Failure::new(
            ErrorCode::InvalidRequest,
            "handshake already done on this connection",
        )),
        ApiKey::ListTopics => {
            decode::<ListTopicsRequest>(frame)?;
            authorize::session(shared, session, api)?;
            let mut listing = handlers::list_topics(shared);
            listing
                .topics
                .retain(|t| authorize::visible(shared, session, ResourceKind::Topic, &t.name));
            respond(tx, id, Ok(listing)).await;
            Ok(())
        }
        ApiKey::DescribeTopic => {
            let req = decode::<DescribeTopicRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Describe, &req.name)?;
            respond(tx, id, handlers::describe_topic(shared, req)).await;
            Ok(())
        }
        ApiKey::CreateTopic => {
            let req = decode::<CreateTopicRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Create, &req.name)?;
            spawn_request(
                shared,
                tx,
                id,
                permit,
                handlers::create_topic(Arc::clone(shared), req),
            );
            Ok(())
        }
        ApiKey::AlterTopic => {
            let req = decode::<AlterTopicRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Alter, &req.name)?;
            spawn_request(
                shared,
                tx,
                id,
                permit,
                ops_handlers::alter_topic(Arc::clone(shared), req),
            );
            Ok(())
        }
        ApiKey::Status => {
            let req = decode::<StatusRequest>(frame)?;
            authorize::any_user(shared, session, api)?;
            respond(tx, id, Ok(ops_handlers::status(shared, req))).await;
            Ok(())
        }
        ApiKey::DeleteTopic => {
            let req = decode::<DeleteTopicRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Delete, &req.name)?;
            spawn_request(
                shared,
                tx,
                id,
                permit,
                handlers::delete_topic(Arc::clone(shared), req),
            );
            Ok(())
        }
        ApiKey::Fetch => {
            let req = decode::<FetchRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Consume, &req.topic)?;
            let started = std::time::Instant::now();
            let metered = Arc::clone(shared);
            let topic = req.topic.clone();
            let work = handlers::fetch(Arc::clone(shared), req);
            let fetching = session.clone();
            spawn_request(shared, tx, id, permit, async move {
                // A long poll may end after its session or grant did:
                // checked again before records are handed out.
                let result = work.await.and_then(|r| {
                    authorize::topic(&metered, &fetching, api, Operation::Consume, &topic)?;
                    Ok(r)
                });
                let t = &metered.telemetry;
                match &result {
                    Ok(r) => t.fetched(&t.topic(&topic), &r.records, started.elapsed()),
                    Err(_) => t.failed(false, started.elapsed()),
                }
                result
            });
            Ok(())
        }
        ApiKey::ListOffsets => {
            let req = decode::<ListOffsetsRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Describe, &req.topic)?;
            spawn_request(
                shared,
                tx,
                id,
                permit,
                handlers::list_offsets(Arc::clone(shared), req),
            );
            Ok(())
        }
        ApiKey::Produce => {
            let req = decode::<ProduceRequest>(frame)?;
            authorize::topic(shared, session, api, Operation::Produce, &req.topic)?;
            // Whether the produce may create its topic is decided here, once:
            // the topic may vanish before the job runs, and only a session
            // allowed to create it may bring it back.
            let may_create = match session {
                _ if !shared.config.auto_create_topics => false,
                Session::User(_) if shared.topics.get(&req.topic).is_none() => {
                    authorize::topic(shared, session, api, Operation::Create, &req.topic)?;
                    true
                }
                // Exists now: no refusal, but no creation without the grant
                // (checked quietly: nothing was refused).
                // A session that just became invalid creates nothing.
                Session::User(user) => shared
                    .security
                    .allows(user, Operation::Create, ResourceKind::Topic, &req.topic)
                    .unwrap_or(false),
                // Authorized above, so authentication is off.
                Session::Anonymous => true,
            };
            let job = ProduceJob {
                correlation_id: id,
                req,
                may_create,
                _permit: permit,
            };
            if produce_tx.send(job).await.is_err() {
                return Err(Failure::new(
                    ErrorCode::ShuttingDown,
                    "connection is closing",
                ));
            }
            Ok(())
        }
        ApiKey::JoinGroup => {
            let req = decode::<JoinGroupRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Consume, &req.group)?;
            for topic in &req.topics {
                authorize::topic(shared, session, api, Operation::Consume, topic)?;
            }
            respond(tx, id, group_handlers::join_group(shared, req, peer)).await;
            Ok(())
        }
        ApiKey::Heartbeat => {
            let req = decode::<HeartbeatRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Consume, &req.group)?;
            respond(tx, id, Ok(group_handlers::heartbeat(shared, req))).await;
            Ok(())
        }
        ApiKey::LeaveGroup => {
            let req = decode::<LeaveGroupRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Consume, &req.group)?;
            respond(tx, id, group_handlers::leave_group(shared, req)).await;
            Ok(())
        }
        ApiKey::CommitOffsets => {
            let req = decode::<CommitOffsetsRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Consume, &req.group)?;
            for commit in &req.offsets {
                authorize::topic(
                    shared,
                    session,
                    api,
                    Operation::Consume,
                    &commit.partition.topic,
                )?;
            }
            let work = group_handlers::commit_offsets(Arc::clone(shared), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::FetchOffsets => {
            let req = decode::<FetchOffsetsRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Describe, &req.group)?;
            let visible = |t: &str| authorize::visible(shared, session, ResourceKind::Topic, t);
            let offsets = group_handlers::fetch_offsets(shared, req, visible);
            respond(tx, id, Ok(offsets)).await;
            Ok(())
        }
        ApiKey::ListGroups => {
            decode::<ListGroupsRequest>(frame)?;
            authorize::session(shared, session, api)?;
            let mut listing = group_handlers::list_groups(shared);
            listing
                .groups
                .retain(|g| authorize::visible(shared, session, ResourceKind::Group, &g.group));
            respond(tx, id, Ok(listing)).await;
            Ok(())
        }
        ApiKey::DescribeGroup => {
            let req = decode::<DescribeGroupRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Describe, &req.group)?;
            let visible = |t: &str| authorize::visible(shared, session, ResourceKind::Topic, t);
            let described = group_handlers::describe_group(shared, req, visible);
            respond(tx, id, described).await;
            Ok(())
        }
        ApiKey::ResetOffsets => {
            let req = decode::<ResetOffsetsRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Alter, &req.group)?;
            authorize::topic(shared, session, api, Operation::Describe, &req.topic)?;
            let work = group_handlers::reset_offsets(Arc::clone(shared), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::InitProducerId => {
            decode::<InitProducerIdRequest>(frame)?;
            authorize::any_user(shared, session, api)?;
            let work = handlers::init_producer_id(Arc::clone(shared));
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::DeleteGroup => {
            let req = decode::<DeleteGroupRequest>(frame)?;
            authorize::group(shared, session, api, Operation::Delete, &req.group)?;
            let work = group_handlers::delete_group(Arc::clone(shared), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::PutUser => {
            let req = decode::<PutUserRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            let work = security_handlers::put_user(Arc::clone(shared), session.clone(), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::DeleteUser => {
            let req = decode::<DeleteUserRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            let work = security_handlers::delete_user(Arc::clone(shared), session.clone(), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::ListUsers => {
            decode::<ListUsersRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            respond(tx, id, Ok(security_handlers::list_users(shared))).await;
            Ok(())
        }
        ApiKey::GrantAcl => {
            let req = decode::<GrantAclRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            let work = security_handlers::grant_acl(Arc::clone(shared), session.clone(), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::RevokeAcl => {
            let req = decode::<RevokeAclRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            let work = security_handlers::revoke_acl(Arc::clone(shared), session.clone(), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::ListAcls => {
            let req = decode::<ListAclsRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            respond(tx, id, security_handlers::list_acls(shared, req)).await;
            Ok(())
        }
        ApiKey::CreateToken => {
            let req = decode::<CreateTokenRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            let work = security_handlers::create_token(Arc::clone(shared), session.clone(), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::RevokeToken => {
            let req = decode::<RevokeTokenRequest>(frame)?;
            authorize::admin(shared, session, api)?;
            let work = security_handlers::revoke_token(Arc::clone(shared), session.clone(), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        _ => Err(Failure::new(
            ErrorCode::UnsupportedApi,
            format!("api {api:?} is not served by this broker"),
        )),
    }
}

/// Sends one response; a closed writer means the connection is going away
/// and there is nobody left to tell.
async fn respond<T: Encode>(
    tx: &mpsc::Sender<OutgoingResponse>,
    correlation_id: u32,
    result: Result<T, Failure>,
) {
    let response = match result {
        Ok(body) => OutgoingResponse::ok(correlation_id, &body),
        Err(failure) => failure.into_response(correlation_id),
    };
    let _ = tx.send(response).await;
}

/// Runs a request as its own task, holding its in-flight permit until the
/// response is queued.
fn spawn_request<T, F>(
    shared: &Shared,
    tx: &mpsc::Sender<OutgoingResponse>,
    correlation_id: u32,
    permit: OwnedSemaphorePermit,
    work: F,
) where
    T: Encode + Send + 'static,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
{
    let tx = tx.clone();
    shared.tracker.spawn(async move {
        let result = work.await;
        respond(&tx, correlation_id, result).await;
        drop(permit);
    });
}

/// A produce request waiting for its turn on its connection.
struct ProduceJob {
    correlation_id: u32,
    req: ProduceRequest,
    /// Whether the session may create the topic if it does not exist when
    /// the job runs (decided at dispatch).
    may_create: bool,
    _permit: OwnedSemaphorePermit,
}

/// Queues a connection's produce batches on their logs one after another, in
/// arrival order, then waits for each in its own task: the order is fixed at
/// submit, and pipelined batches share a group commit instead of each paying
/// for its own write and fsync. A job's in-flight permit is held until its
/// response is queued, which bounds the batches waiting per connection.
async fn run_produces(
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<ProduceJob>,
    tx: mpsc::Sender<OutgoingResponse>,
) {
    while let Some(job) = jobs.recv().await {
        if tx.is_closed() {
            // The connection is gone: its client has already been told these
            // produces failed, so storing them now could only land them
            // behind batches it retries elsewhere.
            break;
        }
        let ProduceJob {
            correlation_id,
            req,
            may_create,
            _permit: permit,
        } = job;
        let started = std::time::Instant::now();
        let submitted = match handlers::produce_target(&shared, &req, may_create).await {
            Ok((log, partition)) => {
                let bytes = req.batch.len() as u64;
                handlers::produce_submit(&log, req.batch)
                    .map(|ticket| (log, partition, ticket, bytes))
            }
            Err(failure) => Err(failure),
        };
        match submitted {
            Ok((log, partition, ticket, bytes)) => {
                let tx = tx.clone();
                // Resolved once per request: the topic exists (it was found).
                let topic_metrics = shared.telemetry.topic(&req.topic);
                let metered = Arc::clone(&shared);
                shared.tracker.spawn(async move {
                    let result = handlers::produce_wait(log, partition, ticket).await;
                    let t = &metered.telemetry;
                    match &result {
                        Ok(r) => t.produced(
                            &topic_metrics,
                            r.last_offset - r.base_offset + 1,
                            bytes,
                            started.elapsed(),
                        ),
                        Err(_) => t.failed(true, started.elapsed()),
                    }
                    respond(&tx, correlation_id, result).await;
                    drop(permit);
                });
            }
            Err(failure) => {
                shared.telemetry.failed(true, started.elapsed());
                let _ = tx.send(failure.into_response(correlation_id)).await;
            }
        }
    }
}

/// Bodies at least this big (fetch responses, up to `fetch_bytes_max`) are
/// written straight from their buffer rather than copied into the codec's
/// write buffer: one copy less per fetched byte, and the write buffer never
/// grows to (and keeps) the size of the largest fetch.
const DIRECT_WRITE_BYTES_MIN: usize = 64 * 1024;

/// How long past `handshake_timeout_ms` a password check that started in
/// time may run before the connection is closed unanswered (one argon2 run
/// takes tens of milliseconds).
const HANDSHAKE_ANSWER_GRACE: Duration = Duration::from_secs(1);

/// How long closing a connection's write side may take once every response
/// is written: time for a TLS close_notify (and the TCP FIN), not for a
/// client that stopped reading.
const SINK_CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// Writes responses as they come, flushing once the queue is momentarily
/// empty so pipelined responses share syscalls. When the queue closes, it
/// shuts the write side down (bounded by [`SINK_CLOSE_TIMEOUT`]), so a TLS
/// session ends with close_notify and the client sees the broker close.
async fn write_responses<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, ServerCodec>,
    mut rx: mpsc::Receiver<OutgoingResponse>,
) {
    while let Some(response) = rx.recv().await {
        if write_response(&mut sink, response).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if write_response(&mut sink, more).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(SINK_CLOSE_TIMEOUT, sink.close()).await;
}

/// Queues one response: small ones into the codec's buffer, large ones
/// (after flushing what is buffered, to keep the order) with one vectored
/// write of header and body.
async fn write_response<W: AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, ServerCodec>,
    response: OutgoingResponse,
) -> Result<(), FrameError> {
    if response.body.len() < DIRECT_WRITE_BYTES_MIN {
        return sink.feed(response).await;
    }
    sink.flush().await?;
    let header = response.header_bytes();
    let mut frame = bytes::Buf::chain(&header[..], response.body);
    sink.get_mut().write_all_buf(&mut frame).await?;
    Ok(())
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
