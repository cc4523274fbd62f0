//! Authorization at dispatch: every API maps to an (operation, resource)
//! check, made before any work starts.
//!
//! | API | needs |
//! | --- | --- |
//! | CreateTopic / DeleteTopic / AlterTopic | `create` / `delete` / `alter` on the topic |
//! | DescribeTopic, ListOffsets | `describe` on the topic (implied by any grant on it) |
//! | ListTopics, ListGroups | nothing; the answer lists only what the user may describe |
//! | Produce | `produce` on the topic, plus `create` when it would auto-create it |
//! | Fetch | `consume` on the topic |
//! | JoinGroup | `consume` on the group and on each topic subscribed |
//! | Heartbeat, LeaveGroup | `consume` on the group |
//! | CommitOffsets | `consume` on the group and on each topic committed |
//! | FetchOffsets, DescribeGroup | `describe` on the group; the answer shows only topics the user may describe |
//! | ResetOffsets | `alter` on the group, `describe` on the topic |
//! | DeleteGroup | `delete` on the group |
//! | Status, InitProducerId | any authenticated user |
//! | user, ACL and token management | admin |
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

/// Checks that the session may do `op` on `kind`/`name`.
pub(crate) fn check(
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

/// Checks a topic operation.
pub(crate) fn topic(
    shared: &Shared,
    session: &Session,
    api: ApiKey,
    op: Operation,
    name: &str,
) -> Result<(), Failure> {
    check(shared, session, api, op, ResourceKind::Topic, name)
}

/// Checks a group operation.
pub(crate) fn group(
    shared: &Shared,
    session: &Session,
    api: ApiKey,
    op: Operation,
    name: &str,
) -> Result<(), Failure> {
    check(shared, session, api, op, ResourceKind::Group, name)
}

/// Whether a listing may show `kind`/`name` to the session (no metric: a
/// filtered listing is not a refusal). Call [`session`] first, so a stale
/// session is refused rather than shown nothing.
pub(crate) fn visible(shared: &Shared, session: &Session, kind: ResourceKind, name: &str) -> bool {
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
pub(crate) fn session(shared: &Shared, session: &Session, api: ApiKey) -> Result<(), Failure> {
    match session {
        Session::Anonymous => Ok(()),
        Session::User(p) => shared
            .security
            .check_session(p)
            .map_err(|e| stale(api, p.name(), e)),
    }
}

/// Checks that the session is an authenticated user (or auth is off).
pub(crate) fn any_user(shared: &Shared, session: &Session, api: ApiKey) -> Result<(), Failure> {
    match session {
        Session::Anonymous if !shared.security.enabled() => Ok(()),
        Session::Anonymous => Err(denied(api, ANONYMOUS_REFUSED.to_owned())),
        Session::User(_) => self::session(shared, session, api),
    }
}

/// Checks that the session is an admin (or auth is off: then anyone may
/// manage users, and creating the first one turns authentication on).
pub(crate) fn admin(shared: &Shared, session: &Session, api: ApiKey) -> Result<(), Failure> {
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
