//! The broker server: the listener (plaintext or TLS), connections, request
//! handlers, the background tasks (retention, interval flushes) and shutdown.
//!
//! [`Broker::start`] opens the data directory (recovering every partition),
//! binds the listener and returns a [`BrokerHandle`]. Shutdown, from the
//! handle or a signal in `skiffd`, stops accepting, lets in-flight requests
//! finish (long polls answer early), then flushes and closes every log,
//! writing the clean-shutdown markers.

pub(crate) mod api;
pub(crate) mod authorize;
mod connection;
mod dispatch;
pub(crate) mod failure;
pub(crate) mod frame_timing;
pub(crate) mod handlers;
pub(crate) mod handshake;
mod listener;
pub(crate) mod pipeline;
mod scrape;
mod tls;
pub(crate) mod writer;
pub use tls::TlsError;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{BrokerConfig, ConfigError};
use crate::groups::{GroupCoordinator, GroupError, OffsetStoreOptions};
use crate::log::Durability;
use crate::topics::{TopicError, TopicRegistry};

/// State shared by every connection and background task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub topics: TopicRegistry,
    /// Consumer groups and their committed offsets (`<data_dir>/groups/`).
    pub groups: GroupCoordinator,
    /// Work queues and their state (`<data_dir>/queues/`).
    pub queues: crate::queues::QueueRegistry,
    /// Idempotent-producer ids (`<data_dir>/producer_ids`).
    pub producer_ids: crate::producer_ids::ProducerIds,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub connections: Arc<Semaphore>,
    /// Password checks running at once (`auth_checks_concurrent_max`).
    pub auth_checks: Arc<Semaphore>,
    /// Failed logins per client address (`auth_failures_per_address_max`).
    pub login_throttle: crate::auth::throttle::LoginThrottle,
    /// TLS on the client listener; `None`: plaintext.
    pub tls: Option<tls::TlsListener>,
    pub started: Instant,
    /// Metric handles (request latencies, per-topic counters).
    pub telemetry: crate::telemetry::Telemetry,
    /// Users, tokens and grants (`<data_dir>/security.json`).
    pub security: crate::auth::Security,
    /// What Metadata tells Kafka clients to connect to; `None`: no Kafka
    /// listener.
    pub kafka: Option<crate::kafka::Advertised>,
    /// The data-directory lock, released at the end of shutdown.
    pub dir_lock: std::sync::Mutex<Option<std::fs::File>>,
}

