//! DeleteTopic: removes a topic and all of its files.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Deletes a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicRequest {
    /// The topic to delete.
    pub name: String,
}

/// The topic is gone. Empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicResponse;

impl Encode for DeleteTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
    }
}

impl Decode for DeleteTopicRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
        })
    }
}

impl Encode for DeleteTopicResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for DeleteTopicResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for DeleteTopicRequest {
        fn examples() -> Vec<Self> {
            vec![DeleteTopicRequest { name: "t".into() }]
        }
    }
}
