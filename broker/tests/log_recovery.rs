//! Partition log recovery: torn tails, garbage, bit flips, lost indexes.

mod log_support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use log_support::*;
use skiff_broker::log::{Durability, LogError};
use skiff_protocol::batch::BATCH_HEADER_BYTES;

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// A log of `batches` batches with several segments, left without a clean
/// shutdown. Returns (base offsets, byte sizes) of the batches.
fn build(dir: &Path, batches: u64) -> Vec<(u64, usize)> {
    let (log, _) = open(dir, small_config(Durability::Never));
    let mut out = Vec::new();
    for tag in 0..batches {
        let b = batch(tag, 1 + tag as usize % 4, 30, tag as i64 * 10);
        out.push((log.append(b.clone()).expect("append").base_offset, b.len()));
    }
    log.flush().expect("flush");
    out
}

fn check_prefix(log: &skiff_broker::log::PartitionLog, batches: &[(u64, usize)]) {
    let records = read_all(log, 1 << 20);
    let mut at = 0usize;
    for (tag, (base, _)) in batches.iter().enumerate() {
        assert_eq!(records[at].offset, *base);
        assert_eq!(tag_of(&records[at]), tag as u64);
        at += 1 + tag % 4;
    }
    assert_eq!(records.len(), at);
}

#[test]
fn torn_tail_at_every_byte_of_the_last_batch() {
    let pristine = tempfile::tempdir().expect("tempdir");
    let batches = build(pristine.path(), 60);
    let last_seg = files(pristine.path(), "log").pop().expect("segment");
    let seg_len = std::fs::metadata(&last_seg).expect("meta").len();
    let (last_base, last_len) = *batches.last().expect("batch");
    let last_start = seg_len - last_len as u64;
    let seg_base: u64 = last_seg
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("base");
    for cut in last_start..seg_len {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(pristine.path(), dir.path());
        let seg = dir.path().join(last_seg.file_name().expect("name"));
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open")
            .set_len(cut)
            .expect("truncate");
        let (log, report) = open(dir.path(), small_config(Durability::Always));
        assert!(!report.clean);
        assert_eq!(report.truncated_bytes, cut - last_start, "cut {cut}");
        if cut > last_start {
            assert_eq!(report.truncated_at, Some((seg_base, last_start)));
        }
        assert_eq!(log.log_end_offset(), last_base, "cut {cut}");
        check_prefix(&log, &batches[..batches.len() - 1]);
        let info = log
            .append(batch(999, 2, 5, 0))
            .expect("append after recovery");
        assert_eq!(info.base_offset, last_base);
        // The new batch starts where the cut was; only the runway's zeros
        // (see `log::runway`) follow it.
        let bytes = std::fs::read(&seg).expect("read");
        let end = last_start as usize + batch(999, 2, 5, 0).len();
        assert!(bytes.len() >= end, "cut {cut}");
        assert!(bytes[end..].iter().all(|&b| b == 0), "cut {cut}");
    }
}

#[test]
fn torn_tail_after_clean_shutdown_is_caught_by_the_tail_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = build(dir.path(), 40);
    {
        let (log, _) = open(dir.path(), small_config(Durability::Never));
        log.close().expect("close");
    }
    let seg = files(dir.path(), "log").pop().expect("segment");
    let len = std::fs::metadata(&seg).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 3)
        .expect("truncate");
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert!(report.clean);
    assert!(report.truncated_bytes > 0);
    check_prefix(&log, &batches[..batches.len() - 1]);
}

/// Makes junk bytes from the last batch of the segment.
type Junk = dyn Fn(&[u8]) -> Vec<u8>;

