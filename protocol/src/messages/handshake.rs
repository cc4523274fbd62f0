//! Handshake: the first request on every connection. The broker serves no
//! other request before it.

use bytes::{BufMut, BytesMut};

use super::{ApiKey, Request};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Opens a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol_version: u16,
    /// A free-form name for logs and group membership.
    pub client_id: String,
}

/// The broker's answer to a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The protocol version the broker will speak on this connection.
    pub protocol_version: u16,
    /// The broker's software version.
    pub broker_version: String,
}

impl Request for HandshakeRequest {
    const API_KEY: ApiKey = ApiKey::Handshake;
    type Response = HandshakeResponse;
}

impl Encode for HandshakeRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.protocol_version);
        buf.put_string(&self.client_id);
    }
}

impl Decode for HandshakeRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: r.u16("protocol_version")?,
            client_id: r.string("client_id")?,
        })
    }
}

impl Encode for HandshakeResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.protocol_version);
        buf.put_string(&self.broker_version);
    }
}

impl Decode for HandshakeResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            protocol_version: r.u16("protocol_version")?,
            broker_version: r.string("broker_version")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::round_trip;

    #[test]
    fn round_trips() {
        round_trip(HandshakeRequest {
            protocol_version: 1,
            client_id: "svc-a".into(),
        });
        round_trip(HandshakeResponse {
            protocol_version: 1,
            broker_version: "0.1.0".into(),
        });
    }
}
