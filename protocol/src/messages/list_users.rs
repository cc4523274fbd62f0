//! ListUsers: every user with its admin flag and the ids of its tokens
//! (never a password hash or a token). Admin only.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Lists users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUsersRequest;

/// One user in the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListing {
    /// The user name.
    pub name: String,
    /// Whether the user is an admin.
    pub admin: bool,
    /// The ids of the user's API tokens (for `RevokeToken`).
    pub token_ids: Vec<String>,
}

/// The users, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUsersResponse {
    /// The users.
    pub users: Vec<UserListing>,
}

impl Encode for ListUsersRequest {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for ListUsersRequest {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

/// Wire size of a listing without its strings' bytes.
const USER_LISTING_BYTES_MIN: usize = 2 + 1 + 4;

impl Encode for ListUsersResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.users.len() as u32);
        for u in &self.users {
            buf.put_string(&u.name);
            buf.put_bool(u.admin);
            buf.put_u32_le(u.token_ids.len() as u32);
            for id in &u.token_ids {
                buf.put_string(id);
            }
        }
    }
}

impl Decode for ListUsersResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("users", USER_LISTING_BYTES_MIN)?;
        let mut users = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("name")?;
            let admin = r.bool("admin")?;
            let t = r.count("token_ids", 2)?;
            let mut token_ids = Vec::with_capacity(t);
            for _ in 0..t {
                token_ids.push(r.string("token_id")?);
            }
            users.push(UserListing {
                name,
                admin,
                token_ids,
            });
        }
        Ok(Self { users })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ListUsersRequest {
        fn examples() -> Vec<Self> {
            vec![ListUsersRequest]
        }
    }

    impl Examples for ListUsersResponse {
        fn examples() -> Vec<Self> {
            vec![ListUsersResponse {
                users: vec![
                    UserListing {
                        name: "admin".into(),
                        admin: true,
                        token_ids: vec![],
                    },
                    UserListing {
                        name: "alice".into(),
                        admin: false,
                        token_ids: vec!["0123abcd".into(), "4567ef01".into()],
                    },
                ],
            }]
        }
    }
}
