//! Telemetry: the broker's metric names (through the `metrics` facade) and
//! the Prometheus endpoint (`metrics_listen`, `GET /metrics`).
//!
//! Invariants:
//! - No per-message cost on the hot path: counters and histograms move once
//!   per request or per group commit. Per-topic handles (label `topic`) are
//!   registered once per topic and cached in [`Telemetry`], so no label
//!   string is allocated per request.
//! - Figures that are state rather than events (open connections, topics,
//!   partitions, log bytes on disk, consumer-group lag) are computed at
//!   scrape time, so they cost nothing between scrapes.
//! - With no `metrics_listen`, no recorder is installed and every metric
//!   call is a no-op.
//!
//! Why `metrics-exporter-prometheus` without its HTTP listener: the crate
//! gives the recorder, histogram buckets and the exposition format; its
//! listener would add hyper for one GET route, so a small tokio responder
//! below serves the text instead (bounded request size and time).
//!
//! The recorder is process-global (the `metrics` facade has one): several
//! brokers embedded in one process share one registry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use tokio_util::sync::CancellationToken;

use crate::groups::GroupCoordinator;
use crate::log::{LogObserver, Observer};
use crate::topics::TopicRegistry;

/// Most bytes of an HTTP request head the endpoint reads; a scrape request
/// is a few hundred bytes, so anything longer is refused.
pub const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Longest a scraper may take to send its request, in milliseconds.
pub const HTTP_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Most topics whose handles are cached; past it the cache starts over
/// (bounds memory however many topics are created and deleted over time).
pub const TOPIC_HANDLES_MAX: usize = 10_000;

