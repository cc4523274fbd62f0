//! The client's one error type.
//!
//! Every failure a caller can see is a variant here, never a bare string.
//! `Error` is `Clone` (I/O errors sit behind an `Arc`) because one failure
//! often has many recipients: a broken connection fails every pending
//! request, a failed batch fails every record in it.

use std::sync::Arc;

use skiff_protocol::ErrorCode;
use skiff_protocol::batch::BatchError;
use skiff_protocol::primitives::DecodeError;
use skiff_protocol::topic_name::TopicNameError;

/// Why a client operation failed.
///
/// ```no_run
/// use skiff_client::{Client, ClientConfig, Error, TopicConfig};
///
/// # async fn run() -> Result<(), Error> {
/// let admin = Client::connect(ClientConfig::default()).await?.admin();
/// match admin.describe_topic("orders").await {
///     Ok(topic) => println!("{} partitions", topic.partitions.len()),
///     Err(Error::UnknownTopic { .. }) => {
///         admin.create_topic("orders", TopicConfig { partitions: 1, ..Default::default() }).await?
///     }
///     Err(e) if e.is_retriable() => eprintln!("try again later: {e}"),
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
///
/// Each message is complete on its own (it includes the underlying cause),
/// so the variants do not also report the cause through `source()`; printing
/// a chain shows nothing twice.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker answered with an error code (one without a more specific
    /// variant below).
    #[error("broker error {code}: {message}")]
    Broker {
        /// The error code from the response header.
        code: ErrorCode,
        /// The broker's message.
        message: String,
    },
    /// The topic does not exist on the broker.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
        /// The broker's message.
        message: String,
    },
    /// The partition does not exist in the topic.
    #[error("unknown partition {partition} of topic {topic:?}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
    },
    /// A fetch asked for an offset outside the partition's log.
    #[error(
        "offset {offset} is out of range for {topic}/{partition} (log holds {log_start_offset}..{log_end_offset}); seek to a valid offset or set OffsetReset"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// First offset still stored, when known (0 otherwise).
        log_start_offset: u64,
        /// Next offset to be written, when known (0 otherwise).
        log_end_offset: u64,
    },
    /// The topic name breaks the naming rules (checked before sending).
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicNameError),
    /// An argument was refused before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A queue delivery's lock was lost (it ran out, or the record was
    /// settled or handed out again): the verdict was not applied.
    #[error("queue delivery {partition}/{offset}: {message}")]
    LockLost {
        /// The record's partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
        /// The broker's reason.
        message: String,
    },
    /// Connecting to or talking to the broker failed at the socket level.
    #[error("I/O error with broker {broker}: {error}")]
    Io {
        /// The broker's address.
        broker: String,
        /// The underlying error.
        error: Arc<std::io::Error>,
    },
    /// The connection closed (or broke) while the request was pending or
    /// before it could be sent.
    #[error("connection to broker {broker} closed: {reason}")]
    ConnectionClosed {
        /// The broker's address.
        broker: String,
        /// What closed it.
        reason: String,
    },
    /// An operation did not finish within its time limit.
    #[error("{operation} timed out after {timeout_ms} ms")]
    Timeout {
        /// What timed out, e.g. "connect to 127.0.0.1:9400".
        operation: String,
        /// The limit that expired, in milliseconds.
        timeout_ms: u64,
    },
    /// The TLS handshake with the broker failed: its certificate did not
    /// verify against the CA file, it refused this client's certificate (or
    /// its absence), or it does not speak TLS. Not retried: reconnecting
    /// would fail the same way.
    #[error("TLS handshake with {broker} failed: {reason}")]
    Tls {
        /// The broker's address.
        broker: String,
        /// rustls' reason, e.g. "invalid peer certificate: UnknownIssuer".
        reason: String,
    },
    /// The broker answered a plaintext connection with TLS.
    #[error(
        "broker {broker} speaks TLS on this port: connect with skiffs://{broker} and a CA file (tls_ca_file, skiff --tls-ca)"
    )]
    TlsRequired {
        /// The broker's address.
        broker: String,
    },
    /// The TLS settings cannot be used: a CA, certificate or key file is
    /// missing or invalid (named), or a `skiffs://` address has no CA file.
    #[error("TLS setup failed: {reason}")]
    TlsConfig {
        /// What was wrong, naming the setting and the file.
        reason: String,
    },
    /// A response body could not be decoded.
    #[error("malformed response from broker: {0}")]
    Decode(DecodeError),
    /// A received record batch failed its checks (length, CRC, records).
    #[error("corrupt record batch from {topic}/{partition}: {error}")]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What was wrong with it.
        error: BatchError,
    },
    /// The broker speaks another protocol version.
    #[error(
        "broker {broker} speaks protocol version {broker_version}, this client {client_version}"
    )]
    UnsupportedVersion {
        /// The broker's address.
        broker: String,
        /// The version the broker answered with.
        broker_version: u16,
        /// The version this client speaks.
        client_version: u16,
    },
    /// A record is larger than a batch may be.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The limit (`batch_bytes_max`, or the protocol's batch maximum).
        max: usize,
    },
    /// The producer's buffer holds `buffer_bytes_max` bytes not yet
    /// acknowledged; wait for some acks (or `flush`) and send again.
    #[error(
        "producer buffer is full: {buffered} bytes pending, limit {max} bytes (buffer_bytes_max)"
    )]
    BufferFull {
        /// Bytes pending.
        buffered: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier batch of the same partition failed, so this one was not
    /// sent (sending it would have reordered the partition).
    #[error("not sent: an earlier batch of {topic}/{partition} failed: {cause}")]
    EarlierBatchFailed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The earlier batch's error.
        cause: Box<Error>,
    },
    /// The producer or consumer was closed (or its background task ended).
    #[error("the {0} is closed")]
    Closed(&'static str),
}

