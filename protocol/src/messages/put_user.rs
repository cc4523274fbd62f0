//! PutUser: creates a user, or replaces an existing user's password and
//! admin flag (its grants and tokens stay). Admin only.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::secret::Secret;

/// Creates or updates a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutUserRequest {
    /// The user name.
    pub name: String,
    /// The password; the broker stores only its argon2id hash.
    pub password: Secret,
    /// Whether the user may do anything, including managing users and ACLs.
    pub admin: bool,
}

/// The user is stored (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutUserResponse {
    /// True if the user is new, false if an existing one was updated.
    pub created: bool,
}

impl Encode for PutUserRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
        buf.put_string(self.password.expose());
        buf.put_bool(self.admin);
    }
}

impl Decode for PutUserRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
            password: Secret::new(r.string("password")?),
            admin: r.bool("admin")?,
        })
    }
}

impl Encode for PutUserResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_bool(self.created);
    }
}

impl Decode for PutUserResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            created: r.bool("created")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for PutUserRequest {
        fn examples() -> Vec<Self> {
            vec![PutUserRequest {
                name: "alice".into(),
                password: "pw".into(),
                admin: true,
            }]
        }
    }

    impl Examples for PutUserResponse {
        fn examples() -> Vec<Self> {
            vec![PutUserResponse { created: false }]
        }
    }
}
