//! One segment: a `.log` file of whole batches back to back, plus its indexes.
//!
//! Invariants:
//! - Batches in a segment have contiguous offsets starting at the segment's
//!   base offset (its file name); every batch passed `validate` before it was
//!   written and is checked again (length, CRC, offset) when read back.
//! - Readers only look below `visible_bytes` / `visible_next_offset`, which
//!   the writer moves forward only after the bytes are durable per the
//!   configured `Durability`; bytes past them may be in flight or rolled back.
//! - Only the partition's writer (holding the writer lock) writes or
//!   truncates the file, with positional writes at the end of its batches
//!   (`fsio::write_all_at`). Past that end the active segment may hold a
//!   *runway* of zeros, written and synced ahead so that a durable append
//!   overwrites allocated blocks inside the file's size and its fdatasync
//!   flushes data only (see `log::runway`); a sealed segment has none
//!   (a roll cuts it before its sync) and recovery takes a tail of zeros
//!   for the end of the batches, not for damage. Reads use `pread` (or, for
//!   `ReadMode::CachedOnly`, `preadv2` with `RWF_NOWAIT`) and never move a
//!   cursor, so they run concurrently with the writer.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use skiff_protocol::batch::{self, BATCH_BYTES_MAX, BATCH_HEADER_BYTES, BatchHeader};

use super::error::LogError;
use super::index::{IndexEntry, SegmentIndex};
use crate::poison;

/// Extension of segment data files.
pub(crate) const LOG_EXT: &str = "log";
/// Extension of sparse offset index files.
pub(crate) const INDEX_EXT: &str = "index";
/// Extension of sparse time index files.
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";
/// Digits of the zero-padded base offset in file names (u64::MAX has 20).
pub(crate) const FILE_NAME_DIGITS: usize = 20;
/// Read size when scanning a segment sequentially (recovery, index rebuild):
/// large enough to amortise syscalls, small enough to stay in cache.
pub(crate) const SCAN_CHUNK_BYTES: usize = 1024 * 1024;
/// Read size when walking batch headers to find an offset: covers a default
/// 4 KiB index interval many times over in one `pread`.
pub(crate) const LOCATE_CHUNK_BYTES: usize = 64 * 1024;

/// `<dir>/<20-digit base>.<ext>`.
pub(crate) fn segment_path(dir: &Path, base_offset: u64, ext: &str) -> PathBuf {
    dir.join(format!(
        "{base_offset:0width$}.{ext}",
        width = FILE_NAME_DIGITS
    ))
}

/// The base offset in a segment file name `<20 digits>.<ext>`, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != FILE_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// Opens a segment data file for `pread` and positional writes (not
/// `O_APPEND`: the writer overwrites the zeros of the runway).
pub(crate) fn open_log_file(path: &Path, create_new: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if create_new {
        o.create_new(true);
    }
    o.open(path)
}

/// Whether a read may wait for the disk. Every read of segment data goes
/// through [`read_exact_at`] with one of these, so a read from the page cache
/// only runs the same code (and checks) as a blocking one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// `pread`: waits for the disk when the bytes are not cached.
    Blocking,
    /// `preadv2(RWF_NOWAIT)`: only bytes already in the page cache, and a
    /// [`Segment::read`] of at most `bytes_max` bytes. A read that would
    /// wait for the disk, or copy more, fails with [`would_block`] instead.
    /// Where `RWF_NOWAIT` does not exist (non-Linux, non-glibc targets)
    /// every such read fails that way.
    CachedOnly {
        /// Most bytes a `Segment::read` copies and checks, and separately
        /// most bytes its walk over batch headers reads.
        bytes_max: usize,
    },
}

/// The error of a [`ReadMode::CachedOnly`] read that would have waited for
/// the disk (or copied more than it may).
pub(crate) fn would_block() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "a cached-only read would block")
}

