//! Handlers of the user, ACL and token management APIs (admin only; the
//! check is made at dispatch). Changes hash passwords and fsync
//! `security.json`, so they run on the blocking pool.

use std::sync::Arc;

use skiff_protocol::Secret;
use skiff_protocol::messages::{
    CreateTokenRequest, CreateTokenResponse, DeleteUserRequest, DeleteUserResponse,
    GrantAclRequest, GrantAclResponse, ListAclsRequest, ListAclsResponse, ListUsersResponse,
    PutUserRequest, PutUserResponse, RevokeAclRequest, RevokeAclResponse, RevokeTokenRequest,
    RevokeTokenResponse,
};

use super::Shared;
use super::authorize::Session;
use super::failure::Failure;
use super::handlers::blocking;

pub(crate) async fn put_user(
    shared: Arc<Shared>,
    session: Session,
    req: PutUserRequest,
) -> Result<PutUserResponse, Failure> {
    blocking(move || {
        let created = shared
            .security
            .put_user(&req.name, req.password.expose(), req.admin)?;
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
        shared.security.delete_user(&req.name)?;
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
            .grant(&e.user, e.resource.clone(), e.operations)?;
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
        shared.security.revoke(&e.user, &e.resource, e.operations)?;
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
        let (token_id, token) = shared.security.create_token(&req.user)?;
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
        shared.security.revoke_token(&req.user, &req.token_id)?;
        tracing::info!(user = %req.user, token_id = %req.token_id, by = session.user(), "token revoked");
        Ok(RevokeTokenResponse)
    })
    .await
}
