//! A queue over real partition logs: fills each partition's window from its
//! log (and follows retention), reads the records handed out, and writes
//! dead letters to the dead-letter topic with their origin in headers.
//! Blocking (disk reads and durable appends): call from a blocking context.
//!
//! Invariants:
//! - A window is filled under the partition's lock only with records read
//!   from its end on, so a concurrent fill can only find them already there
//!   (it then skips them).
//! - A dead letter is the original record (key, value, headers, timestamp)
//!   plus the `skiff-dlq-*` headers below; its append is durable per the
//!   dead-letter topic's `fsync` setting before it returns, which is what
//!   the dead-letter protocol of [`super::store`] needs.

use std::sync::Arc;

use bytes::Bytes;
use skiff_protocol::batch::{
    self, BatchBuilder, BatchIter, DecodedRecord, Header, Record, RecordEncoding,
};

use super::partition::DeadLetter;
use super::registry::Queue;
use super::store::{
    DeadLetterError, DeadLetterSink, QueueStoreError, SinkError, append_dead_letter,
};
use crate::log::{LogError, PartitionLog};

/// Bytes read from the log per read while filling a window or fetching
/// handed-out records: one read returns whole batches up to this (and
/// always at least one batch). Small, because a receive usually needs a
/// hundred records or so and a read buffer of this size is allocated,
/// zeroed, copied into and checksummed every time (at 1 MiB that was most
/// of a receive's cost); a fill of a 10,000-record window of 100-byte
/// records takes about 16 reads, well within [`READS_PER_CALL_MAX`].
pub const QUEUE_READ_BYTES_MAX: usize = 64 * 1024;
/// Reads one fill or fetch does at most before it stops for this call,
/// bounding the work of a single request.
const READS_PER_CALL_MAX: usize = 64;

/// Header: the queue that dead-lettered the record.
pub const DLQ_HEADER_QUEUE: &str = "skiff-dlq-queue";
/// Header: the record's topic.
pub const DLQ_HEADER_TOPIC: &str = "skiff-dlq-topic";
/// Header: the record's partition (decimal).
pub const DLQ_HEADER_PARTITION: &str = "skiff-dlq-partition";
/// Header: the record's offset (decimal).
pub const DLQ_HEADER_OFFSET: &str = "skiff-dlq-offset";
/// Header: how many times it was delivered (decimal).
pub const DLQ_HEADER_DELIVERIES: &str = "skiff-dlq-deliveries";
/// Header: why it was dead-lettered.
pub const DLQ_HEADER_REASON: &str = "skiff-dlq-reason";

/// Why a queue could not read or write its logs.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A partition log failed.
    #[error("queue {queue:?}, partition {partition}: {source}")]
    Log {
        /// The queue.
        queue: String,
        /// The partition.
        partition: u32,
        /// The cause.
        source: Arc<LogError>,
    },
    /// Dead-lettering failed.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// The state log failed.
    #[error(transparent)]
    Store(#[from] QueueStoreError),
}

/// Decoded records from `offset` on, whole batches, up to `reads` reads.
/// Records below `offset` in the first batch are dropped. At the log's end
/// the result is empty; below its start, reading begins at the start.
fn read_from(
    log: &PartitionLog,
    mut offset: u64,
    reads: usize,
    mut keep: impl FnMut(&DecodedRecord) -> bool,
) -> Result<Vec<DecodedRecord>, LogError> {
    let mut out = Vec::new();
    for _ in 0..reads {
        offset = offset.max(log.log_start_offset());
        if offset >= log.log_end_offset() {
            break;
        }
        let bytes = match log.read(offset, QUEUE_READ_BYTES_MAX) {
            Ok(bytes) => bytes,
            // Retention raced the read: start again from the new start.
            Err(LogError::OffsetOutOfRange { start, .. }) if start > offset => {
                offset = start;
                continue;
            }
            Err(e) => return Err(e),
        };
        if bytes.is_empty() {
            break;
        }
        let mut more = true;
        for batch in BatchIter::new(bytes) {
            let batch = batch.map_err(LogError::InvalidBatch)?;
            for record in batch::decode_records(&batch).map_err(LogError::InvalidBatch)? {
                if record.offset < offset {
                    continue;
                }
                offset = record.offset + 1;
                if !keep(&record) {
                    more = false;
                    break;
                }
                out.push(record);
            }
            if !more {
                break;
            }
        }
        if !more {
            break;
        }
    }
    Ok(out)
}

