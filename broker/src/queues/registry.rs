//! The broker's work queues: each queue's settings (`queue.json`) and state
//! log in `<data_dir>/queues/<name>/`, and the partition state machines
//! built from them.
//!
//! Invariants:
//! - A queue exists once its `queue.json` is durably in place (written
//!   atomically); a directory without it is a creation a crash interrupted
//!   and is removed at open, as is a `<name>~deleted` directory (a deletion
//!   renames first, then removes; `~` cannot appear in a name).
//! - Queue names and consumer-group names are one namespace: a name is
//!   taken from the group coordinator ([`GroupCoordinator::reserve_queue_name`])
//!   before a queue is created, and given back after it is deleted.
//! - No two queues name the same dead-letter topic, and a new queue's
//!   dead-letter topic does not exist yet (the broker creates it).
//! - A partition's state machine changes and its transitions are handed to
//!   the state log under one lock ([`Queue::with_partition`]), so the log
//!   records them in the order they happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::cache::RecordCache;
use super::partition::{MemberId, PartitionDurable, PartitionQueue};
use super::settings::{QueueSettings, SettingsError};
use super::store::{PendingState, QueueStore, QueueStoreError, QueueStoreOptions, StateRecovery};
use crate::fsio;
use crate::groups::{GroupCoordinator, GroupError};
use skiff_protocol::messages::QueueSettingsInfo;

/// The queues directory inside the data directory.
pub const QUEUES_DIR: &str = "queues";
/// A queue's settings file.
pub const SETTINGS_FILE: &str = "queue.json";
/// Suffix of a directory being deleted.
const DELETED_SUFFIX: &str = "~deleted";
/// Most queues a broker keeps. Each has a state-log writer thread and an
/// open file, so this stays well below common thread and descriptor limits.
pub const QUEUES_MAX: usize = 1000;

