//! AlterQueue: changes a queue's lock time, delivery limit, backoff,
//! ordering or window (not its topics).

use bytes::BytesMut;

use super::queue_common::{QueueConfig, QueueSettingsInfo};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Changes the given settings of queue `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterQueueRequest {
    /// The queue.
    pub name: String,
    /// Settings to change; `None` keeps the current value.
    pub config: QueueConfig,
}

/// The settings now in force (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterQueueResponse {
    /// The settings.
    pub settings: QueueSettingsInfo,
}

impl Encode for AlterQueueRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.name);
        self.config.encode(buf);
    }
}

impl Decode for AlterQueueRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string("name")?,
            config: QueueConfig::decode(r)?,
        })
    }
}

impl Encode for AlterQueueResponse {
    fn encode(&self, buf: &mut BytesMut) {
        self.settings.encode(buf);
    }
}

impl Decode for AlterQueueResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            settings: QueueSettingsInfo::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::queue_common::examples;
    use crate::messages::test_util::Examples;

    impl Examples for AlterQueueRequest {
        fn examples() -> Vec<Self> {
            vec![AlterQueueRequest {
                name: "q".into(),
                config: examples::config_full(),
            }]
        }
    }

    impl Examples for AlterQueueResponse {
        fn examples() -> Vec<Self> {
            vec![AlterQueueResponse {
                settings: examples::settings(),
            }]
        }
    }
}
