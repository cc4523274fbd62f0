//! Batch compression codecs: what a producer may apply to the records section
//! of a batch, and the bounded decoders the broker and consumers use on it.
//!
//! The codecs and their byte formats are Kafka's, numbered as Kafka numbers
//! them in the batch `attributes` bits 0-2 (see [`Compression::attribute`]):
//!
//! | # | name     | bytes                                                       |
//! |---|----------|-------------------------------------------------------------|
//! | 0 | `none`   | the records as they are                                     |
//! | 1 | `gzip`   | a gzip stream (RFC 1952; several members are read in turn)  |
//! | 2 | `snappy` | xerial framing, as the Java client writes; raw blocks read  |
//! | 3 | `lz4`    | the LZ4 frame format (64 KiB independent blocks written)    |
//! | 4 | `zstd`   | zstd frames                                                 |
//!
//! xerial snappy is the 8-byte magic `\x82SNAPPY\0`, a big-endian u32 version
//! and a big-endian u32 compatible version (both 1), then blocks, each a
//! big-endian u32 length followed by one raw snappy block of that length.
//! Some clients send a single raw snappy block instead: [`decompress`] tells
//! the two apart by the magic; [`compress`] always writes xerial.
//!
//! Invariants: decoders never panic on bad input, and never allocate more
//! than `limit_bytes` for output (plus a bounded working set per codec: a
//! 16 KiB read buffer; one LZ4 block, at most 8 MiB; a zstd window, at most
//! `max(limit_bytes, 8 MiB)` rounded up to a power of two), whatever a
//! length field or the compressed data claims. A payload that would inflate
//! past the limit is refused with [`CompressionError::TooLarge`] as soon as
//! the decoder produces the byte that crosses it.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use bytes::Bytes;

/// A batch compression codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u16)]
pub enum Compression {
    /// No compression (attribute codec 0).
    #[default]
    None = 0,
    /// gzip (codec 1).
    Gzip = 1,
    /// snappy, xerial-framed (codec 2).
    Snappy = 2,
    /// LZ4 frame format (codec 3).
    Lz4 = 3,
    /// zstd (codec 4).
    Zstd = 4,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec's number in the batch attributes (bits 0-2).
    pub fn attribute(self) -> u16 {
        self as u16
    }

    /// The codec numbered `codec` (the value of attribute bits 0-2), or
    /// `None` for a number no codec has (5-7, or anything above 7).
    pub fn from_attribute(codec: u16) -> Option<Compression> {
        Compression::ALL.get(usize::from(codec)).copied()
    }

