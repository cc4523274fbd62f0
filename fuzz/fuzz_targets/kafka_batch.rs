//! The Kafka front end's batch translation on arbitrary bytes: splitting a
//! produce partition's records and translating each Kafka batch never
//! panics; whatever translates is a skiff batch the log accepts, with the
//! producer fields kept, and it translates back to Kafka and to skiff again
//! with the same records.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use skiff_broker::kafka::records::{kafka_to_skiff, skiff_to_kafka, split_batches};
use skiff_protocol::batch::{decode_records, validate};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(batches) = split_batches(&bytes) else {
        return;
    };
    for batch in batches {
        let Ok(skiff) = kafka_to_skiff(&batch) else {
            continue;
        };
        validate(&skiff).expect("a translated batch is valid");
        let mut kafka = Vec::new();
        skiff_to_kafka(&skiff, &mut kafka).expect("a valid skiff batch translates");
        let again = kafka_to_skiff(&Bytes::from(kafka)).expect("and back");
        assert_eq!(
            decode_records(&skiff).expect("decodes"),
            decode_records(&again).expect("decodes")
        );
    }
});
