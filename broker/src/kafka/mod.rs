//! The Kafka front end: Kafka's wire protocol on a second listener
//! (`kafka_listen`), over the same broker services as skiff's own front end
//! (`server/`): topics and their partition logs, producer ids, the
//! authorizer, telemetry, the run modes and the ordered produce pipeline.
//!
//! - `frame`: the i32 size-prefixed frame codec (`kafka_frame_bytes_max`);
//! - `header`: request headers (api key, version, correlation id, client
//!   id; flexible header versions) and response headers;
//! - `api`: the one table of APIs and version ranges served, the
//!   [`api::KafkaApi`] trait each handler implements, and dispatch;
//! - `connection`: one connection: deadlines, pipelining with responses in
//!   request order (as Kafka requires), plaintext or TLS;
//! - `sasl`: SaslHandshake and SaslAuthenticate (PLAIN, SCRAM-SHA-256/512),
//!   which sign a connection in as one of skiff's users;
//! - `handlers/`: one file per API (or family);
//! - `records`: where translating record batches runs (the formats and
//!   their conversion are `skiff_protocol::kafka_batch`'s);
//! - `errors`: Kafka error codes, and how skiff's failures map onto them.
//!
//! Nothing below this module knows a request came in through Kafka: the
//! handlers translate at the edge (records, errors, names) and call the
//! same services, with a [`crate::server::api::Ctx`] built exactly as
//! skiff's front end builds it. A connection's session is the one its SASL
//! login established (anonymous without one), and every check goes through
//! the same [`crate::server::authorize::Authorizer`] as a native request's.

pub(crate) mod api;
pub(crate) mod connection;
pub(crate) mod errors;
pub(crate) mod frame;
mod handlers;
pub(crate) mod header;
#[cfg(feature = "testing")]
pub mod records;
#[cfg(not(feature = "testing"))]
pub(crate) mod records;
pub(crate) mod sasl;

/// The node id this broker has in Kafka's metadata (a cluster of one).
pub(crate) const NODE_ID: i32 = 0;
/// The cluster id Metadata and DescribeCluster report.
pub(crate) const CLUSTER_ID: &str = "skiff";

/// Where Kafka clients are told to connect: `kafka_advertised_address`,
/// else the address the Kafka listener bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advertised {
    pub host: String,
    pub port: i32,
}

impl Advertised {
    /// From the config's `host:port` (validated at start) or the bound
    /// address.
    pub(crate) fn new(configured: Option<&str>, bound: std::net::SocketAddr) -> Self {
        if let Some((host, port)) = configured.and_then(|a| a.rsplit_once(':')) {
            if let Ok(port) = port.parse::<u16>() {
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                return Self {
                    host: host.to_owned(),
                    port: i32::from(port),
                };
            }
        }
        Self {
            host: bound.ip().to_string(),
            port: i32::from(bound.port()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_is_the_configured_address_else_the_bound_one() {
        let bound: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(
            Advertised::new(None, bound),
            Advertised {
                host: "127.0.0.1".into(),
                port: 40001
            }
        );
        assert_eq!(
            Advertised::new(Some("kafka.example:9092"), bound),
            Advertised {
                host: "kafka.example".into(),
                port: 9092
            }
        );
        assert_eq!(
            Advertised::new(Some("[::1]:9093"), bound),
            Advertised {
                host: "::1".into(),
                port: 9093
            }
        );
    }
}