    /// The codec's name, as [`FromStr`] reads it: `none`, `gzip`, `snappy`,
    /// `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Levels this codec accepts in [`Level::Exact`], or `None` when it has
    /// no levels (none, snappy, lz4: any level is ignored).
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Compression::Gzip => Some((GZIP_LEVEL_MIN, GZIP_LEVEL_MAX)),
            Compression::Zstd => Some((ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX)),
            Compression::None | Compression::Snappy | Compression::Lz4 => None,
        }
    }

    /// Checks `level` against [`Compression::level_range`], so a config or a
    /// command line can be refused before the first batch is built. Every
    /// level is fine for codecs without levels.
    pub fn check_level(self, level: Level) -> Result<(), CompressionError> {
        match (level, self.level_range()) {
            (Level::Exact(level), Some((min, max))) if level < min || level > max => {
                Err(CompressionError::BadLevel {
                    codec: self,
                    level,
                    min,
                    max,
                })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = CompressionError;

    /// Reads a codec name (ASCII case ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| CompressionError::UnknownName(s.to_owned()))
    }
}

/// gzip levels: 0 (stored, no compression) to 9 (smallest).
pub const GZIP_LEVEL_MIN: i32 = 0;
/// See [`GZIP_LEVEL_MIN`].
pub const GZIP_LEVEL_MAX: i32 = 9;
/// zlib's own default, which Kafka's Java client also uses.
pub const GZIP_LEVEL_DEFAULT: i32 = 6;
/// zstd levels: negative levels trade ratio for speed; skiff accepts -7
/// (about lz4's speed) up to 22 (the slowest "ultra" level).
pub const ZSTD_LEVEL_MIN: i32 = -7;
/// See [`ZSTD_LEVEL_MIN`].
pub const ZSTD_LEVEL_MAX: i32 = 22;
/// zstd's own default (ZSTD_CLEVEL_DEFAULT), which Kafka also uses.
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;

/// Blocks the xerial snappy encoder cuts its input into, in bytes: the
/// block size snappy-java's stream writes by default, so a Java consumer
/// decodes skiff's batches with the buffers it is used to.
pub const SNAPPY_XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// The xerial snappy stream magic.
pub const SNAPPY_XERIAL_MAGIC: [u8; 8] = *b"\x82SNAPPY\0";
/// Bytes of the xerial header: magic, version, compatible version.
const SNAPPY_XERIAL_HEADER_BYTES: usize = 16;
/// The version and compatible version skiff writes (snappy-java's).
const SNAPPY_XERIAL_VERSION: u32 = 1;
/// Bytes read from a stream decoder at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// log2 of the smallest zstd window the decoder always allows, whatever the
/// output limit: 8 MiB, the largest window zstd's levels 1-19 use when the
/// encoder does not know the input size (a streaming encoder, such as the
/// Java client's). Above that, the window is bounded by the output limit.
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;
/// log2 of the largest zstd window ever allowed (1 GiB, zstd's own cap on
/// 32-bit builds).
const ZSTD_WINDOW_LOG_CEIL: u32 = 30;

const _: () = assert!(SNAPPY_XERIAL_BLOCK_BYTES <= u32::MAX as usize);
const _: () = assert!(ZSTD_WINDOW_LOG_FLOOR <= ZSTD_WINDOW_LOG_CEIL);
const _: () = assert!(GZIP_LEVEL_MIN <= GZIP_LEVEL_DEFAULT && GZIP_LEVEL_DEFAULT <= GZIP_LEVEL_MAX);
const _: () = assert!(ZSTD_LEVEL_MIN <= ZSTD_LEVEL_DEFAULT && ZSTD_LEVEL_DEFAULT <= ZSTD_LEVEL_MAX);

/// A compression level. Only gzip and zstd have levels; the others ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// The codec's default: gzip [`GZIP_LEVEL_DEFAULT`], zstd
    /// [`ZSTD_LEVEL_DEFAULT`].
    #[default]
    Default,
    /// A level within the codec's [`Compression::level_range`].
    Exact(i32),
}

impl Level {
    fn resolve(self, default: i32) -> i32 {
        match self {
            Level::Default => default,
            Level::Exact(level) => level,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Default => f.write_str("default"),
            Level::Exact(level) => write!(f, "{level}"),
        }
    }
}

impl FromStr for Level {
    type Err = CompressionError;

    /// Reads `default` or an integer.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("default") {
            return Ok(Level::Default);
        }
        s.parse::<i32>()
            .map(Level::Exact)
            .map_err(|_| CompressionError::BadLevelName(s.to_owned()))
    }
}

/// Why compressing or decompressing failed, or a codec name or level was
/// refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompressionError {
    /// The payload inflates past the caller's limit; decoding stopped there.
    #[error("{codec} payload inflates past the limit of {limit} bytes")]
    TooLarge {
        /// The codec of the payload.
        codec: Compression,
        /// The limit, in bytes of output.
        limit: usize,
    },
    /// The payload is not a valid encoding for its codec.
    #[error("{codec} payload does not decompress: {reason}")]
    Corrupt {
        /// The codec of the payload.
        codec: Compression,
        /// What the decoder found wrong.
        reason: String,
    },
    /// The encoder failed (out of memory, or a parameter it refused).
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// The codec used.
        codec: Compression,
        /// What the encoder said.
        reason: String,
    },
    /// A level outside the codec's range.
    #[error("{codec} level {level} is outside {min}..={max}")]
    BadLevel {
        /// The codec.
        codec: Compression,
        /// The level asked for.
        level: i32,
        /// Smallest allowed level.
        min: i32,
        /// Largest allowed level.
        max: i32,
    },
    /// A codec name that is not one of `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    #[error("unknown compression codec {0:?} (expected none, gzip, snappy, lz4 or zstd)")]
    UnknownName(String),
    /// A level that is neither `default` nor an integer.
    #[error("bad compression level {0:?} (expected \"default\" or an integer)")]
    BadLevelName(String),
}

