//! A topic's persisted metadata: `topic.json` in the topic's directory.
//!
//! Written to a temporary file, fsynced, renamed into place and the directory
//! fsynced, so a crash leaves either the old or the new file, never a torn
//! one.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use skiff_protocol::messages::TopicConfig;

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
