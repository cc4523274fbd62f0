//! Request handlers: one async function per API, each decoding its body
//! strictly, doing the work (disk I/O on the blocking pool, never on an async
//! worker: a fetch reads on its worker only bytes already in the page cache,
//! see [`INLINE_READ_BYTES_MAX`]) and returning the encoded response or a
//! [`Failure`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skiff_protocol::ErrorCode;
use skiff_protocol::batch;
use skiff_protocol::messages::{
    CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse,
    DescribeTopicRequest, DescribeTopicResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, ListTopicsResponse, OffsetQuery, PARTITION_AUTO, PartitionDescription,
    ProduceRequest, ProduceResponse, TopicConfig, TopicListing,
};
use skiff_protocol::partitioner::partition_for_key;
use tokio::time::Instant;

use super::Shared;
use super::failure::Failure;
use crate::clock::now_ms;
use crate::log::{AppendTicket, Committer, PartitionLog};
use crate::telemetry::names;
use crate::topics::Topic;

/// Most bytes a fetch reads on its async worker thread, from the page cache
/// only (`PartitionLog::try_read_cached`); a read that would copy more, or
/// wait for the disk, goes to the blocking pool. A fetch at the log tail
/// reads the few KiB just written, still cached: serving it inline saves
/// the two thread hops of `spawn_blocking`, which dominate its latency on a
/// small machine. A larger read copies and CRC-checks every byte on the
/// worker (the CRC runs at about 10 GB/s per `cargo bench --bench codec`,
/// plus the copy out of the page cache: a few tenths of a millisecond per
/// MiB), and meanwhile the worker serves no other connection; 1 MiB bounds
/// that delay while covering tail reads many times over.
pub(crate) const INLINE_READ_BYTES_MAX: usize = 1024 * 1024;

/// Runs blocking work (disk I/O) on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Failure>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::new(ErrorCode::Unknown, format!("internal task failed: {e}")))?
}

fn topic(shared: &Shared, name: &str) -> Result<Arc<Topic>, Failure> {
    Ok(shared.topics.require(name)?)
}

pub(crate) async fn create_topic(
    shared: Arc<Shared>,
    req: CreateTopicRequest,
) -> Result<CreateTopicResponse, Failure> {
    blocking(move || {
        shared.topics.create(&req.name, &req.config)?;
        tracing::info!(topic = %req.name, partitions = req.config.partitions, "created topic");
        Ok(CreateTopicResponse)
    })
    .await
}

pub(crate) async fn delete_topic(
    shared: Arc<Shared>,
    req: DeleteTopicRequest,
) -> Result<DeleteTopicResponse, Failure> {
    blocking(move || {
        shared.topics.delete(&req.name)?;
        tracing::info!(topic = %req.name, "deleted topic");
        Ok(DeleteTopicResponse)
    })
    .await
}

pub(crate) fn list_topics(shared: &Shared) -> ListTopicsResponse {
    ListTopicsResponse {
        topics: shared
            .topics
            .list()
            .iter()
            .map(|t| TopicListing {
                name: t.meta.name.clone(),
                partitions: t.meta.partitions,
            })
            .collect(),
    }
}

pub(crate) fn describe_topic(
    shared: &Shared,
    req: DescribeTopicRequest,
) -> Result<DescribeTopicResponse, Failure> {
    let topic = topic(shared, &req.name)?;
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, log)| PartitionDescription {
            partition: i as u32,
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            size_bytes: log.size_bytes(),
        })
        .collect();
    Ok(DescribeTopicResponse {
        name: topic.meta.name.clone(),
        config: topic.meta.config(),
        partitions,
    })
}