/// Latency buckets, in seconds: 50 µs to 10 s, roughly ×2.5 apart.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];
/// Buckets of the request-path stage histogram ([`names::STAGE_LATENCY`]):
/// finer than [`LATENCY_BUCKETS_SECONDS`] below 5 ms, where the stages of a
/// sub-millisecond path differ (about 1.5x apart, so a percentile read from
/// them is within about 25%).
const STAGE_BUCKETS_SECONDS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_02, 0.000_03, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2,
    0.000_3, 0.000_4, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1,
    1.0,
];
/// Batches-per-fsync buckets (group-commit size).
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// Metric names, one place so docs and dashboards can rely on them. Every
/// name is declared here once and listed, with its kind and help text, in
/// [`METRICS`]; call sites use these constants, never a string literal (a
/// test checks both, and that the README's metrics table lists exactly
/// [`METRICS`]).
pub mod names {
    /// Counter, label `topic`: records appended.
    pub const MESSAGES_IN: &str = "skiff_messages_in_total";
    /// Counter, label `topic`: batch bytes appended.
    pub const BYTES_IN: &str = "skiff_bytes_in_total";
    /// Counter, label `topic`: records served by fetches.
    pub const MESSAGES_OUT: &str = "skiff_messages_out_total";
    /// Counter, label `topic`: batch bytes served by fetches.
    pub const BYTES_OUT: &str = "skiff_bytes_out_total";
    /// Histogram: produce request latency (queue, write, fsync), seconds.
    pub const PRODUCE_LATENCY: &str = "skiff_produce_latency_seconds";
    /// Histogram, label `stage` ([`super::Stage`]): time spent in one stage
    /// of the produce or fetch path, seconds.
    pub const STAGE_LATENCY: &str = "skiff_stage_seconds";
    /// Histogram: fetch request latency (long-poll wait included), seconds.
    pub const FETCH_LATENCY: &str = "skiff_fetch_latency_seconds";
    /// Counter, label `path` (`inline`: from the page cache on the async
    /// worker; `blocking`: on the blocking pool): log reads done for fetches.
    pub const FETCH_READS: &str = "skiff_fetch_reads_total";
    /// Histogram: fdatasync duration on the append path, seconds.
    pub const FSYNC_LATENCY: &str = "skiff_fsync_seconds";
    /// Histogram: batches made durable by one fdatasync (group commit).
    pub const FSYNC_BATCHES: &str = "skiff_fsync_batches";
    /// Gauge: open client connections.
    pub const CONNECTIONS: &str = "skiff_connections_open";
    /// Gauge: topics.
    pub const TOPICS: &str = "skiff_topics";
    /// Gauge: partitions over all topics.
    pub const PARTITIONS: &str = "skiff_partitions";
    /// Gauge, label `topic`: segment bytes on disk.
    pub const LOG_BYTES: &str = "skiff_log_bytes";
    /// Gauge, labels `group`, `topic`, `partition`: log end offset minus
    /// the group's committed offset.
    pub const GROUP_LAG: &str = "skiff_group_lag";
    /// Counter, label `reason` (`timeout`, `refused`, `io`,
    /// `plaintext_listener`): TLS handshakes that failed on the client
    /// listener.
    pub const TLS_HANDSHAKE_FAILURES: &str = "skiff_tls_handshake_failures_total";
    /// Gauge: seconds since the broker started.
    pub const UPTIME: &str = "skiff_uptime_seconds";
    /// Counter: failed authentications.
    pub const AUTH_FAILURES: &str = "skiff_auth_failures_total";
    /// Counter: logins refused unchecked (address throttled).
    pub const AUTH_THROTTLED: &str = "skiff_auth_throttled_total";
    /// Counter: logins refused because `auth_checks_concurrent_max` checks
    /// were running until the handshake deadline.
    pub const AUTH_CHECKS_BUSY: &str = "skiff_auth_checks_busy_total";
    /// Counter, label `api`: requests refused with `not_authorized`.
    pub const AUTHZ_DENIED: &str = "skiff_authz_denied_total";
    /// Counter: sessions ended because their user, password or token
    /// changed (the request is refused and the connection closed).
    pub const SESSIONS_ENDED: &str = "skiff_sessions_ended_total";
    /// Counter: requests received after the handshake, any API.
    pub const REQUESTS: &str = "skiff_requests_total";
    /// Counter: consumer-group offset updates written by the offset store.
    pub const OFFSET_COMMITS: &str = "skiff_offset_commits_total";
    /// Counter: work-queue records handed out, per queue.
    pub const QUEUE_DELIVERIES: &str = "skiff_queue_deliveries_total";
    /// Counter: work-queue records handed out again (delivery count > 1),
    /// per queue.
    pub const QUEUE_REDELIVERIES: &str = "skiff_queue_redeliveries_total";
    /// Counter: work-queue verdicts applied, per queue and action (ack,
    /// nack, reject, extend, release): nacks and releases are the
    /// redeliveries' causes besides lock expiries.
    pub const QUEUE_SETTLES: &str = "skiff_queue_settles_total";
    /// Counter: work-queue locks that ran out, per queue.
    pub const QUEUE_LOCK_EXPIRIES: &str = "skiff_queue_lock_expiries_total";
    /// Counter: records appended to a dead-letter topic, per queue.
    pub const QUEUE_DEAD_LETTERS: &str = "skiff_queue_dead_letters_total";
    /// Histogram: group hand-overs, from the broker asking the old owner to
    /// revoke a partition to its release, in seconds.
    pub const GROUP_REVOKE_SECONDS: &str = "skiff_group_revoke_seconds";
    /// Histogram: group hand-overs, from the old owner's release (or the
    /// partition becoming free) to the new owner reading its committed
    /// offset (FetchOffsets, the step before its first fetch), in seconds.
    pub const GROUP_HANDOVER_START_SECONDS: &str = "skiff_group_handover_start_seconds";
    /// Counter: revoked partitions taken from their owner after
    /// `revoke_timeout_ms`.
    pub const GROUP_REVOKE_TIMEOUTS: &str = "skiff_group_revoke_timeouts_total";
}

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Set to a value (at scrape time, or moved up and down).
    Gauge,
    /// A distribution (buckets, sum, count).
    Histogram,
}

/// One registered metric: its name, kind and help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The name (one of [`names`]).
    pub name: &'static str,
    /// Its kind.
    pub kind: MetricKind,
    /// The Prometheus `# HELP` line.
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: MetricKind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

