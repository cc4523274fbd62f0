//! The Kafka frame codec: every request and response is a big-endian i32
//! size followed by that many bytes. A size above `kafka_frame_bytes_max`
//! (or negative) is refused from the four size bytes alone, before anything
//! is reserved; an incomplete frame is not an error (`Ok(None)` until it is
//! whole), and a close mid-frame is told apart from a clean close between
//! frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of the size prefix.
pub(crate) const SIZE_PREFIX_BYTES: usize = 4;

/// Why the Kafka byte stream could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KafkaFrameError {
    /// The size prefix is negative or above the limit.
    #[error("kafka frame of {size} bytes exceeds the limit of {max} bytes (kafka_frame_bytes_max)")]
    TooLarge {
        /// The size the client sent (negative sizes too).
        size: i64,
        /// `kafka_frame_bytes_max`.
        max: usize,
    },
    /// The client closed the connection in the middle of a frame.
    #[error("connection closed mid-frame with {buffered} bytes of an incomplete frame")]
    ClosedMidFrame {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits the byte stream into request frames (without their size prefix)
/// and writes response frames.
#[derive(Debug)]
pub(crate) struct KafkaCodec {
    frame_bytes_max: usize,
}

impl KafkaCodec {
    pub(crate) fn new(frame_bytes_max: usize) -> Self {
        Self { frame_bytes_max }
    }

    /// Changes the limit for the frames still to come (raised once a
    /// connection has signed in).
    pub(crate) fn set_frame_bytes_max(&mut self, frame_bytes_max: usize) {
        self.frame_bytes_max = frame_bytes_max;
    }
}

impl Decoder for KafkaCodec {
    type Item = Bytes;
    type Error = KafkaFrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, KafkaFrameError> {
        let Some(prefix) = src.get(..SIZE_PREFIX_BYTES) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if size < 0 || size as usize > self.frame_bytes_max {
            return Err(KafkaFrameError::TooLarge {
                size: i64::from(size),
                max: self.frame_bytes_max,
            });
        }
        let total = SIZE_PREFIX_BYTES + size as usize;
        if src.len() < total {
            // Bounded by the check above.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(SIZE_PREFIX_BYTES);
        Ok(Some(src.split_to(size as usize).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, KafkaFrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(KafkaFrameError::ClosedMidFrame {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Bytes> for KafkaCodec {
    type Error = KafkaFrameError;

    /// `frame` is a whole response (header and body); the size goes first.
    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), KafkaFrameError> {
        let size = i32::try_from(frame.len()).map_err(|_| KafkaFrameError::TooLarge {
            size: frame.len() as i64,
            max: i32::MAX as usize,
        })?;
        dst.reserve(SIZE_PREFIX_BYTES + frame.len());
        dst.put_i32(size);
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_partial_and_oversized_frames() {
        let mut codec = KafkaCodec::new(16);
        let mut buf = BytesMut::new();
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&3i32.to_be_bytes());
        buf.extend_from_slice(b"ab");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"c");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"abc"[..]);
        assert!(buf.is_empty());
        // Clean close between frames.
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        // Close mid-frame.
        buf.extend_from_slice(&5i32.to_be_bytes());
        buf.extend_from_slice(b"x");
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(KafkaFrameError::ClosedMidFrame { buffered: 5 })
        ));
        // Oversized and negative sizes: refused from the prefix alone.
        for size in [17, i32::MAX, -1, i32::MIN] {
            let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
            let err = codec.decode(&mut buf).unwrap_err();
            assert!(
                matches!(err, KafkaFrameError::TooLarge { size: s, max: 16 } if s == i64::from(size)),
                "{err}"
            );
            assert!(buf.capacity() < 1024, "nothing reserved for {size}");
        }
    }

    #[test]
    fn encodes_the_size_first() {
        let mut buf = BytesMut::new();
        KafkaCodec::new(16)
            .encode(Bytes::from_static(b"hello"), &mut buf)
            .unwrap();
        assert_eq!(&buf[..], b"\0\0\0\x05hello");
    }
}