#[test]
fn garbage_after_the_tail_is_cut() {
    let garbage: Vec<(&str, Box<Junk>)> = vec![
        ("zeros", Box::new(|_| vec![0u8; 100])),
        (
            "random",
            Box::new(|_| {
                (0..777u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect()
            }),
        ),
        // A valid batch again (same base offset as the previous one).
        ("replayed batch", Box::new(|last: &[u8]| last.to_vec())),
        // A plausible header whose length runs past the end.
        (
            "long header",
            Box::new(|last: &[u8]| last[..BATCH_HEADER_BYTES + 3].to_vec()),
        ),
    ];
    for (name, make) in garbage {
        let dir = tempfile::tempdir().expect("tempdir");
        let batches = build(dir.path(), 30);
        let seg = files(dir.path(), "log").pop().expect("segment");
        let bytes = std::fs::read(&seg).expect("read");
        let last_len = batches.last().expect("batch").1;
        let junk = make(&bytes[bytes.len() - last_len..]);
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("open")
            .write_all(&junk)
            .expect("write");
        let (log, report) = open(dir.path(), small_config(Durability::Never));
        // Zeros after the last batch are a runway (see `log::runway`), cut
        // without a warning; anything else is a torn or corrupt tail.
        let (torn, zeros) = if name == "zeros" {
            (0, junk.len() as u64)
        } else {
            (junk.len() as u64, 0)
        };
        assert_eq!(report.truncated_bytes, torn, "{name}");
        assert_eq!(report.zero_tail_bytes, zeros, "{name}");
        check_prefix(&log, &batches);
        let end = log.log_end_offset();
        assert_eq!(
            log.append(batch(5, 1, 1, 0)).expect("append").base_offset,
            end,
            "{name}"
        );
        assert_eq!(
            std::fs::metadata(&seg).expect("meta").len() as usize,
            bytes.len() + batch(5, 1, 1, 0).len()
        );
    }
}

#[test]
fn flipped_bit_in_an_old_segment_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = build(dir.path(), 200);
    let segs = files(dir.path(), "log");
    assert!(segs.len() >= 3);
    let target = &segs[0];
    // Flip a bit in the value of the second batch of the first segment.
    let second = batches[1];
    let pos = batches[0].1 + second.1 - 3;
    let mut bytes = std::fs::read(target).expect("read");
    bytes[pos] ^= 0x10;
    std::fs::write(target, &bytes).expect("write");
    for clean in [false, true] {
        let (log, report) = open(dir.path(), small_config(Durability::Never));
        assert_eq!(report.clean, clean);
        assert_eq!(report.truncated_bytes, 0, "old segments are never cut");
        match log.read(second.0, 1) {
            Err(LogError::Corrupt { segment, position }) => {
                assert_eq!(&segment, target);
                assert_eq!(position, batches[0].1 as u64);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A read that starts before the bad batch stops in front of it: the
        // good batches come back, the bad one is never served.
        assert_eq!(
            log.read(0, 1 << 20).expect("the good prefix").len(),
            batches[0].1
        );
        // The first batch alone, and other segments, still read.
        assert_eq!(log.read(0, 1).expect("first batch").len(), batches[0].1);
        let later = batches[batches.len() - 1].0;
        assert!(!log.read(later, 1).expect("later segment").is_empty());
        log.close().expect("close");
    }
    // A flipped base offset (outside the CRC) is caught by the offset check.
    let mut bytes = std::fs::read(target).expect("read");
    bytes[pos] ^= 0x10;
    bytes[batches[0].1] ^= 0x01;
    std::fs::write(target, &bytes).expect("write");
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    assert!(matches!(
        log.read(second.0, 1),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn corruption_under_a_live_log_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    for tag in 0..5 {
        log.append(batch(tag, 2, 40, 0)).expect("append");
    }
    let seg = files(dir.path(), "log").remove(0);
    let file = OpenOptions::new().write(true).open(&seg).expect("open");
    std::os::unix::fs::FileExt::write_at(&file, &[0xee], 100).expect("write");
    assert!(matches!(
        log.read(0, 1 << 20),
        Err(LogError::Corrupt { position: 0, .. })
    ));
}

#[test]
fn missing_and_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = build(dir.path(), 120);
    let probe_ts = 555;
    let want_ts = batches
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i64 * 10 >= probe_ts)
        .map(|(_, b)| b.0);
    {
        let (log, _) = open(dir.path(), small_config(Durability::Never));
        assert_eq!(log.offset_for_timestamp(probe_ts).expect("ts"), want_ts);
        log.close().expect("close");
    }
    let segments = files(dir.path(), "log").len();
    let indexes = files(dir.path(), "index");
    let reference: Vec<Vec<u8>> = indexes
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert!(
        reference.iter().any(|r| !r.is_empty()),
        "indexes have entries"
    );
    for p in files(dir.path(), "index")
        .iter()
        .chain(&files(dir.path(), "timeindex"))
    {
        std::fs::remove_file(p).expect("rm");
    }
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert!(report.clean);
    assert_eq!(report.indexes_rebuilt, segments);
    check_prefix(&log, &batches);
    assert_eq!(log.offset_for_timestamp(probe_ts).expect("ts"), want_ts);
    log.close().expect("close");
    drop(log);
    // Rebuilt files equal what the writer made.
    let rebuilt: Vec<Vec<u8>> = indexes
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert_eq!(rebuilt, reference);
    // Damaged: garbage in one, the wrong size in another.
    std::fs::write(&indexes[0], [7u8; 24]).expect("write");
    std::fs::write(&indexes[1], [1u8; 5]).expect("write");
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert_eq!(report.indexes_rebuilt, 2);
    check_prefix(&log, &batches);
    log.close().expect("close");
    drop(log);
    let rebuilt: Vec<Vec<u8>> = indexes
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert_eq!(rebuilt, reference);
}

#[test]
fn a_stale_but_ordered_index_entry_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = build(dir.path(), 120);
    // A clean close first, so the reopen trusts (and loads) every index.
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    log.close().expect("close");
    drop(log);
    let index = files(dir.path(), "index").remove(0);
    let mut bytes = std::fs::read(&index).expect("read index");
    assert!(
        bytes.len() >= 16,
        "the first segment's index has two entries"
    );
    // Entry 1's position moves one byte into its batch: still strictly
    // between its neighbours, so the index loads, but it points at no
    // batch header.
    let pos = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    bytes[12..16].copy_from_slice(&(pos + 1).to_le_bytes());
    std::fs::write(&index, &bytes).expect("write index");
    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert_eq!(report.indexes_rebuilt, 0, "the stale entry was loaded");
    for (tag, (base, _)) in batches.iter().enumerate() {
        let got = log.read(*base, 1).expect("read by a scan, not Corrupt");
        let first = skiff_protocol::batch::BatchIter::new(got)
            .next()
            .expect("a batch")
            .expect("valid");
        let records = skiff_protocol::batch::decode_records(&first).expect("records");
        assert_eq!(records[0].offset, *base, "batch {tag}");
    }
    check_prefix(&log, &batches);
}

/// The batches' bytes of a segment file and what follows them, split at
/// `data` bytes.
fn split_at(path: &Path, data: u64) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = std::fs::read(path).expect("read segment");
    let rest = bytes.split_off(data as usize);
    (bytes, rest)
}