impl Queue {
    fn log_err(&self, partition: u32) -> impl FnOnce(LogError) -> EngineError + '_ {
        move |e| EngineError::Log {
            queue: self.name().to_owned(),
            partition,
            source: Arc::new(e),
        }
    }

    /// Moves `partition`'s floor past retention and tops its window up from
    /// `log`; returns how many records were added. A queue without state
    /// for the partition starts at the log's start.
    ///
    /// Each log read is decoded once: every record of the batches read is
    /// kept in the queue's [`cache`](super::cache) (within its limit), the
    /// ones beyond the window's room for the next fills, and all of them
    /// for their hand-out. A fill first takes the run of cached records
    /// that follows the window's end, and reads the log only past it.
    pub fn fill(&self, partition: u32, log: &PartitionLog) -> Result<usize, EngineError> {
        let log_start = log.log_start_offset();
        let ((end, room, floor), pending) = self.with_partition(partition, log_start, |q| {
            q.retain(log_start);
            (q.end(), q.room(), q.floor())
        });
        pending.wait_blocking()?;
        // Below the ack floor nothing is handed out again: drop it (also
        // records a racing fill put back after their hand-out).
        self.cache().retain(partition, log_start.max(floor));
        let log_end = log.log_end_offset();
        if room == 0 || end >= log_end {
            return Ok(0);
        }
        let mut candidates = self.cache().run_from(partition, end, room);
        let mut next = candidates.last().map_or(end, |&(offset, _)| offset + 1);
        let mut reads = 0;
        while candidates.len() < room && next < log_end && reads < READS_PER_CALL_MAX {
            let records = read_from(log, next, 1, |_| true).map_err(self.log_err(partition))?;
            reads += 1;
            let Some(last) = records.last() else {
                break;
            };
            next = last.offset + 1;
            let want = room - candidates.len();
            candidates.extend(records.iter().take(want).map(|r| (r.offset, r.key.clone())));
            self.cache().insert(partition, records);
        }
        let (added, pending) = self.with_partition(partition, log_start, |q| {
            let mut added = 0;
            for (offset, key) in &candidates {
                if *offset < q.end() {
                    continue;
                }
                match q.offer(*offset, key.as_deref()) {
                    Ok(true) => added += 1,
                    _ => break,
                }
            }
            added
        });
        pending.wait_blocking()?;
        Ok(added)
    }

    /// The records at `offsets` (ascending) from `log`. A record retention
    /// removed meanwhile is missing from the result.
    pub fn read_records(
        &self,
        partition: u32,
        log: &PartitionLog,
        offsets: &[u64],
    ) -> Result<Vec<DecodedRecord>, EngineError> {
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(Vec::new());
        };
        let records = read_from(log, first, READS_PER_CALL_MAX, |r| r.offset <= last)
            .map_err(self.log_err(partition))?;
        Ok(records
            .into_iter()
            .filter(|r| offsets.binary_search(&r.offset).is_ok())
            .collect())
    }

    /// The records just handed out at `offsets` (ascending), in offset
    /// order: taken from the cache where the fill left them, the rest (a
    /// redelivery, or a fill past the cache's limit) read from `log` as
    /// [`read_records`](Self::read_records) does.
    pub fn take_handed_out(
        &self,
        partition: u32,
        log: &PartitionLog,
        offsets: &[u64],
    ) -> Result<Vec<DecodedRecord>, EngineError> {
        let (mut found, missing) = self.cache().take(partition, offsets);
        if missing.is_empty() {
            return Ok(found);
        }
        found.extend(self.read_records(partition, log, &missing)?);
        found.sort_unstable_by_key(|r| r.offset);
        Ok(found)
    }

    /// Dead-letters every record of `partition` queued for it: intent,
    /// append, done, each durable before the next. Returns how many.
    pub fn dead_letter(
        &self,
        partition: u32,
        sink: &mut impl DeadLetterSink,
    ) -> Result<usize, EngineError> {
        let (letters, pending) = self.with_partition(partition, 0, |q| q.take_dead_letters());
        pending.wait_blocking()?;
        let mut done = 0;
        for letter in &letters {
            append_dead_letter(self.store(), sink, partition, letter)?;
            let (marked, pending) =
                self.with_partition(partition, 0, |q| q.dead_lettered(letter.offset));
            pending.wait_blocking()?;
            if marked.is_ok() {
                done += 1;
                metrics::counter!(crate::telemetry::names::QUEUE_DEAD_LETTERS, "queue" => self.name().to_owned())
                    .increment(1);
            }
        }
        Ok(done)
    }
}

/// The dead-letter topic of one queue, over the partition logs of the
/// queue's topic (to read the original records) and of the dead-letter
/// topic. Source partition `p` goes to dead-letter partition `p mod n`.
#[derive(Debug)]
pub struct LogDeadLetterSink {
    queue: String,
    topic: String,
    dead_letter_topic: String,
    source: Vec<Arc<PartitionLog>>,
    dead_letters: Vec<Arc<PartitionLog>>,
}

