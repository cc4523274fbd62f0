//! Record-batch validation and decoding on arbitrary bytes: never a panic;
//! whatever `validate` accepts decodes to exactly `record_count` records
//! with consecutive offsets, and a batch iterator over a byte run never
//! yields a batch that fails validation. The same bytes as a compressed
//! payload of every codec: never a panic, never more output than the limit.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use skiff_protocol::batch::{BatchIter, decode_records, validate};
use skiff_protocol::compression::{Compression, decompress};

/// Output limit for the raw codec checks, in bytes: small, so a bomb in the
/// corpus costs little.
const FUZZ_DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(header) = validate(&bytes) {
        let records = decode_records(&bytes).expect("a validated batch decodes");
        assert_eq!(records.len() as u64, u64::from(header.record_count));
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, header.base_offset + i as u64);
        }
    }
    for codec in Compression::ALL {
        if let Ok(out) = decompress(codec, data, FUZZ_DECOMPRESSED_BYTES_MAX) {
            assert!(out.len() <= FUZZ_DECOMPRESSED_BYTES_MAX);
        }
    }
    for batch in BatchIter::new(bytes) {
        match batch {
            Ok(b) => {
                let _ = decode_records(&b);
            }
            Err(_) => break,
        }
    }
});
