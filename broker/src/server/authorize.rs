//! Authorization: the checks a handler's rule is made of, made at dispatch
//! before any work starts. Each API states its rule next to its code
//! ([`super::api::Handler::authorize`], in `handlers/`), as calls on an
//! [`Authorizer`]:
//!
//! - [`Authorizer::topic`] / [`Authorizer::group`]: an operation on a named
//!   resource (`describe` is implied by any grant on it);
//! - [`Authorizer::session`]: only a valid session, for listings that then
//!   show only what [`Authorizer::visible`] allows;
//! - [`Authorizer::any_user`]: any authenticated user;
//! - [`Authorizer::admin`]: user, ACL and token management.
//!
//! Nothing here knows which protocol a request came in on: a front end
//! builds an [`Authorizer`] for its session and API, and the same user may
//! do the same things through any front end.
//!
//! With authentication off (no users) every session is anonymous and every
//! check is one atomic load. A refusal is `NotAuthorized` with a message
//! naming the user, the operation and the resource, and counts in
//! `skiff_authz_denied_total{api}`.
//!
//! Every check of a user session also checks, in the same read-locked
//! lookup, that the session is still valid (its user not removed or
//! re-created, its password not changed, its token not revoked); if not, the
//! request is refused with `AuthenticationFailed` ("session no longer
//! valid: ...") and the connection closes.

use std::sync::Arc;

use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{ApiKey, Operation, ResourceKind};

use super::Shared;
use super::failure::Failure;
use crate::auth::{Principal, SecurityError};

/// Who a connection acts as, fixed by its handshake.
#[derive(Debug, Clone)]
pub(crate) enum Session {
    /// No credentials: allowed everything while authentication is off,
    /// nothing once it is on (the connection predates the first user).
    Anonymous,
    /// An authenticated user (looked up again at every check).
    User(Arc<Principal>),
}

impl Session {
    /// The user's name, empty for an anonymous session.
    pub(crate) fn user(&self) -> &str {
        match self {
            Session::Anonymous => "",
            Session::User(p) => p.name(),
        }
    }

    /// Who acts, for changes re-checked by the store (`None`: anonymous).
    pub(crate) fn principal(&self) -> Option<&Principal> {
        match self {
            Session::Anonymous => None,
            Session::User(p) => Some(p),
        }
    }
}

/// A session that is no longer valid: `AuthenticationFailed`, after which
/// the connection closes.
fn stale(api: ApiKey, user: &str, e: SecurityError) -> Failure {
    metrics::counter!(crate::telemetry::names::SESSIONS_ENDED).increment(1);
    tracing::info!(?api, user, error = %e, "refusing a request of a session no longer valid; closing the connection");
    Failure::from(e)
}

fn denied(api: ApiKey, message: String) -> Failure {
    metrics::counter!(crate::telemetry::names::AUTHZ_DENIED, "api" => format!("{api:?}"))
        .increment(1);
    tracing::debug!(?api, %message, "request not authorized");
    Failure::new(ErrorCode::NotAuthorized, message)
}

const ANONYMOUS_REFUSED: &str = "this connection has not authenticated (it was opened before authentication was turned on); reconnect with credentials";

/// The checks of one request: its session and API, against the broker's
/// users and grants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authorizer<'a> {
    shared: &'a Shared,
    session: &'a Session,
    api: ApiKey,
}

impl<'a> Authorizer<'a> {
    pub(crate) fn new(shared: &'a Shared, session: &'a Session, api: ApiKey) -> Self {
        Self {
            shared,
            session,
            api,
        }
    }

    /// Checks a topic operation.
    pub(crate) fn topic(&self, op: Operation, name: &str) -> Result<(), Failure> {
        check(
            self.shared,
            self.session,
            self.api,
            op,
            ResourceKind::Topic,
            name,
        )
    }

    /// Checks a group operation.
    pub(crate) fn group(&self, op: Operation, name: &str) -> Result<(), Failure> {
        check(
            self.shared,
            self.session,
            self.api,
            op,
            ResourceKind::Group,
            name,
        )
    }

    /// Whether the session may do `op` on a topic, asked quietly: `false`
    /// is no refusal (nothing counted or logged), and a session that just
    /// became invalid gets `false`.
    pub(crate) fn topic_allows(&self, op: Operation, name: &str) -> bool {
        match self.session {
            Session::Anonymous => !self.shared.security.enabled(),
            Session::User(p) => self
                .shared
                .security
                .allows(p, op, ResourceKind::Topic, name)
                .unwrap_or(false),
        }
    }