impl Shared {
    /// Connections open now: the permits the listener has handed out.
    pub(crate) fn connections_open(&self) -> usize {
        self.config
            .connections_max
            .saturating_sub(self.connections.available_permits())
    }
}

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Opening or closing the topics failed.
    #[error(transparent)]
    Topics(#[from] TopicError),
    /// Opening or closing the consumer groups' offset store failed.
    #[error(transparent)]
    Groups(#[from] GroupError),
    /// Opening the work queues failed.
    #[error(transparent)]
    Queues(#[from] crate::queues::QueueError),
    /// The producer id allocator could not be opened.
    #[error(transparent)]
    ProducerIds(#[from] crate::producer_ids::ProducerIdError),
    /// The security file could not be loaded or the bootstrap users saved.
    #[error(transparent)]
    Security(#[from] crate::auth::SecurityError),
    /// The metrics recorder could not be installed.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The TLS certificate, key or client CA could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Another broker process has the data directory open.
    #[error("data directory {path} is in use by another skiffd (it holds {path}/.lock)", path = path.display())]
    DataDirInUse {
        /// The directory.
        path: PathBuf,
    },
    /// The data directory could not be created.
    #[error("cannot use data directory {path}", path = path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A startup or shutdown task failed unexpectedly.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// The broker library entry point.
#[derive(Debug)]
pub struct Broker;

impl Broker {
    /// Starts a broker: validates the config, opens (and recovers) the data
    /// directory, binds the listener and starts serving.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), skiff_broker::BrokerError> {
    /// use skiff_broker::{Broker, BrokerConfig};
    /// let broker = Broker::start(BrokerConfig {
    ///     data_dir: "/tmp/skiff-test".into(),
    ///     listen: "127.0.0.1:0".parse().unwrap(),
    ///     ..BrokerConfig::default()
    /// })
    /// .await?;
    /// println!("listening on {}", broker.local_addr());
    /// broker.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
        config.validate()?;
        // Certificate files are checked before anything is opened or bound.
        let tls = tls::TlsListener::from_config(&config)?;
        // The recorder goes in before any metric handle is registered.
        let prometheus = match config.metrics_listen {
            Some(_) => Some(crate::telemetry::prometheus()?),
            None => None,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|source| BrokerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let dir_lock = crate::fsio::lock_dir(&config.data_dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                BrokerError::DataDirInUse {
                    path: config.data_dir.clone(),
                }
            } else {
                BrokerError::DataDir {
                    path: config.data_dir.clone(),
                    source,
                }
            }
        })?;
        let data_dir = config.data_dir.clone();
        let defaults = config.log_defaults();
        let partitions_max = config.partitions_max;
        let topics = tokio::task::spawn_blocking(move || {
            TopicRegistry::open(&data_dir, defaults, partitions_max)
        })
        .await
        .map_err(|e| BrokerError::Task(e.to_string()))??;
        let groups_dir = config.data_dir.join("groups");
        let limits = config.group_limits();
        let (groups, recovery) = tokio::task::spawn_blocking(move || {
            GroupCoordinator::open(&groups_dir, limits, OffsetStoreOptions::default())
        })
        .await
        .map_err(|e| BrokerError::Task(e.to_string()))??;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                cut_bytes = recovery.truncated_bytes,
                "offset store: cut a torn tail on recovery"
            );
        }
        let queues_dir = config.data_dir.join(crate::queues::registry::QUEUES_DIR);
        let (queues, groups, topics) = tokio::task::spawn_blocking(move || {
            let queues = open_queues(&queues_dir, &groups, &topics);
            (queues, groups, topics)
        })
        .await
        .map_err(|e| BrokerError::Task(e.to_string()))?;
        let queues = queues?;
        let producer_ids = crate::producer_ids::ProducerIds::open(&config.data_dir)?;
        let data_dir = config.data_dir.clone();
        let bootstrap = config.users.clone();
        let security =
            tokio::task::spawn_blocking(move || crate::auth::Security::open(&data_dir, &bootstrap))
                .await
                .map_err(|e| BrokerError::Task(e.to_string()))??;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| BrokerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| BrokerError::Bind {
            addr: config.listen,
            source,
        })?;
        let kafka_listener = match config.kafka_listen {
            Some(addr) => {
                let bind_error = |source| BrokerError::Bind { addr, source };
                let l = TcpListener::bind(addr).await.map_err(bind_error)?;
                let local = l.local_addr().map_err(bind_error)?;
                Some((l, local))
            }
            None => None,
        };
        let kafka_addr = kafka_listener.as_ref().map(|(_, a)| *a);
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let bind_error = |source| BrokerError::Bind { addr, source };
                let l = TcpListener::bind(addr).await.map_err(bind_error)?;
                let local = l.local_addr().map_err(bind_error)?;
                Some((l, local))
            }
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(|(_, a)| *a);
        let shared = Arc::new(Shared {
            connections: Arc::new(Semaphore::new(config.connections_max)),
            auth_checks: Arc::new(Semaphore::new(config.auth_checks_concurrent_max)),
            login_throttle: crate::auth::throttle::LoginThrottle::new(
                config.auth_failures_per_address_max,
                std::time::Duration::from_millis(config.auth_failure_window_ms),
            ),
            tls,
            kafka: kafka_addr.map(|bound| {
                crate::kafka::Advertised::new(config.kafka_advertised_address.as_deref(), bound)
            }),
            config,
            topics,
            groups,
            queues,
            producer_ids,
            security,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            started: Instant::now(),
            dir_lock: std::sync::Mutex::new(Some(dir_lock)),
            telemetry: crate::telemetry::Telemetry::new(),
        });
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            data_dir = %shared.config.data_dir.display(),
            listen = %local_addr,
            metrics_listen = ?metrics_addr,
            kafka_listen = ?kafka_addr,
            tls = shared.tls.is_some(),
            tls_client_auth = shared.tls.as_ref().is_some_and(|t| t.client_auth()),
            partitions = shared.topics.list().iter().map(|t| t.partitions.len()).sum::<usize>(),
            fsync = %shared.config.fsync,
            topics = shared.topics.list().len(),
            authentication = shared.security.enabled(),
            "skiffd started"
        );
        start_background(&shared);
        if let (Some((listener, _)), Some(handle)) = (metrics_listener, prometheus) {
            shared.tracker.spawn(crate::telemetry::serve(
                listener,
                handle,
                Arc::clone(&shared),
            ));
        }
        let expiry = Arc::clone(&shared);
        shared.tracker.spawn(async move {
            expiry.groups.run_expiry(expiry.shutdown.clone()).await;
        });
        let accept = tokio::spawn(listener::accept_loop(
            listener,
            Arc::clone(&shared),
            listener::Front::Skiff,
        ));
        let kafka_accept = kafka_listener.map(|(l, _)| {
            tokio::spawn(listener::accept_loop(
                l,
                Arc::clone(&shared),
                listener::Front::Kafka,
            ))
        });
        Ok(BrokerHandle {
            local_addr,
            metrics_addr,
            kafka_addr,
            shared,
            accept,
            kafka_accept,
        })
    }
}

/// A running broker.
#[derive(Debug)]
pub struct BrokerHandle {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    kafka_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    kafka_accept: Option<JoinHandle<()>>,
}