/// Why a queue operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A setting or name is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A queue of that name exists.
    #[error("queue {0:?} already exists")]
    AlreadyExists(String),
    /// No queue has that name.
    #[error("unknown queue {0:?}")]
    NotFound(String),
    /// The name is a consumer group's.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The queue's topic does not exist.
    #[error("queue topic {0:?} does not exist")]
    TopicNotFound(String),
    /// The dead-letter topic is taken (a topic of that name exists, or
    /// another queue uses it).
    #[error("dead-letter topic {topic:?} is taken: {by}")]
    DeadLetterTopicTaken {
        /// The topic.
        topic: String,
        /// What holds it.
        by: String,
    },
    /// The broker has [`QUEUES_MAX`] queues.
    #[error("the broker already has {max} queues (QUEUES_MAX)")]
    QueueLimitReached {
        /// The limit.
        max: usize,
    },
    /// An alter tried to change what a queue is bound to.
    #[error("{0} of a queue cannot be changed; delete and recreate the queue")]
    Immutable(&'static str),
    /// A file operation failed.
    #[error("queues: cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `queue.json` does not parse or holds invalid settings.
    #[error("queues: bad settings file {path}: {message}")]
    BadSettingsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The state log failed.
    #[error(transparent)]
    Store(#[from] QueueStoreError),
    /// Finishing an interrupted dead-lettering failed.
    #[error(transparent)]
    DeadLetter(#[from] super::store::DeadLetterError),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> QueueError {
    let path = path.to_owned();
    move |source| QueueError::Io { op, path, source }
}

/// `queue.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    name: String,
    topic: String,
    lock_ms: u32,
    max_deliveries: u32,
    backoff_initial_ms: u32,
    backoff_multiplier: u32,
    backoff_max_ms: u32,
    ordering: String,
    dead_letter_topic: String,
    window_records: u32,
}

impl SettingsFile {
    /// The file's fields are [`QueueSettingsInfo`]'s, by name: the mapping
    /// from settings is [`QueueSettings::info`].
    fn new(name: &str, s: &QueueSettings) -> Self {
        let QueueSettingsInfo {
            topic,
            lock_ms,
            max_deliveries,
            backoff_initial_ms,
            backoff_multiplier,
            backoff_max_ms,
            ordering,
            dead_letter_topic,
            window_records,
        } = s.info();
        Self {
            name: name.to_owned(),
            topic,
            lock_ms,
            max_deliveries,
            backoff_initial_ms,
            backoff_multiplier,
            backoff_max_ms,
            ordering,
            dead_letter_topic,
            window_records,
        }
    }

    /// The name and the validated settings.
    fn into_settings(self) -> (String, Result<QueueSettings, SettingsError>) {
        let Self {
            name,
            topic,
            lock_ms,
            max_deliveries,
            backoff_initial_ms,
            backoff_multiplier,
            backoff_max_ms,
            ordering,
            dead_letter_topic,
            window_records,
        } = self;
        let info = QueueSettingsInfo {
            topic,
            lock_ms,
            max_deliveries,
            backoff_initial_ms,
            backoff_multiplier,
            backoff_max_ms,
            ordering,
            dead_letter_topic,
            window_records,
        };
        let settings = QueueSettings::from_info(&name, info);
        (name, settings)
    }
}

fn store_settings(dir: &Path, name: &str, settings: &QueueSettings) -> Result<(), QueueError> {
    let path = dir.join(SETTINGS_FILE);
    let json = serde_json::to_vec_pretty(&SettingsFile::new(name, settings)).map_err(|e| {
        QueueError::BadSettingsFile {
            path: path.clone(),
            message: format!("cannot serialize: {e}"),
        }
    })?;
    fsio::write_atomic(dir, SETTINGS_FILE, &json).map_err(io_err("write", &path))
}

fn load_settings(dir: &Path) -> Result<(String, QueueSettings), QueueError> {
    let path = dir.join(SETTINGS_FILE);
    let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
    let bad = |message: String| QueueError::BadSettingsFile {
        path: path.clone(),
        message,
    };
    let file: SettingsFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let (name, settings) = file.into_settings();
    let settings = settings.map_err(|e| bad(e.to_string()))?;
    let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if dir_name != name {
        return Err(bad(format!(
            "names queue {name:?} but lives in {dir_name:?}"
        )));
    }
    Ok((name, settings))
}

/// One queue: settings, state log and partition state machines.
#[derive(Debug)]
pub struct Queue {
    name: String,
    settings: RwLock<QueueSettings>,
    store: QueueStore,
    partitions: Mutex<BTreeMap<u32, PartitionQueue>>,
    cache: Mutex<RecordCache>,
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's settings now.
    pub fn settings(&self) -> QueueSettings {
        crate::poison::read(&self.settings).clone()
    }

    /// The state log.
    pub fn store(&self) -> &QueueStore {
        &self.store
    }

    /// Decoded records filled into the windows and not yet handed out.
    pub fn cache(&self) -> std::sync::MutexGuard<'_, RecordCache> {
        crate::poison::lock(&self.cache)
    }

    /// Runs `f` on the state machine of `partition` (built at first use from
    /// the state log, or starting at offset `start` if the log has nothing
    /// for it), then hands its transitions to the state log in order. Wait
    /// on the returned [`PendingState`] before answering anything that must
    /// be durable (acks, nacks).
    pub fn with_partition<R>(
        &self,
        partition: u32,
        start: u64,
        f: impl FnOnce(&mut PartitionQueue) -> R,
    ) -> (R, PendingState) {
        let mut partitions = crate::poison::lock(&self.partitions);
        let q = partitions.entry(partition).or_insert_with(|| {
            let settings = self.settings();
            if self.store.partitions().contains(&partition) {
                PartitionQueue::recover(settings, self.store.partition(partition).durable)
            } else {
                PartitionQueue::recover(
                    settings,
                    PartitionDurable {
                        floor: start,
                        ..PartitionDurable::default()
                    },
                )
            }
        });
        let result = f(q);
        let transitions = q.take_transitions();
        let pending = self.store.submit_transitions(partition, transitions);
        (result, pending)
    }
}

