//! Handshake: the first request on every connection. The broker serves no
//! other request before it. Where authentication is on, the handshake
//! carries the credentials and is refused (`AuthenticationFailed`) unless
//! they check out; the client may try again on the same connection up to the
//! broker's `auth_failures_max`.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};
use crate::secret::Secret;

/// Opens a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol_version: u16,
    /// A free-form name for logs and group membership.
    pub client_id: String,
    /// Who the client is; [`Credentials::None`] where auth is off.
    pub credentials: Credentials,
}

/// The credentials a handshake carries. `Debug` redacts the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Anonymous: accepted only by a broker without users.
    #[default]
    None,
    /// A user name and its password.
    Password {
        /// The user.
        user: String,
        /// The password.
        password: Secret,
    },
    /// An API token (created with `CreateToken`); it names its user.
    Token {
        /// The token.
        token: Secret,
    },
}

/// The broker's answer to a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The protocol version the broker will speak on this connection.
    pub protocol_version: u16,
    /// The broker's software version.
    pub broker_version: String,
    /// The user the connection acts as; empty when auth is off.
    pub user: String,
}

impl Encode for HandshakeRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.protocol_version);
        buf.put_string(&self.client_id);
        match &self.credentials {
            Credentials::None => buf.put_u8(0),
            Credentials::Password { user, password } => {
                buf.put_u8(1);
                buf.put_string(user);
                buf.put_string(password.expose());
            }
            Credentials::Token { token } => {
                buf.put_u8(2);
                buf.put_string(token.expose());
            }
        }
    }
}

impl Decode for HandshakeRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let protocol_version = r.u16("protocol_version")?;
        let client_id = r.string("client_id")?;
        let credentials = match r.u8("credentials")? {
            0 => Credentials::None,
            1 => Credentials::Password {
                user: r.string("user")?,
                password: Secret::new(r.string("password")?),
            },
            2 => Credentials::Token {
                token: Secret::new(r.string("token")?),
            },
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "credentials",
                    value: u64::from(other),
                });
            }
        };
        Ok(Self {
            protocol_version,
            client_id,
            credentials,
        })
    }
}

impl Encode for HandshakeResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.protocol_version);
        buf.put_string(&self.broker_version);
        buf.put_string(&self.user);
    }
}

impl Decode for HandshakeResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: r.u16("protocol_version")?,
            broker_version: r.string("broker_version")?,
            user: r.string("user")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for HandshakeRequest {
        fn examples() -> Vec<Self> {
            [
                Credentials::None,
                Credentials::Password {
                    user: "alice".into(),
                    password: "pw".into(),
                },
                Credentials::Token {
                    token: "t0k3n".into(),
                },
            ]
            .into_iter()
            .map(|credentials| HandshakeRequest {
                protocol_version: 2,
                client_id: "svc-a".into(),
                credentials,
            })
            .collect()
        }
    }

    impl Examples for HandshakeResponse {
        fn examples() -> Vec<Self> {
            vec![HandshakeResponse {
                protocol_version: 2,
                broker_version: "0.1.0".into(),
                user: "alice".into(),
            }]
        }
    }

    #[test]
    fn debug_redacts_credentials() {
        let req = HandshakeRequest {
            protocol_version: 2,
            client_id: "c".into(),
            credentials: Credentials::Password {
                user: "alice".into(),
                password: "hunter2".into(),
            },
        };
        let shown = format!("{req:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