#[test]
fn the_runway_is_zeros_ahead_of_the_batches_and_no_sealed_segment_keeps_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(dir.path(), small_config(Durability::Always));
    let mut sizes = Vec::new();
    for tag in 0..200 {
        let b = batch(tag, 1 + tag as usize % 4, 30, tag as i64);
        sizes.push((log.append(b.clone()).expect("append").base_offset, b.len()));
    }
    let segs = files(dir.path(), "log");
    assert!(segs.len() >= 3, "the small config rolls");
    let (active, sealed) = segs.split_last().expect("segments");
    let sealed_bytes: u64 = sealed
        .iter()
        .map(|s| std::fs::metadata(s).expect("stat").len())
        .sum();
    // Sealed files hold batches only: a runway left in one would shift
    // the split below into the active segment's batches.
    let batch_bytes: u64 = sizes.iter().map(|&(_, n)| n as u64).sum();
    assert_eq!(log.size_bytes(), batch_bytes);
    let data = batch_bytes - sealed_bytes;
    let (_, runway) = split_at(active, data);
    assert!(!runway.is_empty(), "small durable appends lay a runway");
    assert!(runway.iter().all(|&b| b == 0));
    check_prefix(&log, &sizes);

    // A crash: recovery cuts the zeros without calling them damage.
    drop(log);
    let (log, report) = open(dir.path(), small_config(Durability::Always));
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(report.zero_tail_bytes, runway.len() as u64, "{report:?}");
    check_prefix(&log, &sizes);
    let segments = log.segment_base_offsets().len();
    let next = log.append(batch(200, 1, 30, 200)).expect("append");
    assert_eq!(next.base_offset, log.log_end_offset() - 1);
    assert_eq!(log.segment_base_offsets().len(), segments, "no roll");

    // A clean close cuts the runway: the file ends at the last batch.
    log.close().expect("close");
    let data = log.size_bytes() - sealed_bytes;
    let (_, after) = split_at(active, data);
    assert!(after.is_empty(), "{} bytes after the batches", after.len());
    let (_, report) = open(dir.path(), small_config(Durability::Always));
    assert!(report.clean);
    assert_eq!((report.truncated_bytes, report.zero_tail_bytes), (0, 0));
}