fn corrupt(codec: Compression, reason: impl fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

fn compress_failed(codec: Compression, reason: impl fmt::Display) -> CompressionError {
    CompressionError::Compress {
        codec,
        reason: reason.to_string(),
    }
}

/// Compresses `data` with `codec` at `level` (ignored by codecs without
/// levels). `Compression::None` returns a copy. A level outside the codec's
/// range is refused with [`CompressionError::BadLevel`].
pub fn compress(
    codec: Compression,
    level: Level,
    data: &[u8],
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    compress_into(codec, level, data, &mut out)?;
    Ok(out)
}

/// Like [`compress`], appending the encoding to `out` (the batch builder
/// writes it right after the batch header).
pub(crate) fn compress_into(
    codec: Compression,
    level: Level,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    codec.check_level(level)?;
    match codec {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            let level = level.resolve(GZIP_LEVEL_DEFAULT).unsigned_abs();
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            enc.write_all(data).map_err(|e| compress_failed(codec, e))?;
            enc.finish().map_err(|e| compress_failed(codec, e))?;
        }
        Compression::Snappy => {
            out.extend_from_slice(&SNAPPY_XERIAL_MAGIC);
            out.extend_from_slice(&SNAPPY_XERIAL_VERSION.to_be_bytes());
            out.extend_from_slice(&SNAPPY_XERIAL_VERSION.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            let mut block = Vec::new();
            for chunk in data.chunks(SNAPPY_XERIAL_BLOCK_BYTES) {
                block.resize(snap::raw::max_compress_len(chunk.len()), 0);
                let n = encoder
                    .compress(chunk, &mut block)
                    .map_err(|e| compress_failed(codec, e))?;
                let len = u32::try_from(n).map_err(|e| compress_failed(codec, e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(block.get(..n).unwrap_or_default());
            }
        }
        Compression::Lz4 => {
            // Kafka's Java client writes 64 KiB independent blocks without
            // checksums (the batch CRC covers the bytes); so does skiff.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            enc.write_all(data).map_err(|e| compress_failed(codec, e))?;
            enc.finish().map_err(|e| compress_failed(codec, e))?;
        }
        Compression::Zstd => {
            let level = level.resolve(ZSTD_LEVEL_DEFAULT);
            let mut enc = zstd::stream::write::Encoder::new(out, level)
                .map_err(|e| compress_failed(codec, e))?;
            // Writing the content size lets a decoder size its window to the
            // payload rather than to the level's default.
            enc.set_pledged_src_size(Some(data.len() as u64))
                .map_err(|e| compress_failed(codec, e))?;
            enc.include_contentsize(true)
                .map_err(|e| compress_failed(codec, e))?;
            enc.write_all(data).map_err(|e| compress_failed(codec, e))?;
            enc.finish().map_err(|e| compress_failed(codec, e))?;
        }
    }
    Ok(())
}

/// Decompresses `data` encoded with `codec`, refusing with
/// [`CompressionError::TooLarge`] once the output would pass `limit_bytes`.
/// Never allocates more than `limit_bytes` of output, whatever the payload
/// claims (see the module comment for the decoders' bounded working set).
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit_bytes: usize,
) -> Result<Bytes, CompressionError> {
    let mut out = Vec::new();
    decompress_into(codec, data, limit_bytes, &mut out)?;
    Ok(Bytes::from(out))
}

/// Like [`decompress`], appending the output to `out`; `limit_bytes` bounds
/// the bytes appended.
pub(crate) fn decompress_into(
    codec: Compression,
    data: &[u8],
    limit_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let mut sink = Sink::new(codec, limit_bytes, out);
    // Every encoding writes at least a header; some decoders would read
    // nothing as an empty stream.
    if data.is_empty() && codec != Compression::None {
        return Err(corrupt(codec, "empty payload"));
    }
    match codec {
        Compression::None => sink.push(data),
        Compression::Gzip => sink.drain(flate2::read::MultiGzDecoder::new(data)),
        Compression::Snappy => decompress_snappy(data, &mut sink),
        Compression::Lz4 => {
            lz4_check_frames(data).map_err(|reason| corrupt(codec, reason))?;
            // The decoder ends at a frame's end mark: one decoder per frame.
            let mut rest = data;
            while !rest.is_empty() {
                let before = rest.len();
                sink.drain(lz4_flex::frame::FrameDecoder::new(&mut rest))?;
                if rest.len() == before {
                    return Err(corrupt(codec, "frame decoder made no progress"));
                }
            }
            Ok(())
        }
        Compression::Zstd => {
            let mut dec =
                zstd::stream::read::Decoder::with_buffer(data).map_err(|e| corrupt(codec, e))?;
            dec.window_log_max(zstd_window_log_max(limit_bytes))
                .map_err(|e| corrupt(codec, e))?;
            sink.drain(dec)
        }
    }
}

/// The largest zstd window (log2) a decoder with output limit `limit_bytes`
/// allows: the limit rounded up to a power of two, within
/// `ZSTD_WINDOW_LOG_FLOOR..=ZSTD_WINDOW_LOG_CEIL`. A window larger than the
/// whole output buys a decoder nothing, so this refuses only frames that
/// would make it reserve memory for nothing.
fn zstd_window_log_max(limit_bytes: usize) -> u32 {
    let log = usize::BITS - limit_bytes.saturating_sub(1).leading_zeros();
    log.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEIL)
}

/// The LZ4 frame magic number (little-endian on the wire).
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;

/// Walks the structure of a run of LZ4 frames without decoding them:
/// magic, descriptor, blocks up to the end mark, checksums. The decoder
/// takes a stream that stops at a block boundary (or right after a magic)
/// for a complete one, and legacy or skippable frames for data; this makes
/// a cut or padded payload an error, as every other skiff decoder does.
/// Checksums and block contents are left to the decoder.
fn lz4_check_frames(mut data: &[u8]) -> Result<(), String> {
    fn take<'a>(data: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
        let Some((head, rest)) = data.split_at_checked(n) else {
            return Err(format!(
                "{what} truncated ({n} bytes needed, {} left)",
                data.len()
            ));
        };
        *data = rest;
        Ok(head)
    }
    fn u32_le(bytes: &[u8]) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes.get(..4).unwrap_or(&[0; 4]));
        u32::from_le_bytes(b)
    }
    while !data.is_empty() {
        let magic = u32_le(take(&mut data, 4, "frame magic")?);
        if magic != LZ4_FRAME_MAGIC {
            return Err(format!("not an LZ4 frame (magic {magic:#010x})"));
        }
        let descriptor = take(&mut data, 2, "frame descriptor")?;
        let flags = descriptor.first().copied().unwrap_or_default();
        let content_size = flags & 0x08 != 0;
        let dict_id = flags & 0x01 != 0;
        let block_checksums = flags & 0x10 != 0;
        let content_checksum = flags & 0x04 != 0;
        // Content size, dictionary id, header checksum.
        let rest = usize::from(content_size) * 8 + usize::from(dict_id) * 4 + 1;
        take(&mut data, rest, "frame descriptor")?;
        loop {
            let block = u32_le(take(&mut data, 4, "block size")?);
            if block == 0 {
                break;
            }
            let len = (block & 0x7fff_ffff) as usize;
            take(&mut data, len, "block")?;
            if block_checksums {
                take(&mut data, 4, "block checksum")?;
            }
        }
        if content_checksum {
            take(&mut data, 4, "content checksum")?;
        }
    }
    Ok(())
}

