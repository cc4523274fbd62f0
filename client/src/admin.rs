//! [`Admin`]: topic and consumer-group management. Topic names are checked client-side with the
//! protocol's own rules before anything is sent, so a bad name fails fast
//! with the same message the broker would give.

use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{
    AlterTopicRequest, CreateTopicRequest, DESCRIBE_GROUP_VERSION_WAITING, DeleteGroupRequest,
    DeleteTopicRequest, DescribeGroupRequest, DescribeGroupResponse, DescribeTopicRequest,
    DescribeTopicResponse, GroupListing, ListGroupsRequest, ListTopicsRequest, ResetOffsetsRequest,
    ResetTo, StatusRequest, StatusResponse, TopicConfig, TopicListing, TopicPartition,
};
use skiff_protocol::topic_name::validate_topic_name;

use crate::client::Client;
use crate::error::{Error, Result};

/// Creates, deletes, lists and describes topics; lists, describes, resets
/// and deletes consumer groups.
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

    /// Changes a live topic's retention and segment settings and its
    /// compression policy (`request.name` names the topic; fields left at
    /// [`ConfigChange::Keep`](skiff_protocol::messages::ConfigChange), and a
    /// `compression` of `None`, stay as they are). A new compression policy
    /// applies to batches produced from then on; stored batches stay as they
    /// are. Returns the topic's settings after the change.
    pub async fn alter_topic(&self, request: AlterTopicRequest) -> Result<TopicConfig> {
        validate_topic_name(&request.name)?;
        let name = request.name.clone();
        Ok(self
            .client
            .send(request)
            .await
            .map_err(|e| in_topic(e, &name))?
            .config)
    }

    /// The broker's version, uptime, topic/partition/connection counts and
    /// disk usage.
    pub async fn status(&self) -> Result<StatusResponse> {
        self.client.send(StatusRequest).await
    }
}

impl Admin {
    /// Every group the broker knows (with members or committed offsets),
    /// sorted by name.
    ///
    /// ```no_run
    /// # async fn run(admin: skiff_client::Admin) -> Result<(), skiff_client::Error> {
    /// for g in admin.list_groups().await? {
    ///     println!("{} {} members={} generation={}", g.group, g.state, g.members, g.generation);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        Ok(self.client.send(ListGroupsRequest).await?.groups)
    }

    /// A group's members and, per partition, owner, committed offset, log
    /// end offset and lag. An unknown group is `ErrorCode::UnknownGroup`.
    ///
    /// ```no_run
    /// # async fn run(admin: skiff_client::Admin) -> Result<(), skiff_client::Error> {
    /// let described = admin.describe_group("billing").await?;
    /// let lag: u64 = described.partitions.iter().filter_map(|p| p.lag).sum();
    /// println!("{} members, total lag {lag}", described.members.len());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A broker from before DescribeGroup v1 is asked again in v0; its
    /// answer has no waiting times (`waiting_ms` is `None` everywhere).
    pub async fn describe_group(&self, group: &str) -> Result<DescribeGroupResponse> {
        let request = DescribeGroupRequest {
            group: group.to_owned(),
        };
        match self.client.send(request.clone()).await {
            Err(e) if e.code() == Some(ErrorCode::UnsupportedVersion) => {
                let older = DESCRIBE_GROUP_VERSION_WAITING - 1;
                self.client.send_version(request, older).await
            }
            answer => answer,
        }
    }

    /// Moves the group's committed offsets on every partition of `topic`;
    /// returns the new offsets. Refused (`ErrorCode::GroupNotEmpty`) while
    /// the group has members: stop its consumers first.
    ///
    /// ```no_run
    /// use skiff_client::ResetTo;
    ///
    /// # async fn run(admin: skiff_client::Admin) -> Result<(), skiff_client::Error> {
    /// // Re-process everything still stored.
    /// admin.reset_offsets("billing", "orders", ResetTo::Earliest).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
    ) -> Result<Vec<(TopicPartition, u64)>> {
        validate_topic_name(topic)?;
        let resp = self
            .client
            .send(ResetOffsetsRequest {
                group: group.to_owned(),
                topic: topic.to_owned(),
                to,
            })
            .await
            .map_err(|e| in_topic(e, topic))?;
        Ok(resp.offsets)
    }

    /// Deletes a group and its committed offsets. Refused
    /// (`ErrorCode::GroupNotEmpty`) while it has members.
    ///
    /// ```no_run
    /// # async fn run(admin: skiff_client::Admin) -> Result<(), skiff_client::Error> {
    /// admin.delete_group("old-billing").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.client
            .send(DeleteGroupRequest {
                group: group.to_owned(),
            })
            .await?;
        Ok(())
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
