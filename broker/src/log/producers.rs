//! Idempotent-producer state of one partition: per producer id, its epoch
//! and the last few batches it stored (sequence range and offsets), so a
//! retried batch is answered with its original offsets instead of being
//! written again, and a gapped or reordered sequence is refused.
//!
//! Invariants:
//! - Checked and updated only by the log's writer (under the writer lock, in
//!   commit order), so the order of accepted sequences is the order of the
//!   log. A batch is recorded only after it was written (and synced per the
//!   durability mode); a failed write leaves the state unchanged.
//! - Durable without a write of its own: the state equals "the newest
//!   snapshot (taken when the active segment was created, or at a clean
//!   close since), plus every batch header in the active segment after it". A snapshot (`<offset>.producers`, written to a temp
//!   file, fsynced, renamed, directory fsynced) is written at every roll and
//!   at close; on open the state is rebuilt from the newest usable snapshot
//!   and a header scan of the active segment, so it survives SIGKILL.
//! - Bounded: at most `producers_per_partition_max` producers (a config
//!   key, default [`PRODUCERS_PER_PARTITION_MAX_DEFAULT`]), each with at
//!   most [`PRODUCER_BATCHES_REMEMBERED`] batches.
//!
//! Policy for a producer id the partition does not know (new, or evicted):
//! any sequence is accepted and starts its state.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use skiff_protocol::batch::{BatchHeader, SEQUENCE_MODULUS, next_sequence};

use super::error::LogError;
use super::partition::AppendInfo;
use super::segment::{Segment, parse_file_name, read_header_at, segment_path};
use super::sync_dir;

/// Batches remembered per producer: retries of up to this many in-flight
/// batches are answered with their original offsets. The client caps an
/// idempotent producer's in-flight requests at this (as Kafka does with 5).
pub const PRODUCER_BATCHES_REMEMBERED: usize = 5;
/// Default of `producers_per_partition_max`, the producers remembered per
/// partition; beyond it the one that wrote least recently is forgotten.
/// 4096 × (5 × 24 + 16) bytes ≈ 560 KiB per snapshot at most.
pub const PRODUCERS_PER_PARTITION_MAX_DEFAULT: usize = 4096;
/// Bytes of one producer in a snapshot with no batch (id, epoch, count):
/// bounds the producer count a snapshot of a given size can claim.
const SNAPSHOT_PRODUCER_BYTES_MIN: usize = 8 + 2 + 1;
/// Extension of producer-state snapshot files.
pub(crate) const SNAPSHOT_EXT: &str = "producers";
const SNAPSHOT_MAGIC: &[u8; 4] = b"SKPS";
const SNAPSHOT_VERSION: u8 = 1;

/// One stored batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StoredBatch {
    first_seq: u32,
    last_seq: u32,
    info: AppendInfo,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: u16,
    /// Oldest first; never empty once inserted.
    batches: VecDeque<StoredBatch>,
}

impl ProducerEntry {
    fn last_offset(&self) -> u64 {
        self.batches.back().map_or(0, |b| b.info.last_offset)
    }
}

/// What to do with a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// Not idempotent, or the next sequence: write it.
    Append,
    /// A retry of a stored batch: answer with its original offsets.
    Duplicate(AppendInfo),
}

/// Per-producer state of one partition (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    map: HashMap<u64, ProducerEntry>,
    /// Most producers kept (`producers_per_partition_max`).
    producers_max: usize,
}

impl Default for ProducerStates {
    fn default() -> Self {
        ProducerStates {
            map: HashMap::new(),
            producers_max: PRODUCERS_PER_PARTITION_MAX_DEFAULT,
        }
    }
}

/// A screened commit group: the batches to write, and the ones answered
/// now with their result.
pub(crate) type Screened<T> = (Vec<T>, Vec<(T, Result<AppendInfo, LogError>)>);

fn last_sequence(h: &BatchHeader) -> u32 {
    next_sequence(h.base_sequence, h.last_offset_delta)
}

