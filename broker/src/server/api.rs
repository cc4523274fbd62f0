//! What a protocol front end plugs into: the [`Handler`] an API implements,
//! how it [`Runs`], and the narrow [`Ctx`] it works with.
//!
//! A handler states, next to its code (in `handlers/`), the three things
//! dispatch needs: its authorization rule ([`Handler::authorize`], made of
//! [`Authorizer`] checks), how it runs ([`Handler::RUNS`]), and the work
//! itself ([`Handler::handle`]). Dispatch (`dispatch.rs`) is one generic
//! path for every API: decode, authorize, run, answer.
//!
//! Handlers see the broker's services (topics and their logs, groups,
//! producer ids, users and grants, metrics, limits) through [`Ctx`], never
//! the listener's or connection's state, and nothing in them depends on the
//! wire format: a second front end (Kafka's) reuses the services, the
//! authorizer, the run modes and the ordered pipeline with a table of its
//! own.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skiff_protocol::messages::{ApiKey, Request};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::authorize::{Authorizer, Session};
use super::failure::Failure;
use super::handlers::queue_members::QueueMembers;
use crate::auth::Security;
use crate::config::BrokerConfig;
use crate::groups::GroupCoordinator;
use crate::producer_ids::ProducerIds;
use crate::telemetry::Telemetry;
use crate::topics::TopicRegistry;

/// How a request runs once authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runs {
    /// Awaited on the connection's task before the next frame is read:
    /// memory-only work that never waits (listings, heartbeats).
    Inline,
    /// Its own task: work that waits (disk I/O on the blocking pool, an
    /// fsync, a long poll), so later requests on the connection go ahead.
    Task,
    /// The connection's ordered pipeline: requests of this kind start in
    /// arrival order, each running until it calls [`Ctx::order_fixed`]
    /// (produce: once its batch is queued on its log), then finishing as
    /// its own task, so their waits overlap (one group commit) while their
    /// effects keep the order the client sent them in.
    InOrder,
}

/// One API's server side. Implemented once per request type; dispatch
/// calls nothing else, and an API of the table without an implementation
/// does not compile.
pub(crate) trait Handler: Request + Sized {
    /// What the authorization check hands on to the work (`()` for most;
    /// a produce learns whether it may create its topic).
    type Grant: Send + 'static;

    /// How the request runs.
    const RUNS: Runs;

    /// The API's authorization rule (checks on [`Ctx::authorizer`]),
    /// checked before any work starts. A
    /// refusal is answered at once; `AuthenticationFailed` (a session no
    /// longer valid) also closes the connection.
    fn authorize(&self, ctx: &Ctx) -> Result<Self::Grant, Failure>;

    /// The work, answered with the response body or a [`Failure`].
    fn handle(
        self,
        grant: Self::Grant,
        ctx: Ctx,
    ) -> impl Future<Output = Result<Self::Response, Failure>> + Send + 'static;
}

/// Tells the ordered pipeline that an [`Runs::InOrder`] request's place is
/// fixed and the next one may start.
#[derive(Debug, Default)]
pub(crate) struct OrderGate(AtomicBool);

impl OrderGate {
    /// The request's place is fixed.
    pub(crate) fn fix(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_fixed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a handler works with: the broker's services, the session it acts
/// for, the peer, and its API (for re-checks). Cheap to clone into the
/// blocking pool.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    session: Session,
    peer: SocketAddr,
    api: ApiKey,
    /// The version of the request, in the front end's own numbering.
    api_version: u16,
    order: Option<Arc<OrderGate>>,
    /// The client id of a protocol that sends it per request (Kafka's
    /// request header); empty otherwise.
    client_id: Arc<str>,
    /// When dispatch took the request (just after its frame was read).
    received: std::time::Instant,
    /// The connection's queue members (`None`: a front end without queues).
    queue_members: Option<Arc<QueueMembers>>,
}

impl Ctx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        session: Session,
        peer: SocketAddr,
        api: ApiKey,
        order: Option<Arc<OrderGate>>,
    ) -> Self {
        Self {
            shared,
            session,
            peer,
            api,
            api_version: 0,
            order,
            client_id: Arc::from(""),
            received: std::time::Instant::now(),
            queue_members: None,
        }
    }

    /// The same context, for a request of version `version`.
    pub(crate) fn with_api_version(mut self, version: u16) -> Self {
        self.api_version = version;
        self
    }

    /// The request's version (0 unless the front end set it).
    pub(crate) fn api_version(&self) -> u16 {
        self.api_version
    }

    /// The same context, with the connection's queue members.
    pub(crate) fn with_queue_members(mut self, members: &Arc<QueueMembers>) -> Self {
        self.queue_members = Some(Arc::clone(members));
        self
    }

    /// The connection's queue members, whose locks are released when it
    /// closes (`None` on a front end without queues).
    pub(crate) fn queue_members(&self) -> Option<&QueueMembers> {
        self.queue_members.as_deref()
    }

    /// The same context, with the client id of the request's header.
    pub(crate) fn with_client_id(mut self, client_id: &str) -> Self {
        self.client_id = Arc::from(client_id);
        self
    }

    /// The client id of the request's header (empty when the protocol has
    /// none per request).
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// When dispatch took the request (just after its frame was read).
    pub(crate) fn received(&self) -> std::time::Instant {
        self.received
    }

    /// The session's checks, for rules applied after the work (a long poll
    /// re-checks its grant; listings show only what the session may see).
    pub(crate) fn authorizer(&self) -> Authorizer<'_> {
        Authorizer::new(&self.shared, &self.session, self.api)
    }

    /// Who the request acts as.
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// For a [`Runs::InOrder`] request: its effect's place is fixed (e.g.
    /// its batch is queued on its log); the next request in the pipeline
    /// may start. Once is enough; a no-op for other run modes.
    pub(crate) fn order_fixed(&self) {
        if let Some(gate) = &self.order {
            gate.fix();
        }
    }

    pub(crate) fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    pub(crate) fn topics(&self) -> &TopicRegistry {
        &self.shared.topics
    }

    pub(crate) fn groups(&self) -> &GroupCoordinator {
        &self.shared.groups
    }

    pub(crate) fn queues(&self) -> &crate::queues::QueueRegistry {
        &self.shared.queues
    }

    pub(crate) fn producer_ids(&self) -> &ProducerIds {
        &self.shared.producer_ids
    }

    pub(crate) fn security(&self) -> &Security {
        &self.shared.security
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }

    /// Cancelled when the broker starts shutting down (long polls answer
    /// early).
    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.shared.shutdown
    }

    /// Time since the broker started.
    pub(crate) fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Where Kafka clients are told to connect (`None`: no Kafka listener).
    pub(crate) fn kafka(&self) -> Option<&crate::kafka::Advertised> {
        self.shared.kafka.as_ref()
    }

    /// Connections open now.
    pub(crate) fn connections_open(&self) -> usize {
        self.shared.connections_open()
    }
}
