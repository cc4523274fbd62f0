//! CreateQueue: a work queue over a topic, and its dead-letter topic.

use bytes::BytesMut;

use super::queue_common::QueueConfig;
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Creates queue `name` on `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateQueueRequest {
    /// The queue (a name shared with consumer groups).
    pub name: String,
    /// The topic it reads.
    pub topic: String,
    /// Settings; `None` fields take the defaults.
    pub config: QueueConfig,
}

/// The queue exists (durably), and its dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateQueueResponse {
    /// The dead-letter topic created with it.
    pub dead_letter_topic: String,
}

impl Encode for CreateQueueRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
        buf.put_string(&self.topic);
        self.config.encode(buf);
    }
}

impl Decode for CreateQueueRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
            topic: r.string("topic")?,
            config: QueueConfig::decode(r)?,
        })
    }
}

impl Encode for CreateQueueResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.dead_letter_topic);
    }
}

impl Decode for CreateQueueResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            dead_letter_topic: r.string("dead_letter_topic")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::queue_common::examples;
    use crate::messages::test_util::Examples;

    impl Examples for CreateQueueRequest {
        fn examples() -> Vec<Self> {
            vec![
                CreateQueueRequest {
                    name: "q".into(),
                    topic: "jobs".into(),
                    config: QueueConfig::default(),
                },
                CreateQueueRequest {
                    name: "q".into(),
                    topic: "jobs".into(),
                    config: examples::config_full(),
                },
            ]
        }
    }

    impl Examples for CreateQueueResponse {
        fn examples() -> Vec<Self> {
            vec![CreateQueueResponse {
                dead_letter_topic: "jobs.q.dlq".into(),
            }]
        }
    }
}