    /// Whether a listing may show `kind`/`name` to the session (no metric:
    /// a filtered listing is not a refusal). Call [`Self::session`] first,
    /// so a stale session is refused rather than shown nothing.
    pub(crate) fn visible(&self, kind: ResourceKind, name: &str) -> bool {
        visible(self.shared, self.session, kind, name)
    }

    /// Checks that a user session is still valid (anonymous sessions pass:
    /// what they are shown is filtered by [`Self::visible`]).
    pub(crate) fn session(&self) -> Result<(), Failure> {
        session(self.shared, self.session, self.api)
    }

    /// Checks that the session is an authenticated user (or auth is off).
    pub(crate) fn any_user(&self) -> Result<(), Failure> {
        any_user(self.shared, self.session, self.api)
    }

    /// Checks that the session is an admin (or auth is off: then anyone may
    /// manage users, and creating the first one turns authentication on).
    pub(crate) fn admin(&self) -> Result<(), Failure> {
        admin(self.shared, self.session, self.api)
    }
}

/// Checks that the session may do `op` on `kind`/`name`.
fn check(
    shared: &Shared,
    session: &Session,
    api: ApiKey,
    op: Operation,
    kind: ResourceKind,
    name: &str,
) -> Result<(), Failure> {
    match session {
        Session::Anonymous if !shared.security.enabled() => Ok(()),
        Session::Anonymous => Err(denied(api, ANONYMOUS_REFUSED.to_owned())),
        Session::User(p) => match shared.security.allows(p, op, kind, name) {
            Ok(true) => Ok(()),
            Ok(false) => Err(refused(api, p.name(), op, kind, name)),
            Err(e) => Err(stale(api, p.name(), e)),
        },
    }
}

fn refused(api: ApiKey, user: &str, op: Operation, kind: ResourceKind, name: &str) -> Failure {
    let action = match op {
        Operation::Produce => "produce to",
        Operation::Consume => "consume from",
        other => other.name(),
    };
    denied(
        api,
        format!("user '{user}' may not {action} {} '{name}'", kind.name()),
    )
}

/// Whether a listing may show `kind`/`name` to the session (no metric: a
/// filtered listing is not a refusal). Call [`session`] first, so a stale
/// session is refused rather than shown nothing.
fn visible(shared: &Shared, session: &Session, kind: ResourceKind, name: &str) -> bool {
    match session {
        Session::Anonymous => !shared.security.enabled(),
        Session::User(p) => shared
            .security
            .allows(p, Operation::Describe, kind, name)
            .unwrap_or(false),
    }
}

/// Checks that a user session is still valid (anonymous sessions pass:
/// what they are shown is filtered by [`visible`]).
fn session(shared: &Shared, session: &Session, api: ApiKey) -> Result<(), Failure> {
    match session {
        Session::Anonymous => Ok(()),
        Session::User(p) => shared
            .security
            .check_session(p)
            .map_err(|e| stale(api, p.name(), e)),
    }
}

/// Checks that the session is an authenticated user (or auth is off).
fn any_user(shared: &Shared, session: &Session, api: ApiKey) -> Result<(), Failure> {
    match session {
        Session::Anonymous if !shared.security.enabled() => Ok(()),
        Session::Anonymous => Err(denied(api, ANONYMOUS_REFUSED.to_owned())),
        Session::User(_) => self::session(shared, session, api),
    }
}

/// Checks that the session is an admin (or auth is off: then anyone may
/// manage users, and creating the first one turns authentication on).
fn admin(shared: &Shared, session: &Session, api: ApiKey) -> Result<(), Failure> {
    match session {
        Session::Anonymous if !shared.security.enabled() => Ok(()),
        Session::Anonymous => Err(denied(api, ANONYMOUS_REFUSED.to_owned())),
        Session::User(p) => match shared.security.is_admin(p) {
            Ok(true) => Ok(()),
            Ok(false) => Err(denied(
                api,
                format!(
                    "user '{}' may not manage users, tokens or ACLs (admin only)",
                    p.name()
                ),
            )),
            Err(e) => Err(stale(api, p.name(), e)),
        },
    }
}
