//! Opening a partition directory: find the segments, check them, cut a torn
//! tail, rebuild indexes.
//!
//! Policy:
//! - The clean-shutdown marker is removed as soon as it is seen (and the
//!   directory fsynced), so a crash from then on is detected next time.
//! - Every segment's tail (from its last index entry to the end of the file)
//!   is walked with the full batch check; this is cheap and yields the
//!   segment's end offset and max timestamp.
//! - Without the marker, the last segment is scanned whole: only it can hold
//!   bytes written after the last fsync, because a segment is fsynced before
//!   the next one is created.
//! - A bad byte in the last segment cuts the file there (then fsync): a torn
//!   or garbage tail was never acknowledged under `Durability::Always`. A bad
//!   byte in an older segment is reported and left in place: later segments
//!   hold acknowledged data, so reads of the damaged range fail with
//!   `LogError::Corrupt` instead.
//! - Zeros from the end of a batch the scan checked (or the segment start)
//!   to the end of the last segment's file are its runway (see
//!   `log::runway`), not damage: the file is cut back to its batches
//!   (`zero_tail_bytes`; a warning only outside `fsync = always`, where a
//!   zero tail may be lost acknowledged batches), and the writer lays a
//!   new runway when it needs one. Zeros anywhere else (an older segment,
//!   after a stale index entry) are damage, as before.
//! - A missing or damaged index is rebuilt from its segment.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::LogError;
use super::index::{INDEX_ENTRIES_MAX, SegmentIndex};
use super::segment::{
    INDEX_EXT, LOG_EXT, ScanState, Segment, TIME_INDEX_EXT, open_log_file, parse_file_name,
    read_header_at, scan, segment_path,
};
use super::{Durability, LogConfig, sync_dir};

/// Name of the clean-shutdown marker file in a partition directory.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".clean_shutdown";

/// What opening a partition found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The clean-shutdown marker was present.
    pub clean: bool,
    /// Segments read whole (batch by batch) rather than only at their tail.
    pub segments_scanned: usize,
    /// Bytes cut from the end of the last segment from a torn or corrupt
    /// batch on (a runway's zeros after it included).
    pub truncated_bytes: u64,
    /// Where the cut happened: (segment base offset, byte position).
    pub truncated_at: Option<(u64, u64)>,
    /// Zeros cut from the end of the last segment after its last batch (a
    /// runway laid ahead of appends; not counted in `truncated_bytes`).
    pub zero_tail_bytes: u64,
    /// Index file pairs rebuilt from their segment.
    pub indexes_rebuilt: usize,
}

/// The state the writer resumes from.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: BTreeMap<u64, Arc<Segment>>,
    pub write_pos: u64,
    pub next_offset: u64,
    pub bytes_since_index: u64,
    pub max_timestamp_ms: i64,
    pub report: RecoveryReport,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |e| LogError::io(op, path, e)
}

/// Cuts the segment file at `path` to `len` bytes and fsyncs it (the new
/// length durable before the log resumes from it).
fn cut_durably(file: &fs::File, path: &Path, len: u64) -> Result<(), LogError> {
    crate::fsio::set_len(file, path, len).map_err(io_err("truncate segment", path))?;
    crate::fsio::sync_all(file, path).map_err(io_err("fsync segment", path))
}

/// Index entries an active segment is preallocated for.
pub(crate) fn index_capacity(config: &LogConfig) -> usize {
    let interval = u64::from(config.index_interval_bytes.max(1));
    let n = config.segment_bytes / interval + 2;
    usize::try_from(n)
        .unwrap_or(INDEX_ENTRIES_MAX)
        .min(INDEX_ENTRIES_MAX)
}

