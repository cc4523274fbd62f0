//! Sparse offset and time indexes of one segment, memory-mapped.
//!
//! Every ~`index_interval_bytes` of log the writer records one entry in both
//! files at the same position `i`:
//!
//! ```text
//! .index      (rel_offset u32, position u32)        8 bytes, little-endian
//! .timeindex  (max_ts_before i64, rel_offset u32)  12 bytes, little-endian
//! ```
//!
//! `rel_offset` is the base offset of the batch that starts at `position`,
//! minus the segment base; `max_ts_before` is the largest batch timestamp of
//! the segment *before* that batch. Invariants (checked when a file is loaded,
//! which rebuilds it from the segment on any failure): both files hold the
//! same number of entries, `rel_offset` and `position` strictly increase,
//! `max_ts_before` never decreases, positions lie inside the segment.
//!
//! The active segment's index is preallocated to its capacity and mapped
//! read-write; the entry count lives in memory, so after a crash its files may
//! hold trailing zeros (the loader rejects them and the segment is rescanned).
//! `seal` truncates the files to the used length after unmapping (see the
//! `mmap` safety contract). An index is only an accelerator: a full index just
//! stops growing and lookups scan further.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::mmap::{MapMut, MapRead};

/// Bytes of one `.index` entry.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one `.timeindex` entry.
pub(crate) const TIME_ENTRY_BYTES: usize = 12;
/// Most entries one segment's index holds: 1 GiB segments at the default
/// 4 KiB interval need 262 144; that is 2 MiB + 3 MiB of (sparse)
/// preallocated index files for the active segment.
pub(crate) const INDEX_ENTRIES_MAX: usize = 1 << 18;

/// One index entry, both files combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Batch base offset minus the segment base offset.
    pub rel_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
    /// Largest batch max-timestamp in the segment before this batch
    /// (`i64::MIN` when none).
    pub max_ts_before: i64,
}

#[derive(Debug)]
enum Maps {
    /// No entries (nothing mapped: empty files cannot be mapped).
    Empty,
    /// Sealed segment: files at their exact length.
    Read { offsets: MapRead, times: MapRead },
    /// Active segment: preallocated to `capacity` entries.
    Write {
        offsets: MapMut,
        times: MapMut,
        capacity: usize,
    },
}

/// The two index files of a segment.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    offset_path: PathBuf,
    time_path: PathBuf,
    maps: Maps,
    len: usize,
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn encode(e: &IndexEntry) -> ([u8; OFFSET_ENTRY_BYTES], [u8; TIME_ENTRY_BYTES]) {
    let mut o = [0u8; OFFSET_ENTRY_BYTES];
    o[..4].copy_from_slice(&e.rel_offset.to_le_bytes());
    o[4..].copy_from_slice(&e.position.to_le_bytes());
    let mut t = [0u8; TIME_ENTRY_BYTES];
    t[..8].copy_from_slice(&e.max_ts_before.to_le_bytes());
    t[8..].copy_from_slice(&e.rel_offset.to_le_bytes());
    (o, t)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_le_bytes(a)
}

impl SegmentIndex {
    /// Loads the index files of a sealed segment whose log is `log_len` bytes.
    /// `Err` names why they cannot be trusted (missing, wrong size, entries
    /// out of order or past the log); the caller rebuilds them.
    pub(crate) fn load(
        offset_path: &Path,
        time_path: &Path,
        log_len: u64,
    ) -> Result<SegmentIndex, String> {
        let read = |p: &Path| -> Result<(File, u64), String> {
            let f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let len = f
                .metadata()
                .map_err(|e| format!("{}: {e}", p.display()))?
                .len();
            Ok((f, len))
        };
        let (of, olen) = read(offset_path)?;
        let (tf, tlen) = read(time_path)?;
        if olen % OFFSET_ENTRY_BYTES as u64 != 0 || tlen % TIME_ENTRY_BYTES as u64 != 0 {
            return Err(format!("index sizes {olen} / {tlen} are not whole entries"));
        }
        let n = (olen / OFFSET_ENTRY_BYTES as u64) as usize;
        if n != (tlen / TIME_ENTRY_BYTES as u64) as usize {
            return Err(format!(
                "offset index has {n} entries, time index {}",
                tlen / TIME_ENTRY_BYTES as u64
            ));
        }
        if n > INDEX_ENTRIES_MAX {
            return Err(format!("{n} entries exceed the limit {INDEX_ENTRIES_MAX}"));
        }
        let index = SegmentIndex {
            offset_path: offset_path.to_owned(),
            time_path: time_path.to_owned(),
            maps: if n == 0 {
                Maps::Empty
            } else {
                Maps::Read {
                    offsets: MapRead::open(&of)
                        .map_err(|e| format!("map {}: {e}", offset_path.display()))?,
                    times: MapRead::open(&tf)
                        .map_err(|e| format!("map {}: {e}", time_path.display()))?,
                }
            },
            len: n,
        };
        index.check(log_len)?;
        Ok(index)
    }

