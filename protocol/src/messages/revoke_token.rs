//! RevokeToken: deletes one of a user's API tokens; connections that
//! authenticated with it keep their session, new handshakes with it fail.
//! Admin only.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Revokes a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeTokenRequest {
    /// The token's user.
    pub user: String,
    /// The token's id (from `CreateToken` or `ListUsers`).
    pub token_id: String,
}

/// The token is revoked (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeTokenResponse;

impl Encode for RevokeTokenRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.user);
        buf.put_string(&self.token_id);
    }
}

impl Decode for RevokeTokenRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            user: r.string("user")?,
            token_id: r.string("token_id")?,
        })
    }
}

impl Encode for RevokeTokenResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for RevokeTokenResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for RevokeTokenRequest {
        fn examples() -> Vec<Self> {
            vec![RevokeTokenRequest {
                user: "alice".into(),
                token_id: "0123abcd".into(),
            }]
        }
    }

    impl Examples for RevokeTokenResponse {
        fn examples() -> Vec<Self> {
            vec![RevokeTokenResponse]
        }
    }
}
