//! ListTopics: every topic with its partition count.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Lists topics. Empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListTopicsRequest;

/// One topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// The topics, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListTopicsResponse {
    /// Every topic.
    pub topics: Vec<TopicListing>,
}

impl Encode for ListTopicsRequest {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for ListTopicsRequest {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

impl Encode for ListTopicsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.topics.len() as u32);
        for t in &self.topics {
            buf.put_string(&t.name);
            buf.put_u32_le(t.partitions);
        }
    }
}

impl Decode for ListTopicsResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        // Each listing is at least a 2-byte name length and a 4-byte count.
        let n = r.count("topics", 6)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(TopicListing {
                name: r.string("name")?,
                partitions: r.u32("partitions")?,
            });
        }
        Ok(Self { topics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ListTopicsResponse {
        fn examples() -> Vec<Self> {
            vec![ListTopicsResponse {
                topics: vec![
                    TopicListing {
                        name: "a".into(),
                        partitions: 1,
                    },
                    TopicListing {
                        name: "b".into(),
                        partitions: 8,
                    },
                ],
            }]
        }
    }
}
