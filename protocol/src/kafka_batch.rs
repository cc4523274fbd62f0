//! One log, two protocols: Kafka's record batch (magic 2) and skiff's
//! ([`crate::batch`]), for the broker's Kafka front end and for Kafka
//! readers (the bench's). skiff's
//! magic-2 batch holds its records in Kafka's record encoding, so a Kafka
//! batch is stored by rewriting its header only: checked (length, magic,
//! CRC-32C, attributes), given a skiff header with the same base
//! timestamp, producer id, epoch, base sequence and codec, and followed by
//! its records section as it came, compressed or not; the log then walks
//! its records as it walks any produced batch. A Kafka fetch rewrites the
//! header of each stored magic-2 batch the other way and computes its
//! CRC-32C; a magic-1 batch (skiff's record encoding, from skiff's own
//! producers) is re-encoded record by record, with the same offsets.
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
//! send them), header names that are not UTF-8. A null value (a tombstone;
//! skiff's topics have no compaction) and a null header value are stored
//! as Kafka sent them: a Kafka consumer reads them back as null, skiff's
//! readers as empty. A magic-1 batch has no nulls to give.
//!
//! Invariants: nothing here decodes records, so nothing here allocates
//! more than one copy of the batch; the records are walked by skiff's own
//! bounded decoders (in the log's check, or in [`skiff_to_kafka`] for a
//! magic-1 batch), which never panic and never inflate past
//! [`crate::batch::DECOMPRESSED_BATCH_BYTES_MAX`].

use crate::batch::{
    self, ATTR_TIMESTAMP_LOG_APPEND, BATCH_HEADER_BYTES, BATCH_MAGIC_KAFKA_RECORDS, BatchError,
    BatchHeader, RecordEncoding, RecordView,
};
use crate::compression::{self, Compression, CompressionError, Level};
use crate::varint;
use bytes::Bytes;

/// Bytes of a Kafka batch before its records.
pub const KAFKA_BATCH_HEADER_BYTES: usize = 61;
/// Bytes of baseOffset and batchLength, not counted in batchLength.
const KAFKA_LEN_PREFIX_BYTES: usize = 12;
/// The record batch format this front end reads and writes.
const KAFKA_MAGIC: i8 = 2;

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

/// Takes one whole Kafka batch (as split by [`split_batches`]) into skiff's
/// form without touching its records: a skiff header (magic 2, Kafka's
/// record encoding) with the same base timestamp, last offset delta,
/// producer fields and codec, followed by the Kafka records section as it
/// came (compressed or not). The log checks the result as any produced
/// batch: every record walked, offsets 0, 1, 2, ..., header names UTF-8,
/// the max timestamp taken from the records.
pub fn kafka_to_skiff(b: &Bytes) -> Result<Bytes, TranslateError> {
    let info = check_kafka_batch(b)?;
    let records = &b[KAFKA_BATCH_HEADER_BYTES..];
    // Further checks of the count (against the records present) are the
    // log's walk's.
    if info.record_count <= 0 {
        return Err(TranslateError::RecordCount {
            count: info.record_count,
            bytes: records.len(),
        });
    }
    let last_delta = be_i32(b, POS_LAST_OFFSET_DELTA);
    if i64::from(last_delta) != i64::from(info.record_count) - 1 {
        return Err(TranslateError::LastOffsetDelta {
            header: last_delta,
            count: info.record_count as usize,
        });
    }
    // Kafka's -1 "none" values are skiff's all-ones values. The attributes
    // keep the codec only: a LogAppendTime bit a producer set is cleared,
    // as Kafka's broker clears it on a CreateTime topic (skiff's topics are
    // all CreateTime), so readers keep each record's own timestamp.
    let header = BatchHeader {
        base_offset: 0,
        batch_len: 0,
        crc: 0,
        magic: BATCH_MAGIC_KAFKA_RECORDS,
        attributes: info.codec.attribute(),
        last_offset_delta: last_delta as u32,
        first_timestamp_ms: be_i64(b, POS_BASE_TIMESTAMP),
        max_timestamp_ms: be_i64(b, POS_MAX_TIMESTAMP),
        producer_id: info.producer_id as u64,
        producer_epoch: info.producer_epoch as u16,
        base_sequence: info.base_sequence as u32,
        record_count: info.record_count as u32,
    };
    Ok(batch::assemble(&header, records))
}

/// Decodes every record of one whole Kafka batch, as a Kafka client reads
/// a fetched batch: length, magic and CRC-32C checked, the records walked
/// by skiff's own decoder ([`batch::decode_records`]: Kafka's record
/// encoding is skiff's magic 2), offsets from the batch's base offset. A
/// null value (or header value) reads as empty.
pub fn decode_kafka_batch(b: &Bytes) -> Result<Vec<batch::DecodedRecord>, TranslateError> {
    let skiff = kafka_to_skiff(b)?;
    let mut skiff = Vec::from(skiff);
    batch::stamp_base_offset(&mut skiff, be_i64(b, 0) as u64);
    Ok(batch::decode_records(&Bytes::from(skiff))?)
}

