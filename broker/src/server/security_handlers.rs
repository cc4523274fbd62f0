//! Handlers of the user, ACL and token management APIs (admin only; the
//! check is made at dispatch, and again by the store under its writer lock,
//! where the change is applied). Changes hash passwords and fsync
//! `security.json`, so they run on the blocking pool. Also the handshake's
//! credential check, whose password checks are bounded broker-wide.

use std::net::IpAddr;
use std::sync::Arc;

use skiff_protocol::messages::{
    CreateTokenRequest, CreateTokenResponse, Credentials, DeleteUserRequest, DeleteUserResponse,
    GrantAclRequest, GrantAclResponse, ListAclsRequest, ListAclsResponse, ListUsersResponse,
    PutUserRequest, PutUserResponse, RevokeAclRequest, RevokeAclResponse, RevokeTokenRequest,
    RevokeTokenResponse,
};

use skiff_protocol::{ErrorCode, Secret};
use tokio::time::Instant;

use super::Shared;
use super::authorize::Session;
use super::failure::Failure;
use super::handlers::blocking;

/// Checks a handshake's credentials; returns the session. A password check
/// (one argon2 run, about 19 MiB) first takes one of the broker-wide
/// `auth_checks_concurrent_max` permits, waiting at most until `deadline`
/// (the handshake's): so password guessing over many connections cannot
/// fill the blocking pool (which produces, fetches and commits share) nor
/// take more than that many times an argon2 run's memory. A password from
/// an address that has used up its failed logins
/// (`auth_failures_per_address_max`) is refused unchecked, tested again once
/// the permit is held (so logins sent at once cannot all pass while none
/// has failed yet); each failed password check counts against `peer`.
/// Tokens are not counted: 256 random bits cannot be guessed, and a cheap
/// check must not let anyone flood the table.
pub(crate) async fn authenticate(
    shared: &Arc<Shared>,
    credentials: Credentials,
    peer: IpAddr,
    deadline: Instant,
) -> Result<Session, Failure> {
    let principal = match credentials {
        Credentials::Password { .. } => {
            throttled(shared, peer)?;
            let checks = Arc::clone(&shared.auth_checks);
            let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, checks.acquire_owned()).await
            else {
                metrics::counter!(crate::telemetry::names::AUTH_CHECKS_BUSY).increment(1);
                return Err(Failure::new(
                    ErrorCode::AuthenticationFailed,
                    "authentication failed: too many logins in progress; try again later",
                ));
            };
            throttled(shared, peer)?;
            let checker = Arc::clone(shared);
            // Counted in the check's own task: a handshake whose deadline
            // drops this future still counts its failure.
            blocking(move || {
                let out = checker.security.authenticate(&credentials);
                drop(permit);
                let out = out.map_err(Failure::from);
                if let Err(failure) = &out
                    && failure.code == ErrorCode::AuthenticationFailed
                {
                    checker
                        .login_throttle
                        .record_failure(peer, std::time::Instant::now());
                }
                out
            })
            .await?
        }
        // No credentials or a token: a map lookup, checked in place.
        other => shared.security.authenticate(&other)?,
    };
    Ok(match principal {
        Some(p) => Session::User(Arc::new(p)),
        None => Session::Anonymous,
    })
}

/// Refuses a password login from an address that has used up its failed
/// logins (`auth_failures_per_address_max`).
fn throttled(shared: &Shared, peer: IpAddr) -> Result<(), Failure> {
    let Err(retry_after) = shared.login_throttle.check(peer, std::time::Instant::now()) else {
        return Ok(());
    };
    metrics::counter!(crate::telemetry::names::AUTH_THROTTLED).increment(1);
    Err(Failure::new(
        ErrorCode::AuthenticationFailed,
        format!(
            "authentication failed: too many failed logins from this address; try again in {} s",
            retry_after.as_millis().div_ceil(1000)
        ),
    ))
}

pub(crate) async fn put_user(
    shared: Arc<Shared>,
    session: Session,
    req: PutUserRequest,
) -> Result<PutUserResponse, Failure> {
    blocking(move || {
        let created = shared
            .security
            .put_user(session.principal(), &req.name, req.password.expose(), req.admin)?;
        tracing::info!(user = %req.name, admin = req.admin, created, by = session.user(), "user stored");
        Ok(PutUserResponse { created })
    })
    .await
}

pub(crate) async fn delete_user(
    shared: Arc<Shared>,
    session: Session,
    req: DeleteUserRequest,
) -> Result<DeleteUserResponse, Failure> {
    blocking(move || {
        shared
            .security
            .delete_user(session.principal(), &req.name)?;
        tracing::info!(user = %req.name, by = session.user(), "user removed");
        Ok(DeleteUserResponse)
    })
    .await
}

pub(crate) fn list_users(shared: &Shared) -> ListUsersResponse {
    ListUsersResponse {
        users: shared.security.list_users(),
    }
}

pub(crate) async fn grant_acl(
    shared: Arc<Shared>,
    session: Session,
    req: GrantAclRequest,
) -> Result<GrantAclResponse, Failure> {
    blocking(move || {
        let e = req.entry;
        shared
            .security
            .grant(session.principal(), &e.user, e.resource.clone(), e.operations)?;
        tracing::info!(user = %e.user, resource = %e.resource, operations = %e.operations, by = session.user(), "granted");
        Ok(GrantAclResponse)
    })
    .await
}

pub(crate) async fn revoke_acl(
    shared: Arc<Shared>,
    session: Session,
    req: RevokeAclRequest,
) -> Result<RevokeAclResponse, Failure> {
    blocking(move || {
        let e = req.entry;
        shared
            .security
            .revoke(session.principal(), &e.user, &e.resource, e.operations)?;
        tracing::info!(user = %e.user, resource = %e.resource, operations = %e.operations, by = session.user(), "revoked");
        Ok(RevokeAclResponse)
    })
    .await
}

pub(crate) fn list_acls(
    shared: &Shared,
    req: ListAclsRequest,
) -> Result<ListAclsResponse, Failure> {
    Ok(ListAclsResponse {
        acls: shared.security.list_acls(req.user.as_deref())?,
    })
}

pub(crate) async fn create_token(
    shared: Arc<Shared>,
    session: Session,
    req: CreateTokenRequest,
) -> Result<CreateTokenResponse, Failure> {
    blocking(move || {
        let (token_id, token) = shared
            .security
            .create_token(session.principal(), &req.user)?;
        tracing::info!(user = %req.user, token_id, by = session.user(), "token created");
        Ok(CreateTokenResponse {
            token_id,
            token: Secret::new(token),
        })
    })
    .await
}

pub(crate) async fn revoke_token(
    shared: Arc<Shared>,
    session: Session,
    req: RevokeTokenRequest,
) -> Result<RevokeTokenResponse, Failure> {
    blocking(move || {
        shared.security.revoke_token(session.principal(), &req.user, &req.token_id)?;
        tracing::info!(user = %req.user, token_id = %req.token_id, by = session.user(), "token revoked");
        Ok(RevokeTokenResponse)
    })
    .await
}
