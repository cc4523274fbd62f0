//! The Kafka front end's table: every API served, with its version range,
//! in one place ([`kafka_table!`]). ApiVersions answers from it, dispatch
//! matches on it, and each range is checked at compile time against what
//! kafka-protocol can decode and encode. An API outside the table, or a
//! version outside its range, closes the connection after a log line, as
//! Kafka does with a request it cannot parse (clients learn the ranges from
//! ApiVersions first); ApiVersions itself at an unserved version gets
//! UNSUPPORTED_VERSION and the ranges in its v0 form, so the client can
//! retry lower.
//!
//! Each API implements [`KafkaApi`] (in `handlers/`): how it runs
//! ([`Runs`], the same modes as skiff's front end) and its work, which
//! authorizes per topic (Kafka reports refusals per topic) through
//! [`Ctx::authorizer`]. Adding an API (as the consumer-group APIs were) is a
//! line in the table and an implementation.
//!
//! The table's second part lists the APIs the connection answers itself,
//! before dispatch, because they change the connection rather than the
//! broker: SaslHandshake and SaslAuthenticate (`sasl.rs`), which fix the
//! connection's session. They are advertised and version-checked like the
//! rest.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{self, ApiKey};
use kafka_protocol::protocol::Request;
use skiff_protocol::messages::ApiKey as SkiffApi;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::header;
use crate::server::Shared;
use crate::server::api::{Ctx, OrderGate, Runs};
use crate::server::authorize::Session;
use crate::server::pipeline::InOrderJob;

/// Calls `$m!` with the table: `Api => RequestType, min..=max;` per line,
/// the APIs served by handlers under `[handlers]`, those the connection
/// answers itself under `[connection]`.
macro_rules! kafka_table {
    ($m:ident) => {
        $m! {
            [handlers]
            ApiVersions => ApiVersionsRequest, 0..=4;
            Metadata => MetadataRequest, 0..=12;
            Produce => ProduceRequest, 3..=11;
            Fetch => FetchRequest, 4..=12;
            ListOffsets => ListOffsetsRequest, 1..=7;
            InitProducerId => InitProducerIdRequest, 0..=5;
            CreateTopics => CreateTopicsRequest, 2..=7;
            DeleteTopics => DeleteTopicsRequest, 1..=6;
            DescribeConfigs => DescribeConfigsRequest, 1..=4;
            DescribeCluster => DescribeClusterRequest, 0..=1;
            FindCoordinator => FindCoordinatorRequest, 0..=6;
            JoinGroup => JoinGroupRequest, 0..=9;
            SyncGroup => SyncGroupRequest, 0..=5;
            Heartbeat => HeartbeatRequest, 0..=4;
            LeaveGroup => LeaveGroupRequest, 0..=5;
            OffsetCommit => OffsetCommitRequest, 2..=9;
            OffsetFetch => OffsetFetchRequest, 1..=9;
            ListGroups => ListGroupsRequest, 0..=5;
            DescribeGroups => DescribeGroupsRequest, 0..=5;
            DeleteGroups => DeleteGroupsRequest, 0..=2;
            CreatePartitions => CreatePartitionsRequest, 0..=3;
            [connection]
            SaslHandshake => SaslHandshakeRequest, 0..=1;
            SaslAuthenticate => SaslAuthenticateRequest, 0..=2;
        }
    };
}

/// One API's served versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Served {
    pub api: ApiKey,
    pub min: i16,
    pub max: i16,
}

macro_rules! served_list {
    (
        [handlers] $($hapi:ident => $hrequest:ident, $hmin:literal ..= $hmax:literal;)*
        [connection] $($capi:ident => $crequest:ident, $cmin:literal ..= $cmax:literal;)*
    ) => {
        served_list!(@list $($hapi => $hrequest, $hmin..=$hmax;)* $($capi => $crequest, $cmin..=$cmax;)*);
    };
    (@list $($api:ident => $request:ident, $min:literal ..= $max:literal;)*) => {
        /// Every API of the table with its versions, in table order.
        pub(crate) const SERVED: &[Served] = &[
            $( Served { api: ApiKey::$api, min: $min, max: $max }, )*
        ];
        // Every served version is one kafka-protocol can decode and encode.
        $(
            const _: () = assert!(
                $min <= $max
                    && $min >= <messages::$request as kafka_protocol::protocol::Message>::VERSIONS.min
                    && $max <= <messages::$request as kafka_protocol::protocol::Message>::VERSIONS.max
            );
        )*
    };
}
kafka_table!(served_list);

/// What a handler's work ends with.
#[derive(Debug)]
pub(crate) enum Reply<R> {
    /// The response body.
    Respond(R),
    /// No response at all (a produce with acks = 0).
    Silent,
}

/// One Kafka API's server side.
pub(crate) trait KafkaApi: Request + Send + Sized + 'static {
    /// How the request runs.
    const RUNS: Runs;
    /// The skiff API it corresponds to (the authorizer's metric label).
    const SKIFF_API: SkiffApi;

    /// The work, authorization included, answered with the response body
    /// at `version`.
    fn handle(
        self,
        version: i16,
        ctx: Ctx,
    ) -> impl Future<Output = Reply<Self::Response>> + Send + 'static;
}

/// What a request's work hands the connection's writer, in request order.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A whole response frame (header and body, no size prefix).
    Frame(Bytes),
    /// Nothing to write (acks = 0).
    Silent,
    /// The response could not be encoded: close rather than leave the
    /// client waiting for it.
    Close,
}

/// What dispatch needs of the connection.
pub(crate) struct Connection<'a> {
    pub shared: &'a Arc<Shared>,
    pub session: &'a Session,
    pub peer: SocketAddr,
    /// The writer's queue: one slot per request, in request order.
    pub replies: &'a mpsc::Sender<oneshot::Receiver<Outcome>>,
    /// The ordered pipeline ([`Runs::InOrder`]).
    pub in_order: &'a mpsc::Sender<InOrderJob>,
}

