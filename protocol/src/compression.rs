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
    match codec {
        Compression::None => sink.push(data),
        Compression::Gzip => sink.drain(flate2::read::MultiGzDecoder::new(data)),
        Compression::Snappy => decompress_snappy(data, &mut sink),
        Compression::Lz4 => sink.drain(lz4_flex::frame::FrameDecoder::new(data)),
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
