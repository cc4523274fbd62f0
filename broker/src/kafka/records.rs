//! The Kafka front end's side of record translation: the formats and their
//! conversion live in [`skiff_protocol::kafka_batch`] (shared with Kafka
//! readers such as the bench); what is the broker's is where the work runs.

pub use skiff_protocol::kafka_batch::*;

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
