//! The topic registry: which topics exist, their settings and their open
//! partition logs, persisted under `<data_dir>/topics/<name>/`.
//!
//! Layout: `topics/<name>/topic.json` holds the metadata and
//! `topics/<name>/<partition>/` each partition's segments. A topic is created
//! in a hidden staging directory and renamed into place once complete, and
//! deleted by renaming it to a hidden tombstone before removing its files, so
//! a crash never leaves half a topic visible; leftovers of either are removed
//! at the next start.
//!
//! All methods do blocking disk I/O: call them from a blocking context
//! (`spawn_blocking`), never from an async worker.

mod metadata;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use skiff_protocol::messages::{AlterTopicRequest, TopicConfig};
use skiff_protocol::topic_name::{TopicNameError, validate_topic_name};

pub use metadata::TopicMetadata;

use crate::fsio;
use crate::log::{LimitError, LogConfig, LogError, LogLimits, PartitionLog};

/// Prefix of a topic being created (not yet visible).
const STAGING_PREFIX: &str = ".creating-";
/// Prefix of a topic being deleted (no longer visible).
const TOMBSTONE_PREFIX: &str = ".deleting-";

/// Why a topic operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name breaks the naming rules.
    #[error(transparent)]
    InvalidName(#[from] TopicNameError),
    /// A topic with that name exists.
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    /// No topic has that name.
    #[error("unknown topic {0:?}")]
    NotFound(String),
    /// The topic has no such partition.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },
    /// A setting is out of range.
    #[error("invalid topic config: {0}")]
    InvalidConfig(String),

    /// A partition log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A file operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `topic.json` could not be parsed.
    #[error("bad topic metadata in {path}: {message}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

/// One topic: its settings and its open partitions.
#[derive(Debug)]
pub struct Topic {
    /// Persisted metadata.
    pub meta: TopicMetadata,
    /// One log per partition, in partition order.
    pub partitions: Vec<Arc<PartitionLog>>,
    /// Round-robin cursor for records without key or partition.
    round_robin: AtomicU32,
}

impl Topic {
    /// The partition log, or an error naming topic and partition.
    pub fn partition(&self, partition: u32) -> Result<&Arc<PartitionLog>, TopicError> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| TopicError::UnknownPartition {
                topic: self.meta.name.clone(),
                partition,
                partitions: self.meta.partitions,
            })
    }

    /// The next partition in round-robin order.
    pub fn next_round_robin(&self) -> u32 {
        self.round_robin.fetch_add(1, Ordering::Relaxed) % self.meta.partitions
    }
}

/// All topics of a broker.
#[derive(Debug)]
pub struct TopicRegistry {
    root: PathBuf,
    defaults: LogConfig,
    partitions_max: u32,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes create and delete so two creates of one name cannot race.
    admin: Mutex<()>,
}