/// Whether `e` is [`would_block`] (only [`ReadMode::CachedOnly`] reads make
/// it: a `pread` of a regular file never fails with `EAGAIN`).
pub(crate) fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Fills `buf` from byte `pos` of `file` like `FileExt::read_exact_at`
/// (a file that ends first is `UnexpectedEof`), waiting for the disk or not
/// per `mode`.
fn read_exact_at(file: &File, buf: &mut [u8], pos: u64, mode: ReadMode) -> io::Result<()> {
    match mode {
        ReadMode::Blocking => file.read_exact_at(buf, pos),
        ReadMode::CachedOnly { .. } => {
            super::faults::on_cached_read().map_err(|_| would_block())?;
            read_exact_at_cached(file, buf, pos)
        }
    }
}

/// `read_exact_at` with `preadv2(RWF_NOWAIT)`. Such a read may return fewer
/// bytes than asked when only some of the pages are cached, so a short read
/// is followed by another at the first missing byte: that one fails with
/// `EAGAIN` (not cached) or returns 0 (the file really ends there, which is
/// `UnexpectedEof` as for `pread`). `EOPNOTSUPP` (a filesystem without
/// `RWF_NOWAIT`) and `ENOSYS` (a kernel without `preadv2`) count as not
/// cached too: the caller then reads the blocking way.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn read_exact_at_cached(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    while !buf.is_empty() {
        // A position `off_t` cannot hold (32-bit targets) is left to `pread64`.
        let offset = libc::off_t::try_from(pos).map_err(|_| would_block())?;
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `iov` describes `buf`, which is valid for writes of
        // `buf.len()` bytes and not otherwise borrowed during the call; the
        // descriptor is `file`'s, open for as long as `file` is borrowed.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        match usize::try_from(n) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS) => {
                        return Err(would_block());
                    }
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Without `RWF_NOWAIT` nothing is known to be cached.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn read_exact_at_cached(_file: &File, _buf: &mut [u8], _pos: u64) -> io::Result<()> {
    Err(would_block())
}

/// A segment of the partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of the first batch (also the file name).
    pub base_offset: u64,
    /// The `.log` file path.
    pub log_path: PathBuf,
    /// The `.index` file path.
    pub index_path: PathBuf,
    /// The `.timeindex` file path.
    pub time_index_path: PathBuf,
    /// Data file: append-only for the writer, `pread` for readers.
    pub file: File,
    /// Sparse offset + time index.
    pub index: RwLock<SegmentIndex>,
    /// Bytes readers may see.
    visible_bytes: AtomicU64,
    /// Offset after the last visible batch (base_offset when empty).
    visible_next_offset: AtomicU64,
    /// Bytes written (including not-yet-visible ones).
    size_bytes: AtomicU64,
    /// Largest batch timestamp in the segment (`i64::MIN` when empty).
    max_timestamp_ms: AtomicI64,
    /// Max timestamp of the first batch: the basis of age-based rolling
    /// (`i64::MIN` when empty).
    first_batch_timestamp_ms: AtomicI64,
}

/// Where a sequential scan starts and what it has seen so far.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanState {
    /// Byte position of the next batch.
    pub position: u64,
    /// Offset the next batch must start at.
    pub next_offset: u64,
    /// Largest batch timestamp so far.
    pub max_timestamp_ms: i64,
    /// Bytes since the last index entry.
    pub bytes_since_index: u64,
    /// Max timestamp of the first batch, if the scan saw it.
    pub first_batch_timestamp_ms: Option<i64>,
}

impl ScanState {
    /// A scan from the start of a segment.
    pub(crate) fn start(base_offset: u64) -> ScanState {
        ScanState {
            position: 0,
            next_offset: base_offset,
            max_timestamp_ms: i64::MIN,
            bytes_since_index: 0,
            first_batch_timestamp_ms: None,
        }
    }

    /// A scan from an index entry.
    pub(crate) fn at_entry(base_offset: u64, e: &IndexEntry) -> ScanState {
        ScanState {
            position: u64::from(e.position),
            next_offset: base_offset + u64::from(e.rel_offset),
            max_timestamp_ms: e.max_ts_before,
            bytes_since_index: 0,
            first_batch_timestamp_ms: None,
        }
    }
}

