//! One log, two protocols: translation between Kafka's record batch (magic
//! 2) and skiff's ([`skiff_protocol::batch`]) at the edge of the Kafka front
//! end. A Kafka produce batch is checked (length, magic, CRC-32C), its
//! records inflated and decoded, and re-encoded as one skiff batch with the
//! same keys, values, headers, timestamps, producer id, epoch and base
//! sequence, compressed with the same codec (skiff numbers codecs as Kafka
//! does). A Kafka fetch re-encodes each stored skiff batch as one Kafka
//! batch with the same offsets (the Kafka base offset is skiff's).
//!
//! Kafka batch layout (big-endian; byte positions from the batch start):
//!
//! ```text
//!  0 baseOffset int64 | 8 batchLength int32 (bytes after it) | 12 partitionLeaderEpoch int32
//! 16 magic int8 (2)   | 17 crc uint32 (CRC-32C over bytes 21..)
//! 21 attributes int16 (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//! 23 lastOffsetDelta int32 | 27 baseTimestamp int64 | 35 maxTimestamp int64
//! 43 producerId int64 | 51 producerEpoch int16 | 53 baseSequence int32 | 57 count int32
//! 61 records: length varint, attributes int8, timestampDelta varlong,
//!    offsetDelta varint, key (varint length, -1 null), value (the same),
//!    header count varint, per header key (varint length, UTF-8) and value
//! ```
//!
//! What skiff cannot hold is refused, never changed silently: transactional
//! and control batches (transactions are out of scope), offset deltas other
//! than 0, 1, 2, ... (only compacted logs have gaps, and producers never
//! send them), header names that are not UTF-8. Two things Kafka can say
//! and skiff cannot are mapped: a null value (a tombstone; skiff's topics
//! have no compaction) and a null header value are stored as empty.
//!
//! Invariants: decoding never panics and never allocates more than the
//! input holds, or, for a compressed batch, than
//! [`DECOMPRESSED_BATCH_BYTES_MAX`] (skiff's own bounded decoders inflate
//! it); record counts are checked against the bytes present before any
//! reservation.

use bytes::Bytes;
use skiff_protocol::batch::{
    self, ATTR_TIMESTAMP_LOG_APPEND, BATCH_HEADER_BYTES, BatchBuilder, BatchError, BatchHeader,
    DECOMPRESSED_BATCH_BYTES_MAX, Header, Record, RecordView,
};
use skiff_protocol::compression::{self, Compression, CompressionError, Level};
use skiff_protocol::varint;

/// Bytes of a Kafka batch before its records.
pub const KAFKA_BATCH_HEADER_BYTES: usize = 61;
/// Bytes of baseOffset and batchLength, not counted in batchLength.
const KAFKA_LEN_PREFIX_BYTES: usize = 12;
/// The record batch format this front end reads and writes.
const KAFKA_MAGIC: i8 = 2;
/// Smallest encoded Kafka record: length, attributes, timestampDelta,
/// offsetDelta, key length, value length, header count (one byte each).
const KAFKA_RECORD_BYTES_MIN: usize = 7;

const POS_BATCH_LEN: usize = 8;
const POS_MAGIC: usize = 16;
const POS_CRC: usize = 17;
const POS_ATTRIBUTES: usize = 21;
const POS_LAST_OFFSET_DELTA: usize = 23;
const POS_BASE_TIMESTAMP: usize = 27;
const POS_MAX_TIMESTAMP: usize = 35;
const POS_PRODUCER_ID: usize = 43;
const POS_PRODUCER_EPOCH: usize = 51;
const POS_BASE_SEQUENCE: usize = 53;
const POS_RECORD_COUNT: usize = 57;
const _: () = assert!(POS_RECORD_COUNT + 4 == KAFKA_BATCH_HEADER_BYTES);

