//! Primitive wire types: fixed-width little-endian integers, length-prefixed
//! strings and byte strings, and counted arrays.
//!
//! Invariants: decoding never panics and never allocates more than the input
//! already holds. Every length read from the wire is checked against the bytes
//! actually remaining before anything is sliced or reserved, so a lying length
//! is an error, not an allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why a message body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body ended before a field was complete.
    #[error("message truncated reading {field}: needed {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A string field was not valid UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// An enum-like field held a value outside its defined range.
    #[error("field {field} has invalid value {value}")]
    InvalidValue {
        /// The field being read.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// Bytes were left over after the whole message was read.
    #[error("{count} unexpected trailing bytes after the message body")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
}

/// A cursor over a received body. Slicing byte fields out of it is zero-copy.
#[derive(Debug)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Wraps a body.
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, field: &'static str, needed: usize) -> Result<(), DecodeError> {
        if self.buf.len() < needed {
            return Err(DecodeError::Truncated {
                field,
                needed,
                available: self.buf.len(),
            });
        }
        Ok(())
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.buf.get_u16_le())
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32_le())
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_u64_le())
    }

    /// Reads a little-endian `i64`.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_i64_le())
    }

    /// Reads a `bool` encoded as one byte, 0 or 1.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidValue {
                field,
                value: u64::from(other),
            }),
        }
    }

    /// Reads an optional `u64` (a presence byte, then the value).
    pub fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        if self.bool(field)? {
            Ok(Some(self.u64(field)?))
        } else {
            Ok(None)
        }
    }

    /// Reads a `u32`-length-prefixed byte string without copying.
    pub fn bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)? as usize;
        self.need(field, len)?;
        Ok(self.buf.split_to(len))
    }

    /// Reads an optional byte string (a presence byte, then the bytes).
    pub fn opt_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
        if self.bool(field)? {
            Ok(Some(self.bytes(field)?))
        } else {
            Ok(None)
        }
    }

    /// Reads a `u16`-length-prefixed UTF-8 string.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u16(field)? as usize;
        self.need(field, len)?;
        let raw = self.buf.split_to(len);
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// Reads a `u32` element count and checks that at least
    /// `min_element_bytes` per element remain, so a lying count cannot make
    /// the caller reserve memory the body does not back.
    pub fn count(
        &mut self,
        field: &'static str,
        min_element_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u32(field)? as usize;
        self.need(field, count.saturating_mul(min_element_bytes.max(1)))?;
        Ok(count)
    }

    /// Fails when bytes are left over: every message is parsed strictly.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.buf.len(),
            })
        }
    }
}

/// Writing helpers, the mirror of [`Reader`].
pub trait WriteExt {
    /// Writes a `bool` as one byte.
    fn put_bool(&mut self, v: bool);
    /// Writes a `u32`-length-prefixed byte string.
    fn put_bytes_field(&mut self, v: &[u8]);
    /// Writes an optional byte string.
    fn put_opt_bytes(&mut self, v: Option<&[u8]>);
    /// Writes an optional `u64`.
    fn put_opt_u64(&mut self, v: Option<u64>);
    /// Writes a `u16`-length-prefixed string, cut at [`STRING_BYTES_MAX`]
    /// (callers validate lengths first; cutting keeps the frame well formed).
    fn put_string(&mut self, v: &str);
}

/// The longest string a `u16` length prefix can carry.
pub const STRING_BYTES_MAX: usize = u16::MAX as usize;

impl WriteExt for BytesMut {
    fn put_bool(&mut self, v: bool) {
        self.put_u8(u8::from(v));
    }

    fn put_bytes_field(&mut self, v: &[u8]) {
        self.put_u32_le(v.len() as u32);
        self.put_slice(v);
    }

    fn put_opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            Some(v) => {
                self.put_bool(true);
                self.put_bytes_field(v);
            }
            None => self.put_bool(false),
        }
    }

    fn put_opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.put_bool(true);
                self.put_u64_le(v);
            }
            None => self.put_bool(false),
        }
    }

    fn put_string(&mut self, v: &str) {
        let mut end = v.len().min(STRING_BYTES_MAX);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.put_u16_le(end as u16);
        self.put_slice(&v.as_bytes()[..end]);
    }
}

/// A type with a wire encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `buf`.
    fn encode(&self, buf: &mut BytesMut);

    /// Appends the encoding of `self` in the layout of API version
    /// `version`. Only bodies whose layout changed between the versions an
    /// API serves override it; the newest layout is [`Encode::encode`].
    fn encode_version(&self, buf: &mut BytesMut, version: u16) {
        let _ = version;
        self.encode(buf);
    }
}

/// A type that can be decoded from the wire.
pub trait Decode: Sized {
    /// Decodes one value from the reader.
    fn decode(r: &mut Reader) -> Result<Self, DecodeError>;

    /// Decodes one value in the layout of API version `version` (see
    /// [`Encode::encode_version`]); the newest layout is [`Decode::decode`].
    fn decode_version(r: &mut Reader, version: u16) -> Result<Self, DecodeError> {
        let _ = version;
        Self::decode(r)
    }
}

/// Decodes a whole body strictly: leftover bytes are an error.
pub fn decode_body<T: Decode>(body: Bytes) -> Result<T, DecodeError> {
    let mut r = Reader::new(body);
    let value = T::decode(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// Decodes a whole body of API version `version` strictly.
pub fn decode_body_version<T: Decode>(body: Bytes, version: u16) -> Result<T, DecodeError> {
    let mut r = Reader::new(body);
    let value = T::decode_version(&mut r, version)?;
    r.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lying_lengths_are_errors_not_allocations() {
        let mut buf = BytesMut::new();
        buf.put_u32_le(u32::MAX);
        let mut r = Reader::new(buf.freeze());
        assert!(matches!(
            r.bytes("value"),
            Err(DecodeError::Truncated { field: "value", .. })
        ));

        let mut buf = BytesMut::new();
        buf.put_u32_le(1_000_000_000);
        let mut r = Reader::new(buf.freeze());
        assert!(matches!(
            r.count("items", 8),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn strings_round_trip_and_bad_utf8_is_refused() {
        let mut buf = BytesMut::new();
        buf.put_string("héllo");
        let mut r = Reader::new(buf.freeze());
        assert_eq!(r.string("s").unwrap(), "héllo");
        r.finish().unwrap();

        let mut buf = BytesMut::new();
        buf.put_u16_le(2);
        buf.put_slice(&[0xff, 0xfe]);
        let mut r = Reader::new(buf.freeze());
        assert_eq!(r.string("s"), Err(DecodeError::InvalidUtf8 { field: "s" }));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let r = Reader::new(Bytes::from_static(&[1]));
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { count: 1 }));
    }
}