/// Appends one skiff batch (a whole stored batch, as the log returns it)
/// to `out` as one Kafka batch with the same offsets, timestamps, producer
/// fields and codec. A magic-2 batch's records section is Kafka's already
/// and is copied as it is (its CRC-32 checked first, so damage on disk
/// never reaches a client under a fresh CRC-32C); a magic-1 batch's records
/// are re-encoded one by one (and compressed again when they were).
pub fn skiff_to_kafka(skiff: &Bytes, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let start = out.len();
    let header = batch::check_integrity(skiff)?;
    let codec = header.compression()?;
    out.reserve(KAFKA_BATCH_HEADER_BYTES + skiff.len());
    out.resize(start + KAFKA_BATCH_HEADER_BYTES, 0);
    if header.encoding()? == RecordEncoding::Kafka {
        out.extend_from_slice(&skiff[BATCH_HEADER_BYTES..]);
    } else if codec == Compression::None {
        // Each record straight into the answer: one copy of its bytes.
        batch::visit_records(skiff, |r| encode_kafka_record(r, out))?;
    } else {
        let mut body = Vec::with_capacity(skiff.len() * 2);
        batch::visit_records(skiff, |r| encode_kafka_record(r, &mut body))?;
        out.extend_from_slice(&compression::compress(codec, Level::Default, &body)?);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Header, Record, ValidBatch};
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
        encoded_batch(records, codec, producer, base, RecordEncoding::Skiff)
    }

    fn encoded_batch(
        records: &[Record],
        codec: Compression,
        producer: Option<(u64, u16, u32)>,
        base: u64,
        encoding: RecordEncoding,
    ) -> Bytes {
        let mut b = BatchBuilder::new().with_encoding(encoding);
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

    fn encoding() -> impl Strategy<Value = RecordEncoding> {
        prop_oneof![Just(RecordEncoding::Skiff), Just(RecordEncoding::Kafka)]
    }

    /// The log's check of a produced batch, and its decoded records.
    fn stored(batch: Bytes) -> Result<Vec<batch::DecodedRecord>, BatchError> {
        let checked = ValidBatch::check(batch)?;
        batch::decode_records(checked.bytes())
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
            encoding in encoding(),
        ) {
            let original = encoded_batch(&records, codec, producer, base, encoding);
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
            prop_assert_eq!(h1.magic, BATCH_MAGIC_KAFKA_RECORDS);
            if encoding == RecordEncoding::Kafka {
                // Stored Kafka-encoded: the records section passes through.
                prop_assert_eq!(&back[BATCH_HEADER_BYTES..], &original[BATCH_HEADER_BYTES..]);
            }
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
            encoding in encoding(),
        ) {
            let original = encoded_batch(&records, Compression::None, None, base, encoding);
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
            // The same bytes with a correct CRC-32C: refused by the log's
            // walk, or stored with records that read back as they were
            // sent (a flip inside a value).
            let mut resealed = kafka.clone();
            resealed[at] ^= 0x40;
            let crc = crc32c::crc32c(&resealed[POS_ATTRIBUTES..]);
            resealed[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_be_bytes());
            if let Ok(skiff) = kafka_to_skiff(&Bytes::from(resealed.clone())) {
                if let Ok(got) = stored(skiff) {
                    let mut back = Vec::new();
                    let checked = ValidBatch::check(kafka_to_skiff(&Bytes::from(resealed.clone())).unwrap()).unwrap();
                    skiff_to_kafka(checked.bytes(), &mut back).unwrap();
                    prop_assert_eq!(&back[POS_RECORD_COUNT + 4..], &resealed[POS_RECORD_COUNT + 4..]);
                    prop_assert_eq!(got.len(), records.len());
                }
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
        let with_count = |n: i32| {
            let mut count = kafka.clone();
            count[POS_RECORD_COUNT..POS_RECORD_COUNT + 4].copy_from_slice(&n.to_be_bytes());
            count[POS_LAST_OFFSET_DELTA..POS_LAST_OFFSET_DELTA + 4]
                .copy_from_slice(&n.saturating_sub(1).to_be_bytes());
            let crc = crc32c::crc32c(&count[POS_ATTRIBUTES..]);
            count[POS_CRC..POS_CRC + 4].copy_from_slice(&crc.to_be_bytes());
            Bytes::from(count)
        };
        // No records, or a negative count: refused here.
        for n in [0, -1] {
            assert!(matches!(
                kafka_to_skiff(&with_count(n)),
                Err(TranslateError::RecordCount { .. })
            ));
        }
        // A count larger than the records present: refused by the log's
        // walk, before any reservation.
        let skiff = kafka_to_skiff(&with_count(i32::MAX)).expect("header rewritten");
        assert!(stored(skiff).is_err());
    }
}