impl ProducerStates {
    /// Checks a batch against the stored state, with `tentative` the
    /// (epoch, last sequence) of a batch of the same producer accepted
    /// earlier in the same commit group but not yet recorded.
    fn check(&self, h: &BatchHeader, tentative: Option<(u16, u32)>) -> Result<SeqCheck, LogError> {
        if !h.has_producer() {
            return Ok(SeqCheck::Append);
        }
        let pid = h.producer_id;
        if h.base_sequence >= SEQUENCE_MODULUS {
            return Err(LogError::OutOfOrderSequence {
                producer_id: pid,
                expected: None,
                got: h.base_sequence,
            });
        }
        let entry = self.map.get(&pid);
        let current = match (tentative, entry) {
            (Some(t), _) => Some(t),
            (None, Some(e)) => e.batches.back().map(|b| (e.epoch, b.last_seq)),
            (None, None) => None,
        };
        let Some((epoch, last_seq)) = current else {
            return Ok(SeqCheck::Append);
        };
        if h.producer_epoch < epoch {
            return Err(LogError::ProducerFenced {
                producer_id: pid,
                epoch: h.producer_epoch,
                current: epoch,
            });
        }
        if h.producer_epoch > epoch {
            // A new epoch starts its sequences again at 0.
            return if h.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(LogError::OutOfOrderSequence {
                    producer_id: pid,
                    expected: Some(0),
                    got: h.base_sequence,
                })
            };
        }
        let expected = next_sequence(last_seq, 1);
        if h.base_sequence == expected {
            return Ok(SeqCheck::Append);
        }
        let last = last_sequence(h);
        if let Some(b) = entry.and_then(|e| {
            e.batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        }) {
            return Ok(SeqCheck::Duplicate(b.info));
        }
        // Behind the expected sequence (modulo wrap): an old retry.
        let ahead = (h.base_sequence + SEQUENCE_MODULUS - expected) % SEQUENCE_MODULUS;
        if ahead >= SEQUENCE_MODULUS / 2 {
            Err(LogError::DuplicateSequence {
                producer_id: pid,
                sequence: h.base_sequence,
                last: last_seq,
            })
        } else {
            Err(LogError::OutOfOrderSequence {
                producer_id: pid,
                expected: Some(expected),
                got: h.base_sequence,
            })
        }
    }

    /// Splits a commit group, in order, into the batches to write and the
    /// ones answered now (duplicates with their original offsets, refusals
    /// with their error).
    pub(crate) fn screen<T>(
        &self,
        group: Vec<T>,
        header: impl Fn(&T) -> &BatchHeader,
    ) -> Screened<T> {
        let mut write = Vec::with_capacity(group.len());
        let mut answered = Vec::new();
        let mut tentative: HashMap<u64, (u16, u32)> = HashMap::new();
        for item in group {
            let h = header(&item);
            let t = tentative.get(&h.producer_id).copied();
            match self.check(h, t) {
                Ok(SeqCheck::Append) => {
                    if h.has_producer() {
                        tentative.insert(h.producer_id, (h.producer_epoch, last_sequence(h)));
                    }
                    write.push(item);
                }
                Ok(SeqCheck::Duplicate(info)) => answered.push((item, Ok(info))),
                Err(e) => answered.push((item, Err(e))),
            }
        }
        (write, answered)
    }

    /// Records a batch that was written at `info`.
    pub(crate) fn record(&mut self, h: &BatchHeader, info: AppendInfo) {
        if !h.has_producer() {
            return;
        }
        if !self.map.contains_key(&h.producer_id) {
            // Forget the producers that wrote least recently (more than one
            // only when the limit was lowered since the snapshot).
            while self.map.len() >= self.producers_max {
                let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.last_offset())
                    .map(|(&pid, _)| pid)
                else {
                    break;
                };
                self.map.remove(&oldest);
            }
        }
        let entry = self.map.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = h.producer_epoch;
        }
        if entry.batches.len() == PRODUCER_BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(StoredBatch {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            info,
        });
    }

    /// Number of producers known.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.map.len() * 136);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&(self.map.len() as u32).to_le_bytes());
        let mut pids: Vec<&u64> = self.map.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            let e = &self.map[pid];
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_le_bytes());
                out.extend_from_slice(&b.last_seq.to_le_bytes());
                out.extend_from_slice(&b.info.base_offset.to_le_bytes());
                out.extend_from_slice(&b.info.last_offset.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(buf: &[u8]) -> Option<ProducerStates> {
        let (body, crc) = buf.split_at(buf.len().checked_sub(4)?);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let mut r = body;
        let mut take = |n: usize| -> Option<&[u8]> {
            if r.len() < n {
                return None;
            }
            let (a, b) = r.split_at(n);
            r = b;
            Some(a)
        };
        if take(4)? != SNAPSHOT_MAGIC || take(1)?[0] != SNAPSHOT_VERSION {
            return None;
        }
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        // Bounded by the bytes present, not by the current limit: a snapshot
        // written under a higher `producers_per_partition_max` still loads.
        let left = body.len().saturating_sub(SNAPSHOT_MAGIC.len() + 1 + 4);
        if n > left / SNAPSHOT_PRODUCER_BYTES_MIN {
            return None;
        }
        let mut map = HashMap::with_capacity(n);
        for _ in 0..n {
            let pid = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let epoch = u16::from_le_bytes(take(2)?.try_into().ok()?);
            let count = usize::from(take(1)?[0]);
            if count > PRODUCER_BATCHES_REMEMBERED {
                return None;
            }
            let mut batches = VecDeque::with_capacity(count);
            for _ in 0..count {
                batches.push_back(StoredBatch {
                    first_seq: u32::from_le_bytes(take(4)?.try_into().ok()?),
                    last_seq: u32::from_le_bytes(take(4)?.try_into().ok()?),
                    info: AppendInfo {
                        base_offset: u64::from_le_bytes(take(8)?.try_into().ok()?),
                        last_offset: u64::from_le_bytes(take(8)?.try_into().ok()?),
                    },
                });
            }
            map.insert(pid, ProducerEntry { epoch, batches });
        }
        if !r.is_empty() {
            return None;
        }
        Some(ProducerStates {
            map,
            ..ProducerStates::default()
        })
    }

    /// Writes the state as of `offset` (the log end) to
    /// `<dir>/<offset>.producers` atomically and durably, then removes older
    /// snapshots.
    pub(crate) fn write_snapshot(&self, dir: &Path, offset: u64) -> Result<(), LogError> {
        let path = segment_path(dir, offset, SNAPSHOT_EXT);
        let tmp = path.with_extension("producers.tmp");
        let bytes = self.encode();
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            crate::fsio::sync_all(&f, &tmp)?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| LogError::io("write producer snapshot", &path, e))?;
        sync_dir(dir)?;
        for (off, old) in list_snapshots(dir)? {
            if off < offset {
                // Best effort: a leftover snapshot is only ignored.
                let _ = fs::remove_file(&old);
            }
        }
        Ok(())
    }
}

