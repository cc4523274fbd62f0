//! Status: the broker's health at a glance (version, uptime, topics,
//! partitions, connections, disk usage), for `skiff status` and probes.
//! Cheap to serve: counts kept in memory, no disk scan.

use bytes::{BufMut, BytesMut};

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Asks for the broker's status. Empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest;

/// The broker's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    /// The broker's version (its crate version).
    pub broker_version: String,
    /// Milliseconds since the broker started.
    pub uptime_ms: u64,
    /// The broker's data directory.
    pub data_dir: String,
    /// Number of topics.
    pub topics: u32,
    /// Number of partitions over all topics.
    pub partitions: u32,
    /// Client connections open now (this one included).
    pub connections: u32,
    /// Most client connections served at once (`connections_max`).
    pub connections_max: u32,
    /// Number of consumer groups.
    pub groups: u32,
    /// Bytes of segment files over all partitions.
    pub log_bytes: u64,
}

impl Encode for StatusRequest {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for StatusRequest {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

impl Encode for StatusResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.broker_version);
        buf.put_u64_le(self.uptime_ms);
        buf.put_string(&self.data_dir);
        buf.put_u32_le(self.topics);
        buf.put_u32_le(self.partitions);
        buf.put_u32_le(self.connections);
        buf.put_u32_le(self.connections_max);
        buf.put_u32_le(self.groups);
        buf.put_u64_le(self.log_bytes);
    }
}

impl Decode for StatusResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            broker_version: r.string("broker_version")?,
            uptime_ms: r.u64("uptime_ms")?,
            data_dir: r.string("data_dir")?,
            topics: r.u32("topics")?,
            partitions: r.u32("partitions")?,
            connections: r.u32("connections")?,
            connections_max: r.u32("connections_max")?,
            groups: r.u32("groups")?,
            log_bytes: r.u64("log_bytes")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for StatusResponse {
        fn examples() -> Vec<Self> {
            vec![StatusResponse {
                broker_version: "0.1.0".into(),
                uptime_ms: 12_345,
                data_dir: "/var/lib/skiff".into(),
                topics: 2,
                partitions: 7,
                connections: 1,
                connections_max: 1024,
                groups: 3,
                log_bytes: 1 << 30,
            }]
        }
    }
}
