//! ListQueues: every queue the session may describe, with its topic.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Lists queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQueuesRequest;

/// One queue of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueListing {
    /// The queue.
    pub name: String,
    /// Its topic.
    pub topic: String,
}

/// The queues, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQueuesResponse {
    /// The queues.
    pub queues: Vec<QueueListing>,
}

impl Encode for ListQueuesRequest {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for ListQueuesRequest {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

impl Encode for ListQueuesResponse {
    fn encode(&self, buf: &mut BytesMut) {
        bytes::BufMut::put_u32_le(buf, self.queues.len() as u32);
        for q in &self.queues {
            buf.put_string(&q.name);
            buf.put_string(&q.topic);
        }
    }
}

impl Decode for ListQueuesResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("queues", 2 + 2)?;
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            queues.push(QueueListing {
                name: r.string("name")?,
                topic: r.string("topic")?,
            });
        }
        Ok(Self { queues })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ListQueuesRequest {
        fn examples() -> Vec<Self> {
            vec![ListQueuesRequest]
        }
    }

    impl Examples for ListQueuesResponse {
        fn examples() -> Vec<Self> {
            vec![
                ListQueuesResponse { queues: vec![] },
                ListQueuesResponse {
                    queues: vec![QueueListing {
                        name: "q".into(),
                        topic: "jobs".into(),
                    }],
                },
            ]
        }
    }
}
