//! Length + CRC framing for the broker's small append-only state files (the
//! group offset store and the work-queue state logs): `body_len u32 |
//! crc32 u32 | body`, little-endian.
//!
//! A frame that is short, longer than the caller's limit or fails its CRC
//! reads as "no frame here": recovery stops at it and cuts the file back.
//! [`open_log`] is that recovery, shared by every such file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, BytesMut};

/// Frame header: body length and CRC.
pub const FRAME_HEADER_BYTES: usize = 4 + 4;

/// Starts a frame in `buf`; write the body, then call [`end`] with the
/// returned start.
pub fn begin(buf: &mut BytesMut) -> usize {
    let start = buf.len();
    buf.put_u32_le(0);
    buf.put_u32_le(0);
    start
}

/// Fills in the header of the frame started at `start`. The body must be
/// shorter than 4 GiB (callers bound it far below).
pub fn end(buf: &mut BytesMut, start: usize) {
    let body_start = start + FRAME_HEADER_BYTES;
    let body_len = u32::try_from(buf.len() - body_start).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&buf[body_start..]);
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The body of the frame at the front of `data` and the frame's whole
/// length, or `None` if it is incomplete, over `body_bytes_max` or corrupt.
pub fn parse(data: &[u8], body_bytes_max: usize) -> Option<(&[u8], usize)> {
    let mut header = data.get(..FRAME_HEADER_BYTES)?;
    let body_len = header.get_u32_le() as usize;
    let crc = header.get_u32_le();
    if body_len > body_bytes_max {
        return None;
    }
    let body = data.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len)?;
    (crc32fast::hash(body) == crc).then_some((body, FRAME_HEADER_BYTES + body_len))
}

/// A file operation of [`open_log`] failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}")]
pub struct OpenLogError {
    /// What was being done.
    pub op: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

fn log_err(op: &'static str, path: &Path, source: io::Error) -> OpenLogError {
    OpenLogError {
        op,
        path: path.to_owned(),
        source,
    }
}

/// An append-only framed log, opened and recovered by [`open_log`].
#[derive(Debug)]
pub struct OpenedLog {
    /// The log, opened for appending after its last valid frame.
    pub file: File,
    /// Its path.
    pub path: PathBuf,
    /// Length of the valid prefix: the file's length now.
    pub valid_bytes: u64,
    /// Valid frames read.
    pub records: u64,
    /// Bytes cut from the end (a torn or corrupt tail).
    pub truncated_bytes: u64,
}

/// Opens (creating if needed) the framed log `dir/file_name` and recovers
/// it: removes an interrupted compaction's `dir/compact_tmp_name` (the log
/// itself is still whole then), hands every frame's body to `apply` in
/// order up to the first short, over-`body_bytes_max`, corrupt or (when
/// `apply` returns `false`) undecodable one, truncates the file there and
/// fsyncs it and the directory. Blocking.
pub fn open_log(
    dir: &Path,
    file_name: &str,
    compact_tmp_name: &str,
    body_bytes_max: usize,
    mut apply: impl FnMut(&[u8]) -> bool,
) -> Result<OpenedLog, OpenLogError> {
    super::create_dir_all(dir).map_err(|e| log_err("create directory", dir, e))?;
    let tmp = dir.join(compact_tmp_name);
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(|e| log_err("remove", &tmp, e))?;
    }
    let path = dir.join(file_name);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(log_err("read", &path, e)),
    };
    let mut records = 0u64;
    let mut pos = 0usize;
    while let Some((body, len)) = data.get(pos..).and_then(|rest| parse(rest, body_bytes_max)) {
        if !apply(body) {
            break;
        }
        records += 1;
        pos += len;
    }
    let valid_bytes = pos as u64;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| log_err("open", &path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| log_err("stat", &path, e))?
        .len();
    let truncated_bytes = file_len.saturating_sub(valid_bytes);
    if truncated_bytes > 0 {
        tracing::warn!(
            path = %path.display(),
            cut_bytes = truncated_bytes,
            "truncating a torn or corrupt tail"
        );
        super::set_len(&file, &path, valid_bytes).map_err(|e| log_err("truncate", &path, e))?;
        super::sync_all(&file, &path).map_err(|e| log_err("fsync", &path, e))?;
    }
    super::sync_dir(dir).map_err(|e| log_err("fsync directory", dir, e))?;
    Ok(OpenedLog {
        file,
        path,
        valid_bytes,
        records,
        truncated_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_damage_is_refused() {
        let mut buf = BytesMut::new();
        let start = begin(&mut buf);
        buf.put_slice(b"hello");
        end(&mut buf, start);
        assert_eq!(parse(&buf, 16), Some((&b"hello"[..], 13)));
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut], 16), None, "cut {cut}");
        }
        assert_eq!(parse(&buf, 4), None, "over the limit");
        let mut flipped = buf.to_vec();
        flipped[10] ^= 1;
        assert_eq!(parse(&flipped, 16), None);
    }
}