/// Resolves a produce request's topic (creating it when the broker allows
/// and `may_create`, i.e. the session may create it) and partition, after
/// refusing a batch timestamped too far ahead.
pub(crate) async fn produce_target(
    shared: &Arc<Shared>,
    req: &ProduceRequest,
    may_create: bool,
) -> Result<(Arc<PartitionLog>, u32), Failure> {
    check_timestamps(&req.batch, shared.config.timestamp_after_ms_max, now_ms())?;
    let topic = match shared.topics.get(&req.topic) {
        Some(t) => t,
        None if may_create && shared.config.auto_create_topics => {
            let shared = Arc::clone(shared);
            let name = req.topic.clone();
            blocking(move || {
                let config = TopicConfig {
                    partitions: shared.config.default_partitions,
                    ..TopicConfig::default()
                };
                match shared.topics.create(&name, &config) {
                    Ok(t) => Ok(t),
                    // Another connection created it first.
                    Err(crate::topics::TopicError::AlreadyExists(_)) => {
                        Ok(shared.topics.require(&name)?)
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?
        }
        None => {
            return Err(Failure::new(
                ErrorCode::UnknownTopic,
                format!("unknown topic {:?}", req.topic),
            ));
        }
    };
    let partition = if req.partition == PARTITION_AUTO {
        auto_partition(&topic, &req.batch)?
    } else {
        req.partition
    };
    Ok((Arc::clone(topic.partition(partition)?), partition))
}

/// Refuses a batch whose newest record is more than `after_ms_max` ahead
/// of `now_ms`. Reads the header's max timestamp only: the log's
/// validation (which runs next) refuses a header that disagrees with its
/// records, and a header too short to read is left to it as well.
fn check_timestamps(batch_bytes: &Bytes, after_ms_max: u64, now_ms: i64) -> Result<(), Failure> {
    let Ok(header) = batch::BatchHeader::parse(batch_bytes) else {
        return Ok(());
    };
    let ahead_ms = i128::from(header.max_timestamp_ms) - i128::from(now_ms);
    if ahead_ms > i128::from(after_ms_max) {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "batch timestamp {} is {ahead_ms} ms ahead of the broker's clock (timestamp_after_ms_max = {after_ms_max})",
                header.max_timestamp_ms
            ),
        ));
    }
    Ok(())
}

/// Key hash of the batch's first record when it has a key, round-robin
/// otherwise.
fn auto_partition(topic: &Topic, batch_bytes: &Bytes) -> Result<u32, Failure> {
    let records = batch::decode_records(batch_bytes)
        .map_err(|e| Failure::new(ErrorCode::CorruptBatch, format!("invalid batch: {e}")))?;
    Ok(match records.first().and_then(|r| r.key.as_ref()) {
        Some(key) => partition_for_key(key, topic.meta.partitions),
        None => topic.next_round_robin(),
    })
}

/// Queues a produce's batch on its partition log (validation and ordering
/// only, no I/O); [`produce_wait`] then waits for it to be stored. Submitting
/// in arrival order and waiting concurrently lets one connection's pipelined
/// produces share a group commit while keeping their order.
pub(crate) fn produce_submit(log: &PartitionLog, batch: Bytes) -> Result<AppendTicket, Failure> {
    Ok(log.submit(batch)?)
}

/// Waits for a batch queued by [`produce_submit`] to be durable and builds
/// the response. If the submit made this request the log's committer, the
/// commit loop starts on the blocking pool (it runs until the queue is
/// empty, serving other requests' batches too); the wait itself parks no
/// thread.
pub(crate) async fn produce_wait(
    log: Arc<PartitionLog>,
    partition: u32,
    mut ticket: AppendTicket,
) -> Result<ProduceResponse, Failure> {
    if let Some(committer) = ticket.take_committer() {
        spawn_committer(log, committer);
    }
    let info = ticket.outcome().await?;
    Ok(ProduceResponse {
        partition,
        base_offset: info.base_offset,
        last_offset: info.last_offset,
    })
}

/// Runs a log's committer on the blocking pool, one group per blocking task:
/// while more is queued, the next group goes to a new pool task (another,
/// idle thread) rather than one thread looping over groups. Measured with
/// `skiff bench e2e --rate 50000` on a 2-core VM shared with compilers
/// (2026-11-27, 3 interleaved runs each): one looping thread got slower
/// fdatasync returns (p90 2-7 ms against 1.2-1.8 ms), fewer groups and a
/// p50 of 3.3-4.2 ms; a task per group 1.7-2.5 ms. A thread that just woke
/// is scheduled sooner than one that keeps running. Detached: the committer
/// answers every ticket itself.
fn spawn_committer(log: Arc<PartitionLog>, committer: Committer) {
    drop(tokio::task::spawn_blocking(move || {
        if let Some(next) = log.commit_group(committer) {
            spawn_committer(log, next);
        }
    }));
}

/// Hands out a new idempotent-producer id (epoch 0: ids are never reused,
/// so an epoch bump is never needed to fence an older instance).
pub(crate) async fn init_producer_id(
    shared: Arc<Shared>,
) -> Result<skiff_protocol::messages::InitProducerIdResponse, Failure> {
    blocking(move || {
        let producer_id = shared
            .producer_ids
            .allocate()
            .map_err(|e| Failure::new(ErrorCode::StorageError, e.to_string()))?;
        Ok(skiff_protocol::messages::InitProducerIdResponse {
            producer_id,
            producer_epoch: 0,
        })
    })
    .await
}

/// Serves a fetch, long-polling at the end of the log: the request waits on
/// the log's end-offset watch (no polling loop) until data arrives, the wait
/// runs out or the broker shuts down.
pub(crate) async fn fetch(
    shared: Arc<Shared>,
    req: FetchRequest,
) -> Result<FetchResponse, Failure> {
    let topic = topic(&shared, &req.topic)?;
    let log = Arc::clone(topic.partition(req.partition)?);
    let max_bytes = (req.max_bytes as usize).clamp(1, shared.config.fetch_bytes_max);
    let wait =
        Duration::from_millis(u64::from(req.max_wait_ms).min(shared.config.fetch_wait_ms_max));
    let deadline = Instant::now() + wait;
    let mut end_watch = log.watch_end();
    loop {
        let end = *end_watch.borrow_and_update();
        let expired = Instant::now() >= deadline || shared.shutdown.is_cancelled();
        if req.offset != end || expired {
            let records = read_records(&log, req.offset, max_bytes).await?;
            if !records.is_empty() || expired || req.offset > end {
                return Ok(FetchResponse {
                    log_start_offset: log.log_start_offset(),
                    log_end_offset: log.log_end_offset(),
                    records,
                });
            }
        }
        tokio::select! {
            changed = end_watch.changed() => {
                if changed.is_err() {
                    // The log was closed (topic deleted or shutdown).
                    return Err(Failure::new(ErrorCode::ShuttingDown, "partition closed while fetching"));
                }
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = shared.shutdown.cancelled() => {}
        }
    }
}

/// `PartitionLog::read` for a fetch: on this worker when the bytes are in
/// the page cache and at most [`INLINE_READ_BYTES_MAX`], else on the
/// blocking pool.
async fn read_records(
    log: &Arc<PartitionLog>,
    offset: u64,
    max_bytes: usize,
) -> Result<Bytes, Failure> {
    if let Some(records) = log.try_read_cached(offset, max_bytes, INLINE_READ_BYTES_MAX)? {
        metrics::counter!(names::FETCH_READS, "path" => "inline").increment(1);
        return Ok(records);
    }
    let reader = Arc::clone(log);
    let records = blocking(move || Ok(reader.read(offset, max_bytes)?)).await?;
    metrics::counter!(names::FETCH_READS, "path" => "blocking").increment(1);
    Ok(records)
}

pub(crate) async fn list_offsets(
    shared: Arc<Shared>,
    req: ListOffsetsRequest,
) -> Result<ListOffsetsResponse, Failure> {
    let topic = topic(&shared, &req.topic)?;
    let log = Arc::clone(topic.partition(req.partition)?);
    let offset = match req.query {
        OffsetQuery::Earliest => log.log_start_offset(),
        OffsetQuery::Latest => log.log_end_offset(),
        OffsetQuery::Timestamp(ts) => {
            blocking(move || {
                Ok(log
                    .offset_for_timestamp(ts)?
                    .unwrap_or_else(|| log.log_end_offset()))
            })
            .await?
        }
    };
    Ok(ListOffsetsResponse { offset })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogConfig, evict_cached_reads, evicted_reads_left};
    use skiff_protocol::batch::{BatchBuilder, Record};

    fn log_with_batches(dir: &std::path::Path) -> Arc<PartitionLog> {
        let (log, _) = PartitionLog::open(dir, LogConfig::default()).expect("open");
        for i in 0..3 {
            let mut b = BatchBuilder::new();
            b.push(Record {
                timestamp_ms: 1,
                key: None,
                value: Bytes::from(format!("value {i}")),
                headers: vec![],
            });
            log.append(b.build()).expect("append");
        }
        Arc::new(log)
    }

    /// The current-thread runtime runs `read_records` on this thread, where
    /// the hook is armed; the blocking pool's thread never sees it.
    #[tokio::test]
    async fn fetch_read_falls_back_to_the_blocking_pool_when_not_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log_with_batches(dir.path());
        let want = log.read(1, 1 << 20).expect("read");
        evict_cached_reads(1);
        let got = read_records(&log, 1, 1 << 20).await.expect("fetch read");
        assert_eq!(evicted_reads_left(), 0, "the inline read was tried first");
        assert_eq!(got, want);
        // Cached: the same bytes (served inline where `RWF_NOWAIT` exists).
        assert_eq!(
            read_records(&log, 1, 1 << 20).await.expect("fetch read"),
            want
        );
        // An error of the inline read is the answer (no second read).
        let e = read_records(&log, 9, 1).await.expect_err("out of range");
        assert_eq!(e.code, ErrorCode::OffsetOutOfRange, "{e:?}");
    }
}
