//! [`Admin`]: topic management. Topic names are checked client-side with the
//! protocol's own rules before anything is sent, so a bad name fails fast
//! with the same message the broker would give.

use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{
    CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, DescribeTopicResponse,
    ListTopicsRequest, TopicConfig, TopicListing,
};
use skiff_protocol::topic_name::validate_topic_name;

use crate::client::Client;
use crate::error::{Error, Result};

/// Creates, deletes, lists and describes topics.
///
/// ```no_run
/// use skiff_client::{Client, ClientConfig, TopicConfig};
///
/// # async fn run() -> Result<(), skiff_client::Error> {
/// let admin = Client::connect(ClientConfig::default()).await?.admin();
/// admin
///     .create_topic("orders", TopicConfig { partitions: 3, ..TopicConfig::default() })
///     .await?;
/// let described = admin.describe_topic("orders").await?;
/// assert_eq!(described.partitions.len(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// An admin handle on `client`.
    pub fn new(client: Client) -> Admin {
        Admin { client }
    }

    /// Creates a topic. `config.partitions` must be at least 1.
    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        validate_topic_name(name)?;
        if config.partitions == 0 {
            return Err(Error::InvalidArgument(
                "a topic needs at least 1 partition".to_owned(),
            ));
        }
        self.client
            .send(CreateTopicRequest {
                name: name.to_owned(),
                config,
            })
            .await
            .map_err(|e| in_topic(e, name))?;
        Ok(())
    }

    /// Deletes a topic and all its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        validate_topic_name(name)?;
        self.client
            .send(DeleteTopicRequest {
                name: name.to_owned(),
            })
            .await
            .map_err(|e| in_topic(e, name))?;
        Ok(())
    }

    /// Every topic with its partition count, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        Ok(self.client.send(ListTopicsRequest).await?.topics)
    }

    /// A topic's settings and per-partition offsets and sizes.
    pub async fn describe_topic(&self, name: &str) -> Result<DescribeTopicResponse> {
        validate_topic_name(name)?;
        self.client
            .send(DescribeTopicRequest {
                name: name.to_owned(),
            })
            .await
            .map_err(|e| in_topic(e, name))
    }
}

/// Names the topic in a broker error about it.
pub(crate) fn in_topic(e: Error, topic: &str) -> Error {
    in_partition(e, topic, None)
}

/// Names the topic (and partition) in a broker error about them.
pub(crate) fn in_partition(e: Error, topic: &str, partition: Option<u32>) -> Error {
    match e {
        Error::Broker { code, message }
            if matches!(code, ErrorCode::UnknownTopic | ErrorCode::UnknownPartition) =>
        {
            Error::from_response(code, message, Some(topic), partition)
        }
        other => other,
    }
}