/// Snappy, xerial-framed when it starts with the xerial magic, else one raw
/// block.
fn decompress_snappy(data: &[u8], sink: &mut Sink<'_>) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let Some(mut rest) = data.strip_prefix(&SNAPPY_XERIAL_MAGIC[..]) else {
        return snappy_block(data, sink);
    };
    // Version and compatible version: snappy-java refuses a compatible
    // version below 1, and so does skiff; any version at or above is read.
    let Some((header, blocks)) = rest.split_at_checked(SNAPPY_XERIAL_HEADER_BYTES - 8) else {
        return Err(corrupt(codec, "xerial header truncated"));
    };
    let compat = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if compat < SNAPPY_XERIAL_VERSION {
        return Err(corrupt(
            codec,
            format_args!("xerial compatible version {compat}, expected 1 or more"),
        ));
    }
    rest = blocks;
    while !rest.is_empty() {
        let Some((len, after)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt(
                codec,
                format_args!("xerial block length truncated ({} bytes)", rest.len()),
            ));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some((block, after)) = after.split_at_checked(len) else {
            return Err(corrupt(
                codec,
                format_args!(
                    "xerial block of {len} bytes runs past the payload ({} bytes remain)",
                    after.len()
                ),
            ));
        };
        snappy_block(block, sink)?;
        rest = after;
    }
    Ok(())
}

