//! A topic's persisted metadata: `topic.json` in the topic's directory.
//!
//! Written to a temporary file, fsynced, renamed into place and the directory
//! fsynced, so a crash leaves either the old or the new file, never a torn
//! one. Fields added later have a default, so files written before them
//! still load (`compression` missing = `producer`).

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use skiff_protocol::messages::{TopicCompression, TopicConfig};

use super::TopicError;
use crate::fsio;

/// File name of the metadata inside a topic directory.
pub const METADATA_FILE: &str = "topic.json";

/// What survives a restart about a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicMetadata {
    /// Topic name (also its directory name).
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Retention by age, ms; `None` = broker default.
    pub retention_ms: Option<u64>,
    /// Retention by size, bytes; `None` = broker default.
    pub retention_bytes: Option<u64>,
    /// Segment size, bytes; `None` = broker default.
    pub segment_bytes: Option<u64>,
    /// Segment age, ms; `None` = broker default.
    pub segment_ms: Option<u64>,
    /// The codec batches are stored with, by name (`producer`: as sent).
    #[serde(default, with = "compression_name")]
    pub compression: TopicCompression,
}

impl TopicMetadata {
    /// Metadata for a new topic.
    pub fn new(name: &str, config: &TopicConfig) -> Self {
        Self {
            name: name.to_owned(),
            partitions: config.partitions,
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            segment_bytes: config.segment_bytes,
            segment_ms: config.segment_ms,
            compression: config.compression,
        }
    }

    /// The settings in wire form.
    pub fn config(&self) -> TopicConfig {
        TopicConfig {
            partitions: self.partitions,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            compression: self.compression,
        }
    }

    /// Reads `topic.json` from a topic directory.
    pub fn load(dir: &Path) -> Result<Self, TopicError> {
        let path = dir.join(METADATA_FILE);
        let text = fs::read(&path).map_err(|source| TopicError::Io {
            op: "read topic metadata",
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| TopicError::BadMetadata {
            path,
            message: e.to_string(),
        })
    }

    /// Writes `topic.json` atomically and durably.
    pub fn store(&self, dir: &Path) -> Result<(), TopicError> {
        let path = dir.join(METADATA_FILE);
        let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| TopicError::Io { op, path, source }
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| TopicError::BadMetadata {
            path: path.clone(),
            message: format!("cannot serialize: {e}"),
        })?;
        let mut f = fs::File::create(&tmp).map_err(io("create topic metadata", &tmp))?;
        f.write_all(&json)
            .map_err(io("write topic metadata", &tmp))?;
        fsio::sync_all(&f, &tmp).map_err(io("sync topic metadata", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("rename topic metadata", &path))?;
        fsio::sync_dir(dir).map_err(io("sync topic directory", dir))?;
        Ok(())
    }
}

/// [`TopicCompression`] as its name in `topic.json`; an unknown name is
/// refused naming it (the load error names the file).
mod compression_name {
    use serde::{Deserialize, Deserializer, Serializer, de};
    use skiff_protocol::messages::TopicCompression;

    pub fn serialize<S: Serializer>(c: &TopicCompression, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TopicCompression, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::Compression;

    #[test]
    fn metadata_without_compression_loads_as_producer() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"name":"t","partitions":2,"retention_ms":null,"retention_bytes":5,"segment_bytes":null,"segment_ms":null}"#;
        fs::write(dir.path().join(METADATA_FILE), old).unwrap();
        let meta = TopicMetadata::load(dir.path()).unwrap();
        assert_eq!(meta.compression, TopicCompression::Producer);
        assert_eq!(meta.retention_bytes, Some(5));
    }

    #[test]
    fn compression_round_trips_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = TopicMetadata::new(
            "t",
            &TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        );
        meta.compression = TopicCompression::Codec(Compression::Zstd);
        meta.store(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(METADATA_FILE)).unwrap();
        assert!(text.contains(r#""compression": "zstd""#), "{text}");
        assert_eq!(TopicMetadata::load(dir.path()).unwrap(), meta);
        fs::write(
            dir.path().join(METADATA_FILE),
            text.replace("zstd", "brotli"),
        )
        .unwrap();
        let err = TopicMetadata::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("brotli") && err.contains("topic.json"),
            "{err}"
        );
    }
}
