//! Variable-length integers used inside record batches.
//!
//! Unsigned values are LEB128 (7 bits per byte, low group first, high bit set
//! on every byte but the last). Signed values are zigzag-mapped first
//! (`0, -1, 1, -2, ..` -> `0, 1, 2, 3, ..`) so small negative numbers stay short.
//!
//! Invariants: an encoding is at most [`VARINT_BYTES_MAX`] bytes; a decoder
//! never reads past the slice it is given and reports a value that does not fit
//! in 64 bits as [`VarintError::Overflow`] instead of wrapping.

/// Longest encoding of a 64-bit value: ceil(64 / 7) = 10 bytes.
pub const VARINT_BYTES_MAX: usize = 10;

/// Why a varint could not be decoded.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VarintError {
    /// The input ended before the last byte of the varint (one without the
    /// continuation bit).
    #[error("varint truncated: input ended after {available} bytes")]
    Truncated {
        /// Bytes that were available.
        available: usize,
    },
    /// The varint is longer than 10 bytes or its value does not fit in 64 bits.
    #[error("varint overflows 64 bits")]
    Overflow,
}

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends `value` as a zigzag-encoded signed varint.
pub fn put_varint(buf: &mut Vec<u8>, value: i64) {
    put_uvarint(buf, zigzag_encode(value));
}

/// Bytes [`put_uvarint`] would write for `value` (1..=10).
pub fn uvarint_len(value: u64) -> usize {
    // 64 - leading_zeros = significant bits; at least one byte for zero.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes [`put_varint`] would write for `value` (1..=10).
pub fn varint_len(value: i64) -> usize {
    uvarint_len(zigzag_encode(value))
}

/// Decodes an unsigned varint from the start of `buf`, returning the value and
/// the number of bytes it used.
pub fn get_uvarint(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    // Fast path: most lengths and deltas in a batch fit in one byte.
    if let Some(&byte) = buf.first()
        && byte < 0x80
    {
        return Ok((u64::from(byte), 1));
    }
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(VARINT_BYTES_MAX).enumerate() {
        let low = u64::from(byte & 0x7f);
        if i == VARINT_BYTES_MAX - 1 && low > 1 {
            // The 10th byte carries bit 63 only.
            return Err(VarintError::Overflow);
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= VARINT_BYTES_MAX {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Truncated {
            available: buf.len(),
        })
    }
}

/// Decodes a zigzag signed varint from the start of `buf`, returning the value
/// and the number of bytes it used.
pub fn get_varint(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, used) = get_uvarint(buf)?;
    Ok((zigzag_decode(raw), used))
}

/// Maps a signed value to unsigned so small magnitudes encode short.
pub fn zigzag_encode(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag_encode`].
pub fn zigzag_decode(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut buf = Vec::new();
        put_uvarint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
        buf.clear();
        put_varint(&mut buf, -1);
        assert_eq!(buf, [0x01]);
        buf.clear();
        put_uvarint(&mut buf, u64::MAX);
        assert_eq!(buf.len(), VARINT_BYTES_MAX);
        assert_eq!(get_uvarint(&buf), Ok((u64::MAX, 10)));
    }

    #[test]
    fn overflow_and_truncation_are_errors() {
        // 10th byte with more than bit 63.
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(get_uvarint(&too_big), Err(VarintError::Overflow));
        // 11 continuation bytes.
        assert_eq!(get_uvarint(&[0x80; 11]), Err(VarintError::Overflow));
        assert_eq!(
            get_uvarint(&[0x80, 0x80]),
            Err(VarintError::Truncated { available: 2 })
        );
        assert_eq!(
            get_uvarint(&[]),
            Err(VarintError::Truncated { available: 0 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn round_trip(u in any::<u64>(), s in any::<i64>()) {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, u);
            prop_assert_eq!(buf.len(), uvarint_len(u));
            prop_assert_eq!(get_uvarint(&buf), Ok((u, buf.len())));
            buf.clear();
            put_varint(&mut buf, s);
            prop_assert_eq!(buf.len(), varint_len(s));
            prop_assert_eq!(get_varint(&buf), Ok((s, buf.len())));
        }
    }
}
