//! The record batch: one byte format on the wire and on disk.
//!
//! Producers build batches ([`BatchBuilder`]), the broker checks them
//! ([`validate`]), stamps the base offset ([`stamp_base_offset`]) and writes the
//! bytes unchanged; consumers split a fetch response into batches
//! ([`BatchIter`]) and decode them ([`decode_records`]). Nothing is re-encoded
//! on the hot path.
//!
//! Layout, little-endian (byte positions are from the start of the batch):
//!
//! ```text
//!  0 base_offset        u64  stamped by the broker (0 from the producer)
//!  8 batch_len          u32  bytes after this field
//! 12 crc                u32  CRC-32/ISO-HDLC (crc32fast) over bytes 16..
//! 16 magic              u8   format version, BATCH_MAGIC
//! 17 attributes         u16  bits 0-2 codec (see Compression), bit 3 timestamp type
//! 19 last_offset_delta  u32  offset delta of the last record
//! 23 first_timestamp_ms i64  timestamp of the first record
//! 31 max_timestamp_ms   i64  largest record timestamp
//! 39 producer_id        u64  NO_PRODUCER_ID (u64::MAX) when not idempotent
//! 47 producer_epoch     u16  NO_PRODUCER_EPOCH (u16::MAX) when not idempotent
//! 49 base_sequence      u32  NO_SEQUENCE (u32::MAX) when not idempotent
//! 53 record_count       u32
//! 57 records
//! ```
//!
//! The magic byte names the record encoding ([`RecordEncoding`]); the
//! header is the same for both.
//!
//! Magic 1, skiff's own: each record is `length` uvarint (bytes of the rest
//! of the record), `offset_delta` uvarint, `timestamp_delta` zigzag varint
//! (relative to `first_timestamp_ms`, may be negative), key length zigzag
//! varint (-1 = no key) and key bytes, value length uvarint and value bytes,
//! header count uvarint, then per header: key length uvarint + UTF-8 bytes,
//! value length uvarint + bytes.
//!
//! Magic 2, Kafka's record encoding (the records of a Kafka magic-2 batch,
//! byte for byte): `length` zigzag varint, an attributes byte (unused),
//! `timestamp_delta` zigzag varint, `offset_delta` zigzag varint, key length
//! zigzag (-1 = no key) and bytes, value length zigzag (-1 = null, read as
//! empty) and bytes, header count zigzag, then per header: key length zigzag
//! and UTF-8 bytes, value length zigzag (-1 = null, read as empty) and bytes.
//! The broker stores what Kafka producers send this way, so a Kafka fetch
//! serves the records section (compressed or not) as it is stored, with
//! only the header rewritten; skiff readers decode both encodings.
//!
//! Compressed batches (codec bits 1-4, see [`crate::compression`]): the header
//! stays as it is, and the bytes after it are the codec's encoding of the
//! records section above (the same record encoding). `batch_len` and the CRC
//! cover the compressed bytes, which the log stores unchanged.
//! [`check_integrity`] never decompresses; [`validate`] and [`decode_records`]
//! inflate the records within [`DECOMPRESSED_BATCH_BYTES_MAX`] and check them
//! as they check an uncompressed batch's. [`ValidBatch`] is a batch that
//! passed [`validate`], carried from the check to the log so it is not
//! checked (or inflated) twice, and re-encoded with another codec by
//! [`ValidBatch::recompress`] when a topic's policy asks for one.
//!
//! Invariants: the CRC leaves out `base_offset` and `batch_len`, so stamping
//! the offset never recomputes it. Decoders never panic on bad input and never
//! allocate more than the input could hold, whatever a length field claims;
//! for a compressed batch, no more than [`DECOMPRESSED_BATCH_BYTES_MAX`],
//! whatever the payload inflates to.

use bytes::Bytes;

use crate::compression::{self, Compression, CompressionError, Level};
use crate::varint::{self, VarintError};

/// Size of the fixed batch header, in bytes.
pub const BATCH_HEADER_BYTES: usize = 57;
/// The format version of skiff's own record encoding (the one
/// [`BatchBuilder`] writes unless told otherwise).
pub const BATCH_MAGIC: u8 = 1;
/// The format version whose records are in Kafka's record encoding.
pub const BATCH_MAGIC_KAFKA_RECORDS: u8 = 2;

/// How the records of a batch are encoded, as its magic byte says (see the
/// module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RecordEncoding {
    /// Magic 1: skiff's own.
    #[default]
    Skiff,
    /// Magic 2: Kafka's (zigzag lengths, an attributes byte per record).
    Kafka,
}

impl RecordEncoding {
    /// The magic byte that names this encoding.
    pub fn magic(self) -> u8 {
        match self {
            RecordEncoding::Skiff => BATCH_MAGIC,
            RecordEncoding::Kafka => BATCH_MAGIC_KAFKA_RECORDS,
        }
    }

    /// The encoding a magic byte names, if any.
    pub fn from_magic(magic: u8) -> Option<RecordEncoding> {
        match magic {
            BATCH_MAGIC => Some(RecordEncoding::Skiff),
            BATCH_MAGIC_KAFKA_RECORDS => Some(RecordEncoding::Kafka),
            _ => None,
        }
    }
}
/// Largest whole batch accepted, in bytes. Bounds what a single length field
/// can make a reader buffer; 16 MiB is far above useful producer batch sizes
/// (the client aims for ~16-64 KiB) and well below a frame or segment.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest batch a compressed batch may inflate to (its header plus its
/// decompressed records), in bytes. Equal to [`BATCH_BYTES_MAX`]: the same
/// records sent uncompressed would be refused above it, so compression never
/// raises what one batch can make a broker or a consumer hold in memory, and
/// a producer that bounds its batches by their uncompressed size
/// ([`BatchBuilder::encoded_bytes`]) never builds one that is refused.
/// Decompression stops at this bound (a compression bomb costs at most this
/// much memory before it is refused).
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = BATCH_BYTES_MAX;
/// Bytes before the CRC-covered part: base_offset, batch_len, crc.
pub const BATCH_CRC_START: usize = 16;
/// Bytes of the length prefix (base_offset + batch_len) that are not counted
/// in `batch_len`.
pub const BATCH_LEN_PREFIX_BYTES: usize = 12;
/// Smallest possible encoded record: six one-byte varints (length,
/// offset_delta, timestamp_delta, key length, value length, header count).
pub const RECORD_BYTES_MIN: usize = 6;

/// `producer_id` of a batch from a non-idempotent producer (-1 as u64).
pub const NO_PRODUCER_ID: u64 = u64::MAX;
/// `producer_epoch` of a batch from a non-idempotent producer (-1 as u16).
pub const NO_PRODUCER_EPOCH: u16 = u16::MAX;
/// `base_sequence` of a batch from a non-idempotent producer (-1 as u32).
pub const NO_SEQUENCE: u32 = u32::MAX;

/// Sequence numbers of idempotent producers live in `0..SEQUENCE_MODULUS`
/// and wrap to 0 (as Kafka's do), so they never reach [`NO_SEQUENCE`].
pub const SEQUENCE_MODULUS: u32 = 1 << 31;

/// The sequence `n` records after `sequence` (wrapping at
/// [`SEQUENCE_MODULUS`]). `next_sequence(base, record_count)` is the base
/// sequence of a producer's next batch; `next_sequence(base, count - 1)` its
/// last record's sequence.
pub fn next_sequence(sequence: u32, n: u32) -> u32 {
    ((u64::from(sequence) + u64::from(n)) % u64::from(SEQUENCE_MODULUS)) as u32
}

/// Mask of the compression codec bits in `attributes`.
pub const ATTR_CODEC_MASK: u16 = 0b0111;
/// Attribute bit: timestamps were set by the broker (log append time) rather
/// than by the producer (create time).
pub const ATTR_TIMESTAMP_LOG_APPEND: u16 = 0b1000;
/// Every attribute bit this version understands.
pub const ATTR_KNOWN_MASK: u16 = ATTR_CODEC_MASK | ATTR_TIMESTAMP_LOG_APPEND;

const _: () = assert!(BATCH_HEADER_BYTES == 57);
const _: () = assert!(BATCH_CRC_START == BATCH_LEN_PREFIX_BYTES + 4);
const _: () = assert!(BATCH_BYTES_MAX <= u32::MAX as usize);
// Every batch accepted uncompressed can also be sent compressed.
const _: () = assert!(DECOMPRESSED_BATCH_BYTES_MAX >= BATCH_BYTES_MAX);
const _: () = assert!(DECOMPRESSED_BATCH_BYTES_MAX <= u32::MAX as usize);

// Field positions in the header.
const POS_BASE_OFFSET: usize = 0;
const POS_BATCH_LEN: usize = 8;
const POS_CRC: usize = 12;
const POS_MAGIC: usize = 16;
const POS_ATTRIBUTES: usize = 17;
const POS_LAST_OFFSET_DELTA: usize = 19;
const POS_FIRST_TIMESTAMP: usize = 23;
const POS_MAX_TIMESTAMP: usize = 31;
const POS_PRODUCER_ID: usize = 39;
const POS_PRODUCER_EPOCH: usize = 47;
const POS_BASE_SEQUENCE: usize = 49;
const POS_RECORD_COUNT: usize = 53;
const _: () = assert!(POS_RECORD_COUNT + 4 == BATCH_HEADER_BYTES);