/// What a scan found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// State after the last good batch.
    pub state: ScanState,
    /// Index entries for the batches scanned (the writer's rule).
    pub entries: Vec<IndexEntry>,
    /// Why the scan stopped before the end of the file, if it did. A scan
    /// of the active segment that meets only zeros from a boundary it
    /// checked to the end stops there with no reason: that is a runway
    /// (see the module header), and `state.position` is the end of the
    /// batches.
    pub stopped: Option<String>,
}

/// Reads a file through one reusable buffer, refilling it with large
/// sequential reads in its [`ReadMode`].
struct ChunkReader<'a> {
    file: &'a File,
    mode: ReadMode,
    limit: u64,
    chunk: usize,
    buf: Vec<u8>,
    start: u64,
    /// Bytes read so far: a [`ReadMode::CachedOnly`] walk may read at most
    /// its `bytes_max`.
    read_bytes: usize,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a File, mode: ReadMode, limit: u64, chunk: usize) -> Self {
        ChunkReader {
            file,
            mode,
            limit,
            chunk,
            buf: Vec::new(),
            start: 0,
            read_bytes: 0,
        }
    }

    /// `len` bytes at `pos`, or None if they are not all below the limit
    /// (or the file turned out shorter).
    fn get(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let end = pos.checked_add(len as u64);
        if end.is_none_or(|end| end > self.limit) {
            return Ok(None);
        }
        let have = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let mut n = (len.max(self.chunk) as u64).min(self.limit - pos) as usize;
            if let ReadMode::CachedOnly { bytes_max } = self.mode {
                // Chunks shrink to what is left of the budget.
                let left = bytes_max.saturating_sub(self.read_bytes);
                if len > left {
                    return Err(would_block());
                }
                n = n.min(left);
            }
            self.read_bytes += n;
            self.buf.clear();
            self.buf.resize(n, 0);
            match read_exact_at(self.file, &mut self.buf, pos, self.mode) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.buf.clear();
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }
}

/// Total size a batch header declares, if it is within the format limits.
fn sane_total(h: &BatchHeader) -> Option<u64> {
    let total = h.total_bytes();
    (BATCH_HEADER_BYTES..=BATCH_BYTES_MAX)
        .contains(&total)
        .then_some(total as u64)
}