impl BrokerHandle {
    /// The address the listener is bound to (with the real port when the
    /// config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the Prometheus endpoint (`GET /metrics`), when
    /// `metrics_listen` is set (with the real port when it asked for 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address the Kafka-protocol listener is bound to (with the real
    /// port when `kafka_listen` asked for port 0); `None` when it is off.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka_addr
    }

    /// Reads the TLS certificate chain, key and client CA files again (a
    /// renewed certificate): handshakes from now on use them, established
    /// connections keep theirs. `Ok(false)` when TLS is off. On an error,
    /// which names the config key and file, the settings in use stay.
    /// Blocks briefly to read the files (from async code, call it in
    /// `spawn_blocking` or accept a short stall).
    pub fn reload_tls(&self) -> Result<bool, BrokerError> {
        let Some(tls) = &self.shared.tls else {
            return Ok(false);
        };
        tls.reload()?;
        tracing::info!("TLS certificate, key and client CA reloaded");
        Ok(true)
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.shared.config.data_dir
    }

    /// Stops the broker's tasks without waiting or flushing (for drops that
    /// cannot await; the logs' recovery covers the rest).
    pub(crate) fn cancel(&self) {
        self.shared.shutdown.cancel();
    }

    /// How long the broker has been running.
    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Stops accepting, lets in-flight requests finish (up to
    /// `shutdown_grace_ms`), then flushes and closes every partition log and
    /// writes the clean-shutdown markers.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let shared = self.shared;
        shared.shutdown.cancel();
        let _ = self.accept.await;
        if let Some(kafka) = self.kafka_accept {
            let _ = kafka.await;
        }
        shared.tracker.close();
        let grace = Duration::from_millis(shared.config.shutdown_grace_ms);
        if tokio::time::timeout(grace, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = shared.config.shutdown_grace_ms,
                "requests still in flight after the grace period; closing anyway"
            );
        }
        let closing = Arc::clone(&shared);
        // Finishes queued offset commits (each acked only once fsync'd).
        tokio::task::spawn_blocking(move || closing.groups.close())
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))?;
        let closing = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || closing.queues.close_all())
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))?;
        let closing = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || closing.topics.close_all())
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))??;
        // Everything is closed: another broker may open the directory now.
        drop(crate::poison::lock(&shared.dir_lock).take());
        tracing::info!("skiffd stopped cleanly");
        Ok(())
    }
}

/// Opens the work queues and finishes every dead-lettering a crash
/// interrupted (before any request is served). Blocking.
fn open_queues(
    dir: &std::path::Path,
    groups: &GroupCoordinator,
    topics: &TopicRegistry,
) -> Result<crate::queues::QueueRegistry, BrokerError> {
    let (queues, reports) = crate::queues::QueueRegistry::open(
        dir,
        crate::queues::QueueStoreOptions::default(),
        groups,
    )?;
    for (name, report) in reports {
        if report.truncated_bytes > 0 {
            tracing::warn!(queue = %name, cut_bytes = report.truncated_bytes, "queue state: cut a torn tail on recovery");
        }
        if report.intents == 0 {
            continue;
        }
        if let Some(queue) = queues.get(&name) {
            let mut sink = handlers::queues::sink(topics, &queue);
            let appended = crate::queues::store::finish_dead_letters(queue.store(), &mut sink)
                .map_err(|e| BrokerError::Queues(crate::queues::QueueError::DeadLetter(e)))?;
            tracing::info!(queue = %name, intents = report.intents, appended, "queue: finished interrupted dead-lettering");
        }
    }
    Ok(queues)
}

/// Starts the periodic tasks: retention (and age-based rolls) and, under
/// `fsync = interval:<ms>`, the flush ticker.
fn start_background(shared: &Arc<Shared>) {
    let retention_every = Duration::from_millis(shared.config.retention_check_interval_ms);
    shared.tracker.spawn(periodic(Arc::clone(shared), retention_every, |shared| {
        let now_ms = crate::clock::now_ms();
        for topic in shared.topics.list() {
            for (p, log) in topic.partitions.iter().enumerate() {
                match log.enforce_retention(now_ms) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(topic = %topic.meta.name, partition = p, segments = n, "retention deleted segments"),
                    Err(e) => tracing::error!(topic = %topic.meta.name, partition = p, error = %e, "retention failed"),
                }
            }
        }
    }));
    if let Durability::Interval(every) = shared.config.fsync {
        shared.tracker.spawn(periodic(Arc::clone(shared), every, |shared| {
            for topic in shared.topics.list() {
                for (p, log) in topic.partitions.iter().enumerate() {
                    if let Err(e) = log.flush() {
                        tracing::error!(topic = %topic.meta.name, partition = p, error = %e, "interval flush failed");
                    }
                }
            }
        }));
    }
}

/// Runs blocking `work` every `every` until shutdown.
async fn periodic(shared: Arc<Shared>, every: Duration, work: fn(&Shared)) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let worker = Arc::clone(&shared);
        let _ = tokio::task::spawn_blocking(move || work(&worker)).await;
    }
}