/// One raw snappy block: its declared length is checked against the limit
/// before any output is reserved.
fn snappy_block(block: &[u8], sink: &mut Sink<'_>) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    let start = sink.reserve(len)?;
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut sink.out[start..])
        .map_err(|e| corrupt(codec, e))?;
    if n != len {
        return Err(corrupt(
            codec,
            format_args!("block declares {len} bytes but decodes to {n}"),
        ));
    }
    Ok(())
}

/// Output with a hard limit: growth is capped at the limit, so a bomb costs
/// at most `limit` bytes before it is refused.
struct Sink<'a> {
    codec: Compression,
    out: &'a mut Vec<u8>,
    /// Length of `out` when decoding started.
    start: usize,
    limit: usize,
}

impl<'a> Sink<'a> {
    fn new(codec: Compression, limit: usize, out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Sink {
            codec,
            out,
            start,
            limit,
        }
    }

    /// Grows the output by `n` zeroed bytes, returning where they start; the
    /// capacity never passes the limit (doubling, then capped).
    fn reserve(&mut self, n: usize) -> Result<usize, CompressionError> {
        let used = self.out.len() - self.start;
        let too_large = CompressionError::TooLarge {
            codec: self.codec,
            limit: self.limit,
        };
        let Some(after) = used.checked_add(n).filter(|after| *after <= self.limit) else {
            return Err(too_large);
        };
        let have = self.out.capacity() - self.start;
        if after > have {
            let grown = have.saturating_mul(2).clamp(after, self.limit);
            self.out
                .try_reserve_exact(grown - used)
                .map_err(|_| too_large)?;
        }
        let at = self.out.len();
        self.out.resize(at + n, 0);
        Ok(at)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), CompressionError> {
        let at = self.reserve(bytes.len())?;
        self.out[at..].copy_from_slice(bytes);
        Ok(())
    }

    /// Reads `reader` to its end through a fixed buffer.
    fn drain(&mut self, mut reader: impl Read) -> Result<(), CompressionError> {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => self.push(chunk.get(..n).unwrap_or_default())?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(corrupt(self.codec, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: usize = 1024 * 1024;
    /// Size of the bombs' inflated payload: 100 MiB of zeros.
    const BOMB_BYTES: usize = 100 * MIB;
    /// The limit the bombs are decoded under.
    const BOMB_LIMIT_BYTES: usize = 4 * MIB;

    fn json(bytes: usize) -> Vec<u8> {
        crate::testdata::JsonEvents::new(42).fill(bytes).concat()
    }

    /// `total` zeros, compressed as one stream fed 1 MiB at a time (never
    /// held whole).
    fn zeros_one_stream(codec: Compression, total: usize) -> Vec<u8> {
        let zeros = vec![0u8; MIB];
        let mut out = Vec::new();
        match codec {
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(6));
                for _ in 0..total / MIB {
                    e.write_all(&zeros).expect("gzip");
                }
                e.finish().expect("gzip");
            }
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(&mut out);
                for _ in 0..total / MIB {
                    e.write_all(&zeros).expect("lz4");
                }
                e.finish().expect("lz4");
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(&mut out, 3).expect("zstd");
                for _ in 0..total / MIB {
                    e.write_all(&zeros).expect("zstd");
                }
                e.finish().expect("zstd");
            }
            Compression::Snappy => {
                let one = compress(codec, Level::Default, &zeros).expect("snappy");
                out.extend_from_slice(&one);
                let blocks = one.get(SNAPPY_XERIAL_HEADER_BYTES..).expect("blocks");
                for _ in 1..total / MIB {
                    out.extend_from_slice(blocks);
                }
            }
            Compression::None => out = vec![0u8; total],
        }
        out
    }