/// Every metric the broker registers, each once.
pub const METRICS: &[Metric] = {
    use MetricKind::{Counter, Gauge, Histogram};
    use names::*;
    &[
        metric(MESSAGES_IN, Counter, "Records appended, per topic."),
        metric(BYTES_IN, Counter, "Batch bytes appended, per topic."),
        metric(
            MESSAGES_OUT,
            Counter,
            "Records served by fetches, per topic.",
        ),
        metric(
            BYTES_OUT,
            Counter,
            "Batch bytes served by fetches, per topic.",
        ),
        metric(
            PRODUCE_LATENCY,
            Histogram,
            "Produce request latency (queue, write, fsync), seconds.",
        ),
        metric(
            STAGE_LATENCY,
            Histogram,
            "Time in one stage of the produce or fetch path (label stage), seconds.",
        ),
        metric(
            FETCH_LATENCY,
            Histogram,
            "Fetch request latency (long-poll wait included), seconds.",
        ),
        metric(
            FETCH_READS,
            Counter,
            "Log reads done for fetches, by path (inline or blocking).",
        ),
        metric(
            FSYNC_LATENCY,
            Histogram,
            "Append-path fdatasync duration, seconds.",
        ),
        metric(
            FSYNC_BATCHES,
            Histogram,
            "Batches made durable by one fdatasync (group commit).",
        ),
        metric(CONNECTIONS, Gauge, "Open client connections."),
        metric(TOPICS, Gauge, "Topics."),
        metric(PARTITIONS, Gauge, "Partitions over all topics."),
        metric(LOG_BYTES, Gauge, "Segment bytes on disk, per topic."),
        metric(
            GROUP_LAG,
            Gauge,
            "Log end offset minus the group's committed offset.",
        ),
        metric(
            TLS_HANDSHAKE_FAILURES,
            Counter,
            "TLS handshakes that failed on the client listener, by reason.",
        ),
        metric(UPTIME, Gauge, "Seconds since the broker started."),
        metric(AUTH_FAILURES, Counter, "Failed authentications."),
        metric(
            AUTH_THROTTLED,
            Counter,
            "Logins refused unchecked because their address is throttled.",
        ),
        metric(
            AUTH_CHECKS_BUSY,
            Counter,
            "Logins refused because too many password checks were running.",
        ),
        metric(
            AUTHZ_DENIED,
            Counter,
            "Requests refused with not_authorized, by api.",
        ),
        metric(
            SESSIONS_ENDED,
            Counter,
            "Sessions ended because their credentials changed.",
        ),
        metric(REQUESTS, Counter, "Requests received after the handshake."),
        metric(
            OFFSET_COMMITS,
            Counter,
            "Consumer-group offset updates written.",
        ),
        metric(
            GROUP_REVOKE_SECONDS,
            Histogram,
            "Group hand-overs: revocation asked to partition released, seconds.",
        ),
        metric(
            GROUP_HANDOVER_START_SECONDS,
            Histogram,
            "Group hand-overs: partition released to the new owner starting it, seconds.",
        ),
        metric(
            GROUP_REVOKE_TIMEOUTS,
            Counter,
            "Revoked partitions taken from their owner after revoke_timeout_ms.",
        ),
        metric(
            QUEUE_DELIVERIES,
            Counter,
            "Work-queue records handed out, per queue.",
        ),
        metric(
            QUEUE_REDELIVERIES,
            Counter,
            "Work-queue records handed out again, per queue.",
        ),
        metric(
            QUEUE_SETTLES,
            Counter,
            "Work-queue verdicts applied, per queue and action.",
        ),
        metric(
            QUEUE_LOCK_EXPIRIES,
            Counter,
            "Work-queue locks that ran out, per queue.",
        ),
        metric(
            QUEUE_DEAD_LETTERS,
            Counter,
            "Records moved to a dead-letter topic, per queue.",
        ),
    ]
};

/// Registers every metric's help text with the installed recorder.
fn describe_all() {
    for m in METRICS {
        match m.kind {
            MetricKind::Counter => metrics::describe_counter!(m.name, m.help),
            MetricKind::Gauge => metrics::describe_gauge!(m.name, m.help),
            MetricKind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// Another global `metrics` recorder is installed in this process.
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
}

static PROMETHEUS: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its
/// handle.
pub(crate) fn prometheus() -> Result<PrometheusHandle, TelemetryError> {
    PROMETHEUS
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    LATENCY_BUCKETS_SECONDS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::FSYNC_BATCHES.to_owned()),
                        GROUP_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::STAGE_LATENCY.to_owned()),
                        STAGE_BUCKETS_SECONDS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder)
                .inspect(|_| describe_all())
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(TelemetryError::Recorder)
}

/// A stage of the request path, timed into [`names::STAGE_LATENCY`] so the
/// e2e bench can say where a message's time goes. Each is one or two
/// `Instant` reads per request, never per record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// A produce from its frame read to its batch queued on the log:
    /// dispatch, the connection's ordered pipeline, topic and batch checks.
    ProduceQueue,
    /// A produce from queued on the log to durable: waiting for and
    /// running the group commit (write, fdatasync).
    ProduceCommit,
    /// A fetch waiting at the log end, from the end moving to the fetch
    /// task running again (the wake-up hand-off).
    FetchWake,
    /// A woken fetch reading what arrived (to its answer being ready).
    FetchRead,
}