impl Queue {
    /// Releases every lock `member` holds, on every partition (the member
    /// is gone: its connection closed): each record is available again at
    /// once with its delivery count kept, or queued for the dead-letter
    /// topic if that was its last allowed delivery. Returns the partitions
    /// where locks were released, and their pending state writes.
    pub fn release_member(&self, member: MemberId, now_ms: i64) -> Vec<(u32, PendingState)> {
        let ids: Vec<u32> = crate::poison::lock(&self.partitions)
            .keys()
            .copied()
            .collect();
        ids.into_iter()
            .filter_map(|p| {
                let (released, pending) =
                    self.with_partition(p, 0, |q| q.release_member(member, now_ms));
                (released > 0).then_some((p, pending))
            })
            .collect()
    }
}

/// Every queue of the broker. See the module docs.
#[derive(Debug)]
pub struct QueueRegistry {
    dir: PathBuf,
    options: QueueStoreOptions,
    queues: RwLock<BTreeMap<String, Arc<Queue>>>,
    /// Next member id. Seeded from the clock at open so ids of an earlier
    /// run (whose locks died with it) are not handed out again.
    next_member: std::sync::atomic::AtomicU64,
}

impl QueueRegistry {
    /// Opens every queue in `dir` (`<data_dir>/queues`), recovering their
    /// state logs, and takes their names from `groups`. Blocking.
    pub fn open(
        dir: &Path,
        options: QueueStoreOptions,
        groups: &GroupCoordinator,
    ) -> Result<(Self, BTreeMap<String, StateRecovery>), QueueError> {
        fsio::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let mut queues = BTreeMap::new();
        let mut reports = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(io_err("list", dir))?;
        let mut removed = false;
        for entry in entries {
            let entry = entry.map_err(io_err("list", dir))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETED_SUFFIX) || !path.join(SETTINGS_FILE).exists() {
                tracing::info!(path = %path.display(), "queues: removing a deleted or half-created queue");
                std::fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                removed = true;
                continue;
            }
            let (name, settings) = load_settings(&path)?;
            let (store, report) = QueueStore::open(&path, options)?;
            groups.reserve_queue_name(&name)?;
            reports.insert(name.clone(), report);
            queues.insert(
                name.clone(),
                Arc::new(Queue {
                    name,
                    settings: RwLock::new(settings),
                    store,
                    partitions: Mutex::new(BTreeMap::new()),
                    cache: Mutex::new(RecordCache::default()),
                }),
            );
        }
        if removed {
            fsio::sync_dir(dir).map_err(io_err("fsync directory", dir))?;
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                options,
                queues: RwLock::new(queues),
                next_member: std::sync::atomic::AtomicU64::new(
                    u64::try_from(crate::clock::now_ms()).unwrap_or(1).max(1) << 20,
                ),
            },
            reports,
        ))
    }

    /// A new member id (never 0, which asks for one).
    pub fn new_member_id(&self) -> u64 {
        self.next_member
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .max(1)
    }

    /// A queue by name.
    pub fn get(&self, name: &str) -> Option<Arc<Queue>> {
        crate::poison::read(&self.queues).get(name).cloned()
    }

    /// Every queue, by name.
    pub fn list(&self) -> Vec<Arc<Queue>> {
        crate::poison::read(&self.queues)
            .values()
            .cloned()
            .collect()
    }

    /// Creates queue `name` with `settings`. `topic_exists` tells whether a
    /// topic exists: the queue's topic must, its dead-letter topic must not
    /// (the caller creates it next). Blocking.
    pub fn create(
        &self,
        name: &str,
        settings: QueueSettings,
        groups: &GroupCoordinator,
        topic_exists: impl Fn(&str) -> bool,
    ) -> Result<Arc<Queue>, QueueError> {
        settings.validate(name)?;
        let mut queues = crate::poison::write(&self.queues);
        if queues.contains_key(name) {
            return Err(QueueError::AlreadyExists(name.to_owned()));
        }
        if queues.len() >= QUEUES_MAX {
            return Err(QueueError::QueueLimitReached { max: QUEUES_MAX });
        }
        if !topic_exists(&settings.topic) {
            return Err(QueueError::TopicNotFound(settings.topic.clone()));
        }
        let dlq = &settings.dead_letter_topic;
        if topic_exists(dlq) {
            return Err(QueueError::DeadLetterTopicTaken {
                topic: dlq.clone(),
                by: "a topic of that name exists".into(),
            });
        }
        if let Some(other) = queues.values().find(|q| {
            let s = q.settings();
            &s.dead_letter_topic == dlq || &s.topic == dlq
        }) {
            return Err(QueueError::DeadLetterTopicTaken {
                topic: dlq.clone(),
                by: format!("queue {:?} uses it", other.name),
            });
        }
        groups.reserve_queue_name(name)?;
        let dir = self.dir.join(name);
        let created = (|| {
            fsio::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
            store_settings(&dir, name, &settings)?;
            Ok::<_, QueueError>(QueueStore::open(&dir, self.options)?.0)
        })();
        let store = match created {
            Ok(store) => store,
            Err(e) => {
                // Half-created: removed now, or at the next open.
                let _ = std::fs::remove_dir_all(&dir);
                groups.release_queue_name(name);
                return Err(e);
            }
        };
        let queue = Arc::new(Queue {
            name: name.to_owned(),
            settings: RwLock::new(settings),
            store,
            partitions: Mutex::new(BTreeMap::new()),
            cache: Mutex::new(RecordCache::default()),
        });
        queues.insert(name.to_owned(), Arc::clone(&queue));
        Ok(queue)
    }

    /// Changes a queue's settings (not its topic or dead-letter topic);
    /// durable before it applies. Returns the new settings. Blocking.
    pub fn alter(
        &self,
        name: &str,
        change: impl FnOnce(&mut QueueSettings),
    ) -> Result<QueueSettings, QueueError> {
        let queue = self
            .get(name)
            .ok_or_else(|| QueueError::NotFound(name.to_owned()))?;
        let mut settings = crate::poison::write(&queue.settings);
        let mut new = settings.clone();
        change(&mut new);
        if new.topic != settings.topic {
            return Err(QueueError::Immutable("the topic"));
        }
        if new.dead_letter_topic != settings.dead_letter_topic {
            return Err(QueueError::Immutable("the dead-letter topic"));
        }
        new.validate(name)?;
        store_settings(&self.dir.join(name), name, &new)?;
        *settings = new.clone();
        for q in crate::poison::lock(&queue.partitions).values_mut() {
            q.set_settings(new.clone());
        }
        Ok(new)
    }

    /// Deletes a queue and its state (not its topics), and gives its name
    /// back to `groups`. Blocking.
    pub fn delete(&self, name: &str, groups: &GroupCoordinator) -> Result<(), QueueError> {
        let mut queues = crate::poison::write(&self.queues);
        let queue = queues
            .remove(name)
            .ok_or_else(|| QueueError::NotFound(name.to_owned()))?;
        queue.store.close();
        let dir = self.dir.join(name);
        let tombstone = self.dir.join(format!("{name}{DELETED_SUFFIX}"));
        std::fs::rename(&dir, &tombstone).map_err(io_err("rename", &dir))?;
        fsio::sync_dir(&self.dir).map_err(io_err("fsync directory", &self.dir))?;
        // The rename is the deletion; a failed removal is finished at open.
        if let Err(e) = std::fs::remove_dir_all(&tombstone) {
            tracing::warn!(path = %tombstone.display(), error = %e, "queues: removal left for the next start");
        }
        groups.release_queue_name(name);
        Ok(())
    }

    /// Closes every state log. Blocking.
    pub fn close_all(&self) {
        for queue in crate::poison::read(&self.queues).values() {
            queue.store.close();
        }
    }
}

#[cfg(test)]
mod tests;
