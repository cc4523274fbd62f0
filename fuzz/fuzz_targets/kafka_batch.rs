//! The Kafka batch conversion (`skiff_protocol::kafka_batch`) on arbitrary
//! bytes: splitting a produce partition's records and taking each Kafka
//! batch into skiff's form never panics; whatever the log's check then
//! accepts converts back to Kafka and to skiff again with the same records
//! and the same records section.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use skiff_protocol::batch::{BATCH_HEADER_BYTES, ValidBatch, decode_records};
use skiff_protocol::kafka_batch::{kafka_to_skiff, skiff_to_kafka, split_batches};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(batches) = split_batches(&bytes) else {
        return;
    };
    for batch in batches {
        let Ok(skiff) = kafka_to_skiff(&batch) else {
            continue;
        };
        let Ok(checked) = ValidBatch::check(skiff) else {
            continue;
        };
        let skiff = checked.bytes();
        let mut kafka = Vec::new();
        skiff_to_kafka(skiff, &mut kafka).expect("a valid skiff batch converts");
        let again = kafka_to_skiff(&Bytes::from(kafka)).expect("and back");
        assert_eq!(again[BATCH_HEADER_BYTES..], skiff[BATCH_HEADER_BYTES..]);
        assert_eq!(
            decode_records(skiff).expect("decodes"),
            decode_records(&again).expect("decodes")
        );
    }
});
