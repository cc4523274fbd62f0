//! Handlers of the user, ACL and token management APIs (admin only; the
//! check is made at dispatch, and again by the store under its writer lock,
//! where the change is applied). Changes hash passwords and fsync
//! `security.json`, so they run on the blocking pool. Also the handshake's
//! own handler, which refuses a second handshake on a connection (the
//! first is the session's, see `server/handshake.rs`).

use skiff_protocol::messages::{
    CreateTokenRequest, CreateTokenResponse, DeleteUserRequest, DeleteUserResponse,
    GrantAclRequest, GrantAclResponse, HandshakeRequest, HandshakeResponse, ListAclsRequest,
    ListAclsResponse, ListUsersRequest, ListUsersResponse, PutUserRequest, PutUserResponse,
    RevokeAclRequest, RevokeAclResponse, RevokeTokenRequest, RevokeTokenResponse,
};
use skiff_protocol::{ErrorCode, Secret};

use super::blocking;
use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;

/// Admin-only management that writes `security.json`: a task on the
/// blocking pool, acting as the session's principal (re-checked by the
/// store under its writer lock).
macro_rules! admin_task {
    ($request:ty => $response:ty, |$req:ident, $ctx:ident| $work:block) => {
        impl Handler for $request {
            type Grant = ();
            const RUNS: Runs = Runs::Task;

            fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
                ctx.authorizer().admin()
            }

            async fn handle(self, (): (), $ctx: Ctx) -> Result<$response, Failure> {
                let $req = self;
                blocking(move || $work).await
            }
        }
    };
}

/// A second handshake on a connection: refused (the first one fixed the
/// session; see `server/handshake.rs`).
impl Handler for HandshakeRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, _ctx: &Ctx) -> Result<(), Failure> {
        Err(Failure::new(
            ErrorCode::InvalidRequest,
            "handshake already done on this connection",
        ))
    }

    async fn handle(self, (): (), _ctx: Ctx) -> Result<HandshakeResponse, Failure> {
        Err(Failure::new(
            ErrorCode::InvalidRequest,
            "handshake already done on this connection",
        ))
    }
}

admin_task!(PutUserRequest => PutUserResponse, |req, ctx| {
    let session = ctx.session();
    let created = ctx.security().put_user(
        session.principal(),
        &req.name,
        req.password.expose(),
        req.admin,
    )?;
    tracing::info!(user = %req.name, admin = req.admin, created, by = session.user(), "user stored");
    Ok(PutUserResponse { created })
});

admin_task!(DeleteUserRequest => DeleteUserResponse, |req, ctx| {
    let session = ctx.session();
    ctx.security().delete_user(session.principal(), &req.name)?;
    tracing::info!(user = %req.name, by = session.user(), "user removed");
    Ok(DeleteUserResponse)
});

admin_task!(GrantAclRequest => GrantAclResponse, |req, ctx| {
    let (session, e) = (ctx.session(), req.entry);
    ctx.security()
        .grant(session.principal(), &e.user, e.resource.clone(), e.operations)?;
    tracing::info!(user = %e.user, resource = %e.resource, operations = %e.operations, by = session.user(), "granted");
    Ok(GrantAclResponse)
});

admin_task!(RevokeAclRequest => RevokeAclResponse, |req, ctx| {
    let (session, e) = (ctx.session(), req.entry);
    ctx.security()
        .revoke(session.principal(), &e.user, &e.resource, e.operations)?;
    tracing::info!(user = %e.user, resource = %e.resource, operations = %e.operations, by = session.user(), "revoked");
    Ok(RevokeAclResponse)
});

admin_task!(CreateTokenRequest => CreateTokenResponse, |req, ctx| {
    let session = ctx.session();
    let (token_id, token) = ctx.security().create_token(session.principal(), &req.user)?;
    tracing::info!(user = %req.user, token_id, by = session.user(), "token created");
    Ok(CreateTokenResponse {
        token_id,
        token: Secret::new(token),
    })
});

admin_task!(RevokeTokenRequest => RevokeTokenResponse, |req, ctx| {
    let session = ctx.session();
    ctx.security()
        .revoke_token(session.principal(), &req.user, &req.token_id)?;
    tracing::info!(user = %req.user, token_id = %req.token_id, by = session.user(), "token revoked");
    Ok(RevokeTokenResponse)
});

/// Admin only; reads memory.
impl Handler for ListUsersRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().admin()
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ListUsersResponse, Failure> {
        Ok(ListUsersResponse {
            users: ctx.security().list_users(),
        })
    }
}

/// Admin only; reads memory.
impl Handler for ListAclsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Inline;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().admin()
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ListAclsResponse, Failure> {
        Ok(ListAclsResponse {
            acls: ctx.security().list_acls(self.user.as_deref())?,
        })
    }
}