impl LogDeadLetterSink {
    /// A sink for `queue` reading `source` (its topic's partitions) and
    /// writing `dead_letters` (the dead-letter topic's partitions).
    pub fn new(
        queue: &Queue,
        source: Vec<Arc<PartitionLog>>,
        dead_letters: Vec<Arc<PartitionLog>>,
    ) -> Self {
        let settings = queue.settings();
        Self {
            queue: queue.name().to_owned(),
            topic: settings.topic,
            dead_letter_topic: settings.dead_letter_topic,
            source,
            dead_letters,
        }
    }

    fn err(&self, reason: impl std::fmt::Display) -> SinkError {
        SinkError {
            topic: self.dead_letter_topic.clone(),
            reason: reason.to_string(),
        }
    }

    fn dlq_log(&self, dlq_partition: u32) -> Result<&PartitionLog, SinkError> {
        self.dead_letters
            .get(dlq_partition as usize)
            .map(|l| &**l)
            .ok_or_else(|| self.err(format!("has no partition {dlq_partition}")))
    }
}

fn header_is(record: &DecodedRecord, key: &str, value: &[u8]) -> bool {
    record
        .headers
        .iter()
        .any(|h| h.key == key && h.value.as_ref() == value)
}

fn header(key: &str, value: impl Into<Bytes>) -> Header {
    Header {
        key: key.to_owned(),
        value: value.into(),
    }
}

impl DeadLetterSink for LogDeadLetterSink {
    fn position(&mut self, partition: u32) -> Result<(u32, u64), SinkError> {
        let n = u32::try_from(self.dead_letters.len()).unwrap_or(u32::MAX);
        if n == 0 {
            return Err(self.err("has no partitions"));
        }
        let dlq_partition = partition % n;
        Ok((dlq_partition, self.dlq_log(dlq_partition)?.log_end_offset()))
    }

    fn contains(
        &mut self,
        dlq_partition: u32,
        from: u64,
        partition: u32,
        offset: u64,
    ) -> Result<bool, SinkError> {
        let log = self.dlq_log(dlq_partition)?;
        let (partition, offset) = (partition.to_string(), offset.to_string());
        let mut found = false;
        let mut next = from;
        // Every dead letter written since the intent lies in from..end; the
        // scan reads it all, a bounded window of this queue's dead letters.
        while !found && next < log.log_end_offset() {
            let records =
                read_from(log, next, READS_PER_CALL_MAX, |_| true).map_err(|e| self.err(e))?;
            let Some(last) = records.last() else {
                break;
            };
            next = last.offset + 1;
            found = records.iter().any(|r| {
                header_is(r, DLQ_HEADER_QUEUE, self.queue.as_bytes())
                    && header_is(r, DLQ_HEADER_PARTITION, partition.as_bytes())
                    && header_is(r, DLQ_HEADER_OFFSET, offset.as_bytes())
            });
        }
        Ok(found)
    }

    fn append(
        &mut self,
        dlq_partition: u32,
        partition: u32,
        dead_letter: &DeadLetter,
    ) -> Result<(), SinkError> {
        let source = self
            .source
            .get(partition as usize)
            .ok_or_else(|| self.err(format!("source partition {partition} unknown")))?;
        let original = read_from(source, dead_letter.offset, 1, |r| {
            r.offset == dead_letter.offset
        })
        .map_err(|e| self.err(format!("cannot read the original record: {e}")))?
        .into_iter()
        .find(|r| r.offset == dead_letter.offset);
        // Retention removed the record: nothing is left to keep.
        let Some(original) = original else {
            tracing::warn!(
                queue = %self.queue,
                partition,
                offset = dead_letter.offset,
                "queue: record to dead-letter was removed by retention"
            );
            return Ok(());
        };
        let mut headers = original.headers.clone();
        headers.extend([
            header(DLQ_HEADER_QUEUE, self.queue.clone()),
            header(DLQ_HEADER_TOPIC, self.topic.clone()),
            header(DLQ_HEADER_PARTITION, partition.to_string()),
            header(DLQ_HEADER_OFFSET, dead_letter.offset.to_string()),
            header(DLQ_HEADER_DELIVERIES, dead_letter.deliveries.to_string()),
            header(DLQ_HEADER_REASON, dead_letter.reason.clone()),
        ]);
        // Kafka's record encoding, as skiff's producer writes it: a Kafka
        // consumer of the dead-letter topic reads it without re-encoding.
        let mut builder = BatchBuilder::new().with_encoding(RecordEncoding::Kafka);
        builder.push(Record {
            timestamp_ms: original.timestamp_ms,
            key: original.key.clone(),
            value: original.value.clone(),
            headers,
        });
        self.dlq_log(dlq_partition)?
            .append(builder.build())
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