/// Opens (creating if needed) the partition in `dir` and recovers it.
pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    crate::fsio::create_dir_all(dir).map_err(io_err("create partition directory", dir))?;
    let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
    let clean = marker.exists();
    if clean {
        fs::remove_file(&marker).map_err(io_err("remove clean-shutdown marker", &marker))?;
        sync_dir(dir)?;
    }
    let mut report = RecoveryReport {
        clean,
        ..RecoveryReport::default()
    };

    let mut bases = Vec::new();
    let mut orphans: Vec<PathBuf> = Vec::new();
    let entries = fs::read_dir(dir).map_err(io_err("list partition directory", dir))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list partition directory", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    for name in &names {
        if let Some((base, ext)) = parse_file_name(name)
            && ext == LOG_EXT
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    for name in &names {
        if let Some((base, ext)) = parse_file_name(name)
            && (ext == INDEX_EXT || ext == TIME_INDEX_EXT)
            && bases.binary_search(&base).is_err()
        {
            orphans.push(dir.join(name));
        }
    }
    for path in &orphans {
        tracing::warn!(path = %path.display(), "removing index file without a segment");
        fs::remove_file(path).map_err(io_err("remove orphan index", path))?;
    }
    if bases.is_empty() {
        let seg = Segment::create(dir, 0, index_capacity(config))?;
        sync_dir(dir)?;
        let mut segments = BTreeMap::new();
        segments.insert(0, Arc::new(seg));
        return Ok(Recovered {
            segments,
            write_pos: 0,
            next_offset: 0,
            bytes_since_index: 0,
            max_timestamp_ms: i64::MIN,
            report,
        });
    }

    let interval = u64::from(config.index_interval_bytes.max(1));
    let mut segments = BTreeMap::new();
    let mut resume = (0, 0, 0, i64::MIN);
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let next_base = bases.get(i + 1).copied();
        let log_path = segment_path(dir, base, LOG_EXT);
        let index_path = segment_path(dir, base, INDEX_EXT);
        let time_path = segment_path(dir, base, TIME_INDEX_EXT);
        let file = open_log_file(&log_path, false).map_err(io_err("open segment", &log_path))?;
        let file_len = file
            .metadata()
            .map_err(io_err("stat segment", &log_path))?
            .len();

        // 1. The index, unless this segment gets a full scan anyway.
        let full_scan_wanted = last && !clean;
        let mut index = None;
        if !full_scan_wanted {
            match SegmentIndex::load(&index_path, &time_path, file_len.max(1)) {
                Ok(idx) => index = Some(idx),
                Err(reason) => {
                    tracing::warn!(segment = %log_path.display(), %reason, "index missing or damaged, rebuilding");
                }
            }
        }

        // 2. Tail walk from the last index entry, or a full scan.
        let mut outcome = None;
        if let Some(idx) = &index {
            let from = idx
                .last()
                .map_or(ScanState::start(base), |e| ScanState::at_entry(base, &e));
            let tail = scan(&file, file_len, base, from, interval, last)
                .map_err(io_err("read segment", &log_path))?;
            if tail.stopped.is_none() {
                outcome = Some((tail, idx.entries()));
            } else {
                tracing::warn!(segment = %log_path.display(), reason = ?tail.stopped, "segment tail check failed, scanning it whole");
            }
        }
        let (scanned, mut entries, rebuilt) = match outcome {
            Some((tail, mut entries)) => {
                entries.extend(tail.entries.iter().copied());
                (tail, entries, false)
            }
            None => {
                report.segments_scanned += 1;
                let full = scan(
                    &file,
                    file_len,
                    base,
                    ScanState::start(base),
                    interval,
                    last,
                )
                .map_err(io_err("read segment", &log_path))?;
                let entries = full.entries.clone();
                (full, entries, true)
            }
        };
        entries.truncate(INDEX_ENTRIES_MAX);
        let mut st = scanned.state;
        if let Some(reason) = &scanned.stopped {
            if last {
                let cut = file_len - st.position;
                tracing::warn!(
                    segment = %log_path.display(),
                    position = st.position,
                    cut_bytes = cut,
                    kept_end_offset = st.next_offset,
                    %reason,
                    "truncating torn or corrupt segment tail"
                );
                cut_durably(&file, &log_path, st.position)?;
                report.truncated_bytes += cut;
                report.truncated_at = Some((base, st.position));
            } else {
                tracing::warn!(
                    segment = %log_path.display(),
                    position = st.position,
                    %reason,
                    "corrupt data in an older segment; left in place, reads of it will fail"
                );
                // Readers see the whole file and meet the bad batch.
                st.position = file_len;
                st.next_offset = next_base.unwrap_or(st.next_offset);
            }
        }
        if last && scanned.stopped.is_none() && st.position < file_len {
            if config.durability != Durability::Always {
                // A runway from when the partition was `always`, or bytes a
                // crash lost after the file's size had moved (XFS, ext4
                // `data=writeback`): say so, a mode that acknowledges
                // before a sync may have lost acknowledged batches here.
                tracing::warn!(
                    segment = %log_path.display(),
                    position = st.position,
                    zero_bytes = file_len - st.position,
                    "zeros after the last batch: a runway, or batches lost in a crash"
                );
            }
            cut_durably(&file, &log_path, st.position)?;
            report.zero_tail_bytes += file_len - st.position;
        }
        if last && st.first_batch_timestamp_ms.is_none() && st.position > 0 {
            // Tail walk did not see the first batch: read its header.
            if let Ok(Some(h)) = read_header_at(&file, 0) {
                st.first_batch_timestamp_ms = Some(h.max_timestamp_ms);
            }
        }

        // 3. Install the index: writable for the last segment.
        let index = if last {
            drop(index); // unmap before the files are rewritten
            if rebuilt {
                report.indexes_rebuilt += 1;
            }
            SegmentIndex::create_active(&index_path, &time_path, index_capacity(config), &entries)
                .map_err(io_err("create index", &index_path))?
        } else {
            match index {
                Some(idx) if !rebuilt => idx,
                other => {
                    drop(other);
                    report.indexes_rebuilt += 1;
                    SegmentIndex::write_sealed(&index_path, &time_path, &entries)
                        .map_err(io_err("rebuild index", &index_path))?
                }
            }
        };
        if last {
            resume = (
                st.position,
                st.next_offset,
                st.bytes_since_index,
                st.max_timestamp_ms,
            );
        }
        let seg = Segment::new(
            dir,
            base,
            file,
            index,
            st.position,
            st.next_offset,
            st.max_timestamp_ms,
            st.first_batch_timestamp_ms.unwrap_or(i64::MIN),
        );
        segments.insert(base, Arc::new(seg));
    }
    sync_dir(dir)?;
    if report.truncated_bytes > 0 || report.indexes_rebuilt > 0 {
        tracing::warn!(
            dir = %dir.display(),
            clean = report.clean,
            truncated_bytes = report.truncated_bytes,
            truncated_at = ?report.truncated_at,
            zero_tail_bytes = report.zero_tail_bytes,
            indexes_rebuilt = report.indexes_rebuilt,
            end_offset = resume.1,
            "partition log recovered"
        );
    }
    Ok(Recovered {
        segments,
        write_pos: resume.0,
        next_offset: resume.1,
        bytes_since_index: resume.2,
        max_timestamp_ms: resume.3,
        report,
    })
}