impl TopicRegistry {
    /// Opens every topic under `<data_dir>/topics`, recovering each partition
    /// log, and removes leftovers of interrupted creates and deletes.
    pub fn open(
        data_dir: &Path,
        defaults: LogConfig,
        partitions_max: u32,
    ) -> Result<Self, TopicError> {
        let root = data_dir.join("topics");
        fsio::create_dir_all(&root).map_err(|source| TopicError::Io {
            op: "create topics directory",
            path: root.clone(),
            source,
        })?;
        let mut topics = BTreeMap::new();
        let entries = fs::read_dir(&root).map_err(|source| TopicError::Io {
            op: "list topics directory",
            path: root.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| TopicError::Io {
                op: "list topics directory",
                path: root.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(STAGING_PREFIX) || name.starts_with(TOMBSTONE_PREFIX) {
                tracing::info!(path = %path.display(), "removing leftover of an interrupted topic create/delete");
                remove_dir(&path)?;
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            let meta = TopicMetadata::load(&path)?;
            if meta.name != name {
                return Err(TopicError::BadMetadata {
                    path,
                    message: format!("names topic {:?} but lives in {name:?}", meta.name),
                });
            }
            let topic = open_topic(&path, meta, &defaults)?;
            topics.insert(name, Arc::new(topic));
        }
        fsio::sync_dir(&root).map_err(|source| TopicError::Io {
            op: "sync topics directory",
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            root,
            defaults,
            partitions_max,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
        })
    }

    /// The topic, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().get(name).cloned()
    }

    /// The topic, or [`TopicError::NotFound`].
    pub fn require(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.get(name)
            .ok_or_else(|| TopicError::NotFound(name.to_owned()))
    }

    /// Every topic, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.read().values().cloned().collect()
    }

    /// Creates a topic durably: its metadata and empty partitions exist on
    /// disk before it becomes visible.
    pub fn create(&self, name: &str, config: &TopicConfig) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if config.partitions == 0 || config.partitions > self.partitions_max {
            return Err(TopicError::InvalidConfig(format!(
                "partitions must be between 1 and {} (partitions_max), got {}",
                self.partitions_max, config.partitions
            )));
        }
        LogLimits {
            segment_bytes: config.segment_bytes,
            segment_ms: config.segment_ms,
            retention_bytes: config.retention_bytes,
            retention_ms: config.retention_ms,
        }
        .check()
        .map_err(out_of_range)?;
        let _admin = crate::poison::lock(&self.admin);
        if self.read().contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_owned()));
        }
        let staging = self.root.join(format!("{STAGING_PREFIX}{name}"));
        if staging.exists() {
            remove_dir(&staging)?;
        }
        fs::create_dir_all(&staging).map_err(|source| TopicError::Io {
            op: "create topic directory",
            path: staging.clone(),
            source,
        })?;
        let meta = TopicMetadata::new(name, config);
        meta.store(&staging)?;
        for p in 0..config.partitions {
            let dir = staging.join(p.to_string());
            fs::create_dir(&dir).map_err(|source| TopicError::Io {
                op: "create partition directory",
                path: dir.clone(),
                source,
            })?;
            fsio::sync_dir(&dir).map_err(|source| TopicError::Io {
                op: "sync partition directory",
                path: dir.clone(),
                source,
            })?;
        }
        fsio::sync_dir(&staging).map_err(|source| TopicError::Io {
            op: "sync topic directory",
            path: staging.clone(),
            source,
        })?;
        let dir = self.root.join(name);
        fs::rename(&staging, &dir).map_err(|source| TopicError::Io {
            op: "publish topic directory",
            path: dir.clone(),
            source,
        })?;
        self.sync_root()?;
        let topic = match open_topic(&dir, meta, &self.defaults) {
            Ok(topic) => Arc::new(topic),
            Err(e) => {
                // Unpublish, so the name is free again rather than blocked by
                // a directory the registry does not know.
                let tombstone = self.root.join(format!("{TOMBSTONE_PREFIX}{name}"));
                if fs::rename(&dir, &tombstone).is_ok() {
                    let _ = remove_dir(&tombstone);
                    let _ = self.sync_root();
                }
                return Err(e);
            }
        };
        self.write().insert(name.to_owned(), Arc::clone(&topic));
        Ok(topic)
    }

    /// Changes a live topic's log settings and compression policy (applied
    /// to batches produced from then on): `topic.json` is rewritten
    /// (atomically, durably) before the new settings reach the partition
    /// logs, so a crash never leaves the logs ahead of the metadata. The
    /// next retention check applies the new retention; the next append
    /// applies the new roll settings.
    pub fn alter(&self, req: &AlterTopicRequest) -> Result<Arc<Topic>, TopicError> {
        let set = |change: skiff_protocol::messages::ConfigChange| change.apply(None);
        LogLimits {
            segment_bytes: set(req.segment_bytes),
            segment_ms: set(req.segment_ms),
            retention_bytes: set(req.retention_bytes),
            retention_ms: set(req.retention_ms),
        }
        .check()
        .map_err(out_of_range)?;
        let _admin = crate::poison::lock(&self.admin);
        let old = self.require(&req.name)?;
        let mut meta = old.meta.clone();
        meta.retention_ms = req.retention_ms.apply(meta.retention_ms);
        meta.retention_bytes = req.retention_bytes.apply(meta.retention_bytes);
        meta.segment_bytes = req.segment_bytes.apply(meta.segment_bytes);
        meta.segment_ms = req.segment_ms.apply(meta.segment_ms);
        if let Some(compression) = req.compression {
            meta.compression = compression;
        }
        let config = topic_log_config(&meta, &self.defaults);
        // Checked before anything is stored, so set_config cannot refuse it
        // halfway through the partitions.
        config.validate().map_err(out_of_range)?;
        meta.store(&self.root.join(&req.name))?;
        for log in &old.partitions {
            log.set_config(config.clone())?;
        }
        let topic = Arc::new(Topic {
            meta,
            partitions: old.partitions.clone(),
            round_robin: AtomicU32::new(old.round_robin.load(Ordering::Relaxed)),
        });
        self.write().insert(req.name.clone(), Arc::clone(&topic));
        Ok(topic)
    }

    /// Deletes a topic and its files. Its logs are closed first, so appends
    /// racing the delete fail instead of writing into removed files.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _admin = crate::poison::lock(&self.admin);
        let topic = self
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::NotFound(name.to_owned()))?;
        for log in &topic.partitions {
            // The files are about to go: a failed final flush does not matter.
            let _ = log.close();
        }
        let dir = self.root.join(name);
        let tombstone = self.root.join(format!("{TOMBSTONE_PREFIX}{name}"));
        fs::rename(&dir, &tombstone).map_err(|source| TopicError::Io {
            op: "rename topic directory for deletion",
            path: dir.clone(),
            source,
        })?;
        self.sync_root()?;
        remove_dir(&tombstone)?;
        self.sync_root()
    }

    /// Flushes and closes every partition log, writing their clean-shutdown
    /// markers. Returns the first error, after trying every log.
    pub fn close_all(&self) -> Result<(), TopicError> {
        let mut first = None;
        for topic in self.list() {
            for log in &topic.partitions {
                if let Err(e) = log.close() {
                    tracing::error!(topic = %topic.meta.name, error = %e, "closing partition log failed");
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    fn sync_root(&self) -> Result<(), TopicError> {
        fsio::sync_dir(&self.root).map_err(|source| TopicError::Io {
            op: "sync topics directory",
            path: self.root.clone(),
            source,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        crate::poison::read(&self.topics)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        crate::poison::write(&self.topics)
    }
}

/// A segment or retention setting out of its range (see `log::limits`):
/// the message names the key, the value and the range.
fn out_of_range(e: LimitError) -> TopicError {
    TopicError::InvalidConfig(e.to_string())
}

/// The log settings of one topic: its overrides on the broker defaults.
fn topic_log_config(meta: &TopicMetadata, defaults: &LogConfig) -> LogConfig {
    let mut c = defaults.clone();
    if let Some(v) = meta.segment_bytes {
        c.segment_bytes = v;
    }
    if meta.segment_ms.is_some() {
        c.segment_ms = meta.segment_ms;
    }
    if meta.retention_ms.is_some() {
        c.retention_ms = meta.retention_ms;
    }
    if meta.retention_bytes.is_some() {
        c.retention_bytes = meta.retention_bytes;
    }
    c
}

fn open_topic(dir: &Path, meta: TopicMetadata, defaults: &LogConfig) -> Result<Topic, TopicError> {
    let config = topic_log_config(&meta, defaults);
    // A stored setting out of range (written by an older skiff, or by hand)
    // is refused naming the file, never clamped.
    config.validate().map_err(|e| TopicError::BadMetadata {
        path: dir.join(metadata::METADATA_FILE),
        message: e.to_string(),
    })?;
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    for p in 0..meta.partitions {
        let (log, report) = PartitionLog::open(&dir.join(p.to_string()), config.clone())?;
        if !report.clean {
            tracing::info!(topic = %meta.name, partition = p, ?report, "recovered partition after unclean shutdown");
        }
        partitions.push(Arc::new(log));
    }
    Ok(Topic {
        meta,
        partitions,
        round_robin: AtomicU32::new(0),
    })
}

fn remove_dir(path: &Path) -> Result<(), TopicError> {
    fs::remove_dir_all(path).map_err(|source| TopicError::Io {
        op: "remove directory",
        path: path.to_owned(),
        source,
    })
}
