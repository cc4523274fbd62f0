//! DeleteUser: removes a user with its grants and tokens. Admin only; the
//! last admin cannot be removed.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Removes a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUserRequest {
    /// The user name.
    pub name: String,
}

/// The user is gone (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUserResponse;

impl Encode for DeleteUserRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
    }
}

impl Decode for DeleteUserRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
        })
    }
}

impl Encode for DeleteUserResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for DeleteUserResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for DeleteUserRequest {
        fn examples() -> Vec<Self> {
            vec![DeleteUserRequest {
                name: "alice".into(),
            }]
        }
    }

    impl Examples for DeleteUserResponse {
        fn examples() -> Vec<Self> {
            vec![DeleteUserResponse]
        }
    }
}
