//! Length + CRC framing for the broker's small append-only state files (the
//! group offset store and the work-queue state logs): `body_len u32 |
//! crc32 u32 | body`, little-endian.
//!
//! A frame that is short, longer than the caller's limit or fails its CRC
//! reads as "no frame here": recovery stops at it and cuts the file back.

use bytes::{Buf, BufMut, BytesMut};

/// Frame header: body length and CRC.
pub const FRAME_HEADER_BYTES: usize = 4 + 4;

/// Starts a frame in `buf`; write the body, then call [`end`] with the
/// returned start.
pub fn begin(buf: &mut BytesMut) -> usize {
    let start = buf.len();
    buf.put_u32_le(0);
    buf.put_u32_le(0);
    start
}

/// Fills in the header of the frame started at `start`. The body must be
/// shorter than 4 GiB (callers bound it far below).
pub fn end(buf: &mut BytesMut, start: usize) {
    let body_start = start + FRAME_HEADER_BYTES;
    let body_len = u32::try_from(buf.len() - body_start).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&buf[body_start..]);
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The body of the frame at the front of `data` and the frame's whole
/// length, or `None` if it is incomplete, over `body_bytes_max` or corrupt.
pub fn parse(data: &[u8], body_bytes_max: usize) -> Option<(&[u8], usize)> {
    let mut header = data.get(..FRAME_HEADER_BYTES)?;
    let body_len = header.get_u32_le() as usize;
    let crc = header.get_u32_le();
    if body_len > body_bytes_max {
        return None;
    }
    let body = data.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len)?;
    (crc32fast::hash(body) == crc).then_some((body, FRAME_HEADER_BYTES + body_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_damage_is_refused() {
        let mut buf = BytesMut::new();
        let start = begin(&mut buf);
        buf.put_slice(b"hello");
        end(&mut buf, start);
        assert_eq!(parse(&buf, 16), Some((&b"hello"[..], 13)));
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut], 16), None, "cut {cut}");
        }
        assert_eq!(parse(&buf, 4), None, "over the limit");
        let mut flipped = buf.to_vec();
        flipped[10] ^= 1;
        assert_eq!(parse(&flipped, 16), None);
    }
}