    /// Checks the invariants of the module doc.
    fn check(&self, log_len: u64) -> Result<(), String> {
        let mut prev: Option<IndexEntry> = None;
        for i in 0..self.len {
            let (e, time_rel) = self.entry_raw(i);
            if time_rel != e.rel_offset {
                return Err(format!(
                    "entry {i}: time index offset {time_rel} != offset index {}",
                    e.rel_offset
                ));
            }
            if u64::from(e.position) >= log_len {
                return Err(format!(
                    "entry {i}: position {} is past the log end {log_len}",
                    e.position
                ));
            }
            if let Some(p) = prev
                && (e.rel_offset <= p.rel_offset
                    || e.position <= p.position
                    || e.max_ts_before < p.max_ts_before)
            {
                return Err(format!("entry {i} is out of order"));
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// Writes `entries` as the exact, sealed index files (fsynced) and maps them.
    pub(crate) fn write_sealed(
        offset_path: &Path,
        time_path: &Path,
        entries: &[IndexEntry],
    ) -> io::Result<SegmentIndex> {
        let entries = &entries[..entries.len().min(INDEX_ENTRIES_MAX)];
        let mut ob = Vec::with_capacity(entries.len() * OFFSET_ENTRY_BYTES);
        let mut tb = Vec::with_capacity(entries.len() * TIME_ENTRY_BYTES);
        for e in entries {
            let (o, t) = encode(e);
            ob.extend_from_slice(&o);
            tb.extend_from_slice(&t);
        }
        for (path, bytes) in [(offset_path, &ob), (time_path, &tb)] {
            let mut f = open_rw(path)?;
            f.set_len(0)?;
            f.write_all(bytes)?;
            crate::fsio::sync_all(&f, path)?;
        }
        let maps = if entries.is_empty() {
            Maps::Empty
        } else {
            Maps::Read {
                offsets: MapRead::open(&File::open(offset_path)?)?,
                times: MapRead::open(&File::open(time_path)?)?,
            }
        };
        Ok(SegmentIndex {
            offset_path: offset_path.to_owned(),
            time_path: time_path.to_owned(),
            maps,
            len: entries.len(),
        })
    }

    /// Creates the writable index of the active segment, preallocated to
    /// `capacity` entries and holding `entries`.
    pub(crate) fn create_active(
        offset_path: &Path,
        time_path: &Path,
        capacity: usize,
        entries: &[IndexEntry],
    ) -> io::Result<SegmentIndex> {
        let capacity = capacity
            .clamp(1, INDEX_ENTRIES_MAX)
            .max(entries.len().min(INDEX_ENTRIES_MAX));
        let of = open_rw(offset_path)?;
        let tf = open_rw(time_path)?;
        // Zero the old contents first: nothing maps these files yet.
        of.set_len(0)?;
        tf.set_len(0)?;
        let offsets = MapMut::create(&of, (capacity * OFFSET_ENTRY_BYTES) as u64)?;
        let times = MapMut::create(&tf, (capacity * TIME_ENTRY_BYTES) as u64)?;
        let mut index = SegmentIndex {
            offset_path: offset_path.to_owned(),
            time_path: time_path.to_owned(),
            maps: Maps::Write {
                offsets,
                times,
                capacity,
            },
            len: 0,
        };
        for e in entries {
            index.push(*e);
        }
        Ok(index)
    }

    /// Appends an entry to a writable index. False if the index is sealed or
    /// full (the entry is dropped; lookups stay correct, only slower).
    pub(crate) fn push(&mut self, e: IndexEntry) -> bool {
        if let Some(last) = self.last()
            && (e.rel_offset <= last.rel_offset || e.position <= last.position)
        {
            return false;
        }
        let Maps::Write {
            offsets,
            times,
            capacity,
        } = &mut self.maps
        else {
            return false;
        };
        if self.len >= *capacity {
            return false;
        }
        let (o, t) = encode(&e);
        let ok = offsets.write_at(self.len * OFFSET_ENTRY_BYTES, &o)
            && times.write_at(self.len * TIME_ENTRY_BYTES, &t);
        if ok {
            self.len += 1;
        }
        ok
    }

    fn entry_raw(&self, i: usize) -> (IndexEntry, u32) {
        let (ob, tb): (&[u8], &[u8]) = match &self.maps {
            Maps::Empty => {
                return (
                    IndexEntry {
                        rel_offset: 0,
                        position: 0,
                        max_ts_before: i64::MIN,
                    },
                    0,
                );
            }
            Maps::Read { offsets, times } => (offsets.bytes(), times.bytes()),
            Maps::Write { offsets, times, .. } => (offsets.bytes(), times.bytes()),
        };
        let o = &ob[i * OFFSET_ENTRY_BYTES..(i + 1) * OFFSET_ENTRY_BYTES];
        let t = &tb[i * TIME_ENTRY_BYTES..(i + 1) * TIME_ENTRY_BYTES];
        (
            IndexEntry {
                rel_offset: le_u32(o),
                position: le_u32(&o[4..]),
                max_ts_before: le_i64(t),
            },
            le_u32(&t[8..]),
        )
    }

    /// Entry `i` (< len).
    pub(crate) fn entry(&self, i: usize) -> IndexEntry {
        self.entry_raw(i).0
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<IndexEntry> {
        self.len.checked_sub(1).map(|i| self.entry(i))
    }

    /// The last entry whose batch starts at or before `rel_offset`, or None
    /// (scan from the segment start).
    pub(crate) fn floor_offset(&self, rel_offset: u32) -> Option<IndexEntry> {
        // partition_point: number of entries with rel <= target.
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).rel_offset <= rel_offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i))
    }

    /// The last entry before which every batch has a timestamp below `ts`
    /// (`max_ts_before < ts`), or None (scan from the segment start). The
    /// first batch with max timestamp >= `ts` is at or after it.
    pub(crate) fn floor_time(&self, ts: i64) -> Option<IndexEntry> {
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).max_ts_before < ts {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i))
    }

    /// All entries (for rebuilding and tests).
    pub(crate) fn entries(&self) -> Vec<IndexEntry> {
        (0..self.len).map(|i| self.entry(i)).collect()
    }

    /// msyncs a writable index (used before a clean shutdown).
    pub(crate) fn flush(&self) -> io::Result<()> {
        if let Maps::Write { offsets, times, .. } = &self.maps {
            offsets.flush()?;
            times.flush()?;
        }
        Ok(())
    }

    /// Turns a writable index into a sealed one: msync, unmap, truncate the
    /// files to the used length, fsync, map read-only. No-op when sealed.
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        if !matches!(self.maps, Maps::Write { .. }) {
            return Ok(());
        }
        self.flush()?;
        let entries = self.entries();
        // Drop the writable maps before any truncation (mmap contract).
        self.maps = Maps::Empty;
        self.len = 0;
        let sealed = SegmentIndex::write_sealed(&self.offset_path, &self.time_path, &entries)?;
        *self = sealed;
        Ok(())
    }

    /// Whether this index still accepts entries.
    #[cfg(test)]
    pub(crate) fn is_writable(&self) -> bool {
        matches!(self.maps, Maps::Write { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rel: u32, pos: u32, ts: i64) -> IndexEntry {
        IndexEntry {
            rel_offset: rel,
            position: pos,
            max_ts_before: ts,
        }
    }

    #[test]
    fn active_seal_load_and_lookups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (op, tp) = (dir.path().join("a.index"), dir.path().join("a.timeindex"));
        let mut idx = SegmentIndex::create_active(&op, &tp, 4, &[]).expect("create");
        assert!(idx.push(e(0, 0, i64::MIN)));
        assert!(idx.push(e(10, 4096, 100)));
        assert!(!idx.push(e(5, 8192, 100)), "out of order refused");
        assert!(idx.push(e(20, 8192, 150)));
        assert!(idx.push(e(30, 12288, 150)));
        assert!(!idx.push(e(40, 16384, 200)), "full");
        assert_eq!(idx.floor_offset(15).map(|x| x.position), Some(4096));
        assert_eq!(idx.floor_offset(30).map(|x| x.position), Some(12288));
        assert_eq!(idx.floor_time(150).map(|x| x.rel_offset), Some(10));
        assert_eq!(idx.floor_time(i64::MIN), None);
        // Preallocated files would not load: trailing zero entries.
        idx.seal().expect("seal");
        assert!(!idx.is_writable());
        assert_eq!(std::fs::metadata(&op).expect("meta").len(), 32);
        let loaded = SegmentIndex::load(&op, &tp, 20_000).expect("load");
        assert_eq!(loaded.entries(), idx.entries());
        assert!(
            SegmentIndex::load(&op, &tp, 10_000).is_err(),
            "position past log end"
        );
    }

    #[test]
    fn damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (op, tp) = (dir.path().join("b.index"), dir.path().join("b.timeindex"));
        let idx =
            SegmentIndex::create_active(&op, &tp, 8, &[e(0, 0, 1), e(3, 100, 5)]).expect("create");
        drop(idx);
        // Preallocated tail of zeros: out of order.
        assert!(SegmentIndex::load(&op, &tp, 1000).is_err());
        std::fs::write(&op, [1u8, 2, 3]).expect("write");
        assert!(SegmentIndex::load(&op, &tp, 1000).is_err());
        std::fs::remove_file(&op).expect("rm");
        assert!(SegmentIndex::load(&op, &tp, 1000).is_err());
    }
}
