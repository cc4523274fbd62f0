//! skiff's front end: binds every API of the protocol's table
//! ([`skiff_protocol::for_each_api!`]) to its [`Handler`], and runs each
//! request through one generic path: check the version, decode strictly,
//! authorize, then run it as its handler says ([`Runs`]) and answer.
//!
//! The `match` below is generated from the table, one arm per API, with no
//! fallback: an API without a handler is a compile error, and a wire
//! number outside the table is answered `UnsupportedApi`.

use std::net::SocketAddr;
use std::sync::Arc;

use skiff_protocol::ErrorCode;
use skiff_protocol::frame::{OutgoingResponse, RequestFrame};
use skiff_protocol::messages::{ApiKey, Request};
use skiff_protocol::primitives::{Encode, decode_body_version};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::Shared;
use super::api::{Ctx, Handler, OrderGate, Runs};
use super::authorize::Session;
use super::failure::Failure;
use super::handlers::queue_members::QueueMembers;
use super::pipeline::InOrderJob;

/// What dispatch needs of the connection a request came in on.
pub(crate) struct Connection<'a> {
    pub shared: &'a Arc<Shared>,
    pub session: &'a Session,
    pub peer: SocketAddr,
    /// Where responses go (the connection's writer).
    pub responses: &'a mpsc::Sender<OutgoingResponse>,
    /// The connection's ordered pipeline ([`Runs::InOrder`]).
    pub in_order: &'a mpsc::Sender<InOrderJob>,
    /// The connection's queue members (their locks are released at close).
    pub queue_members: &'a Arc<QueueMembers>,
}

/// Starts the work for one request. Returns an error only for failures known
/// before any work starts (unknown API or version, malformed body, refused
/// by its rule); later failures are answered by the work itself. The
/// in-flight `permit` is held until the response is queued.
pub(crate) async fn dispatch(
    conn: &Connection<'_>,
    frame: RequestFrame,
    permit: OwnedSemaphorePermit,
) -> Result<(), Failure> {
    let Some(api) = ApiKey::from_u16(frame.api_key) else {
        return Err(Failure::new(
            ErrorCode::UnsupportedApi,
            format!("unknown api key {}", frame.api_key),
        ));
    };
    metrics::counter!(crate::telemetry::names::REQUESTS).increment(1);
    macro_rules! route {
        ($(
            $(#[$doc:meta])*
            $api:ident = $number:literal, $request:ident => $response:ident, versions $min:literal ..= $max:literal;
        )*) => {
            match api {
                $( ApiKey::$api => run::<skiff_protocol::messages::$request>(conn, frame, permit).await, )*
            }
        };
    }
    skiff_protocol::for_each_api!(route)
}

/// Refuses a request version the table does not list for its API.
pub(crate) fn check_version<R: Request>(frame: &RequestFrame) -> Result<(), Failure> {
    let api = R::API_KEY;
    if api.versions().contains(&frame.api_version) {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::UnsupportedVersion,
        format!(
            "api {api:?} version {} is not supported; this broker serves version {}",
            frame.api_version,
            R::API_VERSION
        ),
    ))
}

/// Decodes a request's body strictly in the layout of its version, after
/// checking the version.
fn decode<R: Request>(frame: RequestFrame) -> Result<R, Failure> {
    check_version::<R>(&frame)?;
    Ok(decode_body_version(frame.body, frame.api_version)?)
}

/// The one path every API takes: decode, authorize, run, answer.
async fn run<R: Handler>(
    conn: &Connection<'_>,
    frame: RequestFrame,
    permit: OwnedSemaphorePermit,
) -> Result<(), Failure> {
    let (correlation_id, version) = (frame.correlation_id, frame.api_version);
    let request = decode::<R>(frame)?;
    let gate = (R::RUNS == Runs::InOrder).then(|| Arc::new(OrderGate::default()));
    let ctx = Ctx::new(
        Arc::clone(conn.shared),
        conn.session.clone(),
        conn.peer,
        R::API_KEY,
        gate.clone(),
    )
    .with_queue_members(conn.queue_members)
    .with_api_version(version);
    let grant = request.authorize(&ctx)?;
    let work = request.handle(grant, ctx);
    let responses = conn.responses.clone();
    let answered = async move {
        respond(&responses, correlation_id, version, work.await).await;
        drop(permit);
    };
    match (gate, R::RUNS) {
        (Some(gate), _) => {
            if conn
                .in_order
                .send(InOrderJob::new(answered, gate))
                .await
                .is_err()
            {
                return Err(Failure::new(
                    ErrorCode::ShuttingDown,
                    "connection is closing",
                ));
            }
        }
        (None, Runs::Task) => {
            conn.shared.tracker.spawn(answered);
        }
        (None, _) => answered.await,
    }
    Ok(())
}

/// Sends one response, in the layout of the request's version; a closed
/// writer means the connection is going away and there is nobody left to
/// tell.
pub(crate) async fn respond<T: Encode>(
    tx: &mpsc::Sender<OutgoingResponse>,
    correlation_id: u32,
    version: u16,
    result: Result<T, Failure>,
) {
    let response = match result {
        Ok(body) => OutgoingResponse::ok_version(correlation_id, &body, version),
        Err(failure) => failure.into_response(correlation_id),
    };
    let _ = tx.send(response).await;
}
