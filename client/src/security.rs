//! [`SecurityAdmin`]: user, token and ACL management (the broker allows it to
//! admins only, or to anyone while it has no user at all).

use skiff_protocol::Secret;
use skiff_protocol::messages::{
    AclEntry, CreateTokenRequest, DeleteUserRequest, GrantAclRequest, ListAclsRequest,
    ListUsersRequest, Operations, PutUserRequest, ResourcePattern, RevokeAclRequest,
    RevokeTokenRequest, UserListing,
};

use crate::client::Client;
use crate::error::Result;

/// Manages the broker's users, API tokens and grants.
///
/// ```no_run
/// use skiff_client::{Client, ClientConfig, Operations, ResourceKind, ResourcePattern};
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let client = Client::connect(ClientConfig::default().password("admin", "s3cret")).await?;
/// let security = client.security();
/// security.put_user("alice", "alice-pw", false).await?;
/// let orders = ResourcePattern { kind: ResourceKind::Topic, name: "orders".into(), prefix: false };
/// security.grant("alice", orders, Operations::parse("produce,consume").unwrap()).await?;
/// let (_id, token) = security.create_token("alice").await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SecurityAdmin {
    client: Client,
}

impl SecurityAdmin {
    /// A handle on `client`.
    pub fn new(client: Client) -> SecurityAdmin {
        SecurityAdmin { client }
    }

    /// Creates a user, or replaces its password and admin flag. Returns
    /// whether the user is new.
    pub async fn put_user(
        &self,
        name: &str,
        password: impl Into<Secret>,
        admin: bool,
    ) -> Result<bool> {
        let resp = self
            .client
            .send(PutUserRequest {
                name: name.to_owned(),
                password: password.into(),
                admin,
            })
            .await?;
        Ok(resp.created)
    }

    /// Removes a user with its tokens and grants.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        self.client
            .send(DeleteUserRequest {
                name: name.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// Every user, with its admin flag and token ids.
    pub async fn list_users(&self) -> Result<Vec<UserListing>> {
        Ok(self.client.send(ListUsersRequest).await?.users)
    }

    /// Grants `user` the `operations` on what `resource` covers.
    pub async fn grant(
        &self,
        user: &str,
        resource: ResourcePattern,
        operations: Operations,
    ) -> Result<()> {
        self.client
            .send(GrantAclRequest {
                entry: AclEntry {
                    user: user.to_owned(),
                    resource,
                    operations,
                },
            })
            .await?;
        Ok(())
    }

    /// Revokes `operations` from `user`'s grant on `resource`.
    pub async fn revoke(
        &self,
        user: &str,
        resource: ResourcePattern,
        operations: Operations,
    ) -> Result<()> {
        self.client
            .send(RevokeAclRequest {
                entry: AclEntry {
                    user: user.to_owned(),
                    resource,
                    operations,
                },
            })
            .await?;
        Ok(())
    }

    /// The grants of `user`, or of everyone.
    pub async fn list_acls(&self, user: Option<&str>) -> Result<Vec<AclEntry>> {
        Ok(self
            .client
            .send(ListAclsRequest {
                user: user.map(str::to_owned),
            })
            .await?
            .acls)
    }

    /// Creates an API token for `user`: returns its id and the token, which
    /// the broker never shows again.
    pub async fn create_token(&self, user: &str) -> Result<(String, Secret)> {
        let resp = self
            .client
            .send(CreateTokenRequest {
                user: user.to_owned(),
            })
            .await?;
        Ok((resp.token_id, resp.token))
    }

    /// Revokes `user`'s token with id `token_id`.
    pub async fn revoke_token(&self, user: &str, token_id: &str) -> Result<()> {
        self.client
            .send(RevokeTokenRequest {
                user: user.to_owned(),
                token_id: token_id.to_owned(),
            })
            .await?;
        Ok(())
    }
}