    /// `total` zeros as 1 MiB gzip members, zstd or LZ4 frames, or xerial
    /// blocks laid back to back (each decoder reads them all as one
    /// payload): a 100 MiB bomb that is quick to build in a debug test.
    fn zeros_concatenated(codec: Compression, total: usize) -> Vec<u8> {
        let one = zeros_one_stream(codec, MIB);
        if codec == Compression::Snappy {
            return zeros_one_stream(codec, total);
        }
        one.repeat(total / MIB)
    }

    #[test]
    fn names_and_numbers_are_kafkas() {
        let expected = [
            ("none", 0),
            ("gzip", 1),
            ("snappy", 2),
            ("lz4", 3),
            ("zstd", 4),
        ];
        for (codec, (name, number)) in Compression::ALL.into_iter().zip(expected) {
            assert_eq!(codec.name(), name);
            assert_eq!(codec.to_string(), name);
            assert_eq!(codec.attribute(), number);
            assert_eq!(name.parse::<Compression>(), Ok(codec));
            assert_eq!(name.to_uppercase().parse::<Compression>(), Ok(codec));
            assert_eq!(Compression::from_attribute(number), Some(codec));
        }
        for unknown in [5, 6, 7, 8, u16::MAX] {
            assert_eq!(Compression::from_attribute(unknown), None);
        }
        let err = "brotli".parse::<Compression>().expect_err("unknown");
        assert_eq!(err, CompressionError::UnknownName("brotli".into()));
        assert!(
            err.to_string().contains("none, gzip, snappy, lz4 or zstd"),
            "{err}"
        );
        assert_eq!(Compression::default(), Compression::None);
    }

    #[test]
    fn levels() {
        assert_eq!("default".parse::<Level>(), Ok(Level::Default));
        assert_eq!("-3".parse::<Level>(), Ok(Level::Exact(-3)));
        assert_eq!(
            "19".parse::<Level>().map(|l| l.to_string()),
            Ok("19".into())
        );
        assert!(matches!(
            "fast".parse::<Level>(),
            Err(CompressionError::BadLevelName(_))
        ));
        for codec in Compression::ALL {
            assert_eq!(codec.check_level(Level::Default), Ok(()));
        }
        assert_eq!(Compression::Gzip.check_level(Level::Exact(9)), Ok(()));
        assert_eq!(
            Compression::Gzip.check_level(Level::Exact(10)),
            Err(CompressionError::BadLevel {
                codec: Compression::Gzip,
                level: 10,
                min: 0,
                max: 9
            })
        );
        assert!(Compression::Zstd.check_level(Level::Exact(23)).is_err());
        assert!(Compression::Zstd.check_level(Level::Exact(-8)).is_err());
        // Codecs without levels take any.
        assert_eq!(Compression::Lz4.check_level(Level::Exact(1000)), Ok(()));
        assert_eq!(Compression::Snappy.check_level(Level::Exact(-1)), Ok(()));
        // zstd's own range covers skiff's.
        let zr = zstd::compression_level_range();
        assert!(zr.contains(&ZSTD_LEVEL_MIN) && zr.contains(&ZSTD_LEVEL_MAX));
        assert_eq!(zstd::DEFAULT_COMPRESSION_LEVEL, ZSTD_LEVEL_DEFAULT);
        // A bad level is refused by compress too.
        assert!(matches!(
            compress(Compression::Gzip, Level::Exact(11), b"x"),
            Err(CompressionError::BadLevel { .. })
        ));
    }

