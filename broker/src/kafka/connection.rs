//! One Kafka connection: reads request frames under the same deadlines as
//! a native connection, dispatches each (`api.rs`), and writes the answers
//! in request order, as Kafka requires of a broker (the Java client
//! matches responses to requests by position).
//!
//! Requests are pipelined all the same: each one runs as its handler says
//! (inline, as its own task, or in the ordered produce pipeline) and puts
//! its answer in a one-shot slot that was queued for the writer when the
//! request was read; the writer waits for the slots in order. So a
//! long-polling fetch delays the answers behind it (as in Kafka) but not
//! their work.
//!
//! Sessions: with authentication on (the broker has users), a connection
//! must sign in with SASL (`sasl.rs`) before anything but ApiVersions is
//! served, within `handshake_timeout_ms` of accept, and until then its
//! frames are limited to `handshake_frame_bytes_max`. The SASL requests are
//! answered here, in order with the rest, because they change the
//! connection's session; every later request runs as that session. With
//! authentication off the connection is anonymous unless it signs in.
//!
//! Bounds: at most `requests_in_flight_max` requests per connection (the
//! reader stops reading until one is answered), frames above
//! `kafka_frame_bytes_max` refused before they are buffered, the first
//! request (and with authentication on, the SASL login) due within
//! `handshake_timeout_ms` of accept (a TLS handshake included), every frame within
//! `frame_read_timeout_ms` of its first byte, and a connection with nothing
//! in flight that sends nothing for `idle_timeout_ms` closed. A frame that
//! cannot be parsed (unknown API or version, malformed header or body)
//! closes the connection after a log line: the byte stream is intact but
//! Kafka's clients cannot be answered in a form they expect, and Kafka
//! itself closes such connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::api::{Connection, Outcome, answer_now, dispatch};
use super::frame::{KafkaCodec, KafkaFrameError};
use super::header;
use super::sasl::{self, SaslState};
use crate::server::Shared;
use crate::server::authorize::Session;
use crate::server::frame_timing::TimedDecoder;
use crate::server::pipeline::{self, InOrderJob};
use crate::server::writer::{DIRECT_WRITE_BYTES_MIN, write_direct};

/// Serves one Kafka connection (plaintext or TLS halves) until the client
/// closes it, it breaks, it idles out, or the broker shuts down (requests
/// in flight still answered).
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
    // With authentication on, only a small frame until signed in, so an
    // unauthenticated connection cannot reserve `kafka_frame_bytes_max`.
    let frame_bytes_max = if shared.security.enabled() {
        config
            .handshake_frame_bytes_max
            .min(config.kafka_frame_bytes_max)
    } else {
        config.kafka_frame_bytes_max
    };
    let mut frames = FramedRead::new(rd, TimedDecoder::new(KafkaCodec::new(frame_bytes_max)));
    let (replies_tx, replies_rx) =
        mpsc::channel::<oneshot::Receiver<Outcome>>(config.requests_in_flight_max);
    let writer = shared.tracker.spawn(write_in_order(
        FramedWrite::new(wr, KafkaCodec::new(i32::MAX as usize)),
        replies_rx,
    ));
    let (in_order_tx, in_order_rx) = mpsc::channel::<InOrderJob>(config.requests_in_flight_max);
    shared.tracker.spawn(pipeline::run(
        in_order_rx,
        replies_tx.clone(),
        shared.tracker.clone(),
    ));
    let in_flight = Arc::new(Semaphore::new(config.requests_in_flight_max));
    let idle = Duration::from_millis(config.idle_timeout_ms);
    let frame_read = Duration::from_millis(config.frame_read_timeout_ms);
    let login_deadline = accepted_at + Duration::from_millis(config.handshake_timeout_ms);
    // Anonymous until SASL signs it in: as a native connection without
    // credentials (refused everything once authentication is on).
    let mut session = Session::Anonymous;
    let mut sasl = SaslState::default();
    let mut requests_read: u64 = 0;
    let mut last_read = Instant::now();
    // Set when a SASL answer closes the connection (a refused login).
    let mut refused = false;

    loop {
        let now = Instant::now();
        if frames.decoder_mut().resume(now) {
            last_read = now;
        }
        let partial_since = frames.decoder().partial_since();
        let mut deadline =
            (last_read + idle).min(partial_since.unwrap_or_else(Instant::now) + frame_read);
        let logging_in = requests_read == 0 || (!sasl.authenticated() && shared.security.enabled());
        if logging_in {
            deadline = deadline.min(login_deadline);
        }
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, frames.next()) => next,
            () = shared.shutdown.cancelled() => break,
            () = replies_tx.closed() => break,
        };
        let frame = match next {
            Err(_elapsed) => {
                let now = Instant::now();
                if let Some(since) = frames.decoder().partial_since() {
                    if now >= since + frame_read {
                        tracing::debug!(%peer, limit_ms = config.frame_read_timeout_ms, "closing kafka connection: frame not completed within frame_read_timeout_ms");
                        break;
                    }
                }
                if logging_in && now >= login_deadline {
                    tracing::debug!(%peer, limit_ms = config.handshake_timeout_ms, "closing kafka connection: not signed in (or no request) within handshake_timeout_ms");
                    break;
                }
                if now >= last_read + idle {
                    if in_flight.available_permits() == config.requests_in_flight_max {
                        tracing::debug!(%peer, "closing idle kafka connection");
                        break;
                    }
                    last_read = now;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                match e {
                    KafkaFrameError::Io(e) => {
                        tracing::debug!(%peer, error = %e, "kafka connection read failed")
                    }
                    e => tracing::warn!(%peer, error = %e, "closing kafka connection"),
                }
                break;
            }
        };
        requests_read += 1;
        last_read = Instant::now();
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let login = sasl::Peer {
            shared: &shared,
            addr: peer,
            deadline: login_deadline,
        };
        if sasl.expects_raw_token() {
            let step = sasl::answer_raw(&mut sasl, frame, &login).await;
            if !take_step(step, &mut session, &mut frames, config, &replies_tx).await {
                refused = true;
                break;
            }
            drop(permit);
            continue;
        }
        let request = match header::parse(frame) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing kafka connection: request not understood");
                break;
            }
        };
        if !sasl.admits(request.api, shared.security.enabled()) {
            tracing::warn!(%peer, api = ?request.api, "closing kafka connection: request before SASL authentication completed");
            break;
        }
        if matches!(
            request.api,
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            let step = match sasl::answer(&mut sasl, request, &login).await {
                Ok(step) => step,
                Err(reason) => {
                    tracing::warn!(%peer, %reason, "closing kafka connection");
                    break;
                }
            };
            if !take_step(step, &mut session, &mut frames, config, &replies_tx).await {
                refused = true;
                break;
            }
            drop(permit);
            continue;
        }
        let conn = Connection {
            shared: &shared,
            session: &session,
            peer,
            replies: &replies_tx,
            in_order: &in_order_tx,
        };
        if let Err(reason) = dispatch(&conn, request, permit).await {
            tracing::warn!(%peer, %reason, "closing kafka connection");
            break;
        }
    }
    if refused {
        // After a refused login the answer is flushed at once (the writer
        // flushes whenever nothing else is queued), but the connection
        // stays open a moment, reading and dropping what the client still
        // sends, as Kafka delays this close
        // (`connection.failed.authentication.delay.ms`). A client that
        // sees the close (or, for unread input, a reset) right behind the
        // answer may report a lost connection instead of the refusal.
        let until = Instant::now() + REFUSED_LOGIN_CLOSE_DELAY;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, frames.next()).await {}
    }
    // The writer finishes once every request already read is answered.
    drop(in_order_tx);
    drop(replies_tx);
    let _ = writer.await;
}