/// The batch header at `pos`, if 57 bytes are there (no other check).
pub(crate) fn read_header_at(file: &File, pos: u64) -> io::Result<Option<BatchHeader>> {
    let mut b = [0u8; BATCH_HEADER_BYTES];
    match file.read_exact_at(&mut b, pos) {
        Ok(()) => Ok(BatchHeader::parse(&b).ok()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether every byte from `pos` to the reader's limit is zero.
fn zeros_to_end(reader: &mut ChunkReader<'_>, mut pos: u64) -> io::Result<bool> {
    while pos < reader.limit {
        let n = (reader.limit - pos).min(SCAN_CHUNK_BYTES as u64) as usize;
        let Some(bytes) = reader.get(pos, n)? else {
            return Ok(false);
        };
        if bytes.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Walks whole batches from `from` to `file_len`, checking each one fully
/// (`validate`: length, CRC, records) and its offset continuity, and
/// computing the index entries the writer would have made. Stops at the
/// first bad byte and says why. With `runway_ok` (the active segment), a
/// stop where only zeros are left is the end of the batches, with no
/// reason, but only at a boundary the scan itself reached: the segment
/// start or the end of a batch it checked (an index entry may be stale,
/// and a batch can end in zero bytes).
pub(crate) fn scan(
    file: &File,
    file_len: u64,
    base_offset: u64,
    from: ScanState,
    index_interval_bytes: u64,
    runway_ok: bool,
) -> io::Result<ScanOutcome> {
    let mut reader = ChunkReader::new(file, ReadMode::Blocking, file_len, SCAN_CHUNK_BYTES);
    let mut st = from;
    let mut entries = Vec::new();
    let mut stopped = None;
    let mut checked_boundary = runway_ok && from.position == 0;
    while st.position < file_len {
        let pos = st.position;
        let Some(hb) = reader.get(pos, BATCH_HEADER_BYTES)? else {
            if !(checked_boundary && zeros_to_end(&mut reader, pos)?) {
                stopped = Some(format!("truncated batch header ({} bytes)", file_len - pos));
            }
            break;
        };
        let declared = batch::declared_total_bytes(hb).unwrap_or(0);
        if !(BATCH_HEADER_BYTES as u64..=BATCH_BYTES_MAX as u64).contains(&declared) {
            if !(checked_boundary && zeros_to_end(&mut reader, pos)?) {
                stopped = Some(format!("batch length {declared} out of range"));
            }
            break;
        }
        let Some(bytes) = reader.get(pos, declared as usize)? else {
            stopped = Some(format!(
                "truncated batch: {declared} bytes declared, {} present",
                file_len - pos
            ));
            break;
        };
        let h = match batch::validate(bytes) {
            Ok(h) => h,
            Err(e) => {
                stopped = Some(e.to_string());
                break;
            }
        };
        if h.base_offset != st.next_offset {
            stopped = Some(format!(
                "batch has base offset {}, expected {}",
                h.base_offset, st.next_offset
            ));
            break;
        }
        let rel = u32::try_from(h.base_offset - base_offset);
        if st.bytes_since_index >= index_interval_bytes
            && let (Ok(rel), Ok(position)) = (rel, u32::try_from(pos))
        {
            entries.push(IndexEntry {
                rel_offset: rel,
                position,
                max_ts_before: st.max_timestamp_ms,
            });
            st.bytes_since_index = 0;
        }
        st.bytes_since_index += declared;
        st.max_timestamp_ms = st.max_timestamp_ms.max(h.max_timestamp_ms);
        st.first_batch_timestamp_ms
            .get_or_insert(h.max_timestamp_ms);
        st.next_offset = h.next_offset();
        st.position = pos + declared;
        checked_boundary = runway_ok;
    }
    Ok(ScanOutcome {
        state: st,
        entries,
        stopped,
    })
}

impl Segment {
    /// Builds a segment from its open parts and recovered state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dir: &Path,
        base_offset: u64,
        file: File,
        index: SegmentIndex,
        bytes: u64,
        next_offset: u64,
        max_timestamp_ms: i64,
        first_batch_timestamp_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log_path: segment_path(dir, base_offset, LOG_EXT),
            index_path: segment_path(dir, base_offset, INDEX_EXT),
            time_index_path: segment_path(dir, base_offset, TIME_INDEX_EXT),
            file,
            index: RwLock::new(index),
            visible_bytes: AtomicU64::new(bytes),
            visible_next_offset: AtomicU64::new(next_offset),
            size_bytes: AtomicU64::new(bytes),
            max_timestamp_ms: AtomicI64::new(max_timestamp_ms),
            first_batch_timestamp_ms: AtomicI64::new(first_batch_timestamp_ms),
        }
    }

    /// Creates a new, empty active segment (files must not exist). The caller
    /// fsyncs the directory.
    pub(crate) fn create(
        dir: &Path,
        base_offset: u64,
        index_capacity: usize,
    ) -> Result<Segment, LogError> {
        let log_path = segment_path(dir, base_offset, LOG_EXT);
        let file = open_log_file(&log_path, true)
            .map_err(|e| LogError::io("create segment", &log_path, e))?;
        let index_path = segment_path(dir, base_offset, INDEX_EXT);
        let time_path = segment_path(dir, base_offset, TIME_INDEX_EXT);
        let index = match SegmentIndex::create_active(&index_path, &time_path, index_capacity, &[])
        {
            Ok(i) => i,
            Err(e) => {
                // Leave no half-created segment behind.
                let _ = std::fs::remove_file(&log_path);
                let _ = std::fs::remove_file(&index_path);
                let _ = std::fs::remove_file(&time_path);
                return Err(LogError::io("create index", &index_path, e));
            }
        };
        Ok(Segment::new(
            dir,
            base_offset,
            file,
            index,
            0,
            base_offset,
            i64::MIN,
            i64::MIN,
        ))
    }

    /// Deletes the segment's three files (one already missing is fine).
    /// The caller fsyncs the directory.
    pub(crate) fn remove_files(&self) -> Result<(), LogError> {
        for path in [&self.log_path, &self.index_path, &self.time_index_path] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("delete segment", path, e)),
            }
        }
        Ok(())
    }

    /// Bytes readers may see.
    pub(crate) fn visible_bytes(&self) -> u64 {
        self.visible_bytes.load(Ordering::Acquire)
    }

    /// Offset after the last visible batch.
    pub(crate) fn visible_next_offset(&self) -> u64 {
        self.visible_next_offset.load(Ordering::Acquire)
    }

    /// Bytes of batches in the file (written, visible or not; a runway's
    /// zeros not counted).
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// Largest batch timestamp (`i64::MIN` when empty).
    pub(crate) fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms.load(Ordering::Acquire)
    }

    /// Max timestamp of the first batch (`i64::MIN` when empty).
    pub(crate) fn first_batch_timestamp_ms(&self) -> i64 {
        self.first_batch_timestamp_ms.load(Ordering::Acquire)
    }

    /// Records bytes written (not yet visible).
    pub(crate) fn set_size(&self, bytes: u64) {
        self.size_bytes.store(bytes, Ordering::Release);
    }

    /// Makes bytes up to `bytes` (ending at offset `next_offset`) visible.
    pub(crate) fn publish(&self, bytes: u64, next_offset: u64, max_timestamp_ms: i64) {
        self.max_timestamp_ms
            .fetch_max(max_timestamp_ms, Ordering::AcqRel);
        if self.first_batch_timestamp_ms() == i64::MIN {
            self.first_batch_timestamp_ms
                .store(max_timestamp_ms, Ordering::Release);
        }
        self.visible_next_offset
            .store(next_offset, Ordering::Release);
        self.visible_bytes.store(bytes, Ordering::Release);
    }

    fn corrupt(&self, position: u64) -> LogError {
        LogError::Corrupt {
            segment: self.log_path.clone(),
            position,
        }
    }

    /// Finds the visible batch holding `offset`: its position and header.
    /// Walks headers from the index entry, checking offset continuity.
    /// A cached-only read does not wait for the index lock either: a roll
    /// holds it while it seals the index (msync and fsyncs), a commit
    /// briefly while it adds entries; either way the read falls back.
    fn locate(&self, offset: u64, mode: ReadMode) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let rel = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let entry = match mode {
            ReadMode::Blocking => poison::read(&self.index).floor_offset(rel),
            ReadMode::CachedOnly { .. } => match poison::try_read(&self.index) {
                Some(index) => index.floor_offset(rel),
                None => {
                    return Err(LogError::io("read index", &self.log_path, would_block()));
                }
            },
        };
        self.scan_headers(entry, mode, |h| h.last_offset() >= offset)
    }

    /// Walks visible batch headers from an index entry (or the segment
    /// start), checking each header's length and offset continuity, and
    /// returns the first batch for which `wanted` holds: its position and
    /// header. A header that fails a check is `Corrupt` at its position.
    ///
    /// An index is only an accelerator: when the walk from an entry meets a
    /// bad header, the entry may be the stale one (loaded indexes are
    /// checked for order, not against every batch), so the walk is redone
    /// from the segment start and only a failure there is `Corrupt`. A
    /// cached-only walk leaves that retry (and its warning) to a blocking
    /// read, so it never reads more than its budget once.
    fn scan_headers(
        &self,
        entry: Option<IndexEntry>,
        mode: ReadMode,
        wanted: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        match self.scan_headers_from(entry, mode, &wanted) {
            Err(LogError::Corrupt { .. })
                if entry.is_some() && matches!(mode, ReadMode::CachedOnly { .. }) =>
            {
                Err(LogError::io("read", &self.log_path, would_block()))
            }
            Err(LogError::Corrupt { position, .. }) if entry.is_some() => {
                let found = self.scan_headers_from(None, mode, &wanted)?;
                tracing::warn!(
                    segment = %self.log_path.display(),
                    ?entry,
                    position,
                    "index entry does not match the log; read by a scan from the segment start"
                );
                Ok(found)
            }
            result => result,
        }
    }

    fn scan_headers_from(
        &self,
        entry: Option<IndexEntry>,
        mode: ReadMode,
        wanted: &impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let limit = self.visible_bytes();
        let (mut pos, mut expected) = entry.map_or((0, self.base_offset), |e| {
            (
                u64::from(e.position),
                self.base_offset + u64::from(e.rel_offset),
            )
        });
        let mut reader = ChunkReader::new(&self.file, mode, limit, LOCATE_CHUNK_BYTES);
        while pos < limit {
            let hb = reader
                .get(pos, BATCH_HEADER_BYTES)
                .map_err(|e| LogError::io("read", &self.log_path, e))?
                .ok_or_else(|| self.corrupt(pos))?;
            let h = BatchHeader::parse(hb).map_err(|_| self.corrupt(pos))?;
            let total = sane_total(&h).ok_or_else(|| self.corrupt(pos))?;
            if h.base_offset != expected || pos + total > limit {
                return Err(self.corrupt(pos));
            }
            if wanted(&h) {
                return Ok(Some((pos, h)));
            }
            expected = h.next_offset();
            pos += total;
        }
        Ok(None)
    }

    /// Whole visible batches starting with the one holding `offset`: at most
    /// `max_bytes`, but always the first batch whole. Every batch is checked
    /// (length, CRC, offset) before it is returned. In
    /// [`ReadMode::CachedOnly`], a read that would wait for the disk or copy
    /// more than its `bytes_max` is an `Io` error that [`is_would_block`].
    pub(crate) fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        mode: ReadMode,
    ) -> Result<Bytes, LogError> {
        let limit = self.visible_bytes();
        let Some((pos, first)) = self.locate(offset, mode)? else {
            return Ok(Bytes::new());
        };
        let first_total = first.total_bytes() as u64;
        let want = first_total.max(max_bytes as u64).min(limit - pos);
        if want < first_total {
            return Err(self.corrupt(pos));
        }
        if let ReadMode::CachedOnly { bytes_max } = mode
            && want > bytes_max as u64
        {
            return Err(LogError::io("read", &self.log_path, would_block()));
        }
        let mut buf = vec![0u8; want as usize];
        match read_exact_at(&self.file, &mut buf, pos, mode) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(self.corrupt(pos)),
            Err(e) => return Err(LogError::io("read", &self.log_path, e)),
        }
        let mut at = 0usize;
        let mut expected = first.base_offset;
        // A bad batch after good ones ends the read at the good ones: the
        // consumer gets them, and meets the error when it asks for the bad
        // batch itself.
        while let Some(total) = batch::declared_total_bytes(&buf[at..]) {
            let total = total as usize;
            let here = pos + at as u64;
            if !(BATCH_HEADER_BYTES..=BATCH_BYTES_MAX).contains(&total) {
                if at > 0 {
                    break;
                }
                return Err(self.corrupt(here));
            }
            if at + total > buf.len() {
                break;
            }
            match batch::check_integrity(&buf[at..at + total]) {
                Ok(h) if h.base_offset == expected => expected = h.next_offset(),
                _ if at > 0 => break,
                _ => return Err(self.corrupt(here)),
            }
            at += total;
        }
        if at == 0 {
            return Err(self.corrupt(pos));
        }
        buf.truncate(at);
        Ok(Bytes::from(buf))
    }

    /// Base offset of the first visible batch whose max timestamp is >=
    /// `timestamp_ms`, if this segment has one.
    pub(crate) fn find_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        let entry = poison::read(&self.index).floor_time(timestamp_ms);
        Ok(self
            .scan_headers(entry, ReadMode::Blocking, |h| {
                h.max_timestamp_ms >= timestamp_ms
            })?
            .map(|(_, h)| h.base_offset))
    }
}