#[test]
fn no_runway_without_fsync_always() {
    for durability in [
        Durability::Never,
        Durability::Interval(std::time::Duration::from_millis(1)),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_config(durability.clone()));
        log.append(batch(0, 2, 30, 0)).expect("append");
        let seg = files(dir.path(), "log").pop().expect("segment");
        assert_eq!(
            std::fs::metadata(&seg).expect("stat").len(),
            log.size_bytes(),
            "{durability}"
        );
    }
}

#[test]
fn a_stale_last_index_entry_in_trailing_zeros_is_not_taken_for_a_runway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = build(dir.path(), 120);
    let (log, _) = open(dir.path(), small_config(Durability::Never));
    log.close().expect("close");
    drop(log);
    let seg = files(dir.path(), "log").pop().expect("segment");
    let seg_bytes = std::fs::read(&seg).expect("read segment");
    let seg_len = seg_bytes.len() as u64;
    assert_eq!(
        seg_bytes.last(),
        Some(&0),
        "the last batch ends in a zero byte (no record headers)"
    );
    // The active segment's last index entry moves to the file's last byte:
    // still ordered and inside the file, so it loads, and only zeros follow.
    let index = files(dir.path(), "index").pop().expect("index");
    let mut bytes = std::fs::read(&index).expect("read index");
    let n = bytes.len();
    assert!(n >= 16 && n % 8 == 0, "{n} index bytes");
    let last = u32::from_le_bytes(bytes[n - 4..].try_into().expect("4 bytes"));
    assert!(u64::from(last) < seg_len - 1);
    bytes[n - 4..].copy_from_slice(&u32::try_from(seg_len - 1).expect("small").to_le_bytes());
    std::fs::write(&index, &bytes).expect("write index");

    let (log, report) = open(dir.path(), small_config(Durability::Never));
    assert!(report.clean);
    assert_eq!(
        (report.truncated_bytes, report.zero_tail_bytes),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), seg_len);
    check_prefix(&log, &batches);
}

#[test]
fn zeros_followed_by_data_are_damage_not_a_runway() {
    // A crash can persist a later page of an unsynced group but not an
    // earlier one: zeros, then bytes. Only zeros that run to the end of
    // the file are a runway; these are cut as a torn tail.
    let pristine = tempfile::tempdir().expect("tempdir");
    let batches = build(pristine.path(), 60);
    let seg = files(pristine.path(), "log").pop().expect("segment");
    let mut bytes = std::fs::read(&seg).expect("read segment");
    let (last_base, last_len) = *batches.last().expect("batch");
    let last_start = bytes.len() - last_len;
    bytes[last_start..last_start + 20].fill(0);
    assert!(bytes[last_start + 20..].iter().any(|&b| b != 0));
    std::fs::write(&seg, &bytes).expect("write segment");
    let (log, report) = open(pristine.path(), small_config(Durability::Always));
    assert_eq!(report.truncated_bytes, last_len as u64, "{report:?}");
    assert_eq!(report.zero_tail_bytes, 0, "{report:?}");
    assert_eq!(log.log_end_offset(), last_base);
    check_prefix(&log, &batches[..batches.len() - 1]);
}
