//! One client connection's session: reads request frames under their
//! deadlines, hands the first to the handshake (`handshake.rs`) and the
//! rest to dispatch (`dispatch.rs`), and runs the connection's response
//! writer (`writer.rs`) and ordered pipeline (`pipeline.rs`). Generic over the byte stream's read and write halves (a TCP
//! socket's owned halves, or a TLS session's), so the plaintext path has no
//! indirection.
//!
//! Requests are pipelined: each one runs as its handler says (inline, as
//! its own task, or in the ordered pipeline) and its response is written
//! when ready, matched by correlation id, so a long-polling fetch never
//! delays a produce on the same connection. Produce requests are the
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

use futures::StreamExt;
use skiff_protocol::ErrorCode;
use skiff_protocol::frame::{FrameError, OutgoingResponse, ServerCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::Shared;
use super::authorize::Session;
use super::dispatch::{Connection, dispatch};
use super::frame_timing::TimedDecoder;
use super::handlers::queue_members::{self, QueueMembers};
use super::handshake::{HANDSHAKE_ANSWER_GRACE, handshake};
use super::pipeline::{self, InOrderJob};
use super::writer::write_responses;

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
    // Produces start in arrival order (see `pipeline`).
    let (in_order_tx, in_order_rx) = mpsc::channel::<InOrderJob>(config.requests_in_flight_max);
    shared.tracker.spawn(pipeline::run(
        in_order_rx,
        tx.clone(),
        shared.tracker.clone(),
    ));
    let frame_read = Duration::from_millis(config.frame_read_timeout_ms);
    // One deadline from accept for the whole handshake, its password check
    // included.
    let handshake_deadline = accepted_at + Duration::from_millis(config.handshake_timeout_ms);
    // `None` until the handshake succeeds.
    let mut session: Option<Session> = None;
    let mut auth_failures: u32 = 0;
    let mut last_read = Instant::now();
    let queue_members = Arc::new(QueueMembers::default());

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
        let conn = Connection {
            shared: &shared,
            session: current,
            peer,
            responses: &tx,
            in_order: &in_order_tx,
            queue_members: &queue_members,
        };
        if let Err(failure) = dispatch(&conn, frame, permit).await {
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
    // Waiting queue receives answer at once: nobody reads them now.
    queue_members.closing().cancel();
    // Dropping our senders lets the writer finish once every in-flight
    // request has answered.
    drop(in_order_tx);
    drop(tx);
    let _ = writer.await;
    release_queue_locks(&shared, &queue_members, &in_flight).await;
}

/// Releases the locks of the connection's queue members (see
/// `handlers::queue_members`) once none of its requests is in flight, so
/// no receive still running can hand out records after the release. Not
/// at shutdown: the locks end with the broker anyway.
async fn release_queue_locks(shared: &Arc<Shared>, members: &QueueMembers, in_flight: &Semaphore) {
    if members.is_empty() || shared.shutdown.is_cancelled() {
        return;
    }
    let all = u32::try_from(shared.config.requests_in_flight_max).unwrap_or(u32::MAX);
    let Ok(_idle) = in_flight.acquire_many(all).await else {
        return;
    };
    queue_members::release_all(Arc::clone(shared), members).await;
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