impl Error {
    /// Builds the error for a broker error response. `topic` and
    /// `partition` name what the request was about, when it was about one.
    pub(crate) fn from_response(
        code: ErrorCode,
        message: String,
        topic: Option<&str>,
        partition: Option<u32>,
    ) -> Error {
        match (code, topic, partition) {
            (ErrorCode::UnknownTopic, Some(topic), _) => Error::UnknownTopic {
                topic: topic.to_owned(),
                message,
            },
            (ErrorCode::UnknownPartition, Some(topic), Some(partition)) => {
                Error::UnknownPartition {
                    topic: topic.to_owned(),
                    partition,
                }
            }
            _ => Error::Broker { code, message },
        }
    }

    /// The broker's error code, if this error came from a broker response.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            Error::UnknownTopic { .. } => Some(ErrorCode::UnknownTopic),
            Error::UnknownPartition { .. } => Some(ErrorCode::UnknownPartition),
            Error::OffsetOutOfRange { .. } => Some(ErrorCode::OffsetOutOfRange),
            _ => None,
        }
    }

    /// Whether the connection (not the request) failed: the next request
    /// reconnects, and the same request may succeed if sent again.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::ConnectionClosed { .. } | Error::Timeout { .. }
        )
    }

    /// Whether sending the same request again later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { code, .. } => code.is_retriable(),
            other => other.is_connection_error(),
        }
    }
}

impl From<TopicNameError> for Error {
    fn from(e: TopicNameError) -> Self {
        Error::InvalidTopicName(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_errors_map_to_specific_variants() {
        let e = Error::from_response(ErrorCode::UnknownTopic, "nope".into(), Some("t"), None);
        assert!(matches!(e, Error::UnknownTopic { ref topic, .. } if topic == "t"));
        assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
        let e = Error::from_response(ErrorCode::StorageError, "disk".into(), Some("t"), Some(0));
        assert!(matches!(
            e,
            Error::Broker {
                code: ErrorCode::StorageError,
                ..
            }
        ));
        assert!(e.is_retriable());
        let e = Error::ConnectionClosed {
            broker: "b".into(),
            reason: "eof".into(),
        };
        assert!(e.is_connection_error() && e.is_retriable());
        assert!(!Error::Closed("producer").is_retriable());
    }
}