/// Starts one request. An error is the reason to close the connection (the
/// request could not be parsed, or is outside the table).
pub(crate) async fn dispatch(
    conn: &Connection<'_>,
    request: header::Request,
    permit: OwnedSemaphorePermit,
) -> Result<(), String> {
    metrics::counter!(crate::telemetry::names::REQUESTS).increment(1);
    let version = request.header.request_api_version;
    if request.api == ApiKey::ApiVersions
        && !versions_of(ApiKey::ApiVersions).is_some_and(|v| v.contains(&version))
    {
        let body = super::handlers::api_versions::unsupported();
        let frame =
            header::encode_response(ApiKey::ApiVersions, request.header.correlation_id, 0, &body)
                .map_err(|e| format!("cannot encode the ApiVersions answer: {e}"))?;
        answer_now(conn.replies, frame).await?;
        drop(permit);
        return Ok(());
    }
    macro_rules! route {
        (
            [handlers] $($api:ident => $request:ident, $min:literal ..= $max:literal;)*
            [connection] $($capi:ident => $crequest:ident, $cmin:literal ..= $cmax:literal;)*
        ) => {
            match request.api {
                $( ApiKey::$api => run::<messages::$request>(conn, request, permit).await, )*
                $( ApiKey::$capi )|* => Err(format!(
                    "{:?} is answered by the connection, not dispatched",
                    request.api
                )),
                other => Err(format!("api {other:?} (key {}) is not served", other as i16)),
            }
        };
    }
    kafka_table!(route)
}

/// The versions the table serves of `api` (`None` when it is not served).
pub(crate) fn versions_of(api: ApiKey) -> Option<RangeInclusive<i16>> {
    SERVED.iter().find(|s| s.api == api).map(|s| s.min..=s.max)
}

/// Queues an answer that is ready now, in request order.
pub(crate) async fn answer_now(
    replies: &mpsc::Sender<oneshot::Receiver<Outcome>>,
    frame: Bytes,
) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Outcome::Frame(frame));
    replies
        .send(rx)
        .await
        .map_err(|_| "connection closing".to_owned())
}

/// Decodes a request's body strictly (no bytes left over) at its version,
/// which must be one the table serves for its API. An error is the reason
/// to close the connection.
pub(crate) fn decode<R: Request>(request: &header::Request) -> Result<R, String> {
    let api = request.api;
    let version = request.header.request_api_version;
    let versions = versions_of(api).ok_or_else(|| format!("api {api:?} is not served"))?;
    if !versions.contains(&version) {
        return Err(format!(
            "{api:?} version {version} is not served (this broker serves {}..={})",
            versions.start(),
            versions.end()
        ));
    }
    let mut body = request.body.clone();
    let decoded = R::decode(&mut body, version)
        .map_err(|e| format!("malformed {api:?} v{version} request: {e}"))?;
    if body.has_remaining() {
        return Err(format!(
            "malformed {api:?} v{version} request: {} bytes after the body",
            body.remaining()
        ));
    }
    Ok(decoded)
}

/// The one path every handler's API takes: check the version, decode
/// strictly, then run as the handler says and queue the answer in request
/// order.
async fn run<R: KafkaApi>(
    conn: &Connection<'_>,
    request: header::Request,
    permit: OwnedSemaphorePermit,
) -> Result<(), String> {
    let api = request.api;
    let version = request.header.request_api_version;
    let decoded = decode::<R>(&request)?;
    let (tx, rx) = oneshot::channel();
    conn.replies
        .send(rx)
        .await
        .map_err(|_| "connection closing".to_owned())?;
    let gate = (R::RUNS == Runs::InOrder).then(|| Arc::new(OrderGate::default()));
    let ctx = Ctx::new(
        Arc::clone(conn.shared),
        conn.session.clone(),
        conn.peer,
        R::SKIFF_API,
        gate.clone(),
    )
    .with_client_id(
        request
            .header
            .client_id
            .as_ref()
            .map_or("", |id| id.as_str()),
    );
    let correlation_id = request.header.correlation_id;
    let work = decoded.handle(version, ctx);
    let answered = async move {
        let outcome = match work.await {
            Reply::Respond(body) => {
                match header::encode_response(api, correlation_id, version, &body) {
                    Ok(frame) => Outcome::Frame(frame),
                    Err(e) => {
                        tracing::error!(?api, version, error = %e, "cannot encode a kafka response; closing the connection");
                        Outcome::Close
                    }
                }
            }
            Reply::Silent => Outcome::Silent,
        };
        let _ = tx.send(outcome);
        drop(permit);
    };
    match (gate, R::RUNS) {
        (Some(gate), _) => conn
            .in_order
            .send(InOrderJob::new(answered, gate))
            .await
            .map_err(|_| "connection closing".to_owned())?,
        (None, Runs::Task) => {
            conn.shared.tracker.spawn(answered);
        }
        (None, _) => answered.await,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_serves_each_api_once() {
        for (i, s) in SERVED.iter().enumerate() {
            assert!(
                SERVED[..i].iter().all(|o| o.api != s.api),
                "{:?} listed twice",
                s.api
            );
        }
        assert_eq!(versions_of(ApiKey::Produce), Some(3..=11));
        assert_eq!(versions_of(ApiKey::JoinGroup), Some(0..=9));
        assert_eq!(versions_of(ApiKey::TxnOffsetCommit), None);
        assert_eq!(versions_of(ApiKey::SaslHandshake), Some(0..=1));
        assert_eq!(versions_of(ApiKey::SaslAuthenticate), Some(0..=2));
    }
}