impl Stage {
    /// The `stage` label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Stage::ProduceQueue => "produce_queue",
            Stage::ProduceCommit => "produce_commit",
            Stage::FetchWake => "fetch_wake",
            Stage::FetchRead => "fetch_read",
        }
    }

    /// Records `took` in this stage.
    pub(crate) fn record(self, took: Duration) {
        metrics::histogram!(names::STAGE_LATENCY, "stage" => self.label())
            .record(took.as_secs_f64());
    }
}

/// The log's fsync timings as metrics: subscribed to every partition log
/// through [`LogConfig::observer`](crate::log::LogConfig) (the log reports,
/// telemetry records; the log never calls a metrics API).
#[derive(Debug)]
pub(crate) struct FsyncMetrics;

impl LogObserver for FsyncMetrics {
    /// One append-path fdatasync: its duration and how many batches it made
    /// durable. Called once per group commit, never per message.
    fn fsynced(&self, took: Duration, batches: usize) {
        metrics::histogram!(names::FSYNC_LATENCY).record(took.as_secs_f64());
        metrics::histogram!(names::FSYNC_BATCHES).record(batches as f64);
    }
}

/// The observer every broker partition log reports to.
pub(crate) fn log_observer() -> Observer {
    static FSYNC_METRICS: OnceLock<Arc<FsyncMetrics>> = OnceLock::new();
    let metrics = FSYNC_METRICS.get_or_init(|| Arc::new(FsyncMetrics));
    Observer::new(Arc::clone(metrics) as Arc<dyn LogObserver>)
}

/// What the scrape-time gauges are computed from: the broker's in-memory
/// state, seen through this trait so telemetry does not depend on the
/// server (the server implements it for its shared state).
pub(crate) trait ScrapeSource: Send + Sync + 'static {
    /// The topic registry (topics, partitions, log sizes and ends).
    fn topics(&self) -> &TopicRegistry;
    /// The consumer groups (committed offsets, for lag).
    fn groups(&self) -> &GroupCoordinator;
    /// Client connections open now.
    fn connections_open(&self) -> usize;
    /// When the broker started.
    fn started(&self) -> Instant;
    /// Cancelled at shutdown: the endpoint stops serving.
    fn shutdown(&self) -> &CancellationToken;
}

/// Cached metric handles of one topic.
#[derive(Debug)]
pub(crate) struct TopicMetrics {
    messages_in: Counter,
    bytes_in: Counter,
    messages_out: Counter,
    bytes_out: Counter,
}

impl TopicMetrics {
    fn new(topic: &str) -> Self {
        let label = [("topic", topic.to_owned())];
        Self {
            messages_in: metrics::counter!(names::MESSAGES_IN, &label),
            bytes_in: metrics::counter!(names::BYTES_IN, &label),
            messages_out: metrics::counter!(names::MESSAGES_OUT, &label),
            bytes_out: metrics::counter!(names::BYTES_OUT, &label),
        }
    }
}

/// The broker's metric handles: request latency histograms and the
/// per-topic cache.
#[derive(Debug)]
pub(crate) struct Telemetry {
    produce_latency: Histogram,
    fetch_latency: Histogram,
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
}

impl Telemetry {
    pub(crate) fn new() -> Self {
        Self {
            produce_latency: metrics::histogram!(names::PRODUCE_LATENCY),
            fetch_latency: metrics::histogram!(names::FETCH_LATENCY),
            topics: RwLock::new(HashMap::new()),
        }
    }

    /// The handles of an existing topic (callers pass only names of topics
    /// that exist, so untrusted names never fill the cache).
    pub(crate) fn topic(&self, name: &str) -> Arc<TopicMetrics> {
        if let Some(m) = crate::poison::read(&self.topics).get(name) {
            return Arc::clone(m);
        }
        let mut topics = crate::poison::write(&self.topics);
        if topics.len() >= TOPIC_HANDLES_MAX {
            topics.clear();
        }
        Arc::clone(
            topics
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(TopicMetrics::new(name))),
        )
    }

    /// One produce request answered successfully.
    pub(crate) fn produced(&self, topic: &TopicMetrics, messages: u64, bytes: u64, took: Duration) {
        topic.messages_in.increment(messages);
        topic.bytes_in.increment(bytes);
        self.produce_latency.record(took.as_secs_f64());
    }

    /// One fetch request answered successfully with `records` (whole
    /// batches): counts the records from the batch headers, once per batch.
    pub(crate) fn fetched(&self, topic: &TopicMetrics, records: &[u8], took: Duration) {
        topic.messages_out.increment(count_records(records));
        topic.bytes_out.increment(records.len() as u64);
        self.fetch_latency.record(took.as_secs_f64());
    }

    /// One failed produce or fetch still counts in the latency histogram.
    pub(crate) fn failed(&self, produce: bool, took: Duration) {
        let h = if produce {
            &self.produce_latency
        } else {
            &self.fetch_latency
        };
        h.record(took.as_secs_f64());
    }
}

