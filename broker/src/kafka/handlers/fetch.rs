//! Fetch and ListOffsets. A fetch reads every partition it names through
//! the same log reads as skiff's fetch (page-cache reads inline, else the
//! blocking pool) and long-polls on the logs' end-offset watches (no
//! polling loop) until `min_bytes` have arrived, `max_wait_ms` (capped by
//! `fetch_wait_ms_max`) has passed, or the broker shuts down. Each stored
//! skiff batch becomes one Kafka batch with the same offsets
//! (`skiff_protocol::kafka_batch`):
//! a magic-2 batch (Kafka's record encoding) by a header rewrite, a
//! magic-1 batch by re-encoding its records (on the blocking pool when
//! compressed or large); a fetch
//! at an offset inside a batch returns the whole batch, and the client
//! skips the records before its offset, as with Kafka. `max_bytes` (capped
//! by `fetch_bytes_max`) and each partition's `partition_max_bytes` bound
//! the stored bytes read, except that the first partition with data always
//! gets one whole batch so a consumer progresses. Fetch sessions are not
//! kept: every answer is a full one with session id 0, which clients take
//! as "no session".

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use skiff_protocol::batch::{self, BatchIter};
use skiff_protocol::messages::{ApiKey as SkiffApi, Operation};
use skiff_protocol::{Compression, ErrorCode};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ktopic;
use crate::kafka::api::{KafkaApi, Reply};
use crate::kafka::errors;
use crate::kafka::records;
use crate::log::PartitionLog;
use crate::server::api::{Ctx, Runs};
use crate::server::failure::Failure;
use crate::server::handlers::blocking;
use crate::server::handlers::fetch::{INLINE_READ_BYTES_MAX, read_records};

/// One partition of a fetch.
struct Part {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    log: Result<Arc<PartitionLog>, i16>,
    /// Stored (skiff) bytes read, or the partition's error.
    read: Result<Bytes, i16>,
}

/// Resolves a topic and partition for a session allowed `op` on it.
fn resolve(
    ctx: &Ctx,
    op: Operation,
    topic: &str,
    partition: i32,
) -> Result<Arc<PartitionLog>, i16> {
    ctx.authorizer()
        .topic(op, topic)
        .map_err(|f| errors::topic_code(&f))?;
    let t = ctx
        .topics()
        .get(topic)
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    let p = u32::try_from(partition).map_err(|_| errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    t.partition(p)
        .map(Arc::clone)
        .map_err(|_| errors::UNKNOWN_TOPIC_OR_PARTITION)
}

/// Reads every partition once within `budget` bytes; returns the bytes read.
async fn read_all(parts: &mut [Part], budget: usize) -> usize {
    let mut total = 0usize;
    for part in parts.iter_mut() {
        let Ok(log) = &part.log else { continue };
        let offset = part.offset;
        if offset < log.log_start_offset() as i64 || offset > log.log_end_offset() as i64 {
            part.read = Err(errors::OFFSET_OUT_OF_RANGE);
            continue;
        }
        if total >= budget {
            part.read = Ok(Bytes::new());
            continue;
        }
        let max = part.max_bytes.min(budget - total).max(1);
        part.read = read_records(log, offset as u64, max)
            .await
            .map_err(|f| errors::topic_code(&f));
        if let Ok(bytes) = &part.read {
            total += bytes.len();
        }
    }
    total
}

/// Re-encodes stored skiff batches as Kafka batches.
fn to_kafka(stored: &Bytes) -> Result<Bytes, Failure> {
    let mut out = Vec::with_capacity(stored.len() + stored.len() / 8);
    for batch in BatchIter::new(stored.clone()) {
        let batch = batch.map_err(|e| Failure::new(ErrorCode::CorruptData, e.to_string()))?;
        records::skiff_to_kafka(&batch, &mut out)
            .map_err(|e| Failure::new(ErrorCode::CorruptData, e.to_string()))?;
    }
    Ok(Bytes::from(out))
}

/// The stored batches that must be re-encoded record by record (magic 1,
/// skiff's record encoding; magic 2 is served by a header rewrite and a
/// CRC, whatever its codec): whether any is compressed, and their bytes.
fn reencode_work(stored: &Bytes) -> (bool, usize) {
    let mut compressed = false;
    let mut bytes = 0;
    for h in BatchIter::new(stored.clone())
        .filter_map(|b| b.ok().and_then(|b| batch::BatchHeader::parse(&b).ok()))
        .filter(|h| h.encoding() != Ok(batch::RecordEncoding::Kafka))
    {
        compressed |= h.compression().is_ok_and(|c| c != Compression::None);
        bytes += h.total_bytes();
    }
    (compressed, bytes)
}

/// Needs `consume` on each topic, checked again before records are handed
/// out (a long poll may end after its grant did).
impl KafkaApi for FetchRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::Fetch;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<FetchResponse> {
        let started = std::time::Instant::now();
        let config = ctx.config();
        let budget = usize::try_from(self.max_bytes)
            .unwrap_or(0)
            .clamp(1, config.fetch_bytes_max);
        let min_bytes = usize::try_from(self.min_bytes).unwrap_or(0);
        let wait = Duration::from_millis(
            u64::try_from(self.max_wait_ms)
                .unwrap_or(0)
                .min(config.fetch_wait_ms_max),
        );
        let deadline = Instant::now() + wait;
        let names: Vec<String> = self
            .topics
            .iter()
            .map(|t| t.topic.0.as_str().to_owned())
            .collect();
        let mut parts = Vec::new();
        for (topic, t) in self.topics.iter().enumerate() {
            for p in &t.partitions {
                parts.push(Part {
                    topic,
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0).max(1),
                    log: resolve(&ctx, Operation::Consume, &names[topic], p.partition),
                    read: Ok(Bytes::new()),
                });
            }
        }
        let mut watches: Vec<watch::Receiver<u64>> = parts
            .iter()
            .filter_map(|p| p.log.as_ref().ok().map(|l| l.watch_end()))
            .collect();
        loop {
            for w in &mut watches {
                w.borrow_and_update();
            }
            let total = read_all(&mut parts, budget).await;
            let failed = parts.iter().any(|p| p.read.is_err());
            let expired = Instant::now() >= deadline || ctx.shutdown().is_cancelled();
            if total >= min_bytes || failed || expired || watches.is_empty() {
                break;
            }
            let changed =
                futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                (changed, _, _) = changed => {
                    if changed.is_err() {
                        // A log was closed (topic deleted or shutdown).
                        break;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
                () = ctx.shutdown().cancelled() => {}
            }
        }
        let t = ctx.telemetry();
        let mut responses: Vec<FetchableTopicResponse> = names
            .iter()
            .map(|n| FetchableTopicResponse::default().with_topic(ktopic(n.clone())))
            .collect();
        for part in parts {
            let name = &names[part.topic];
            let mut data = PartitionData::default().with_partition_index(part.partition);
            if let Ok(log) = &part.log {
                let end = log.log_end_offset() as i64;
                data = data.with_high_watermark(end).with_last_stable_offset(end);
                if version >= 5 {
                    data = data.with_log_start_offset(log.log_start_offset() as i64);
                }
            }
            // The grant may have ended during the long poll.
            let stored = match ctx.authorizer().topic(Operation::Consume, name) {
                Err(f) => Err(errors::topic_code(&f)),
                Ok(()) => part.log.and(part.read),
            };
            let records = match stored {
                Ok(stored) if stored.is_empty() => Ok(stored),
                Ok(stored) => {
                    t.fetched(&t.topic(name), &stored, started.elapsed());
                    let (compressed, reencoded_bytes) = reencode_work(&stored);
                    // A copy and CRCs of more than an inline read's worth
                    // go to the pool too.
                    if records::translate_blocks(compressed, reencoded_bytes)
                        || stored.len() > INLINE_READ_BYTES_MAX
                    {
                        blocking(move || to_kafka(&stored)).await
                    } else {
                        to_kafka(&stored)
                    }
                    .map_err(|f| errors::topic_code(&f))
                }
                Err(code) => Err(code),
            };
            data = match records {
                Ok(records) => data.with_records(Some(records)),
                Err(code) => {
                    t.failed(false, started.elapsed());
                    data.with_error_code(code).with_records(Some(Bytes::new()))
                }
            };
            responses[part.topic].partitions.push(data);
        }
        Reply::Respond(FetchResponse::default().with_responses(responses))
    }
}

