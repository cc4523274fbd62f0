//! CreateToken: makes a new API token for a user. The token is in this
//! response only: the broker keeps just its SHA-256 digest. Admin only.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::secret::Secret;

/// Creates a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTokenRequest {
    /// The user the token authenticates as.
    pub user: String,
}

/// The new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTokenResponse {
    /// Names the token in listings and for `RevokeToken` (not a secret).
    pub token_id: String,
    /// The token itself: shown once, never again.
    pub token: Secret,
}

impl Encode for CreateTokenRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.user);
    }
}

impl Decode for CreateTokenRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            user: r.string("user")?,
        })
    }
}

impl Encode for CreateTokenResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.token_id);
        buf.put_string(self.token.expose());
    }
}

impl Decode for CreateTokenResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            token_id: r.string("token_id")?,
            token: Secret::new(r.string("token")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for CreateTokenRequest {
        fn examples() -> Vec<Self> {
            vec![CreateTokenRequest {
                user: "alice".into(),
            }]
        }
    }

    impl Examples for CreateTokenResponse {
        fn examples() -> Vec<Self> {
            vec![CreateTokenResponse {
                token_id: "0123abcd".into(),
                token: "skt_secret".into(),
            }]
        }
    }
}