/// How long a connection whose login was refused keeps reading before it
/// closes: Kafka's `connection.failed.authentication.delay.ms` default.
/// Bounded in bytes too: until signed in, frames are at most
/// `handshake_frame_bytes_max`.
const REFUSED_LOGIN_CLOSE_DELAY: Duration = Duration::from_millis(100);

/// Applies a SASL step: queues its answer, and when it signed in, makes its
/// session the connection's and lifts the frame limit to
/// `kafka_frame_bytes_max`. `false`: close the connection (after the
/// answers already queued).
async fn take_step<R>(
    step: sasl::Step,
    session: &mut Session,
    frames: &mut FramedRead<R, TimedDecoder<KafkaCodec>>,
    config: &crate::config::BrokerConfig,
    replies: &mpsc::Sender<oneshot::Receiver<Outcome>>,
) -> bool {
    if let Some(frame) = step.frame {
        if answer_now(replies, frame).await.is_err() {
            return false;
        }
    }
    if let Some(signed_in) = step.session {
        *session = signed_in;
        frames
            .decoder_mut()
            .codec_mut()
            .set_frame_bytes_max(config.kafka_frame_bytes_max);
    }
    !step.close
}

/// Writes the answers in request order, flushing whenever the next one is
/// not ready yet; stops at the first answer that asks to close.
async fn write_in_order<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, KafkaCodec>,
    mut replies: mpsc::Receiver<oneshot::Receiver<Outcome>>,
) {
    while let Some(mut slot) = replies.recv().await {
        let outcome = match slot.try_recv() {
            Ok(outcome) => outcome,
            Err(oneshot::error::TryRecvError::Empty) => {
                if sink.flush().await.is_err() {
                    return;
                }
                match slot.await {
                    Ok(outcome) => outcome,
                    // The work was dropped (shutdown): nothing more can be
                    // answered in order.
                    Err(_) => break,
                }
            }
            Err(oneshot::error::TryRecvError::Closed) => break,
        };
        match outcome {
            Outcome::Frame(frame) if frame.len() >= DIRECT_WRITE_BYTES_MIN => {
                // A fetch answer: written from its buffer, not copied into
                // the codec's.
                let Ok(size) = i32::try_from(frame.len()) else {
                    tracing::error!(
                        bytes = frame.len(),
                        "a kafka response too large to frame; closing the connection"
                    );
                    return;
                };
                if write_direct::<_, _, Bytes>(&mut sink, &size.to_be_bytes(), frame)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Outcome::Frame(frame) => {
                if sink.feed(frame).await.is_err() {
                    return;
                }
            }
            Outcome::Silent => {}
            Outcome::Close => break,
        }
        if replies.is_empty() && sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.flush().await;
    let _ = tokio::time::timeout(Duration::from_millis(250), sink.close()).await;
}