/// Why a batch (or a buffer of batches) was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// The buffer ends before the header or the batch it declares is complete.
    #[error("batch truncated: needed {needed} bytes, only {available} available")]
    Truncated {
        /// Bytes the header or batch needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// `batch_len` disagrees with the buffer, is smaller than a header or
    /// larger than [`BATCH_BYTES_MAX`].
    #[error(
        "bad batch length: header declares {declared} bytes in total, buffer holds {actual} (allowed {min}..={max})"
    )]
    BadLength {
        /// Total size the header declares (12 + batch_len).
        declared: u64,
        /// Size of the buffer given.
        actual: usize,
        /// Smallest allowed total size.
        min: usize,
        /// Largest allowed total size.
        max: usize,
    },
    /// The magic byte is neither [`BATCH_MAGIC`] nor
    /// [`BATCH_MAGIC_KAFKA_RECORDS`].
    #[error("bad batch magic {0}, expected {BATCH_MAGIC} or {BATCH_MAGIC_KAFKA_RECORDS}")]
    BadMagic(u8),
    /// The CRC stored in the header does not match the bytes.
    #[error("batch crc mismatch: header says {expected:#010x}, bytes hash to {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the bytes.
        actual: u32,
    },
    /// The codec bits name no codec, or attribute bits above bit 3 are set.
    #[error(
        "unsupported batch attributes {0:#06x}: bits 0-2 must name a codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) and only bit 3 (timestamp type) may be set above them"
    )]
    UnsupportedAttributes(u16),
    /// The records section of a compressed batch does not decompress, or
    /// inflates past [`DECOMPRESSED_BATCH_BYTES_MAX`].
    #[error("compressed records refused: {0}")]
    Decompression(#[from] CompressionError),
    /// The decompressed records of a compressed batch are malformed or
    /// disagree with the batch header; byte positions in `error` count from
    /// the start of the batch as if it were uncompressed (header + inflated
    /// records).
    #[error("in the {codec}-compressed records (positions as if uncompressed): {error}")]
    InCompressed {
        /// The batch's codec.
        codec: Compression,
        /// What was wrong with the inflated records.
        error: Box<BatchError>,
    },
    /// The header's record count disagrees with the records present.
    #[error("record count mismatch: header says {header}, batch holds {actual}")]
    RecordCountMismatch {
        /// Count from the header.
        header: u32,
        /// Records actually found (a lower bound when the body ran out).
        actual: u32,
    },
    /// A batch with no records (its last offset would be meaningless).
    #[error("batch holds no records")]
    Empty,
    /// A varint is truncated or overflows 64 bits.
    #[error("bad varint at byte {position} of the batch")]
    BadVarint {
        /// Byte position of the varint from the start of the batch.
        position: usize,
    },
    /// A record's length prefix runs past the batch or disagrees with its
    /// fields.
    #[error(
        "bad record length {length} at byte {position} of the batch ({remaining} bytes remain)"
    )]
    BadRecordLength {
        /// Byte position of the record from the start of the batch.
        position: usize,
        /// Length the record declares.
        length: u64,
        /// Bytes left in the batch after the length prefix.
        remaining: usize,
    },
    /// A key, value or header length is negative (other than key -1) or runs
    /// past its record.
    #[error("bad field length {length} at byte {position} of the batch")]
    BadFieldLength {
        /// Byte position of the length prefix from the start of the batch.
        position: usize,
        /// The length as declared.
        length: i64,
    },
    /// Record offset deltas must be 0, 1, 2, .. in order.
    #[error("record {index} has offset delta {actual}, expected {index}")]
    BadOffsetDelta {
        /// Index of the record in the batch.
        index: u32,
        /// Offset delta found.
        actual: u64,
    },
    /// The header's last_offset_delta is not record_count - 1.
    #[error("last_offset_delta is {header}, but the last record has delta {actual}")]
    LastOffsetDeltaMismatch {
        /// Value in the header.
        header: u32,
        /// Delta of the last record.
        actual: u32,
    },
    /// A header key is not UTF-8.
    #[error("record header key at byte {position} of the batch is not UTF-8")]
    BadHeaderKey {
        /// Byte position of the key bytes from the start of the batch.
        position: usize,
    },
    /// Bytes are left after the last record.
    #[error("{count} unexpected bytes after the last record at byte {position}")]
    TrailingBytes {
        /// Byte position of the first extra byte.
        position: usize,
        /// Number of extra bytes.
        count: usize,
    },
    /// The header's max timestamp is not the largest record timestamp.
    #[error(
        "batch header claims max timestamp {header} ms but its records' largest is {actual} ms"
    )]
    MaxTimestampMismatch {
        /// What the header says.
        header: i64,
        /// The largest record timestamp.
        actual: i64,
    },
}

/// A record header: a UTF-8 key and opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: Bytes,
}

/// A record as a producer hands it to [`BatchBuilder::push`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Create time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Optional key; records with the same key go to the same partition.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Bytes,
    /// Application headers, in order.
    pub headers: Vec<Header>,
}

/// A record read back from a batch, with its absolute offset. `key`, `value`
/// and header values are slices of the batch buffer (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Absolute offset: base_offset + offset_delta.
    pub offset: u64,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Key, if the record had one.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Bytes,
    /// Application headers, in order.
    pub headers: Vec<Header>,
}

/// The fixed 57-byte batch header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (stamped by the broker).
    pub base_offset: u64,
    /// Bytes after the batch_len field.
    pub batch_len: u32,
    /// CRC-32 over bytes 16.. of the batch.
    pub crc: u32,
    /// Format version.
    pub magic: u8,
    /// Codec and timestamp-type bits.
    pub attributes: u16,
    /// Offset delta of the last record (record_count - 1).
    pub last_offset_delta: u32,
    /// Timestamp of the first record.
    pub first_timestamp_ms: i64,
    /// Largest record timestamp.
    pub max_timestamp_ms: i64,
    /// Idempotent producer id or [`NO_PRODUCER_ID`].
    pub producer_id: u64,
    /// Producer epoch or [`NO_PRODUCER_EPOCH`].
    pub producer_epoch: u16,
    /// Sequence number of the first record or [`NO_SEQUENCE`].
    pub base_sequence: u32,
    /// Number of records.
    pub record_count: u32,
}

fn u16_at(buf: &[u8], pos: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[pos..pos + 2]);
    u16::from_le_bytes(b)
}
fn u32_at(buf: &[u8], pos: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[pos..pos + 4]);
    u32::from_le_bytes(b)
}
fn u64_at(buf: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[pos..pos + 8]);
    u64::from_le_bytes(b)
}

impl BatchHeader {
    /// Parses the fixed header from the start of `buf`. Checks only that 57
    /// bytes are present: no CRC, magic or length check (see [`validate`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: u64_at(buf, POS_BASE_OFFSET),
            batch_len: u32_at(buf, POS_BATCH_LEN),
            crc: u32_at(buf, POS_CRC),
            magic: buf[POS_MAGIC],
            attributes: u16_at(buf, POS_ATTRIBUTES),
            last_offset_delta: u32_at(buf, POS_LAST_OFFSET_DELTA),
            first_timestamp_ms: u64_at(buf, POS_FIRST_TIMESTAMP) as i64,
            max_timestamp_ms: u64_at(buf, POS_MAX_TIMESTAMP) as i64,
            producer_id: u64_at(buf, POS_PRODUCER_ID),
            producer_epoch: u16_at(buf, POS_PRODUCER_EPOCH),
            base_sequence: u32_at(buf, POS_BASE_SEQUENCE),
            record_count: u32_at(buf, POS_RECORD_COUNT),
        })
    }

    /// Size of the whole batch in bytes: 12 + batch_len.
    pub fn total_bytes(&self) -> usize {
        BATCH_LEN_PREFIX_BYTES + self.batch_len as usize
    }

    /// Offset of the last record: base_offset + last_offset_delta
    /// (saturating; a validated, broker-stamped batch never gets near u64::MAX).
    pub fn last_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.last_offset_delta))
    }

    /// Offset right after this batch.
    pub fn next_offset(&self) -> u64 {
        self.last_offset().saturating_add(1)
    }

    /// The record encoding the magic byte names ([`BatchError::BadMagic`]
    /// when it names none).
    pub fn encoding(&self) -> Result<RecordEncoding, BatchError> {
        RecordEncoding::from_magic(self.magic).ok_or(BatchError::BadMagic(self.magic))
    }

    /// True when the producer set `producer_id` (idempotent producer).
    pub fn has_producer(&self) -> bool {
        self.producer_id != NO_PRODUCER_ID
    }

    /// The codec named by the attribute bits 0-2, or
    /// [`BatchError::UnsupportedAttributes`] when they name none (5-7).
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attribute(self.attributes & ATTR_CODEC_MASK)
            .ok_or(BatchError::UnsupportedAttributes(self.attributes))
    }
}

/// The codec of the batch at the start of `buf`, read from its header
/// without any other check (see [`check_integrity`] for those).
pub fn batch_compression(buf: &[u8]) -> Result<Compression, BatchError> {
    BatchHeader::parse(buf)?.compression()
}

/// The record encoding of the batch at the start of `buf`, read from its
/// magic byte without any other check.
pub fn batch_encoding(buf: &[u8]) -> Result<RecordEncoding, BatchError> {
    BatchHeader::parse(buf)?.encoding()
}

/// Reads the total size (12 + batch_len) a batch declares from its first 12
/// bytes, without any other check. `None` when fewer than 12 bytes are given.
pub fn declared_total_bytes(buf: &[u8]) -> Option<u64> {
    if buf.len() < BATCH_LEN_PREFIX_BYTES {
        return None;
    }
    Some(BATCH_LEN_PREFIX_BYTES as u64 + u64::from(u32_at(buf, POS_BATCH_LEN)))
}

/// Checks that a declared total batch size is within
/// `BATCH_HEADER_BYTES..=BATCH_BYTES_MAX`.
fn check_declared(declared: u64, actual: usize) -> Result<usize, BatchError> {
    if declared < BATCH_HEADER_BYTES as u64 || declared > BATCH_BYTES_MAX as u64 {
        return Err(BatchError::BadLength {
            declared,
            actual,
            min: BATCH_HEADER_BYTES,
            max: BATCH_BYTES_MAX,
        });
    }
    Ok(declared as usize)
}

/// Checks one whole batch: `buf` must hold exactly one batch. Checks the
/// length, magic, attributes and CRC, then walks every record checking the
/// varints, the field lengths, that offset deltas are 0..record_count in
/// order, that record_count, last_offset_delta and max_timestamp_ms match,
/// and that nothing trails the last record. Never panics. Allocates only for
/// a compressed batch: its inflated records, at most
/// [`DECOMPRESSED_BATCH_BYTES_MAX`], checked the same way (errors found in
/// them come as [`BatchError::InCompressed`]).
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    check_batch(buf).map(|checked| checked.header)
}

/// What a full check of one batch learns on the way.
struct Checked {
    header: BatchHeader,
    /// A compressed batch's uncompressed view (header + inflated records).
    inflated: Option<Vec<u8>>,
    /// Byte range of the first record's key in the uncompressed view.
    first_key: Option<(usize, usize)>,
}

/// [`validate`], keeping the inflated records and the first key's place.
fn check_batch(buf: &[u8]) -> Result<Checked, BatchError> {
    let header = check_frame(buf)?;
    match header.compression()? {
        Compression::None => {
            let first_key = check_records(buf, &header)?;
            Ok(Checked {
                header,
                inflated: None,
                first_key,
            })
        }
        codec => {
            let inflated = inflate(buf, codec)?;
            let first_key =
                check_records(&inflated, &header).map_err(|e| in_compressed(codec, e))?;
            Ok(Checked {
                header,
                inflated: Some(inflated),
                first_key,
            })
        }
    }
}

/// Walks the records of a frame-checked, uncompressed view of a batch and
/// checks the header's max timestamp against them. Returns where the first
/// record's key is in `buf`, if it has one.
fn check_records(buf: &[u8], header: &BatchHeader) -> Result<Option<(usize, usize)>, BatchError> {
    let mut max_timestamp_ms = i64::MIN;
    let mut first_key = None;
    walk_records(buf, header, |r| {
        let ts = header.first_timestamp_ms.wrapping_add(r.timestamp_delta);
        max_timestamp_ms = max_timestamp_ms.max(ts);
        if r.offset_delta == 0 {
            first_key = r.key;
        }
        Ok(())
    })?;
    // The broker rolls segments and applies retention by the header's max
    // timestamp: it must be the records' own, not a free-standing claim.
    if max_timestamp_ms != header.max_timestamp_ms {
        return Err(BatchError::MaxTimestampMismatch {
            header: header.max_timestamp_ms,
            actual: max_timestamp_ms,
        });
    }
    Ok(first_key)
}

