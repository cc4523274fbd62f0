//! DeleteQueue: forgets a queue and its state; its topic and dead-letter
//! topic stay.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Deletes queue `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteQueueRequest {
    /// The queue.
    pub name: String,
}

/// The queue is gone (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteQueueResponse;

impl Encode for DeleteQueueRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
    }
}

impl Decode for DeleteQueueRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
        })
    }
}

impl Encode for DeleteQueueResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for DeleteQueueResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for DeleteQueueRequest {
        fn examples() -> Vec<Self> {
            vec![DeleteQueueRequest { name: "q".into() }]
        }
    }

    impl Examples for DeleteQueueResponse {
        fn examples() -> Vec<Self> {
            vec![DeleteQueueResponse]
        }
    }
}
