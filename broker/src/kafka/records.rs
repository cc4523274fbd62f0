//! The Kafka front end's side of record translation: the formats and their
//! conversion live in [`skiff_protocol::kafka_batch`] (shared with Kafka
//! readers such as the bench); what is the broker's is where the work runs.

pub use skiff_protocol::kafka_batch::*;

/// Whether re-encoding stored magic-1 batches for a Kafka fetch (`bytes` of
/// them, some `compressed`) is worth a trip to the blocking pool. Magic-2
/// batches are not counted: a header rewrite, a copy and a CRC-32C run at
/// GB/s, as the log's inline reads do.
pub fn translate_blocks(compressed: bool, bytes: usize) -> bool {
    compressed || bytes > INLINE_TRANSLATE_BYTES_MAX
}

/// Most uncompressed magic-1 bytes re-encoded on the async worker. Decoding and
/// re-encoding runs at several hundred MB/s (see the README's figures), so
/// 64 KiB costs well under a millisecond of a worker; larger batches, and
/// every compressed one, go to the blocking pool.
pub const INLINE_TRANSLATE_BYTES_MAX: usize = 64 * 1024;