    #[test]
    fn round_trip_every_codec_and_level() {
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            b"x".to_vec(),
            json(600),
            json(200 * 1024), // several xerial and lz4 blocks
            (0..70_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ];
        for codec in Compression::ALL {
            let levels = match codec.level_range() {
                Some((min, max)) => vec![Level::Default, Level::Exact(min), Level::Exact(max)],
                None => vec![Level::Default],
            };
            for level in levels {
                for p in &payloads {
                    let c = compress(codec, level, p).expect("compresses");
                    let d = decompress(codec, &c, p.len()).expect("decompresses");
                    assert_eq!(&d[..], &p[..], "{codec} {level} {} bytes", p.len());
                    if !p.is_empty() {
                        // One byte under its size: refused, named.
                        assert_eq!(
                            decompress(codec, &c, p.len() - 1),
                            Err(CompressionError::TooLarge {
                                codec,
                                limit: p.len() - 1
                            })
                        );
                    }
                }
            }
        }
        // The formats are Kafka's.
        let p = json(1000);
        let gz = compress(Compression::Gzip, Level::Default, &p).expect("gzip");
        assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]));
        let lz = compress(Compression::Lz4, Level::Default, &p).expect("lz4");
        assert_eq!(lz.get(..4), Some(&[0x04, 0x22, 0x4d, 0x18][..]));
        let zs = compress(Compression::Zstd, Level::Default, &p).expect("zstd");
        assert_eq!(zs.get(..4), Some(&[0x28, 0xb5, 0x2f, 0xfd][..]));
        let sn = compress(Compression::Snappy, Level::Default, &p).expect("snappy");
        assert_eq!(sn.get(..8), Some(&SNAPPY_XERIAL_MAGIC[..]));
        assert_eq!(sn.get(8..16), Some(&[0, 0, 0, 1, 0, 0, 0, 1][..]));
    }

    #[test]
    fn snappy_reads_xerial_and_raw_blocks() {
        let p = json(100 * 1024);
        let raw = snap::raw::Encoder::new().compress_vec(&p).expect("raw");
        assert_eq!(
            decompress(Compression::Snappy, &raw, p.len()).as_deref(),
            Ok(&p[..])
        );
        // Hand-built xerial with two blocks of uneven sizes, as another
        // client may cut them.
        let (a, b) = p.split_at(1000);
        let mut x = SNAPPY_XERIAL_MAGIC.to_vec();
        x.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for part in [a, b] {
            let block = snap::raw::Encoder::new().compress_vec(part).expect("block");
            x.extend_from_slice(&(block.len() as u32).to_be_bytes());
            x.extend_from_slice(&block);
        }
        assert_eq!(
            decompress(Compression::Snappy, &x, p.len()).as_deref(),
            Ok(&p[..])
        );
        // A header alone is an empty stream.
        assert_eq!(
            decompress(Compression::Snappy, &x[..16], 0).as_deref(),
            Ok(&[][..])
        );
        // Broken framing is named.
        for (bad, what) in [
            (x[..12].to_vec(), "header truncated"),
            (x[..18].to_vec(), "length truncated"),
            (x[..30].to_vec(), "runs past"),
        ] {
            let err = decompress(Compression::Snappy, &bad, MIB).expect_err("bad");
            assert!(err.to_string().contains(what), "{err}");
        }
        let mut old = x.clone();
        old[12..16].copy_from_slice(&0u32.to_be_bytes());
        let err = decompress(Compression::Snappy, &old, MIB).expect_err("compat 0");
        assert!(err.to_string().contains("compatible version 0"), "{err}");
    }

    #[test]
    fn raw_snappy_claiming_a_huge_length_is_refused_before_allocating() {
        // A raw block is its uncompressed length (uvarint) then its data: a
        // 5-byte header claiming ~4 GiB, and nothing behind it.
        let mut lie = Vec::new();
        crate::varint::put_uvarint(&mut lie, u64::from(u32::MAX));
        lie.extend_from_slice(&[0x00, 0x01]);
        let err = decompress(Compression::Snappy, &lie, BOMB_LIMIT_BYTES).expect_err("lie");
        assert_eq!(
            err,
            CompressionError::TooLarge {
                codec: Compression::Snappy,
                limit: BOMB_LIMIT_BYTES
            }
        );
        // The same inside xerial framing.
        let mut x = SNAPPY_XERIAL_MAGIC.to_vec();
        x.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        x.extend_from_slice(&(lie.len() as u32).to_be_bytes());
        x.extend_from_slice(&lie);
        assert!(matches!(
            decompress(Compression::Snappy, &x, BOMB_LIMIT_BYTES),
            Err(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn bombs_are_refused_at_the_limit() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bombs = [
                zeros_concatenated(codec, BOMB_BYTES),
                zeros_one_stream(codec, 2 * BOMB_LIMIT_BYTES),
            ];
            for bomb in bombs {
                // Snappy's copies are at most 64 bytes: ~20:1 at best.
                assert!(
                    bomb.len() < BOMB_BYTES / 16,
                    "{codec}: {} bytes",
                    bomb.len()
                );
                let mut out = Vec::new();
                let err = decompress_into(codec, &bomb, BOMB_LIMIT_BYTES, &mut out)
                    .expect_err(codec.name());
                assert_eq!(
                    err,
                    CompressionError::TooLarge {
                        codec,
                        limit: BOMB_LIMIT_BYTES
                    }
                );
                // The output never grew past the limit.
                assert!(
                    out.capacity() <= BOMB_LIMIT_BYTES,
                    "{codec}: {}",
                    out.capacity()
                );
            }
            // The same under a limit it fits is fine.
            let small = zeros_concatenated(codec, 2 * MIB);
            let d = decompress(codec, &small, 2 * MIB).expect("fits");
            assert!(d.len() == 2 * MIB && d.iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn zstd_window_is_bounded_by_the_limit() {
        assert_eq!(zstd_window_log_max(0), ZSTD_WINDOW_LOG_FLOOR);
        assert_eq!(zstd_window_log_max(16 * MIB), 24);
        assert_eq!(zstd_window_log_max(16 * MIB + 1), 25);
        assert_eq!(zstd_window_log_max(usize::MAX), ZSTD_WINDOW_LOG_CEIL);
        // A frame whose window (32 MiB, no content size) passes what a 1 MiB
        // limit allows is refused before the decoder reserves it.
        let mut out = Vec::new();
        let mut e = zstd::stream::write::Encoder::new(&mut out, 3).expect("zstd");
        e.window_log(25).expect("window");
        e.write_all(&json(1000)).expect("zstd");
        e.finish().expect("zstd");
        assert!(matches!(
            decompress(Compression::Zstd, &out, MIB),
            Err(CompressionError::Corrupt {
                codec: Compression::Zstd,
                ..
            })
        ));
        assert!(decompress(Compression::Zstd, &out, 32 * MIB).is_ok());
    }

    #[test]
    fn every_truncation_and_trailing_garbage_is_an_error() {
        let p = json(3000);
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let c = compress(codec, Level::Default, &p).expect("compresses");
            for cut in 0..c.len() {
                // Snappy's xerial stream may end at any block boundary; a
                // cut there loses whole blocks (the batch's record walk
                // catches that); every other cut is an error here.
                if codec == Compression::Snappy && cut == SNAPPY_XERIAL_HEADER_BYTES {
                    continue;
                }
                let got = decompress(codec, &c[..cut], MIB);
                assert!(
                    matches!(got, Err(CompressionError::Corrupt { codec: c2, .. }) if c2 == codec),
                    "{codec} cut at {cut}/{}: {got:?}",
                    c.len()
                );
            }
            let mut extra = c.clone();
            extra.extend_from_slice(b"\x01garbage");
            assert!(
                decompress(codec, &extra, MIB).is_err(),
                "{codec} trailing garbage"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..4000), level in -7i32..=22) {
            for codec in Compression::ALL {
                let level = match codec {
                    Compression::Gzip => Level::Exact(level.rem_euclid(10)),
                    _ => Level::Exact(level),
                };
                let c = compress(codec, level, &data).expect("compresses");
                let d = decompress(codec, &c, data.len()).expect("decompresses");
                prop_assert_eq!(&d[..], &data[..]);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            for codec in Compression::ALL {
                if let Ok(d) = decompress(codec, &data, 64 * 1024) {
                    prop_assert!(d.len() <= 64 * 1024);
                }
            }
        }

        #[test]
        fn mutated_payloads_never_panic(pos in any::<usize>(), val in any::<u8>(), codec_i in 1usize..5) {
            let codec = Compression::ALL[codec_i];
            let p = json(2000);
            let mut c = compress(codec, Level::Default, &p).expect("compresses");
            let i = pos % c.len();
            c[i] = val;
            if let Ok(d) = decompress(codec, &c, 4 * p.len()) {
                prop_assert!(d.len() <= 4 * p.len());
            }
        }
    }
}
