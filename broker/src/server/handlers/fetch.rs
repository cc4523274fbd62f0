//! Fetch and list offsets. A fetch long-polls at the end of the log on the
//! log's end-offset watch (no polling loop) and reads on its async worker
//! only bytes already in the page cache (see [`INLINE_READ_BYTES_MAX`]),
//! else on the blocking pool; a timestamp lookup reads indexes on the
//! blocking pool. A version 0 fetch (a reader that knows only skiff's
//! record encoding) gets magic-2 batches re-encoded in it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skiff_protocol::ErrorCode;
use skiff_protocol::batch::{self, BatchIter, RecordEncoding};
use skiff_protocol::messages::{
    FETCH_VERSION_KAFKA_RECORDS, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, OffsetQuery, Operation,
};
use tokio::time::Instant;

use super::blocking;
use crate::log::PartitionLog;
use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;
use crate::telemetry::Stage;
use crate::telemetry::names;

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

/// Needs `consume` on the topic, checked again before records are handed
/// out: a long poll may end after its session or grant did.
impl Handler for FetchRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().topic(Operation::Consume, &self.topic)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<FetchResponse, Failure> {
        let started = std::time::Instant::now();
        let topic = self.topic.clone();
        let result = fetch(&ctx, self).await.and_then(|r| {
            ctx.authorizer().topic(Operation::Consume, &topic)?;
            Ok(r)
        });
        let t = ctx.telemetry();
        match &result {
            Ok(r) => t.fetched(&t.topic(&topic), &r.records, started.elapsed()),
            Err(_) => t.failed(false, started.elapsed()),
        }
        result
    }
}

/// Serves a fetch, long-polling at the end of the log: the request waits on
/// the log's end-offset watch (no polling loop) until data arrives, the wait
/// runs out or the broker shuts down.
async fn fetch(ctx: &Ctx, req: FetchRequest) -> Result<FetchResponse, Failure> {
    let topic = ctx.topics().require(&req.topic)?;
    let log = Arc::clone(topic.partition(req.partition)?);
    let max_bytes = (req.max_bytes as usize).clamp(1, ctx.config().fetch_bytes_max);
    let wait =
        Duration::from_millis(u64::from(req.max_wait_ms).min(ctx.config().fetch_wait_ms_max));
    let deadline = Instant::now() + wait;
    let mut end_watch = log.watch_end();
    // Set once the end moved while this fetch waited: when it woke.
    let mut woke: Option<std::time::Instant> = None;
    loop {
        let end = *end_watch.borrow_and_update();
        let expired = Instant::now() >= deadline || ctx.shutdown().is_cancelled();
        if req.offset != end || expired {
            let records = read_records(&log, req.offset, max_bytes).await?;
            if let Some(woke) = woke.filter(|_| !records.is_empty()) {
                Stage::FetchRead.record(woke.elapsed());
            }
            if !records.is_empty() || expired || req.offset > end {
                let records = if ctx.api_version() < FETCH_VERSION_KAFKA_RECORDS {
                    in_skiff_encoding(records).await?
                } else {
                    records
                };
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
                let now = std::time::Instant::now();
                Stage::FetchWake.record(now.saturating_duration_since(log.end_moved_at()));
                woke = Some(now);
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = ctx.shutdown().cancelled() => {}
        }
    }
}

/// Stored batches as a version 0 reader can decode them: any magic-2 batch
/// re-encoded in skiff's record encoding (on the blocking pool: it walks
/// and may inflate and compress), the rest as stored.
async fn in_skiff_encoding(stored: Bytes) -> Result<Bytes, Failure> {
    let kafka_encoded = |b: &Bytes| batch::batch_encoding(b) == Ok(RecordEncoding::Kafka);
    if !BatchIter::new(stored.clone()).any(|b| b.is_ok_and(|b| kafka_encoded(&b))) {
        return Ok(stored);
    }
    blocking(move || {
        let mut out = Vec::with_capacity(stored.len() + stored.len() / 8);
        for b in BatchIter::new(stored) {
            let b = b.map_err(|e| Failure::new(ErrorCode::CorruptData, e.to_string()))?;
            let b = batch::reencode(&b, RecordEncoding::Skiff)
                .map_err(|e| Failure::new(ErrorCode::CorruptData, e.to_string()))?;
            out.extend_from_slice(&b);
        }
        Ok(Bytes::from(out))
    })
    .await
}

/// `PartitionLog::read` for a fetch: on this worker when the bytes are in
/// the page cache and at most [`INLINE_READ_BYTES_MAX`], else on the
/// blocking pool.
pub(crate) async fn read_records(
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

/// Needs `describe` on the topic.
impl Handler for ListOffsetsRequest {
    type Grant = ();
    const RUNS: Runs = Runs::Task;

    fn authorize(&self, ctx: &Ctx) -> Result<(), Failure> {
        ctx.authorizer().topic(Operation::Describe, &self.topic)
    }

    async fn handle(self, (): (), ctx: Ctx) -> Result<ListOffsetsResponse, Failure> {
        list_offsets(&ctx, self).await
    }
}

async fn list_offsets(ctx: &Ctx, req: ListOffsetsRequest) -> Result<ListOffsetsResponse, Failure> {
    let topic = ctx.topics().require(&req.topic)?;
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