/// Snapshot files in `dir` as (offset, path), oldest first.
fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut out = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| LogError::io("list partition directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list partition directory", dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && let Some((offset, ext)) = parse_file_name(name)
            && ext == SNAPSHOT_EXT
        {
            out.push((offset, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn load(path: &Path) -> Option<ProducerStates> {
    let state = fs::read(path).ok().and_then(|b| ProducerStates::decode(&b));
    if state.is_none() {
        tracing::warn!(path = %path.display(), "producer snapshot unreadable, ignoring it");
    }
    state
}

/// Rebuilds the state on open: the newest snapshot at or below
/// `next_offset` (taken at the active segment's creation, or at a clean
/// close inside it), plus every batch header of `active` (up to
/// `write_pos`, already checked by recovery) from the snapshot's offset on.
/// Snapshots beyond `next_offset` describe batches that did not survive and
/// are ignored. At most `producers_max` producers are kept from then on.
pub(crate) fn rebuild(
    dir: &Path,
    active: &Segment,
    write_pos: u64,
    next_offset: u64,
    producers_max: usize,
) -> Result<ProducerStates, LogError> {
    let snapshots = list_snapshots(dir)?;
    let newest = snapshots.iter().rev().find(|(o, _)| *o <= next_offset);
    let (mut state, from) = match newest.and_then(|(o, path)| load(path).map(|s| (s, *o))) {
        Some((state, offset)) => {
            if offset < active.base_offset {
                tracing::warn!(
                    segment = %active.log_path.display(),
                    snapshot_offset = offset,
                    "producer snapshot older than the active segment; state may miss producers"
                );
            }
            (state, offset)
        }
        None => (ProducerStates::default(), 0),
    };
    state.producers_max = producers_max.max(1);
    let mut pos = 0;
    while pos < write_pos {
        let header = read_header_at(&active.file, pos)
            .map_err(|e| LogError::io("read batch header", &active.log_path, e))?;
        let Some(h) = header else {
            return Err(LogError::Corrupt {
                segment: active.log_path.clone(),
                position: pos,
            });
        };
        if h.base_offset >= from {
            state.record(
                &h,
                AppendInfo {
                    base_offset: h.base_offset,
                    last_offset: h.last_offset(),
                },
            );
        }
        pos += 12 + u64::from(h.batch_len);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::batch::{BatchBuilder, Record, validate};

    fn header(pid: u64, epoch: u16, seq: u32, records: usize) -> BatchHeader {
        let mut b = BatchBuilder::new().with_producer(pid, epoch, seq);
        for _ in 0..records {
            b.push(Record {
                timestamp_ms: 1,
                key: None,
                value: bytes::Bytes::from_static(b"v"),
                headers: Vec::new(),
            });
        }
        validate(&b.build()).expect("valid")
    }

    fn info(base: u64, n: u64) -> AppendInfo {
        AppendInfo {
            base_offset: base,
            last_offset: base + n - 1,
        }
    }

    #[test]
    fn next_sequence_appends_retry_is_duplicate_gap_is_refused() {
        let mut s = ProducerStates::default();
        let h0 = header(7, 0, 0, 3);
        assert_eq!(s.check(&h0, None).expect("ok"), SeqCheck::Append);
        s.record(&h0, info(10, 3));
        let h1 = header(7, 0, 3, 2);
        assert_eq!(s.check(&h1, None).expect("ok"), SeqCheck::Append);
        s.record(&h1, info(20, 2));
        assert_eq!(
            s.check(&h0, None).expect("ok"),
            SeqCheck::Duplicate(info(10, 3))
        );
        assert!(matches!(
            s.check(&header(7, 0, 9, 1), None),
            Err(LogError::OutOfOrderSequence {
                expected: Some(5),
                got: 9,
                ..
            })
        ));
        assert!(matches!(
            s.check(&header(7, 0, 1, 1), None),
            Err(LogError::DuplicateSequence { .. })
        ));
    }

    #[test]
    fn old_epoch_is_fenced_new_epoch_restarts_at_zero() {
        let mut s = ProducerStates::default();
        let h = header(1, 2, 0, 1);
        s.record(&h, info(0, 1));
        assert!(matches!(
            s.check(&header(1, 1, 1, 1), None),
            Err(LogError::ProducerFenced { .. })
        ));
        assert_eq!(
            s.check(&header(1, 3, 0, 1), None).expect("ok"),
            SeqCheck::Append
        );
        assert!(s.check(&header(1, 3, 4, 1), None).is_err());
    }

    #[test]
    fn screen_uses_earlier_batches_of_the_same_group() {
        let s = ProducerStates::default();
        let group = vec![header(1, 0, 0, 2), header(1, 0, 2, 2), header(1, 0, 9, 1)];
        let (write, answered) = s.screen(group, |h| h);
        assert_eq!(write.len(), 2);
        assert_eq!(answered.len(), 1);
        assert!(answered[0].1.is_err());
    }

    #[test]
    fn sequences_wrap() {
        let mut s = ProducerStates::default();
        let h = header(1, 0, SEQUENCE_MODULUS - 2, 2);
        s.record(&h, info(0, 2));
        assert_eq!(
            s.check(&header(1, 0, 0, 1), None).expect("ok"),
            SeqCheck::Append
        );
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let mut s = ProducerStates::default();
        for pid in 0..10 {
            for i in 0..7 {
                s.record(&header(pid, 0, i * 2, 2), info(pid * 100 + u64::from(i), 2));
            }
        }
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes), Some(s.clone()));
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert_eq!(ProducerStates::decode(&bad), None);
        assert_eq!(ProducerStates::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn producers_are_bounded() {
        let mut s = ProducerStates::default();
        for pid in 0..(PRODUCERS_PER_PARTITION_MAX_DEFAULT as u64 + 3) {
            s.record(&header(pid, 0, 0, 1), info(pid, 1));
        }
        assert_eq!(s.len(), PRODUCERS_PER_PARTITION_MAX_DEFAULT);
        // The least recent ones went.
        assert_eq!(
            s.check(&header(0, 0, 5, 1), None).expect("unknown accepts"),
            SeqCheck::Append
        );
    }

    #[test]
    fn a_lowered_limit_keeps_the_most_recent_producers() {
        let mut s = ProducerStates::default();
        for pid in 0..10 {
            s.record(&header(pid, 0, 0, 1), info(pid * 10, 1));
        }
        // As after a restart with a lower `producers_per_partition_max`.
        let mut s = ProducerStates::decode(&s.encode()).expect("decodes");
        s.producers_max = 3;
        s.record(&header(100, 0, 0, 1), info(1000, 1));
        assert_eq!(s.len(), 3);
        for kept in [8, 9, 100] {
            assert!(
                matches!(
                    s.check(&header(kept, 0, 0, 1), None),
                    Ok(SeqCheck::Duplicate(_))
                ),
                "producer {kept} kept"
            );
        }
    }

    #[test]
    fn a_snapshot_claiming_more_producers_than_its_bytes_is_refused() {
        let mut bytes = ProducerStates::default().encode();
        let n_at = SNAPSHOT_MAGIC.len() + 1;
        bytes[n_at..n_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        // A valid checksum over the lie, so only the count check refuses it.
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]).to_le_bytes();
        bytes[body..].copy_from_slice(&crc);
        assert_eq!(ProducerStates::decode(&bytes), None);
    }
}
