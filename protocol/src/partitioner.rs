//! The key partitioner shared by the client and the broker.
//!
//! `partition_for_key` is part of the wire contract: a producer and the broker
//! (and any other client) must map the same key to the same partition, today
//! and after every upgrade, or keyed ordering breaks. It is Kafka's default
//! partitioner for keyed records (murmur2, seed `0x9747b28c`, sign bit
//! cleared, modulo the partition count), so keys also land where a Kafka
//! producer would put them. The pinned values in the tests must never change.

/// Kafka's murmur2 seed.
const MURMUR2_SEED: u32 = 0x9747_b28c;
const MURMUR2_M: u32 = 0x5bd1_e995;
const MURMUR2_R: u32 = 24;

/// 32-bit murmur2 of `data`, exactly as Kafka's `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> u32 {
    let length = data.len() as u32;
    let mut h: u32 = MURMUR2_SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        h = h.wrapping_mul(MURMUR2_M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(MURMUR2_M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    h
}

/// The partition (0..partitions) a record with this key belongs to.
/// Part of the wire contract: never change it. `partitions == 0` (a caller
/// bug: topics have at least one partition) returns 0 instead of panicking.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(
                murmur2(key) as i32,
                want,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// Pinned partitions: these must never change.
    #[test]
    fn partition_pinned() {
        assert_eq!(
            partition_for_key(b"foobar", 12),
            ((-790_332_482i32 as u32) & 0x7fff_ffff) % 12
        );
        assert_eq!(partition_for_key(b"abc", 10), 479_470_107 % 10);
        assert_eq!(partition_for_key(b"", 1), 0);
        assert_eq!(partition_for_key(b"anything", 0), 0);
        for p in 1..50 {
            assert!(partition_for_key(b"order-42", p) < p);
        }
    }
}
