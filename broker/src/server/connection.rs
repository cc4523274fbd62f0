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
//! `frame_bytes_max` are refused before they are buffered, and a connection
//! with nothing in flight that sends nothing for `idle_timeout_ms` is closed.
//! An oversized or impossibly short frame gets an error response, then the
//! connection is closed, since the byte stream can no longer be trusted; a
//! well-framed request with a malformed body only gets an error response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use skiff_protocol::ErrorCode;
use skiff_protocol::frame::{FrameError, OutgoingResponse, RequestFrame, ServerCodec};
use skiff_protocol::messages::{
    AlterTopicRequest, ApiKey, CommitOffsetsRequest, CreateTopicRequest, DeleteGroupRequest,
    DeleteTopicRequest, DescribeGroupRequest, DescribeTopicRequest, FetchOffsetsRequest,
    FetchRequest, HandshakeRequest, HandshakeResponse, HeartbeatRequest, InitProducerIdRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, ListTopicsRequest,
    ProduceRequest, Request, ResetOffsetsRequest, StatusRequest,
};
use skiff_protocol::primitives::{Decode, Encode, decode_body};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::Shared;
use super::failure::Failure;
use super::{group_handlers, handlers, ops_handlers};

/// Serves one connection until the client closes it, it breaks, it idles
/// out, or the broker shuts down (in-flight requests still get answered).
pub(crate) async fn serve<R, W>(rd: R, wr: W, peer: SocketAddr, shared: Arc<Shared>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let mut frames = FramedRead::new(rd, ServerCodec::new(config.frame_bytes_max));
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
    let mut handshaken = false;

    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(idle, frames.next()) => next,
            () = shared.shutdown.cancelled() => break,
            () = tx.closed() => break,
        };
        let frame = match next {
            Err(_elapsed) => {
                if in_flight.available_permits() == config.requests_in_flight_max {
                    tracing::debug!(%peer, "closing idle connection");
                    break;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                refuse_stream(&tx, peer, e).await;
                break;
            }
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let correlation_id = frame.correlation_id;
        if !handshaken {
            match handshake(&frame) {
                Ok(response) => {
                    handshaken = true;
                    let _ = tx
                        .send(OutgoingResponse::ok(correlation_id, &response))
                        .await;
                    continue;
                }
                Err(failure) => {
                    tracing::debug!(%peer, message = %failure.message, "handshake refused");
                    let _ = tx.send(failure.into_response(correlation_id)).await;
                    break;
                }
            }
        }
        // A body that fails to decode is answered with an error; the frame
        // boundaries are intact, so the connection stays usable.
        if let Err(failure) = dispatch(&shared, frame, permit, &tx, &produce_tx, peer).await {
            let _ = tx.send(failure.into_response(correlation_id)).await;
        }
    }
    // Dropping our senders lets the writer finish once every in-flight
    // request has answered.
    drop(produce_tx);
    drop(tx);
    let _ = writer.await;
}

/// Answers a frame the codec refused, then the caller closes the connection.
async fn refuse_stream(tx: &mpsc::Sender<OutgoingResponse>, peer: SocketAddr, e: FrameError) {
    let (correlation_id, code) = match &e {
        FrameError::TooLarge { correlation_id, .. } => {
            (correlation_id.unwrap_or(0), ErrorCode::FrameTooLarge)
        }
        FrameError::TooShort { .. } => (0, ErrorCode::MalformedRequest),
        _ => {
            tracing::debug!(%peer, error = %e, "connection read failed");
            return;
        }
    };
    tracing::warn!(%peer, error = %e, "refusing frame and closing connection");
    let _ = tx
        .send(OutgoingResponse::error(
            correlation_id,
            code,
            &e.to_string(),
        ))
        .await;
}

fn handshake(frame: &RequestFrame) -> Result<HandshakeResponse, Failure> {
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
    let req: HandshakeRequest = decode_body(frame.body.clone())?;
    if req.protocol_version != skiff_protocol::PROTOCOL_VERSION {
        return Err(Failure::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {} is not supported; this broker speaks {}",
                req.protocol_version,
                skiff_protocol::PROTOCOL_VERSION
            ),
        ));
    }
    Ok(HandshakeResponse {
        protocol_version: skiff_protocol::PROTOCOL_VERSION,
        broker_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
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
    metrics::counter!("skiff_requests_total").increment(1);
    match api {
        ApiKey::Handshake => Err(Failure::new(
            ErrorCode::InvalidRequest,
            "handshake already done on this connection",
        )),
        ApiKey::ListTopics => {
            decode::<ListTopicsRequest>(frame)?;
            respond(tx, id, Ok(handlers::list_topics(shared))).await;
            Ok(())
        }
        ApiKey::DescribeTopic => {
            let req = decode::<DescribeTopicRequest>(frame)?;
            respond(tx, id, handlers::describe_topic(shared, req)).await;
            Ok(())
        }
        ApiKey::CreateTopic => {
            let req = decode::<CreateTopicRequest>(frame)?;
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
            respond(tx, id, Ok(ops_handlers::status(shared, req))).await;
            Ok(())
        }
        ApiKey::DeleteTopic => {
            let req = decode::<DeleteTopicRequest>(frame)?;
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
            let started = std::time::Instant::now();
            let metered = Arc::clone(shared);
            let topic = req.topic.clone();
            let work = handlers::fetch(Arc::clone(shared), req);
            spawn_request(shared, tx, id, permit, async move {
                let result = work.await;
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
            let job = ProduceJob {
                correlation_id: id,
                req,
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
            respond(tx, id, group_handlers::join_group(shared, req, peer)).await;
            Ok(())
        }
        ApiKey::Heartbeat => {
            let req = decode::<HeartbeatRequest>(frame)?;
            respond(tx, id, Ok(group_handlers::heartbeat(shared, req))).await;
            Ok(())
        }
        ApiKey::LeaveGroup => {
            let req = decode::<LeaveGroupRequest>(frame)?;
            respond(tx, id, group_handlers::leave_group(shared, req)).await;
            Ok(())
        }
        ApiKey::CommitOffsets => {
            let req = decode::<CommitOffsetsRequest>(frame)?;
            let work = group_handlers::commit_offsets(Arc::clone(shared), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::FetchOffsets => {
            let req = decode::<FetchOffsetsRequest>(frame)?;
            respond(tx, id, Ok(group_handlers::fetch_offsets(shared, req))).await;
            Ok(())
        }
        ApiKey::ListGroups => {
            decode::<ListGroupsRequest>(frame)?;
            respond(tx, id, Ok(group_handlers::list_groups(shared))).await;
            Ok(())
        }
        ApiKey::DescribeGroup => {
            let req = decode::<DescribeGroupRequest>(frame)?;
            respond(tx, id, group_handlers::describe_group(shared, req)).await;
            Ok(())
        }
        ApiKey::ResetOffsets => {
            let req = decode::<ResetOffsetsRequest>(frame)?;
            let work = group_handlers::reset_offsets(Arc::clone(shared), req);
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::InitProducerId => {
            decode::<InitProducerIdRequest>(frame)?;
            let work = handlers::init_producer_id(Arc::clone(shared));
            spawn_request(shared, tx, id, permit, work);
            Ok(())
        }
        ApiKey::DeleteGroup => {
            let req = decode::<DeleteGroupRequest>(frame)?;
            let work = group_handlers::delete_group(Arc::clone(shared), req);
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
            _permit: permit,
        } = job;
        let started = std::time::Instant::now();
        let submitted = match handlers::produce_target(&shared, &req).await {
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
                    let result = handlers::produce_wait(log, partition, ticket, bytes).await;
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