/// A batch that passed [`validate`], with what the check learned: its
/// header, its first record's key (for partitioning by key) and, for a
/// compressed batch, its inflated records, so that re-encoding it with
/// another codec ([`ValidBatch::recompress`]) does not inflate it again.
/// Only [`ValidBatch::check`] and [`ValidBatch::recompress`] make one:
/// holding one proves the batch was checked, so a log can queue it without
/// checking (and inflating) it a second time.
#[derive(Clone, Debug)]
pub struct ValidBatch {
    bytes: Bytes,
    header: BatchHeader,
    codec: Compression,
    /// The uncompressed view (header + records) when `bytes` is compressed;
    /// `None` when `bytes` is that view.
    inflated: Option<Bytes>,
    /// Byte range of the first record's key in the uncompressed view.
    first_key: Option<(usize, usize)>,
}

/// Why a checked batch could not be re-encoded with another codec.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecompressError {
    /// The codec's encoder failed.
    #[error("cannot recompress the batch: {0}")]
    Encode(#[from] CompressionError),
    /// The re-encoded batch is larger than any batch may be: incompressible
    /// records close to the limit, grown by `codec`'s framing. (Stored as
    /// `none`, records always fit: they inflated within
    /// [`DECOMPRESSED_BATCH_BYTES_MAX`], which is [`BATCH_BYTES_MAX`].)
    #[error(
        "the batch re-encoded as {codec} is {bytes} bytes, above the {max}-byte batch limit (BATCH_BYTES_MAX)"
    )]
    TooLarge {
        /// The codec asked for.
        codec: Compression,
        /// Size of the re-encoded batch.
        bytes: usize,
        /// [`BATCH_BYTES_MAX`].
        max: usize,
    },
}

impl ValidBatch {
    /// Checks one whole batch as [`validate`] does (a compressed one is
    /// inflated for it, within [`DECOMPRESSED_BATCH_BYTES_MAX`]).
    ///
    /// One difference: a magic-2 batch (Kafka's record encoding, as Kafka
    /// producers send it) whose header claims another max timestamp than
    /// its records' largest gets the records' own, as Kafka's broker fixes
    /// it up; a magic-1 batch is refused for it.
    pub fn check(bytes: Bytes) -> Result<ValidBatch, BatchError> {
        let checked = match check_batch(&bytes) {
            Err(e) if BatchHeader::parse(&bytes)?.magic == BATCH_MAGIC_KAFKA_RECORDS => {
                let actual = match &e {
                    BatchError::MaxTimestampMismatch { actual, .. } => *actual,
                    BatchError::InCompressed { error, .. } => match **error {
                        BatchError::MaxTimestampMismatch { actual, .. } => actual,
                        _ => return Err(e),
                    },
                    _ => return Err(e),
                };
                let mut fixed = Vec::from(bytes);
                fixed[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8]
                    .copy_from_slice(&actual.to_le_bytes());
                let attributes = u16_at(&fixed, POS_ATTRIBUTES);
                seal_header(&mut fixed, attributes);
                return ValidBatch::check_exact(Bytes::from(fixed));
            }
            other => other?,
        };
        ValidBatch::from_checked(bytes, checked)
    }

    /// [`ValidBatch::check`] without the max-timestamp fix-up.
    fn check_exact(bytes: Bytes) -> Result<ValidBatch, BatchError> {
        let checked = check_batch(&bytes)?;
        ValidBatch::from_checked(bytes, checked)
    }

    fn from_checked(bytes: Bytes, checked: Checked) -> Result<ValidBatch, BatchError> {
        let Checked {
            header,
            inflated,
            first_key,
        } = checked;
        Ok(ValidBatch {
            codec: header.compression()?,
            bytes,
            header,
            inflated: inflated.map(Bytes::from),
            first_key,
        })
    }

    /// The batch's header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, as checked.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The batch's codec.
    pub fn compression(&self) -> Compression {
        self.codec
    }

    /// The first record's key, if it has one.
    pub fn first_key(&self) -> Option<&[u8]> {
        let (start, end) = self.first_key?;
        self.view().get(start..end)
    }

    /// The bytes and header, for queueing on a log (the inflated records, if
    /// any, are dropped).
    pub fn into_parts(self) -> (Bytes, BatchHeader) {
        (self.bytes, self.header)
    }

    /// The batch with its records section re-encoded by `codec` at `level`
    /// (`Compression::None`: stored plain); itself when it already uses
    /// `codec`. The records, offsets, timestamps, timestamp type and
    /// producer id, epoch and sequence stay exactly as they were; the length,
    /// codec bits and CRC are recomputed.
    pub fn recompress(
        self,
        codec: Compression,
        level: Level,
    ) -> Result<ValidBatch, RecompressError> {
        if codec == self.codec {
            return Ok(self);
        }
        let view = self.inflated.clone().unwrap_or_else(|| self.bytes.clone());
        let (header_bytes, records) = view.split_at(BATCH_HEADER_BYTES);
        let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
        buf.extend_from_slice(header_bytes);
        if codec == Compression::None {
            buf.extend_from_slice(records);
        } else {
            compression::compress_into(codec, level, records, &mut buf)?;
        }
        if buf.len() > BATCH_BYTES_MAX {
            return Err(RecompressError::TooLarge {
                codec,
                bytes: buf.len(),
                max: BATCH_BYTES_MAX,
            });
        }
        let attributes = (self.header.attributes & !ATTR_CODEC_MASK) | codec.attribute();
        let (batch_len, crc) = seal_header(&mut buf, attributes);
        let bytes = Bytes::from(buf);
        let header = BatchHeader {
            batch_len,
            crc,
            attributes,
            ..self.header
        };
        // Assert in pairs: what was re-encoded checks as the original did.
        debug_assert_eq!(
            validate(&bytes).map(|h| h.record_count),
            Ok(self.header.record_count)
        );
        Ok(ValidBatch {
            bytes,
            header,
            codec,
            inflated: (codec != Compression::None).then_some(view),
            first_key: self.first_key,
        })
    }

    /// The uncompressed view: header + records.
    fn view(&self) -> &[u8] {
        self.inflated.as_deref().unwrap_or(&self.bytes)
    }
}

/// Fills in the fields of a batch header that depend on its body: the
/// length (from `buf`'s size), the attributes, and last the CRC. Returns
/// the length and CRC written.
fn seal_header(buf: &mut [u8], attributes: u16) -> (u32, u32) {
    let batch_len = (buf.len() - BATCH_LEN_PREFIX_BYTES) as u32;
    buf[POS_BATCH_LEN..POS_BATCH_LEN + 4].copy_from_slice(&batch_len.to_le_bytes());
    buf[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&attributes.to_le_bytes());
    let crc = crc32fast::hash(&buf[BATCH_CRC_START..]);
    buf[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    (batch_len, crc)
}

/// The uncompressed view of a compressed batch: its header followed by its
/// inflated records, so the record walk reads it as an uncompressed batch.
/// Inflation stops at [`DECOMPRESSED_BATCH_BYTES_MAX`] in all.
fn inflate(buf: &[u8], codec: Compression) -> Result<Vec<u8>, BatchError> {
    let (header, compressed) =
        buf.split_at_checked(BATCH_HEADER_BYTES)
            .ok_or(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            })?;
    let mut view = Vec::with_capacity(BATCH_HEADER_BYTES + compressed.len());
    view.extend_from_slice(header);
    let limit = DECOMPRESSED_BATCH_BYTES_MAX - BATCH_HEADER_BYTES;
    match compression::decompress_into(codec, compressed, limit, &mut view) {
        Ok(()) => Ok(view),
        // Report the limit on the whole inflated batch, the named one.
        Err(CompressionError::TooLarge { codec, .. }) => {
            Err(BatchError::Decompression(CompressionError::TooLarge {
                codec,
                limit: DECOMPRESSED_BATCH_BYTES_MAX,
            }))
        }
        Err(e) => Err(BatchError::Decompression(e)),
    }
}

fn in_compressed(codec: Compression, error: BatchError) -> BatchError {
    BatchError::InCompressed {
        codec,
        error: Box::new(error),
    }
}

/// Checks one whole batch's length, magic, attributes, record count (non-zero)
/// and CRC, without walking the records and without decompressing them. For
/// data that was fully [`validate`]d before it was stored (the broker's read
/// path): the CRC proves the bytes are the ones that passed.
pub fn check_integrity(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    check_frame(buf)
}