/// The offset for one ListOffsets query, and the timestamp of its record
/// (-1 for earliest and latest).
async fn offset_for(log: Arc<PartitionLog>, timestamp: i64) -> Result<(i64, i64), i16> {
    match timestamp {
        -2 => Ok((log.log_start_offset() as i64, -1)),
        -1 => Ok((log.log_end_offset() as i64, -1)),
        ts if ts >= 0 => blocking(move || {
            let Some(offset) = log.offset_for_timestamp(ts)? else {
                return Ok((-1, -1));
            };
            // The record's own timestamp, from its batch.
            let stored = log.read(offset, 1)?;
            let found = BatchIter::new(stored)
                .filter_map(Result::ok)
                .filter_map(|b| batch::decode_records(&b).ok())
                .flatten()
                .find(|r| r.offset >= offset)
                .map_or(ts, |r| r.timestamp_ms);
            Ok((offset as i64, found))
        })
        .await
        .map_err(|f| errors::topic_code(&f)),
        // Max timestamp (-3) and the tiered-storage queries.
        _ => Err(errors::UNSUPPORTED_VERSION),
    }
}

/// Needs `describe` on each topic.
impl KafkaApi for ListOffsetsRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::ListOffsets;

    async fn handle(self, _version: i16, ctx: Ctx) -> Reply<ListOffsetsResponse> {
        let mut topics = Vec::new();
        for t in self.topics {
            let name = t.name.0.as_str().to_owned();
            let mut partitions = Vec::new();
            for p in t.partitions {
                let answer =
                    ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                let found = match resolve(&ctx, Operation::Describe, &name, p.partition_index) {
                    Ok(log) => offset_for(log, p.timestamp).await,
                    Err(code) => Err(code),
                };
                partitions.push(match found {
                    Ok((offset, timestamp)) => answer.with_offset(offset).with_timestamp(timestamp),
                    Err(code) => answer
                        .with_error_code(code)
                        .with_offset(-1)
                        .with_timestamp(-1),
                });
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(ktopic(name))
                    .with_partitions(partitions),
            );
        }
        Reply::Respond(ListOffsetsResponse::default().with_topics(topics))
    }
}