/// Records in a run of whole batches, read from each batch header (a
/// truncated tail, which a fetch never returns, is not counted).
fn count_records(mut buf: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok(header) = skiff_protocol::batch::BatchHeader::parse(buf) {
        let Some(rest) = buf.get(header.total_bytes()..) else {
            break;
        };
        n += u64::from(header.record_count);
        buf = rest;
    }
    n
}

/// Sets the scrape-time gauges from the broker's in-memory state.
fn update_gauges(shared: &impl ScrapeSource) {
    let topics = shared.topics().list();
    metrics::gauge!(names::CONNECTIONS).set(shared.connections_open() as f64);
    metrics::gauge!(names::TOPICS).set(topics.len() as f64);
    let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
    metrics::gauge!(names::PARTITIONS).set(partitions as f64);
    metrics::gauge!(names::UPTIME).set(shared.started().elapsed().as_secs_f64());
    for topic in &topics {
        let bytes: u64 = topic.partitions.iter().map(|l| l.size_bytes()).sum();
        metrics::gauge!(names::LOG_BYTES, "topic" => topic.meta.name.clone()).set(bytes as f64);
    }
    for listing in shared.groups().list() {
        let Ok(description) = shared.groups().describe(&listing.group) else {
            continue;
        };
        for (tp, committed) in &description.committed {
            let Some(log) = shared
                .topics()
                .get(&tp.topic)
                .and_then(|t| t.partitions.get(tp.partition as usize).cloned())
            else {
                continue;
            };
            let lag = log.log_end_offset().saturating_sub(*committed);
            metrics::gauge!(
                names::GROUP_LAG,
                "group" => listing.group.clone(),
                "topic" => tp.topic.clone(),
                "partition" => tp.partition.to_string()
            )
            .set(lag as f64);
        }
    }
}

/// Serves `GET /metrics` on `listener` until shutdown.
pub(crate) async fn serve<S: ScrapeSource>(
    listener: TcpListener,
    handle: PrometheusHandle,
    shared: Arc<S>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown().cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &handle, shared.as_ref()).await {
                tracing::debug!(error = %e, "metrics endpoint: request failed");
            }
        });
    }
}

/// Reads one request head and answers it, then closes the connection.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    shared: &impl ScrapeSource,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > HTTP_REQUEST_BYTES_MAX {
                return Err(std::io::Error::other("request head too large"));
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_millis(HTTP_REQUEST_TIMEOUT_MS), read_head)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            update_gauges(shared);
            ("200 OK", "text/plain; version=0.0.4", handle.render())
        }
        (Some(b"GET"), _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::batch::{BatchBuilder, Record};

    /// The metric names in the first column of the README's metrics table.
    fn readme_metric_names() -> Vec<String> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Metrics")
            .nth(1)
            .expect("the README has a Metrics section");
        let mut names = Vec::new();
        for row in section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
        {
            let first = row.split('|').nth(1).expect("a first column");
            names.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
        }
        names
    }

    #[test]
    fn the_readme_metrics_table_lists_exactly_the_registered_metrics() {
        let mut documented = readme_metric_names();
        documented.sort_unstable();
        let mut registered: Vec<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
        registered.sort_unstable();
        assert_eq!(documented, registered);
    }

    #[test]
    fn every_metric_is_declared_once_and_no_call_site_spells_a_name() {
        let mut seen = std::collections::BTreeSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} is registered twice", m.name);
            assert!(m.name.starts_with("skiff_") && !m.help.is_empty());
        }
        // Outside this file, no string literal names a metric.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![src];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("telemetry.rs")
                {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    for (i, line) in text.lines().enumerate() {
                        assert!(
                            !line.contains("\"skiff_"),
                            "{}:{}: a metric name as a literal: {line}",
                            path.display(),
                            i + 1
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn records_are_counted_from_batch_headers() {
        let mut bytes = Vec::new();
        for n in [1usize, 3] {
            let mut b = BatchBuilder::new();
            for i in 0..n {
                b.push(Record {
                    timestamp_ms: 0,
                    key: None,
                    value: format!("v{i}").into(),
                    headers: Vec::new(),
                });
            }
            bytes.extend_from_slice(&b.build());
        }
        assert_eq!(count_records(&bytes), 4);
        assert_eq!(count_records(&bytes[..bytes.len() - 1]), 1);
        assert_eq!(count_records(&[]), 0);
    }
}