/// Length, magic, attributes and CRC checks shared by [`validate`] and
/// [`decode_records`].
fn check_frame(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let declared = BATCH_LEN_PREFIX_BYTES as u64 + u64::from(header.batch_len);
    let total = check_declared(declared, buf.len())?;
    if total != buf.len() {
        return Err(BatchError::BadLength {
            declared,
            actual: buf.len(),
            min: BATCH_HEADER_BYTES,
            max: BATCH_BYTES_MAX,
        });
    }
    header.encoding()?;
    let actual = crc32fast::hash(&buf[BATCH_CRC_START..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    if header.attributes & !ATTR_KNOWN_MASK != 0 {
        return Err(BatchError::UnsupportedAttributes(header.attributes));
    }
    header.compression()?;
    if header.record_count == 0 {
        return Err(BatchError::Empty);
    }
    Ok(header)
}

/// Field ranges of one record, as byte positions in the batch.
struct RawRecord {
    offset_delta: u32,
    timestamp_delta: i64,
    key: Option<(usize, usize)>,
    value: (usize, usize),
    headers_start: usize,
    header_count: u64,
}

/// A bounded cursor over the record area of one batch.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    encoding: RecordEncoding,
}

impl Cursor<'_> {
    /// A length that may not be negative: a uvarint in skiff's encoding, a
    /// zigzag varint in Kafka's; `null_ok` reads Kafka's -1 (null) as 0.
    fn length(&mut self, null_ok: bool) -> Result<u64, BatchError> {
        match self.encoding {
            RecordEncoding::Skiff => self.uvarint(),
            RecordEncoding::Kafka => {
                let position = self.pos;
                match self.varint()? {
                    n if n >= 0 => Ok(n as u64),
                    -1 if null_ok => Ok(0),
                    n => Err(BatchError::BadFieldLength {
                        position,
                        length: n,
                    }),
                }
            }
        }
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        let b = *self.buf[..self.end]
            .get(self.pos)
            .ok_or(BatchError::BadVarint { position: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64, BatchError> {
        let position = self.pos;
        let (v, used) = varint::get_uvarint(&self.buf[self.pos..self.end])
            .map_err(|_: VarintError| BatchError::BadVarint { position })?;
        self.pos += used;
        Ok(v)
    }

    fn varint(&mut self) -> Result<i64, BatchError> {
        let position = self.pos;
        let (v, used) = varint::get_varint(&self.buf[self.pos..self.end])
            .map_err(|_: VarintError| BatchError::BadVarint { position })?;
        self.pos += used;
        Ok(v)
    }

    /// Takes `len` bytes, returning their range; `len_pos` is where the length
    /// prefix started (for the error).
    fn take(&mut self, len: u64, len_pos: usize) -> Result<(usize, usize), BatchError> {
        let remaining = (self.end - self.pos) as u64;
        if len > remaining {
            return Err(BatchError::BadFieldLength {
                position: len_pos,
                length: i64::try_from(len).unwrap_or(i64::MAX),
            });
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok((start, self.pos))
    }

    /// Reads one header pair; returns (key range, value range).
    #[allow(clippy::type_complexity)]
    fn header(&mut self) -> Result<((usize, usize), (usize, usize)), BatchError> {
        let key_len_pos = self.pos;
        let key_len = self.length(false)?;
        let key = self.take(key_len, key_len_pos)?;
        if std::str::from_utf8(&self.buf[key.0..key.1]).is_err() {
            return Err(BatchError::BadHeaderKey { position: key.0 });
        }
        let value_len_pos = self.pos;
        let value_len = self.length(true)?;
        let value = self.take(value_len, value_len_pos)?;
        Ok((key, value))
    }
}

/// Walks the records of a frame-checked batch, calling `each` with the
/// record's fields; headers are checked here and re-read by the callback if
/// it wants them.
fn walk_records(
    buf: &[u8],
    header: &BatchHeader,
    mut each: impl FnMut(&RawRecord) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    let encoding = header.encoding()?;
    let mut pos = BATCH_HEADER_BYTES;
    let end = buf.len();
    let mut index: u32 = 0;
    while pos < end {
        if index == header.record_count {
            return Err(BatchError::TrailingBytes {
                position: pos,
                count: end - pos,
            });
        }
        let mut outer = Cursor {
            buf,
            pos,
            end,
            encoding,
        };
        let record_pos = pos;
        let length = match outer.length(false) {
            Err(BatchError::BadFieldLength { length, .. }) => {
                return Err(BatchError::BadRecordLength {
                    position: record_pos,
                    length: length as u64,
                    remaining: end - outer.pos,
                });
            }
            other => other?,
        };
        let remaining = end - outer.pos;
        if length > remaining as u64 || (length as usize) < RECORD_BYTES_MIN - 1 {
            return Err(BatchError::BadRecordLength {
                position: record_pos,
                length,
                remaining,
            });
        }
        let record_end = outer.pos + length as usize;
        let mut c = Cursor {
            buf,
            pos: outer.pos,
            end: record_end,
            encoding,
        };
        let (offset_delta, timestamp_delta) = match encoding {
            RecordEncoding::Skiff => {
                let offset_delta = c.uvarint()?;
                (offset_delta, c.varint()?)
            }
            RecordEncoding::Kafka => {
                let _attributes = c.byte()?;
                let timestamp_delta = c.varint()?;
                // A negative delta reads as a huge one: refused below.
                (c.varint()? as u64, timestamp_delta)
            }
        };
        if offset_delta != u64::from(index) {
            return Err(BatchError::BadOffsetDelta {
                index,
                actual: offset_delta,
            });
        }
        let key_len_pos = c.pos;
        let key_len = c.varint()?;
        let key = match key_len {
            -1 => None,
            n if n >= 0 => Some(c.take(n as u64, key_len_pos)?),
            n => {
                return Err(BatchError::BadFieldLength {
                    position: key_len_pos,
                    length: n,
                });
            }
        };
        let value_len_pos = c.pos;
        let value_len = c.length(true)?;
        let value = c.take(value_len, value_len_pos)?;
        let header_count_pos = c.pos;
        let header_count = c.length(false)?;
        let headers_start = c.pos;
        // Each header takes at least two bytes; a larger count cannot fit.
        if header_count > ((record_end - c.pos) / 2) as u64 {
            return Err(BatchError::BadFieldLength {
                position: header_count_pos,
                length: i64::try_from(header_count).unwrap_or(i64::MAX),
            });
        }
        for _ in 0..header_count {
            c.header()?;
        }
        if c.pos != record_end {
            return Err(BatchError::BadRecordLength {
                position: record_pos,
                length,
                remaining,
            });
        }
        each(&RawRecord {
            offset_delta: index,
            timestamp_delta,
            key,
            value,
            headers_start,
            header_count,
        })?;
        pos = record_end;
        index += 1;
    }
    if index != header.record_count {
        return Err(BatchError::RecordCountMismatch {
            header: header.record_count,
            actual: index,
        });
    }
    let last = index - 1; // index >= 1: record_count != 0 was checked.
    if header.last_offset_delta != last {
        return Err(BatchError::LastOffsetDeltaMismatch {
            header: header.last_offset_delta,
            actual: last,
        });
    }
    Ok(())
}

/// Decodes every record of one whole batch after checking it like
/// [`validate`] (but for the max timestamp). Keys, values and header values
/// are zero-copy slices of `batch`, or of its inflated records when it is
/// compressed (inflated within [`DECOMPRESSED_BATCH_BYTES_MAX`]).
pub fn decode_records(batch: &Bytes) -> Result<Vec<DecodedRecord>, BatchError> {
    let header = check_frame(batch)?;
    match header.compression()? {
        Compression::None => decode_view(batch, &header),
        codec => {
            let inflated = Bytes::from(inflate(batch, codec)?);
            decode_view(&inflated, &header).map_err(|e| in_compressed(codec, e))
        }
    }
}

/// Decodes the records of an uncompressed view of a frame-checked batch.
fn decode_view(batch: &Bytes, header: &BatchHeader) -> Result<Vec<DecodedRecord>, BatchError> {
    // Bounded by what the bytes can hold, not by what the header claims.
    let capacity =
        (header.record_count as usize).min((batch.len() - BATCH_HEADER_BYTES) / RECORD_BYTES_MIN);
    let mut out = Vec::with_capacity(capacity);
    let encoding = header.encoding()?;
    walk_records(batch, header, |raw| {
        let mut headers = Vec::with_capacity(raw.header_count as usize);
        let mut c = Cursor {
            buf: batch,
            pos: raw.headers_start,
            end: batch.len(),
            encoding,
        };
        for _ in 0..raw.header_count {
            let (k, v) = c.header()?;
            let key = std::str::from_utf8(&batch[k.0..k.1])
                .map_err(|_| BatchError::BadHeaderKey { position: k.0 })?
                .to_owned();
            headers.push(Header {
                key,
                value: batch.slice(v.0..v.1),
            });
        }
        out.push(DecodedRecord {
            offset: header.base_offset.wrapping_add(u64::from(raw.offset_delta)),
            timestamp_ms: header.first_timestamp_ms.wrapping_add(raw.timestamp_delta),
            key: raw.key.map(|(s, e)| batch.slice(s..e)),
            value: batch.slice(raw.value.0..raw.value.1),
            headers,
        });
        Ok(())
    })?;
    Ok(out)
}

/// A record as [`visit_records`] lends it: slices of the batch (or of its
/// inflated records), valid during the callback. Cheaper than
/// [`decode_records`] where the record is re-encoded at once: nothing is
/// allocated per record.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: u32,
    /// Timestamp relative to the batch's first timestamp.
    pub timestamp_delta: i64,
    /// Key, if the record had one.
    pub key: Option<&'a [u8]>,
    /// Payload.
    pub value: &'a [u8],
    /// Number of application headers.
    pub header_count: u64,
    buf: &'a [u8],
    headers_start: usize,
    encoding: RecordEncoding,
}

impl<'a> RecordView<'a> {
    /// The application headers in order: (UTF-8 name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let buf = self.buf;
        let mut c = Cursor {
            buf,
            pos: self.headers_start,
            end: buf.len(),
            encoding: self.encoding,
        };
        // The walk checked every header (lengths, UTF-8) before lending
        // the view, so these reads succeed; a failure only ends the list.
        (0..self.header_count).map_while(move |_| {
            let (k, v) = c.header().ok()?;
            Some((std::str::from_utf8(&buf[k.0..k.1]).ok()?, &buf[v.0..v.1]))
        })
    }
}

/// Checks one whole batch as [`decode_records`] does and lends each record
/// to `each` in order, without allocating per record (a compressed batch is
/// inflated once, within [`DECOMPRESSED_BATCH_BYTES_MAX`]). Returns the
/// batch header. `each` may have seen some records when an error is
/// returned.
pub fn visit_records(
    batch: &[u8],
    mut each: impl FnMut(&RecordView<'_>),
) -> Result<BatchHeader, BatchError> {
    let header = check_frame(batch)?;
    let encoding = header.encoding()?;
    let mut visit = |buf: &[u8]| {
        walk_records(buf, &header, |raw| {
            each(&RecordView {
                offset_delta: raw.offset_delta,
                timestamp_delta: raw.timestamp_delta,
                key: raw.key.map(|(s, e)| &buf[s..e]),
                value: &buf[raw.value.0..raw.value.1],
                header_count: raw.header_count,
                buf,
                headers_start: raw.headers_start,
                encoding,
            });
            Ok(())
        })
    };
    match header.compression()? {
        Compression::None => visit(batch)?,
        codec => {
            let inflated = inflate(batch, codec)?;
            visit(&inflated).map_err(|e| in_compressed(codec, e))?;
        }
    }
    Ok(header)
}

/// A whole batch from its header fields and its records section (already
/// encoded, and compressed when `header`'s codec bits say so), copied after
/// the header; `batch_len` and `crc` are computed, whatever `header` says.
/// For a front end that has a records section in hand (a Kafka batch's);
/// the log checks the result as any produced batch.
pub fn assemble(header: &BatchHeader, records: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    buf.resize(BATCH_HEADER_BYTES, 0);
    let h = header;
    buf[POS_BASE_OFFSET..POS_BASE_OFFSET + 8].copy_from_slice(&h.base_offset.to_le_bytes());
    buf[POS_MAGIC] = h.magic;
    buf[POS_LAST_OFFSET_DELTA..POS_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&h.last_offset_delta.to_le_bytes());
    buf[POS_FIRST_TIMESTAMP..POS_FIRST_TIMESTAMP + 8]
        .copy_from_slice(&h.first_timestamp_ms.to_le_bytes());
    buf[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8]
        .copy_from_slice(&h.max_timestamp_ms.to_le_bytes());
    buf[POS_PRODUCER_ID..POS_PRODUCER_ID + 8].copy_from_slice(&h.producer_id.to_le_bytes());
    buf[POS_PRODUCER_EPOCH..POS_PRODUCER_EPOCH + 2]
        .copy_from_slice(&h.producer_epoch.to_le_bytes());
    buf[POS_BASE_SEQUENCE..POS_BASE_SEQUENCE + 4].copy_from_slice(&h.base_sequence.to_le_bytes());
    buf[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&h.record_count.to_le_bytes());
    buf.extend_from_slice(records);
    seal_header(&mut buf, h.attributes);
    Bytes::from(buf)
}

/// One whole batch with its records in `encoding`: the same records,
/// offsets, timestamps, timestamp type, codec and producer id, epoch and
/// sequence; itself when it is in `encoding` already. Checks the batch as
/// [`decode_records`] does. For readers that know only one encoding (a
/// fetch of an older version, a Kafka fetch of a skiff-encoded batch).
pub fn reencode(batch: &Bytes, encoding: RecordEncoding) -> Result<Bytes, BatchError> {
    let header = check_frame(batch)?;
    if header.encoding()? == encoding {
        return Ok(batch.clone());
    }
    let mut builder = BatchBuilder::new().with_encoding(encoding).with_producer(
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
    );
    for r in decode_records(batch)? {
        builder.push(Record {
            timestamp_ms: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r.headers,
        });
    }
    let codec = header.compression()?;
    let mut buf = match builder.build_compressed(codec, Level::Default) {
        Ok(b) => Vec::from(b),
        Err(e) => return Err(BatchError::Decompression(e)),
    };
    stamp_base_offset(&mut buf, header.base_offset);
    if header.attributes & ATTR_TIMESTAMP_LOG_APPEND != 0 {
        seal_header(&mut buf, header.attributes);
    }
    Ok(Bytes::from(buf))
}

/// Writes `base_offset` into the first 8 bytes of a batch. The CRC does not
/// cover these bytes, so nothing else changes.
///
/// # Panics
/// If `buf` is shorter than 8 bytes: callers stamp only validated batches.
pub fn stamp_base_offset(buf: &mut [u8], base_offset: u64) {
    buf[POS_BASE_OFFSET..POS_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_le_bytes());
}

/// Accumulates records and encodes them into one batch.
///
/// Records are encoded as they are pushed, so [`BatchBuilder::encoded_bytes`]
/// is exact and cheap and [`BatchBuilder::build`] only writes the header.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    producer_id: u64,
    producer_epoch: u16,
    base_sequence: u32,
    first_timestamp_ms: i64,
    max_timestamp_ms: i64,
    count: u32,
    encoding: RecordEncoding,
    /// Header space (zeroed) followed by the encoded records.
    buf: Vec<u8>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder for a non-idempotent producer.
    pub fn new() -> Self {
        BatchBuilder {
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            first_timestamp_ms: 0,
            max_timestamp_ms: i64::MIN,
            count: 0,
            encoding: RecordEncoding::Skiff,
            buf: vec![0u8; BATCH_HEADER_BYTES],
        }
    }

    /// Encodes the records in `encoding` (skiff's own unless told).
    ///
    /// # Panics
    /// If records were already pushed: one batch has one encoding.
    pub fn with_encoding(mut self, encoding: RecordEncoding) -> Self {
        assert!(self.count == 0, "the encoding is chosen before any record");
        self.encoding = encoding;
        self
    }

    /// Sets the idempotent-producer fields.
    pub fn with_producer(
        mut self,
        producer_id: u64,
        producer_epoch: u16,
        base_sequence: u32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Number of records pushed.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was pushed. An empty batch is refused by
    /// [`validate`], so do not send one.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes of the batch [`BatchBuilder::build`] would return now.
    pub fn encoded_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Bytes `record` would add to [`BatchBuilder::encoded_bytes`] if pushed
    /// now, so a producer can decide to start a new batch first.
    pub fn record_bytes(&self, record: &Record) -> usize {
        let first = if self.count == 0 {
            record.timestamp_ms
        } else {
            self.first_timestamp_ms
        };
        let body = self.record_body_len(record, first);
        self.length_len(body as u64) + body
    }

    /// Bytes of a length (or count) field in this builder's encoding.
    fn length_len(&self, n: u64) -> usize {
        match self.encoding {
            RecordEncoding::Skiff => varint::uvarint_len(n),
            RecordEncoding::Kafka => varint::varint_len(n as i64),
        }
    }

    /// Writes a length (or count) field in this builder's encoding.
    fn put_length(&mut self, n: u64) {
        match self.encoding {
            RecordEncoding::Skiff => varint::put_uvarint(&mut self.buf, n),
            RecordEncoding::Kafka => varint::put_varint(&mut self.buf, n as i64),
        }
    }

    fn record_body_len(&self, record: &Record, first_timestamp_ms: i64) -> usize {
        let mut n = self.length_len(u64::from(self.count));
        n += varint::varint_len(record.timestamp_ms.wrapping_sub(first_timestamp_ms));
        if self.encoding == RecordEncoding::Kafka {
            n += 1; // the record's attributes byte
        }
        n += match &record.key {
            None => varint::varint_len(-1),
            Some(k) => varint::varint_len(k.len() as i64) + k.len(),
        };
        n += self.length_len(record.value.len() as u64) + record.value.len();
        n += self.length_len(record.headers.len() as u64);
        for h in &record.headers {
            n += self.length_len(h.key.len() as u64) + h.key.len();
            n += self.length_len(h.value.len() as u64) + h.value.len();
        }
        n
    }

    /// Appends a record. Its offset delta is its index in the batch.
    pub fn push(&mut self, record: Record) {
        if self.count == 0 {
            self.first_timestamp_ms = record.timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(record.timestamp_ms);
        let body = self.record_body_len(&record, self.first_timestamp_ms);
        self.buf.reserve(self.length_len(body as u64) + body);
        self.put_length(body as u64);
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.first_timestamp_ms);
        match self.encoding {
            RecordEncoding::Skiff => {
                varint::put_uvarint(&mut self.buf, u64::from(self.count));
                varint::put_varint(&mut self.buf, timestamp_delta);
            }
            RecordEncoding::Kafka => {
                self.buf.push(0); // attributes
                varint::put_varint(&mut self.buf, timestamp_delta);
                varint::put_varint(&mut self.buf, i64::from(self.count));
            }
        }
        match &record.key {
            None => varint::put_varint(&mut self.buf, -1),
            Some(k) => {
                varint::put_varint(&mut self.buf, k.len() as i64);
                self.buf.extend_from_slice(k);
            }
        }
        self.put_length(record.value.len() as u64);
        self.buf.extend_from_slice(&record.value);
        self.put_length(record.headers.len() as u64);
        for h in &record.headers {
            self.put_length(h.key.len() as u64);
            self.buf.extend_from_slice(h.key.as_bytes());
            self.put_length(h.value.len() as u64);
            self.buf.extend_from_slice(&h.value);
        }
        self.count += 1;
    }

    /// Encodes the batch: base_offset 0, CRC filled in. A batch larger than
    /// [`BATCH_BYTES_MAX`] or with no records encodes but is refused by
    /// [`validate`].
    pub fn build(mut self) -> Bytes {
        let mut buf = std::mem::take(&mut self.buf);
        self.write_header(&mut buf, Compression::None);
        Bytes::from(buf)
    }

    /// Encodes the batch with its records section compressed by `codec` at
    /// `level` (see [`crate::compression`]); `Compression::None` is
    /// [`BatchBuilder::build`]. The producer compresses once per batch, here.
    ///
    /// [`BatchBuilder::encoded_bytes`] is the size before compression: a
    /// batch whose uncompressed size passes [`DECOMPRESSED_BATCH_BYTES_MAX`]
    /// encodes but is refused by [`validate`], as is one whose compressed
    /// size passes [`BATCH_BYTES_MAX`]. Fails only on a level outside the
    /// codec's range or an encoder failure.
    pub fn build_compressed(
        self,
        codec: Compression,
        level: Level,
    ) -> Result<Bytes, CompressionError> {
        if codec == Compression::None {
            codec.check_level(level)?;
            return Ok(self.build());
        }
        let records = self.buf.get(BATCH_HEADER_BYTES..).unwrap_or_default();
        let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + records.len() / 2);
        buf.resize(BATCH_HEADER_BYTES, 0);
        compression::compress_into(codec, level, records, &mut buf)?;
        self.write_header(&mut buf, codec);
        Ok(Bytes::from(buf))
    }

    /// Fills in the header of a batch whose records (compressed by `codec`
    /// or not) follow the header space in `buf`, CRC last.
    fn write_header(&self, buf: &mut [u8], codec: Compression) {
        let f = self;
        let max_ts = if f.count == 0 { 0 } else { f.max_timestamp_ms };
        buf[POS_BASE_OFFSET..POS_BASE_OFFSET + 8].copy_from_slice(&0u64.to_le_bytes());
        buf[POS_MAGIC] = f.encoding.magic();
        let last_delta = f.count.saturating_sub(1);
        buf[POS_LAST_OFFSET_DELTA..POS_LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&last_delta.to_le_bytes());
        buf[POS_FIRST_TIMESTAMP..POS_FIRST_TIMESTAMP + 8]
            .copy_from_slice(&f.first_timestamp_ms.to_le_bytes());
        buf[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8].copy_from_slice(&max_ts.to_le_bytes());
        buf[POS_PRODUCER_ID..POS_PRODUCER_ID + 8].copy_from_slice(&f.producer_id.to_le_bytes());
        buf[POS_PRODUCER_EPOCH..POS_PRODUCER_EPOCH + 2]
            .copy_from_slice(&f.producer_epoch.to_le_bytes());
        buf[POS_BASE_SEQUENCE..POS_BASE_SEQUENCE + 4]
            .copy_from_slice(&f.base_sequence.to_le_bytes());
        buf[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&f.count.to_le_bytes());
        seal_header(buf, codec.attribute());
    }
}

/// Splits a buffer of whole batches laid back to back (a fetch response) into
/// one `Bytes` per batch, without copying. Only the framing (length) is
/// checked here; call [`decode_records`] or [`validate`] on each batch for the
/// CRC and the records. A trailing partial batch is an error, since the
/// broker only serves whole batches. After the first error the iterator ends.
#[derive(Debug, Clone)]
pub struct BatchIter {
    buf: Bytes,
    failed: bool,
}

impl BatchIter {
    /// Iterates over the batches in `buf`.
    pub fn new(buf: Bytes) -> Self {
        BatchIter { buf, failed: false }
    }
}

impl Iterator for BatchIter {
    type Item = Result<Bytes, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let available = self.buf.len();
        let result = match declared_total_bytes(&self.buf) {
            None => Err(BatchError::Truncated {
                needed: BATCH_LEN_PREFIX_BYTES,
                available,
            }),
            Some(declared) => match check_declared(declared, available) {
                Err(e) => Err(e),
                Ok(total) if total > available => Err(BatchError::Truncated {
                    needed: total,
                    available,
                }),
                Ok(total) => Ok(self.buf.split_to(total)),
            },
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(ts: i64, key: Option<&[u8]>, value: &[u8]) -> Record {
        Record {
            timestamp_ms: ts,
            key: key.map(Bytes::copy_from_slice),
            value: Bytes::copy_from_slice(value),
            headers: vec![],
        }
    }

    fn sample() -> Bytes {
        let mut b = BatchBuilder::new().with_producer(7, 2, 100);
        b.push(rec(1_000, Some(b"k1"), b"hello"));
        b.push(Record {
            timestamp_ms: 990,
            key: None,
            value: Bytes::from_static(b"world"),
            headers: vec![Header {
                key: "h".into(),
                value: Bytes::from_static(b"v"),
            }],
        });
        b.push(rec(1_005, Some(b""), b""));
        b.build()
    }

    /// Rewrites the CRC so a test can reach the checks behind it.
    fn fix_crc(buf: &mut [u8]) {
        let crc = crc32fast::hash(&buf[BATCH_CRC_START..]);
        buf[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// `visit_records` lends what `decode_records` returns, compressed or
    /// not, and refuses what it refuses.
    #[test]
    fn visit_records_lends_the_decoded_records() {
        for codec in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let mut b = BatchBuilder::new();
            for r in decode_records(&sample()).expect("decodes") {
                b.push(Record {
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                });
            }
            let batch = b.build_compressed(codec, Level::Default).expect("builds");
            let want = decode_records(&batch).expect("decodes");
            let mut got = Vec::new();
            let header = visit_records(&batch, |r| {
                got.push(DecodedRecord {
                    offset: u64::from(r.offset_delta),
                    timestamp_ms: 1_000 + r.timestamp_delta,
                    key: r.key.map(Bytes::copy_from_slice),
                    value: Bytes::copy_from_slice(r.value),
                    headers: r
                        .headers()
                        .map(|(k, v)| Header {
                            key: k.to_owned(),
                            value: Bytes::copy_from_slice(v),
                        })
                        .collect(),
                });
            })
            .expect("visits");
            assert_eq!(header.record_count, 3);
            assert_eq!(got, want, "{codec}");
        }
        let mut damaged = sample().to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(visit_records(&damaged, |_| {}).is_err());
    }

    #[test]
    fn header_fields() {
        let batch = sample();
        let h = validate(&batch).expect("valid");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.first_timestamp_ms, 1_000);
        assert_eq!(h.max_timestamp_ms, 1_005);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 2, 100)
        );
        assert_eq!(h.total_bytes(), batch.len());
        let mut stamped = batch.to_vec();
        stamp_base_offset(&mut stamped, 42);
        let h = validate(&stamped).expect("stamping keeps the crc valid");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
        let recs = decode_records(&Bytes::from(stamped)).expect("decodes");
        assert_eq!(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [42, 43, 44]
        );
        assert_eq!(recs[1].timestamp_ms, 990);
        assert_eq!(recs[1].key, None);
        assert_eq!(recs[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(recs[1].headers[0].key, "h");
    }

    #[test]
    fn empty_batch_refused() {
        let b = BatchBuilder::new().build();
        assert_eq!(b.len(), BATCH_HEADER_BYTES);
        assert!(matches!(validate(&b), Err(BatchError::Empty)));
    }

    #[test]
    fn every_truncation_rejected() {
        let batch = sample();
        for cut in 0..batch.len() {
            assert!(validate(&batch[..cut]).is_err(), "cut at {cut} accepted");
            let mut iter = BatchIter::new(batch.slice(..cut));
            if cut > 0 {
                assert!(
                    matches!(iter.next(), Some(Err(_))),
                    "iter accepted cut {cut}"
                );
            }
            assert!(iter.next().is_none());
        }
    }

    #[test]
    fn every_bit_flip_rejected() {
        let batch = sample();
        for byte in BATCH_CRC_START..batch.len() {
            for bit in 0..8 {
                let mut b = batch.to_vec();
                b[byte] ^= 1 << bit;
                assert!(validate(&b).is_err(), "flip byte {byte} bit {bit} accepted");
            }
        }
        // Flipping a bit of the stored CRC itself.
        let mut b = batch.to_vec();
        b[POS_CRC] ^= 1;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn lying_max_timestamp_rejected() {
        let good = sample();
        let real = BatchHeader::parse(&good).expect("header").max_timestamp_ms;
        for claim in [real + 1, real - 1, i64::MAX, i64::MIN] {
            let mut b = good.to_vec();
            b[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8].copy_from_slice(&claim.to_le_bytes());
            fix_crc(&mut b);
            assert_eq!(
                validate(&b).expect_err("lying max timestamp"),
                BatchError::MaxTimestampMismatch {
                    header: claim,
                    actual: real
                }
            );
        }
    }

    #[test]
    fn lying_record_count_rejected() {
        for count in [2u32, 4, 1_000_000, u32::MAX] {
            let mut b = sample().to_vec();
            b[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&count.to_le_bytes());
            fix_crc(&mut b);
            let err = validate(&b).expect_err("lying count");
            assert!(
                matches!(
                    err,
                    BatchError::RecordCountMismatch { .. } | BatchError::TrailingBytes { .. }
                ),
                "{err}"
            );
            assert!(decode_records(&Bytes::from(b)).is_err());
        }
    }

    #[test]
    fn bad_lengths_and_magic_rejected() {
        let batch = sample();
        let mut b = batch.to_vec();
        b[POS_BATCH_LEN..POS_BATCH_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(validate(&b), Err(BatchError::BadLength { .. })));
        let mut b = batch.to_vec();
        b[POS_MAGIC] = 9;
        fix_crc(&mut b);
        assert!(matches!(validate(&b), Err(BatchError::BadMagic(9))));
        // Codec numbers 5-7 name no codec (1-4 are gzip, snappy, lz4, zstd);
        // bits above the timestamp type are unknown.
        for attributes in [5u16, 6, 7, 0x10, 0x8000, 0x0f] {
            let mut b = batch.to_vec();
            b[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&attributes.to_le_bytes());
            fix_crc(&mut b);
            assert_eq!(
                validate(&b),
                Err(BatchError::UnsupportedAttributes(attributes))
            );
            assert_eq!(
                check_integrity(&b),
                Err(BatchError::UnsupportedAttributes(attributes))
            );
            assert!(matches!(
                decode_records(&Bytes::from(b)),
                Err(BatchError::UnsupportedAttributes(a)) if a == attributes
            ));
        }
        // A known codec bit on records that are not compressed with it.
        let mut b = batch.to_vec();
        b[POS_ATTRIBUTES] = 1; // gzip
        fix_crc(&mut b);
        assert!(matches!(
            validate(&b),
            Err(BatchError::Decompression(CompressionError::Corrupt {
                codec: Compression::Gzip,
                ..
            }))
        ));
        let mut b = batch.to_vec();
        b[POS_LAST_OFFSET_DELTA] = 5;
        fix_crc(&mut b);
        assert!(matches!(
            validate(&b),
            Err(BatchError::LastOffsetDeltaMismatch {
                header: 5,
                actual: 2
            })
        ));
        // Two batches in one buffer is not "one whole batch".
        let mut two = batch.to_vec();
        two.extend_from_slice(&batch);
        assert!(matches!(validate(&two), Err(BatchError::BadLength { .. })));
    }

    /// Builds a batch whose single record body is `body` (after its length).
    fn raw_batch(body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_BYTES];
        varint::put_uvarint(&mut b, body.len() as u64);
        b.extend_from_slice(body);
        let len = (b.len() - BATCH_LEN_PREFIX_BYTES) as u32;
        b[POS_BATCH_LEN..POS_BATCH_LEN + 4].copy_from_slice(&len.to_le_bytes());
        b[POS_MAGIC] = BATCH_MAGIC;
        b[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&1u32.to_le_bytes());
        fix_crc(&mut b);
        b
    }

    #[test]
    fn hand_built_records() {
        // offset 0, ts 0, key none (-1 zigzag = 1), value len 1 'x', 0 headers
        let ok = raw_batch(&[0, 0, 1, 1, b'x', 0]);
        assert!(validate(&ok).is_ok());
        // Huge value length.
        let mut body = vec![0, 0, 1];
        varint::put_uvarint(&mut body, u64::MAX);
        body.push(0);
        assert!(matches!(
            validate(&raw_batch(&body)),
            Err(BatchError::BadFieldLength { .. })
        ));
        // Key length -2.
        assert!(matches!(
            validate(&raw_batch(&[0, 0, 3, 0, 0])),
            Err(BatchError::BadFieldLength { length: -2, .. })
        ));
        // Overlong varint timestamp delta.
        let mut body = vec![0];
        body.extend_from_slice(&[0xff; 11]);
        body.extend_from_slice(&[1, 0, 0]);
        assert!(matches!(
            validate(&raw_batch(&body)),
            Err(BatchError::BadVarint { .. })
        ));
        // Offset delta 1 for the first record.
        assert!(matches!(
            validate(&raw_batch(&[1, 0, 1, 0, 0])),
            Err(BatchError::BadOffsetDelta {
                index: 0,
                actual: 1
            })
        ));
        // Huge header count.
        let mut body = vec![0, 0, 1, 0];
        varint::put_uvarint(&mut body, u64::MAX);
        assert!(validate(&raw_batch(&body)).is_err());
        // Non-UTF-8 header key.
        assert!(matches!(
            validate(&raw_batch(&[0, 0, 1, 0, 1, 1, 0xff, 0])),
            Err(BatchError::BadHeaderKey { .. })
        ));
        // Record length longer than its fields.
        let mut b = raw_batch(&[0, 0, 1, 0, 0, 0]);
        b.push(0);
        let len = (b.len() - BATCH_LEN_PREFIX_BYTES) as u32;
        b[POS_BATCH_LEN..POS_BATCH_LEN + 4].copy_from_slice(&len.to_le_bytes());
        b[BATCH_HEADER_BYTES] = 6;
        fix_crc(&mut b);
        assert!(matches!(
            validate(&b),
            Err(BatchError::BadRecordLength { .. })
        ));
    }

    #[test]
    fn iter_splits_whole_batches() {
        let a = sample();
        let mut buf = a.to_vec();
        buf.extend_from_slice(&a);
        let all = Bytes::from(buf);
        let got: Vec<_> = BatchIter::new(all.clone()).collect();
        assert_eq!(got.len(), 2);
        assert!(
            got.iter()
                .all(|b| b.as_ref().map(|b| b == &a).unwrap_or(false))
        );
        let mut partial = BatchIter::new(all.slice(..all.len() - 1));
        assert!(matches!(partial.next(), Some(Ok(_))));
        assert!(matches!(
            partial.next(),
            Some(Err(BatchError::Truncated { .. }))
        ));
        assert!(partial.next().is_none());
        assert_eq!(BatchIter::new(Bytes::new()).count(), 0);
    }

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Compresses the records section of an uncompressed batch (valid or
    /// hand-made) with `codec`, as a producer would: attributes, length and
    /// CRC follow.
    fn compress_batch(plain: &[u8], codec: Compression) -> Vec<u8> {
        let payload = compression::compress(codec, Level::Default, &plain[BATCH_HEADER_BYTES..])
            .expect("compresses");
        with_payload(plain, codec, &payload)
    }

    /// `plain`'s header with `payload` as its records section, marked as
    /// `codec`; length and CRC fixed.
    fn with_payload(plain: &[u8], codec: Compression, payload: &[u8]) -> Vec<u8> {
        let mut b = plain[..BATCH_HEADER_BYTES].to_vec();
        b.extend_from_slice(payload);
        let len = (b.len() - BATCH_LEN_PREFIX_BYTES) as u32;
        b[POS_BATCH_LEN..POS_BATCH_LEN + 4].copy_from_slice(&len.to_le_bytes());
        b[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&codec.attribute().to_le_bytes());
        fix_crc(&mut b);
        b
    }

    /// 64 KiB of JSON events with keys and a header, as a producer would
    /// batch them.
    fn json_builder() -> BatchBuilder {
        let mut b = BatchBuilder::new().with_producer(3, 1, 0);
        for (i, value) in crate::testdata::JsonEvents::new(5)
            .fill(64 * 1024)
            .into_iter()
            .enumerate()
        {
            b.push(Record {
                timestamp_ms: 1_700_000_000_000 + (i as i64 % 7) * 3,
                key: Some(Bytes::from(format!("ord-{}", i % 50))),
                value,
                headers: vec![Header {
                    key: "content-type".into(),
                    value: Bytes::from_static(b"application/json"),
                }],
            });
        }
        b
    }

    fn assert_in_compressed(err: &BatchError, codec: Compression) -> &BatchError {
        match err {
            BatchError::InCompressed { codec: c, error } if *c == codec => error,
            other => panic!("expected an error in the {codec} records, got {other}"),
        }
    }

    #[test]
    fn recompression_past_the_batch_limit_is_refused() {
        // One incompressible record filling a plain batch to the limit: lz4's
        // framing makes it larger than any batch may be.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let value: Vec<u8> = (0..BATCH_BYTES_MAX - BATCH_HEADER_BYTES - 16)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut b = BatchBuilder::new();
        b.push(rec(1, None, &value));
        let plain = ValidBatch::check(b.build()).expect("fits");
        assert!(plain.bytes().len() <= BATCH_BYTES_MAX);
        match plain.recompress(Compression::Lz4, Level::Default) {
            Err(RecompressError::TooLarge { codec, bytes, max }) => {
                assert_eq!((codec, max), (Compression::Lz4, BATCH_BYTES_MAX));
                assert!(bytes > BATCH_BYTES_MAX);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn compressed_batches_round_trip() {
        let plain = sample();
        let plain_h = validate(&plain).expect("valid");
        let plain_recs = decode_records(&plain).expect("decodes");
        let builder = {
            let mut b = BatchBuilder::new().with_producer(7, 2, 100);
            for r in decode_records(&plain).expect("decodes") {
                b.push(Record {
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                });
            }
            b
        };
        assert_eq!(builder.clone().build(), plain);
        assert_eq!(
            builder
                .clone()
                .build_compressed(Compression::None, Level::Default),
            Ok(plain.clone())
        );
        for codec in CODECS {
            let batch = builder
                .clone()
                .build_compressed(codec, Level::Default)
                .expect("builds");
            assert_eq!(batch_compression(&batch), Ok(codec));
            let h = validate(&batch).expect("valid");
            assert_eq!(h.attributes & ATTR_CODEC_MASK, codec.attribute());
            assert_eq!(h.compression(), Ok(codec));
            assert_eq!(check_integrity(&batch), Ok(h));
            // The header is the uncompressed batch's but for length, CRC and
            // codec bits.
            assert_eq!(
                BatchHeader {
                    batch_len: plain_h.batch_len,
                    crc: plain_h.crc,
                    attributes: 0,
                    ..h
                },
                plain_h
            );
            let mut stamped = batch.to_vec();
            stamp_base_offset(&mut stamped, 42);
            let recs = decode_records(&Bytes::from(stamped)).expect("decodes");
            assert_eq!(recs.len(), plain_recs.len());
            for (r, p) in recs.iter().zip(&plain_recs) {
                assert_eq!(r.offset, p.offset + 42);
                assert_eq!(
                    (&r.key, &r.value, &r.headers),
                    (&p.key, &p.value, &p.headers)
                );
                assert_eq!(r.timestamp_ms, p.timestamp_ms);
            }
        }
        // JSON compresses; the records stay the same.
        let b = json_builder();
        let plain = b.clone().build();
        let plain_recs = decode_records(&plain).expect("decodes");
        for codec in CODECS {
            let batch = b
                .clone()
                .build_compressed(codec, Level::Default)
                .expect("builds");
            assert!(
                batch.len() < plain.len() / 2,
                "{codec}: {} of {}",
                batch.len(),
                plain.len()
            );
            validate(&batch).expect("valid");
            assert_eq!(decode_records(&batch).expect("decodes"), plain_recs);
        }
        // A level outside the codec's range is refused.
        assert!(matches!(
            b.build_compressed(Compression::Zstd, Level::Exact(99)),
            Err(CompressionError::BadLevel { .. })
        ));
    }

    #[test]
    fn raw_and_xerial_snappy_batches_both_decode() {
        let plain = sample();
        let raw = snap::raw::Encoder::new()
            .compress_vec(&plain[BATCH_HEADER_BYTES..])
            .expect("raw snappy");
        let raw_batch = Bytes::from(with_payload(&plain, Compression::Snappy, &raw));
        let xerial_batch = Bytes::from(compress_batch(&plain, Compression::Snappy));
        assert_eq!(
            xerial_batch.get(BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + 8),
            Some(&compression::SNAPPY_XERIAL_MAGIC[..])
        );
        let want = decode_records(&plain).expect("decodes");
        for batch in [raw_batch, xerial_batch] {
            validate(&batch).expect("valid");
            assert_eq!(decode_records(&batch).expect("decodes"), want);
        }
    }

    #[test]
    fn check_integrity_does_not_decompress() {
        // A CRC-valid gzip batch whose payload is not gzip: the cheap check
        // passes (the broker validated it before storing it), the full one
        // does not.
        let b = with_payload(&sample(), Compression::Gzip, b"not gzip at all");
        assert!(check_integrity(&b).is_ok());
        let err = validate(&b).expect_err("not gzip");
        assert!(
            matches!(
                err,
                BatchError::Decompression(CompressionError::Corrupt {
                    codec: Compression::Gzip,
                    ..
                })
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("gzip payload does not decompress"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_compressed_payload_with_valid_crc_refused() {
        let plain = json_builder().build();
        for codec in CODECS {
            let good = compress_batch(&plain, codec);
            // Break the codec's own framing: the magic, or for snappy the
            // first xerial block length.
            let at = BATCH_HEADER_BYTES + if codec == Compression::Snappy { 16 } else { 0 };
            let mut b = good.clone();
            b[at] ^= 0xff;
            fix_crc(&mut b);
            let err = validate(&b).expect_err("corrupt");
            assert!(
                matches!(&err, BatchError::Decompression(CompressionError::Corrupt { codec: c, .. }) if *c == codec),
                "{codec}: {err}"
            );
            assert!(err.to_string().contains("does not decompress"), "{err}");
            assert_eq!(decode_records(&Bytes::from(b)).expect_err("corrupt"), err);
            // Any byte of the payload overwritten: never a panic, and what
            // validates also decodes to record_count records.
            let step = ((good.len() - BATCH_HEADER_BYTES) / 300).max(1);
            let mut refused = 0;
            let mut tried = 0;
            for pos in (BATCH_HEADER_BYTES..good.len()).step_by(step) {
                let mut b = good.clone();
                b[pos] ^= 0x55;
                fix_crc(&mut b);
                tried += 1;
                match validate(&b) {
                    Ok(h) => {
                        let recs = decode_records(&Bytes::from(b)).expect("validated decodes");
                        assert_eq!(recs.len(), h.record_count as usize);
                    }
                    Err(e) => {
                        refused += 1;
                        assert!(
                            matches!(
                                e,
                                BatchError::Decompression(_) | BatchError::InCompressed { .. }
                            ),
                            "{codec} at {pos}: {e}"
                        );
                    }
                }
            }
            // Changes that break the codec's framing or the records are
            // refused; a changed literal inside a value may still decode to
            // well-formed records (snappy and lz4 carry no checksum here, the
            // outer CRC is what guards the bytes in transit and on disk).
            assert!(refused * 4 > tried, "{codec}: {refused} of {tried} refused");
        }
    }

    #[test]
    fn compressed_records_that_disagree_with_the_header_refused() {
        let plain = sample();
        for codec in CODECS {
            // record_count off by one, either way.
            for count in [2u32, 4] {
                let mut p = plain.to_vec();
                p[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&count.to_le_bytes());
                let b = compress_batch(&p, codec);
                let err = validate(&b).expect_err("lying count");
                let inner = assert_in_compressed(&err, codec);
                assert!(
                    matches!(
                        inner,
                        BatchError::RecordCountMismatch { .. } | BatchError::TrailingBytes { .. }
                    ),
                    "{err}"
                );
                assert!(
                    err.to_string().contains(&format!("{codec}-compressed")),
                    "{err}"
                );
                assert_eq!(
                    decode_records(&Bytes::from(b)).expect_err("lying count"),
                    err
                );
            }
            let mut p = plain.to_vec();
            p[POS_LAST_OFFSET_DELTA] = 5;
            let err = validate(&compress_batch(&p, codec)).expect_err("last delta");
            assert_eq!(
                assert_in_compressed(&err, codec),
                &BatchError::LastOffsetDeltaMismatch {
                    header: 5,
                    actual: 2
                }
            );
            let mut p = plain.to_vec();
            p[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8].copy_from_slice(&7i64.to_le_bytes());
            let err = validate(&compress_batch(&p, codec)).expect_err("max timestamp");
            assert_eq!(
                assert_in_compressed(&err, codec),
                &BatchError::MaxTimestampMismatch {
                    header: 7,
                    actual: 1_005
                }
            );
            // Offset delta 1 for the first record, inside the payload.
            let err = validate(&compress_batch(&raw_batch(&[1, 0, 1, 0, 0]), codec))
                .expect_err("offset delta");
            assert_eq!(
                assert_in_compressed(&err, codec),
                &BatchError::BadOffsetDelta {
                    index: 0,
                    actual: 1
                }
            );
            // A payload that inflates to nothing.
            let err = validate(&compress_batch(&plain[..BATCH_HEADER_BYTES], codec))
                .expect_err("no records");
            assert!(
                matches!(
                    assert_in_compressed(&err, codec),
                    BatchError::RecordCountMismatch {
                        header: 3,
                        actual: 0
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn compression_bombs_refused_within_the_limit() {
        // 100 MiB of zeros as 1 MiB gzip members / zstd frames / lz4
        // frames back to back: a few hundred KiB that would inflate to
        // 100 MiB; decoding stops at DECOMPRESSED_BATCH_BYTES_MAX.
        let mib = vec![0u8; 1024 * 1024];
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let one = compression::compress(codec, Level::Default, &mib).expect("compresses");
            let b = with_payload(&sample(), codec, &one.repeat(100));
            let want = BatchError::Decompression(CompressionError::TooLarge {
                codec,
                limit: DECOMPRESSED_BATCH_BYTES_MAX,
            });
            assert_eq!(validate(&b), Err(want.clone()));
            assert_eq!(decode_records(&Bytes::from(b)), Err(want.clone()));
            assert!(
                want.to_string()
                    .contains("inflates past the limit of 16777216 bytes")
            );
        }
        // A raw snappy block claiming 4 GiB.
        let mut lie = Vec::new();
        varint::put_uvarint(&mut lie, u64::from(u32::MAX));
        lie.extend_from_slice(&[0, 1]);
        assert!(matches!(
            validate(&with_payload(&sample(), Compression::Snappy, &lie)),
            Err(BatchError::Decompression(CompressionError::TooLarge {
                codec: Compression::Snappy,
                limit: DECOMPRESSED_BATCH_BYTES_MAX
            }))
        ));
        // An honest batch whose records are larger than the limit builds,
        // but is refused the same way.
        let mut big = BatchBuilder::new();
        for _ in 0..17 {
            big.push(rec(0, None, &mib));
        }
        assert!(big.encoded_bytes() > DECOMPRESSED_BATCH_BYTES_MAX);
        let b = big
            .build_compressed(Compression::Lz4, Level::Default)
            .expect("builds");
        assert!(b.len() < BATCH_BYTES_MAX);
        assert!(matches!(
            validate(&b),
            Err(BatchError::Decompression(CompressionError::TooLarge { .. }))
        ));
    }

    #[test]
    fn every_truncation_of_a_compressed_batch_rejected() {
        let plain = sample();
        for codec in CODECS {
            let batch = Bytes::from(compress_batch(&plain, codec));
            for cut in 0..batch.len() {
                assert!(
                    validate(&batch[..cut]).is_err(),
                    "{codec}: cut at {cut} accepted"
                );
                assert!(decode_records(&batch.slice(..cut)).is_err());
            }
            // Cut inside the payload with length and CRC made to agree.
            for cut in BATCH_HEADER_BYTES..batch.len() {
                let b = with_payload(&batch, codec, &batch[BATCH_HEADER_BYTES..cut]);
                let err = validate(&b).expect_err("cut payload");
                assert!(
                    matches!(
                        err,
                        BatchError::Decompression(_) | BatchError::InCompressed { .. }
                    ),
                    "{codec} payload cut at {cut}: {err}"
                );
                assert!(decode_records(&Bytes::from(b)).is_err());
            }
        }
    }

    /// A magic-2 batch whose header claims another max timestamp than its
    /// records' own gets theirs (as Kafka's broker fixes it up), plain or
    /// compressed; a magic-1 batch is refused for it.
    #[test]
    fn a_kafka_encoded_batch_gets_its_records_max_timestamp() {
        for codec in [Compression::None, Compression::Lz4] {
            for encoding in [RecordEncoding::Kafka, RecordEncoding::Skiff] {
                let mut b = BatchBuilder::new().with_encoding(encoding);
                for ts in [10, 30, 20] {
                    b.push(Record {
                        timestamp_ms: ts,
                        key: None,
                        value: Bytes::from_static(b"v"),
                        headers: vec![],
                    });
                }
                let mut sent = b.build_compressed(codec, Level::Default).unwrap().to_vec();
                sent[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8]
                    .copy_from_slice(&9_999i64.to_le_bytes());
                fix_crc(&mut sent);
                let checked = ValidBatch::check(Bytes::from(sent));
                match encoding {
                    RecordEncoding::Kafka => {
                        let checked = checked.expect("fixed up");
                        assert_eq!(checked.header().max_timestamp_ms, 30);
                        assert_eq!(validate(checked.bytes()).unwrap().max_timestamp_ms, 30);
                    }
                    RecordEncoding::Skiff => assert!(checked.is_err(), "{codec}"),
                }
            }
        }
    }

    fn arb_encoding() -> impl Strategy<Value = RecordEncoding> {
        prop_oneof![Just(RecordEncoding::Skiff), Just(RecordEncoding::Kafka)]
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(
                ("[a-z€]{0,8}", proptest::collection::vec(any::<u8>(), 0..16)),
                0..3,
            ),
        )
            .prop_map(|(ts, key, value, headers)| Record {
                timestamp_ms: ts,
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| Header {
                        key: k,
                        value: Bytes::from(v),
                    })
                    .collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trip(
            records in proptest::collection::vec(arb_record(), 1..12),
            base in any::<u32>(),
            encoding in arb_encoding(),
        ) {
            let mut b = BatchBuilder::new().with_encoding(encoding);
            for r in &records {
                let before = b.encoded_bytes();
                let predicted = b.record_bytes(r);
                b.push(r.clone());
                prop_assert_eq!(b.encoded_bytes(), before + predicted);
            }
            let size = b.encoded_bytes();
            let mut buf = b.build().to_vec();
            prop_assert_eq!(buf.len(), size);
            stamp_base_offset(&mut buf, u64::from(base));
            let h = validate(&buf).expect("valid");
            prop_assert_eq!(h.record_count as usize, records.len());
            prop_assert_eq!(h.max_timestamp_ms, records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0));
            let decoded = decode_records(&Bytes::from(buf)).expect("decodes");
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(d.offset, u64::from(base) + i as u64);
                prop_assert_eq!(d.timestamp_ms, r.timestamp_ms);
                prop_assert_eq!(&d.key, &r.key);
                prop_assert_eq!(&d.value, &r.value);
                prop_assert_eq!(&d.headers, &r.headers);
            }
        }

        #[test]
        fn compressed_round_trip(
            records in proptest::collection::vec(arb_record(), 1..12),
            base in any::<u32>(),
            codec in proptest::sample::select(Compression::ALL.to_vec()),
            encoding in arb_encoding(),
        ) {
            let mut b = BatchBuilder::new().with_encoding(encoding);
            for r in &records {
                b.push(r.clone());
            }
            let mut buf = b.build_compressed(codec, Level::Default).expect("builds").to_vec();
            stamp_base_offset(&mut buf, u64::from(base));
            let h = validate(&buf).expect("valid");
            prop_assert_eq!(h.compression(), Ok(codec));
            prop_assert_eq!(h.record_count as usize, records.len());
            let decoded = decode_records(&Bytes::from(buf)).expect("decodes");
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(d.offset, u64::from(base) + i as u64);
                prop_assert_eq!(d.timestamp_ms, r.timestamp_ms);
                prop_assert_eq!(&d.key, &r.key);
                prop_assert_eq!(&d.value, &r.value);
                prop_assert_eq!(&d.headers, &r.headers);
            }
        }

        #[test]
        fn recompression_keeps_records_and_header(
            records in proptest::collection::vec(arb_record(), 1..12),
            from in proptest::sample::select(Compression::ALL.to_vec()),
            to in proptest::sample::select(Compression::ALL.to_vec()),
            log_append_time in any::<bool>(),
        ) {
            let mut b = BatchBuilder::new().with_producer(9, 4, 77);
            for r in &records {
                b.push(r.clone());
            }
            let mut sent = b.build_compressed(from, Level::Default).expect("builds").to_vec();
            if log_append_time {
                let attributes = from.attribute() | ATTR_TIMESTAMP_LOG_APPEND;
                sent[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&attributes.to_le_bytes());
                fix_crc(&mut sent);
            }
            let sent = Bytes::from(sent);
            let checked = ValidBatch::check(sent.clone()).expect("valid");
            prop_assert_eq!(checked.first_key(), records[0].key.as_deref());
            let stored = checked.recompress(to, Level::Default).expect("recompresses");
            prop_assert_eq!(stored.compression(), to);
            prop_assert_eq!(stored.first_key(), records[0].key.as_deref());
            let before = validate(&sent).expect("valid");
            let after = validate(stored.bytes()).expect("recompressed batch is valid");
            prop_assert_eq!(after.compression(), Ok(to));
            prop_assert_eq!(after.attributes & ATTR_TIMESTAMP_LOG_APPEND, before.attributes & ATTR_TIMESTAMP_LOG_APPEND);
            prop_assert_eq!(
                (after.producer_id, after.producer_epoch, after.base_sequence, after.record_count),
                (before.producer_id, before.producer_epoch, before.base_sequence, before.record_count)
            );
            prop_assert_eq!(
                (after.first_timestamp_ms, after.max_timestamp_ms, after.last_offset_delta),
                (before.first_timestamp_ms, before.max_timestamp_ms, before.last_offset_delta)
            );
            prop_assert_eq!(&after, stored.header());
            let decoded = decode_records(stored.bytes()).expect("decodes");
            prop_assert_eq!(decoded, decode_records(&sent).expect("decodes"));
            if from == to {
                prop_assert_eq!(stored.bytes(), &sent);
            }
        }

        /// Re-encoding into the other record encoding and back keeps every
        /// record and header field; the way back gives the original bytes.
        #[test]
        fn reencoding_keeps_records_and_header(
            records in proptest::collection::vec(arb_record(), 1..12),
            codec in proptest::sample::select(Compression::ALL.to_vec()),
            from in arb_encoding(),
            base in any::<u32>(),
            log_append_time in any::<bool>(),
        ) {
            let to = match from {
                RecordEncoding::Skiff => RecordEncoding::Kafka,
                RecordEncoding::Kafka => RecordEncoding::Skiff,
            };
            let mut b = BatchBuilder::new().with_encoding(from).with_producer(9, 4, 77);
            for r in &records {
                b.push(r.clone());
            }
            let mut sent = b.build_compressed(codec, Level::Default).expect("builds").to_vec();
            stamp_base_offset(&mut sent, u64::from(base));
            if log_append_time {
                let attributes = codec.attribute() | ATTR_TIMESTAMP_LOG_APPEND;
                sent[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&attributes.to_le_bytes());
                fix_crc(&mut sent);
            }
            let sent = Bytes::from(sent);
            let other = reencode(&sent, to).expect("re-encodes");
            let (before, after) = (validate(&sent).expect("valid"), validate(&other).expect("valid"));
            prop_assert_eq!(after.encoding(), Ok(to));
            prop_assert_eq!(
                BatchHeader { magic: before.magic, batch_len: 0, crc: 0, ..after },
                BatchHeader { batch_len: 0, crc: 0, ..before }
            );
            prop_assert_eq!(decode_records(&other).expect("decodes"), decode_records(&sent).expect("decodes"));
            prop_assert_eq!(reencode(&other, from).expect("back"), sent.clone());
            prop_assert_eq!(reencode(&sent, from).expect("same"), sent);
        }

        #[test]
        fn garbage_payload_with_valid_crc_never_panics(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            codec in proptest::sample::select(Compression::ALL.to_vec()),
            encoding in arb_encoding(),
        ) {
            let mut b = with_payload(&sample(), codec, &payload);
            b[POS_MAGIC] = encoding.magic();
            fix_crc(&mut b);
            if let Ok(h) = validate(&b) {
                let recs = decode_records(&Bytes::from(b)).expect("validated decodes");
                prop_assert_eq!(recs.len(), h.record_count as usize);
            } else {
                prop_assert!(decode_records(&Bytes::from(b)).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate(&bytes);
            let _ = decode_records(&Bytes::from(bytes.clone()));
            for item in BatchIter::new(Bytes::from(bytes)) {
                let _ = item;
            }
        }

        #[test]
        fn mutated_body_with_fixed_crc_never_panics(pos in 0usize..400, val in any::<u8>()) {
            let mut b = sample().to_vec();
            let p = BATCH_HEADER_BYTES + pos % (b.len() - BATCH_HEADER_BYTES);
            b[p] = val;
            fix_crc(&mut b);
            let _ = validate(&b);
            let _ = decode_records(&Bytes::from(b));
        }
    }
}
