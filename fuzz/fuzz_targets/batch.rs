//! Record-batch validation and decoding on arbitrary bytes: never a panic;
//! whatever `validate` accepts decodes to exactly `record_count` records
//! with consecutive offsets, and a batch iterator over a byte run never
//! yields a batch that fails validation.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use skiff_protocol::batch::{BatchIter, decode_records, validate};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(header) = validate(&bytes) {
        let records = decode_records(&bytes).expect("a validated batch decodes");
        assert_eq!(records.len() as u64, u64::from(header.record_count));
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, header.base_offset + i as u64);
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