const ATTR_CODEC_MASK: i16 = 0b111;
const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// Why a Kafka batch could not be translated (or a skiff batch read back).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TranslateError {
    /// The bytes end before the header or the batch it declares.
    #[error("kafka batch truncated: needed {needed} bytes, {available} present")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// batchLength disagrees with the bytes sent.
    #[error("kafka batch declares {declared} bytes but {actual} were sent")]
    LengthMismatch {
        /// 12 + batchLength.
        declared: i64,
        /// Bytes of the batch in the request.
        actual: usize,
    },
    /// Not magic 2 (message sets v0 and v1 are not served).
    #[error("kafka batch magic {0} is not supported (only magic 2)")]
    Magic(i8),
    /// The CRC-32C does not match.
    #[error("kafka batch CRC-32C mismatch: header {header:#010x}, computed {computed:#010x}")]
    Crc {
        /// The stored CRC.
        header: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A codec number outside 0..=4.
    #[error("kafka batch attributes {0:#06x} name no known compression codec")]
    Codec(i16),
    /// Transactional or control batches (transactions are not served).
    #[error("transactional and control batches are not supported (attributes {0:#06x})")]
    Transactional(i16),
    /// The record count is not positive or exceeds what the bytes hold.
    #[error("kafka batch record count {count} is invalid for {bytes} bytes of records")]
    RecordCount {
        /// The header's count.
        count: i32,
        /// Bytes of records.
        bytes: usize,
    },
    /// A record is malformed at this position of the (inflated) records.
    #[error("kafka record {index} is malformed: {reason}")]
    Record {
        /// Index of the record in the batch.
        index: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Bytes left after the declared records.
    #[error("{0} bytes left after the last kafka record")]
    TrailingBytes(usize),
    /// lastOffsetDelta disagrees with the records.
    #[error("kafka batch lastOffsetDelta {header} disagrees with its {count} records")]
    LastOffsetDelta {
        /// The header's value.
        header: i32,
        /// Records in the batch.
        count: usize,
    },
    /// The compressed records do not inflate (or inflate past the limit).
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The skiff batch (being served as Kafka's) is invalid.
    #[error(transparent)]
    Batch(#[from] BatchError),
}

fn be_i16(b: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([b[pos], b[pos + 1]])
}
fn be_i32(b: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}
fn be_i64(b: &[u8], pos: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    i64::from_be_bytes(a)
}

/// Splits the `records` field of a produce partition into whole Kafka
/// batches (zero-copy slices), checking only each batch's length.
pub fn split_batches(records: &Bytes) -> Result<Vec<Bytes>, TranslateError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < KAFKA_LEN_PREFIX_BYTES {
            return Err(TranslateError::Truncated {
                needed: KAFKA_LEN_PREFIX_BYTES,
                available: rest.len(),
            });
        }
        let declared = KAFKA_LEN_PREFIX_BYTES as i64 + i64::from(be_i32(rest, POS_BATCH_LEN));
        if declared < KAFKA_BATCH_HEADER_BYTES as i64 {
            return Err(TranslateError::LengthMismatch {
                declared,
                actual: rest.len(),
            });
        }
        let total = declared as usize;
        if total > rest.len() {
            return Err(TranslateError::Truncated {
                needed: total,
                available: rest.len(),
            });
        }
        out.push(records.slice(pos..pos + total));
        pos += total;
    }
    Ok(out)
}

/// A Kafka batch's header fields skiff keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaBatchInfo {
    /// Compression codec of the records.
    pub codec: Compression,
    /// Records in the batch.
    pub record_count: i32,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when none.
    pub base_sequence: i32,
}

/// Checks one whole Kafka batch (length, magic, CRC-32C, attributes) and
/// returns its header fields; the records are not looked at.
pub fn check_kafka_batch(b: &[u8]) -> Result<KafkaBatchInfo, TranslateError> {
    if b.len() < KAFKA_BATCH_HEADER_BYTES {
        return Err(TranslateError::Truncated {
            needed: KAFKA_BATCH_HEADER_BYTES,
            available: b.len(),
        });
    }
    let declared = KAFKA_LEN_PREFIX_BYTES as i64 + i64::from(be_i32(b, POS_BATCH_LEN));
    if declared != b.len() as i64 {
        return Err(TranslateError::LengthMismatch {
            declared,
            actual: b.len(),
        });
    }
    let magic = b[POS_MAGIC] as i8;
    if magic != KAFKA_MAGIC {
        return Err(TranslateError::Magic(magic));
    }
    let header = be_i32(b, POS_CRC) as u32;
    let computed = crc32c::crc32c(&b[POS_ATTRIBUTES..]);
    if header != computed {
        return Err(TranslateError::Crc { header, computed });
    }
    let attributes = be_i16(b, POS_ATTRIBUTES);
    if attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL) != 0 {
        return Err(TranslateError::Transactional(attributes));
    }
    let codec = Compression::from_attribute((attributes & ATTR_CODEC_MASK) as u16)
        .ok_or(TranslateError::Codec(attributes))?;
    Ok(KafkaBatchInfo {
        codec,
        record_count: be_i32(b, POS_RECORD_COUNT),
        producer_id: be_i64(b, POS_PRODUCER_ID),
        producer_epoch: be_i16(b, POS_PRODUCER_EPOCH),
        base_sequence: be_i32(b, POS_BASE_SEQUENCE),
    })
}

/// A cursor over a Kafka record section.
struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    index: usize,
}

impl Cursor<'_> {
    fn fail(&self, reason: &'static str) -> TranslateError {
        TranslateError::Record {
            index: self.index,
            reason,
        }
    }

    fn varlong(&mut self) -> Result<i64, TranslateError> {
        let (v, used) = varint::get_varint(&self.buf[self.pos..])
            .map_err(|_| self.fail("truncated or overlong varint"))?;
        self.pos += used;
        Ok(v)
    }

    fn varint(&mut self) -> Result<i32, TranslateError> {
        i32::try_from(self.varlong()?).map_err(|_| self.fail("varint outside 32 bits"))
    }

    fn byte(&mut self) -> Result<u8, TranslateError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.fail("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A length-prefixed field; `None` for length -1.
    fn nullable(&mut self, end: usize) -> Result<Option<Bytes>, TranslateError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(self.fail("negative length")),
            n => {
                let n = n as usize;
                if n > end.saturating_sub(self.pos) {
                    return Err(self.fail("length past the record's end"));
                }
                let field = self.buf.slice(self.pos..self.pos + n);
                self.pos += n;
                Ok(Some(field))
            }
        }
    }
}

/// Decodes the records of a Kafka batch into skiff records.
fn decode_kafka_records(
    records: &Bytes,
    count: i32,
    base_timestamp: i64,
) -> Result<Vec<Record>, TranslateError> {
    let too_many = TranslateError::RecordCount {
        count,
        bytes: records.len(),
    };
    if count <= 0 || count as usize > records.len() / KAFKA_RECORD_BYTES_MIN {
        return Err(too_many);
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut c = Cursor {
        buf: records,
        pos: 0,
        index: 0,
    };
    for index in 0..count as usize {
        c.index = index;
        let len = c.varint()?;
        if len < 0 || len as usize > records.len() - c.pos {
            return Err(c.fail("length past the batch's end"));
        }
        let end = c.pos + len as usize;
        let _attributes = c.byte()?;
        let timestamp_delta = c.varlong()?;
        let offset_delta = c.varint()?;
        if offset_delta as i64 != index as i64 {
            return Err(c.fail("offset delta is not the record's index"));
        }
        let key = c.nullable(end)?;
        let value = c.nullable(end)?.unwrap_or_default();
        let header_count = c.varint()?;
        if header_count < 0 || header_count as usize > (end - c.pos.min(end)) / 2 {
            return Err(c.fail("header count exceeds the record's bytes"));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let name = c.nullable(end)?.ok_or_else(|| c.fail("null header key"))?;
            let name = std::str::from_utf8(&name)
                .map_err(|_| c.fail("header key is not UTF-8"))?
                .to_owned();
            let value = c.nullable(end)?.unwrap_or_default();
            headers.push(Header { key: name, value });
        }
        if c.pos != end {
            return Err(c.fail("record length disagrees with its fields"));
        }
        out.push(Record {
            timestamp_ms: base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        });
    }
    if c.pos != records.len() {
        return Err(TranslateError::TrailingBytes(records.len() - c.pos));
    }
    Ok(out)
}

/// Translates one whole Kafka batch (as split by [`split_batches`]) into a
/// skiff batch with the same records and producer fields, compressed with
/// the same codec. The log validates the result as any produced batch.
pub fn kafka_to_skiff(b: &Bytes) -> Result<Bytes, TranslateError> {
    let info = check_kafka_batch(b)?;
    let packed = b.slice(KAFKA_BATCH_HEADER_BYTES..);
    let inflated = match info.codec {
        Compression::None => packed,
        codec => compression::decompress(
            codec,
            &packed,
            DECOMPRESSED_BATCH_BYTES_MAX - BATCH_HEADER_BYTES,
        )?,
    };
    let records =
        decode_kafka_records(&inflated, info.record_count, be_i64(b, POS_BASE_TIMESTAMP))?;
    let last_delta = be_i32(b, POS_LAST_OFFSET_DELTA);
    if last_delta as i64 != records.len() as i64 - 1 {
        return Err(TranslateError::LastOffsetDelta {
            header: last_delta,
            count: records.len(),
        });
    }
    // Kafka's -1 "none" values are skiff's all-ones values.
    let mut builder = BatchBuilder::new().with_producer(
        info.producer_id as u64,
        info.producer_epoch as u16,
        info.base_sequence as u32,
    );
    for record in records {
        builder.push(record);
    }
    Ok(builder.build_compressed(info.codec, Level::Default)?)
}

/// Appends one skiff batch (a whole stored batch, as the log returns it)
/// to `out` as one Kafka batch with the same offsets, timestamps, producer
/// fields and codec.
pub fn skiff_to_kafka(skiff: &Bytes, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let codec = BatchHeader::parse(skiff)?.compression()?;
    let start = out.len();
    out.resize(start + KAFKA_BATCH_HEADER_BYTES, 0);
    let header = if codec == Compression::None {
        // Each record straight into the answer: one copy of its bytes.
        batch::visit_records(skiff, |r| encode_kafka_record(r, out))?
    } else {
        let mut body = Vec::with_capacity(skiff.len() * 2);
        let header = batch::visit_records(skiff, |r| encode_kafka_record(r, &mut body))?;
        out.extend_from_slice(&compression::compress(codec, Level::Default, &body)?);
        header
    };
    let batch_len = (out.len() - start - KAFKA_LEN_PREFIX_BYTES) as i32;
    let mut attributes = codec.attribute() as i16;
    if header.attributes & ATTR_TIMESTAMP_LOG_APPEND != 0 {
        attributes |= ATTR_LOG_APPEND_TIME;
    }
    let h = &mut out[start..];
    h[0..8].copy_from_slice(&(header.base_offset as i64).to_be_bytes());
    h[POS_BATCH_LEN..POS_BATCH_LEN + 4].copy_from_slice(&batch_len.to_be_bytes());
    h[12..16].copy_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    h[POS_MAGIC] = KAFKA_MAGIC as u8;
    h[POS_ATTRIBUTES..POS_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    h[POS_LAST_OFFSET_DELTA..POS_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(header.last_offset_delta as i32).to_be_bytes());
    h[POS_BASE_TIMESTAMP..POS_BASE_TIMESTAMP + 8]
        .copy_from_slice(&header.first_timestamp_ms.to_be_bytes());
    h[POS_MAX_TIMESTAMP..POS_MAX_TIMESTAMP + 8]
        .copy_from_slice(&header.max_timestamp_ms.to_be_bytes());
    h[POS_PRODUCER_ID..POS_PRODUCER_ID + 8]
        .copy_from_slice(&(header.producer_id as i64).to_be_bytes());
    h[POS_PRODUCER_EPOCH..POS_PRODUCER_EPOCH + 2]
        .copy_from_slice(&(header.producer_epoch as i16).to_be_bytes());
    h[POS_BASE_SEQUENCE..POS_BASE_SEQUENCE + 4]
        .copy_from_slice(&(header.base_sequence as i32).to_be_bytes());
    h[POS_RECORD_COUNT..POS_RECORD_COUNT + 4]
        .copy_from_slice(&(header.record_count as i32).to_be_bytes());
    let crc = crc32c::crc32c(&h[POS_ATTRIBUTES..]);
    h[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Appends one record in Kafka's record encoding to `out`. Its length is
/// computed before it is written, so its bytes are copied once.
fn encode_kafka_record(r: &RecordView<'_>, out: &mut Vec<u8>) {
    let offset_delta = i64::from(r.offset_delta);
    let key_len = r.key.map_or(-1, |k| k.len() as i64);
    let value_len = r.value.len() as i64;
    let header_count = r.header_count as i64;
    let headers_bytes: usize = r
        .headers()
        .map(|(k, v)| {
            varint::varint_len(k.len() as i64)
                + k.len()
                + varint::varint_len(v.len() as i64)
                + v.len()
        })
        .sum();
    // Attributes (one byte, unused), then the fields in Kafka's order.
    let length = 1
        + varint::varint_len(r.timestamp_delta)
        + varint::varint_len(offset_delta)
        + varint::varint_len(key_len)
        + r.key.map_or(0, <[u8]>::len)
        + varint::varint_len(value_len)
        + r.value.len()
        + varint::varint_len(header_count)
        + headers_bytes;
    out.reserve(varint::varint_len(length as i64) + length);
    varint::put_varint(out, length as i64);
    out.push(0);
    varint::put_varint(out, r.timestamp_delta);
    varint::put_varint(out, offset_delta);
    varint::put_varint(out, key_len);
    if let Some(k) = r.key {
        out.extend_from_slice(k);
    }
    varint::put_varint(out, value_len);
    out.extend_from_slice(r.value);
    varint::put_varint(out, header_count);
    for (k, v) in r.headers() {
        varint::put_varint(out, k.len() as i64);
        out.extend_from_slice(k.as_bytes());
        varint::put_varint(out, v.len() as i64);
        out.extend_from_slice(v);
    }
}

/// Whether translating this batch is worth a trip to the blocking pool:
/// compressed, or larger than [`INLINE_TRANSLATE_BYTES_MAX`].
pub fn translate_blocks(compressed: bool, bytes: usize) -> bool {
    compressed || bytes > INLINE_TRANSLATE_BYTES_MAX
}

/// Largest uncompressed batch translated on the async worker. Decoding and
/// re-encoding runs at several hundred MB/s (see the README's figures), so
/// 64 KiB costs well under a millisecond of a worker; larger batches, and
/// every compressed one, go to the blocking pool.
pub const INLINE_TRANSLATE_BYTES_MAX: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        (
            -1_000_000i64..1_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(
                ("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..16)),
                0..3,
            ),
        )
            .prop_map(|(ts, key, value, headers)| Record {
                timestamp_ms: 1_700_000_000_000 + ts,
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key,
                        value: Bytes::from(value),
                    })
                    .collect(),
            })
    }

    fn skiff_batch(
        records: &[Record],
        codec: Compression,
        producer: Option<(u64, u16, u32)>,
        base: u64,
    ) -> Bytes {
        let mut b = BatchBuilder::new();
        if let Some((id, epoch, seq)) = producer {
            b = b.with_producer(id, epoch, seq);
        }
        for r in records {
            b.push(r.clone());
        }
        let built = b.build_compressed(codec, Level::Default).expect("builds");
        let mut stamped = built.to_vec();
        batch::stamp_base_offset(&mut stamped, base);
        Bytes::from(stamped)
    }

    fn codec() -> impl Strategy<Value = Compression> {
        proptest::sample::select(Compression::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// skiff -> kafka -> skiff keeps every record, the producer fields and
        /// the codec; the Kafka batch is one batch at the skiff offsets.
        #[test]
        fn skiff_kafka_skiff_round_trip(
            records in proptest::collection::vec(record(), 1..20),
            codec in codec(),
            producer in proptest::option::of((0u64..1 << 40, 0u16..100, 0u32..1 << 30)),
            base in 0u64..1 << 40,
        ) {
            let original = skiff_batch(&records, codec, producer, base);
            let mut kafka = Vec::new();
            skiff_to_kafka(&original, &mut kafka).expect("to kafka");
            let kafka = Bytes::from(kafka);
            prop_assert_eq!(split_batches(&kafka).expect("one batch").len(), 1);
            prop_assert_eq!(be_i64(&kafka, 0) as u64, base);
            let back = kafka_to_skiff(&kafka).expect("back to skiff");
            let h0 = BatchHeader::parse(&original).unwrap();
            let h1 = BatchHeader::parse(&back).unwrap();
            prop_assert_eq!(h1.compression().unwrap(), codec);
            prop_assert_eq!((h1.producer_id, h1.producer_epoch, h1.base_sequence), (h0.producer_id, h0.producer_epoch, h0.base_sequence));
            prop_assert_eq!((h1.first_timestamp_ms, h1.max_timestamp_ms, h1.record_count), (h0.first_timestamp_ms, h0.max_timestamp_ms, h0.record_count));
            batch::validate(&back).expect("the log accepts it");
            let want: Vec<_> = batch::decode_records(&original).unwrap().into_iter().map(|r| (r.offset - base, r.timestamp_ms, r.key, r.value, r.headers)).collect();
            let got: Vec<_> = batch::decode_records(&back).unwrap().into_iter().map(|r| (r.offset, r.timestamp_ms, r.key, r.value, r.headers)).collect();
            prop_assert_eq!(got, want);
        }

        /// What skiff writes as Kafka's, kafka-protocol's own decoder reads
        /// with the same records (an implementation no one here wrote).
        #[test]
        fn kafka_protocol_reads_what_skiff_encodes(
            records in proptest::collection::vec(record(), 1..20),
            base in 0u64..1 << 40,
        ) {
            let original = skiff_batch(&records, Compression::None, None, base);
            let mut kafka = Vec::new();
            skiff_to_kafka(&original, &mut kafka).expect("to kafka");
            let mut buf = Bytes::from(kafka);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes");
            prop_assert_eq!(set.records.len(), records.len());
            for (i, (got, want)) in set.records.iter().zip(&records).enumerate() {
                prop_assert_eq!(got.offset, base as i64 + i as i64);
                prop_assert_eq!(got.timestamp, want.timestamp_ms);
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(got.value.clone().unwrap_or_default(), want.value.clone());
            }
        }

        /// Any truncation or any flipped byte of a Kafka batch is refused,
        /// never a panic (the CRC covers the flip).
        #[test]
        fn damaged_kafka_batches_are_refused(
            records in proptest::collection::vec(record(), 1..5),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut kafka = Vec::new();
            skiff_to_kafka(&skiff_batch(&records, Compression::None, None, 0), &mut kafka).unwrap();
            let at = cut.index(kafka.len());
            prop_assert!(kafka_to_skiff(&Bytes::copy_from_slice(&kafka[..at])).is_err());
            let at = flip.index(kafka.len());
            let mut flipped = kafka.clone();
            flipped[at] ^= 0x40;
            // Bytes 0..8 (base offset) and 12..16 (leader epoch) are outside
            // the CRC and do not matter to skiff.
            if !(0..8).contains(&at) && !(12..16).contains(&at) {
                prop_assert!(kafka_to_skiff(&Bytes::from(flipped)).is_err());
            }
        }
    }

    /// kafka-protocol's encoder (as a Kafka client would write) with a null
    /// value and duplicate header names: both kept (null as empty).
    #[test]
    fn kafka_protocol_batches_translate() {
        use kafka_protocol::records::{
            Compression as KCompression, Record as KRecord, RecordBatchEncoder,
            RecordEncodeOptions, TimestampType,
        };
        let mut headers = indexmap_headers();
        headers.insert("a".into(), Some(Bytes::from_static(b"1")));
        let records: Vec<KRecord> = (0..3)
            .map(|i| KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: 10 + i as i32,
                timestamp: 1_700_000_000_000 + i * 5,
                key: (i != 1).then(|| Bytes::from(format!("k{i}"))),
                value: (i != 2).then(|| Bytes::from(format!("v{i}"))),
                headers: headers.clone(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: KCompression::None,
            },
        )
        .expect("encodes");
        let kafka = buf.freeze();
        let batches = split_batches(&kafka).unwrap();
        assert_eq!(batches.len(), 1);
        let skiff = kafka_to_skiff(&batches[0]).expect("translates");
        let h = BatchHeader::parse(&skiff).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 10)
        );
        let got = batch::decode_records(&skiff).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(got[1].key, None);
        assert_eq!(got[2].value, Bytes::new(), "null value stored as empty");
        assert_eq!(got[2].timestamp_ms, 1_700_000_000_010);
        assert_eq!(got[0].headers[0].key, "a");
    }

    fn indexmap_headers() -> indexmap::IndexMap<kafka_protocol::protocol::StrBytes, Option<Bytes>> {
        indexmap::IndexMap::new()
    }

    #[test]
    fn transactional_batches_and_bad_offsets_are_refused() {
        let mut kafka = Vec::new();
        let r = Record {
            timestamp_ms: 1,
            key: None,
            value: Bytes::from_static(b"x"),
            headers: vec![],
        };
        skiff_to_kafka(
            &skiff_batch(&[r.clone(), r], Compression::None, None, 0),
            &mut kafka,
        )
        .unwrap();
        let mut txn = kafka.clone();
        txn[POS_ATTRIBUTES + 1] |= ATTR_TRANSACTIONAL as u8;
        let crc = crc32c::crc32c(&txn[POS_ATTRIBUTES..]);
        txn[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            kafka_to_skiff(&Bytes::from(txn)),
            Err(TranslateError::Transactional(_))
        ));
        // A record count larger than the bytes could hold: refused before
        // any reservation.
        let mut count = kafka.clone();
        count[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&count[POS_ATTRIBUTES..]);
        count[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            kafka_to_skiff(&Bytes::from(count)),
            Err(TranslateError::RecordCount { .. })
        ));
    }
}
