//! Frames: the length-prefixed envelope around every request and response.
//!
//! ```text
//! request : u32 frame_len | u32 correlation_id | u16 api_key | u16 api_version | body
//! response: u32 frame_len | u32 correlation_id | u16 error_code | body
//! ```
//!
//! `frame_len` counts the bytes after itself. Integers are little-endian.
//! A non-zero `error_code` means the body is one string: the error message.
//!
//! Invariants: a frame's length is checked against `frame_bytes_max` before a
//! single byte is reserved for it; an incomplete frame is `Ok(None)` (wait for
//! more), never an error; a length too short to hold the header is an error.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ErrorCode;
use crate::primitives::{Encode, WriteExt};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of a request header after the length prefix.
pub const REQUEST_HEADER_BYTES: usize = 8;
/// Bytes of a response header after the length prefix.
pub const RESPONSE_HEADER_BYTES: usize = 6;
/// Default largest frame either side accepts: 16 MiB. Large enough for a
/// producer batch of `batch_bytes_max` (1 MiB by default) many times over and
/// for a fetch response of `fetch_bytes_max`, small enough that a peer cannot
/// make us buffer much.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the receiver accepts.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes (frame_bytes_max)")]
    TooLarge {
        /// Announced frame size.
        size: usize,
        /// The receiver's limit.
        max: usize,
        /// The correlation id, when it was already buffered.
        correlation_id: Option<u32>,
    },
    /// The length prefix is too small to hold the frame header.
    #[error("frame of {size} bytes is shorter than its {min}-byte header")]
    TooShort {
        /// Announced frame size.
        size: usize,
        /// The header size.
        min: usize,
    },
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// A request as it arrives: header fields and the undecoded body.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// Chosen by the client; echoed in the response.
    pub correlation_id: u32,
    /// Which API the body is for.
    pub api_key: u16,
    /// Which version of that API.
    pub api_version: u16,
    /// The body, decoded by the API's request type.
    pub body: Bytes,
}

/// A response as it arrives: header fields and the undecoded body.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    /// The request's correlation id.
    pub correlation_id: u32,
    /// `ErrorCode::None` on success.
    pub error_code: ErrorCode,
    /// The response body, or the error message when `error_code` is not `None`.
    pub body: Bytes,
}

/// Checks the length prefix at the front of `src` and splits off one whole
/// frame (without its prefix) when it is all buffered.
fn split_frame(
    src: &mut BytesMut,
    header_bytes: usize,
    frame_bytes_max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    if src.len() < LENGTH_PREFIX_BYTES {
        return Ok(None);
    }
    let size = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
    if size > frame_bytes_max {
        let correlation_id = (src.len() >= LENGTH_PREFIX_BYTES + 4)
            .then(|| u32::from_le_bytes([src[4], src[5], src[6], src[7]]));
        return Err(FrameError::TooLarge {
            size,
            max: frame_bytes_max,
            correlation_id,
        });
    }
    if size < header_bytes {
        return Err(FrameError::TooShort {
            size,
            min: header_bytes,
        });
    }
    let total = LENGTH_PREFIX_BYTES + size;
    if src.len() < total {
        // Reserve at most what the (already bounded) frame still needs.
        src.reserve(total - src.len());
        return Ok(None);
    }
    src.advance(LENGTH_PREFIX_BYTES);
    Ok(Some(src.split_to(size)))
}

/// Server side: decodes requests, encodes responses.
#[derive(Debug, Clone)]
pub struct ServerCodec {
    frame_bytes_max: usize,
}

impl ServerCodec {
    /// A codec refusing request frames above `frame_bytes_max` bytes.
    pub fn new(frame_bytes_max: usize) -> Self {
        Self { frame_bytes_max }
    }

    /// Changes the request frame limit, e.g. from a small one before the
    /// handshake to the full one after it. Applies from the next frame.
    pub fn set_frame_bytes_max(&mut self, frame_bytes_max: usize) {
        self.frame_bytes_max = frame_bytes_max;
    }
}

impl Decoder for ServerCodec {
    type Item = RequestFrame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RequestFrame>, FrameError> {
        let Some(mut frame) = split_frame(src, REQUEST_HEADER_BYTES, self.frame_bytes_max)? else {
            return Ok(None);
        };
        let correlation_id = frame.get_u32_le();
        let api_key = frame.get_u16_le();
        let api_version = frame.get_u16_le();
        Ok(Some(RequestFrame {
            correlation_id,
            api_key,
            api_version,
            body: frame.freeze(),
        }))
    }
}

/// A response ready to be written: header fields and the encoded body.
#[derive(Debug, Clone)]
pub struct OutgoingResponse {
    /// The request's correlation id.
    pub correlation_id: u32,
    /// `ErrorCode::None` on success.
    pub error_code: ErrorCode,
    /// The encoded body (or error message).
    pub body: Bytes,
}

impl OutgoingResponse {
    /// A success response carrying `body`.
    pub fn ok(correlation_id: u32, body: &impl Encode) -> Self {
        let mut buf = BytesMut::new();
        body.encode(&mut buf);
        Self {
            correlation_id,
            error_code: ErrorCode::None,
            body: buf.freeze(),
        }
    }

    /// A successful response in the layout of the request's API version.
    pub fn ok_version(correlation_id: u32, body: &impl Encode, version: u16) -> Self {
        let mut buf = BytesMut::new();
        body.encode_version(&mut buf, version);
        Self {
            correlation_id,
            error_code: ErrorCode::None,
            body: buf.freeze(),
        }
    }

    /// The frame's length prefix and response header, i.e. what goes on the
    /// wire before `body`. For writers that send a large body straight from
    /// its buffer instead of through [`ServerCodec`]'s encoder (one copy
    /// less); the bytes are exactly what the encoder writes first.
    pub fn header_bytes(&self) -> [u8; LENGTH_PREFIX_BYTES + RESPONSE_HEADER_BYTES] {
        let mut h = [0u8; LENGTH_PREFIX_BYTES + RESPONSE_HEADER_BYTES];
        h[..4].copy_from_slice(&((RESPONSE_HEADER_BYTES + self.body.len()) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&self.correlation_id.to_le_bytes());
        h[8..].copy_from_slice(&self.error_code.as_u16().to_le_bytes());
        h
    }

    /// An error response with a human-readable message.
    pub fn error(correlation_id: u32, error_code: ErrorCode, message: &str) -> Self {
        let mut buf = BytesMut::new();
        buf.put_string(message);
        Self {
            correlation_id,
            error_code,
            body: buf.freeze(),
        }
    }
}

impl Encoder<OutgoingResponse> for ServerCodec {
    type Error = FrameError;

    fn encode(&mut self, item: OutgoingResponse, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(LENGTH_PREFIX_BYTES + RESPONSE_HEADER_BYTES + item.body.len());
        dst.put_u32_le((RESPONSE_HEADER_BYTES + item.body.len()) as u32);
        dst.put_u32_le(item.correlation_id);
        dst.put_u16_le(item.error_code.as_u16());
        dst.put_slice(&item.body);
        Ok(())
    }
}

/// Client side: encodes requests, decodes responses.
#[derive(Debug, Clone)]
pub struct ClientCodec {
    frame_bytes_max: usize,
}

impl ClientCodec {
    /// A codec refusing response frames above `frame_bytes_max` bytes.
    pub fn new(frame_bytes_max: usize) -> Self {
        Self { frame_bytes_max }
    }
}

impl Decoder for ClientCodec {
    type Item = ResponseFrame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ResponseFrame>, FrameError> {
        let Some(mut frame) = split_frame(src, RESPONSE_HEADER_BYTES, self.frame_bytes_max)? else {
            return Ok(None);
        };
        let correlation_id = frame.get_u32_le();
        let error_code = ErrorCode::from_u16(frame.get_u16_le());
        Ok(Some(ResponseFrame {
            correlation_id,
            error_code,
            body: frame.freeze(),
        }))
    }
}

/// A request ready to be written.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// Chosen by the client, unique among its requests in flight.
    pub correlation_id: u32,
    /// Which API.
    pub api_key: u16,
    /// Which version of it.
    pub api_version: u16,
    /// The encoded body.
    pub body: Bytes,
}

impl Encoder<OutgoingRequest> for ClientCodec {
    type Error = FrameError;

    fn encode(&mut self, item: OutgoingRequest, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_request_frame(
            item.correlation_id,
            item.api_key,
            item.api_version,
            &item.body,
            dst,
        );
        Ok(())
    }
}

/// Writes one request frame into `dst`.
pub fn encode_request_frame(
    correlation_id: u32,
    api_key: u16,
    api_version: u16,
    body: &[u8],
    dst: &mut BytesMut,
) {
    dst.reserve(LENGTH_PREFIX_BYTES + REQUEST_HEADER_BYTES + body.len());
    dst.put_u32_le((REQUEST_HEADER_BYTES + body.len()) as u32);
    dst.put_u32_le(correlation_id);
    dst.put_u16_le(api_key);
    dst.put_u16_le(api_version);
    dst.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_frames_wait_for_more() {
        let mut codec = ServerCodec::new(1024);
        let mut full = BytesMut::new();
        encode_request_frame(7, 5, 0, b"hello", &mut full);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(codec.decode(&mut part).unwrap().is_none(), "cut at {cut}");
        }
        let mut whole = full.clone();
        let frame = codec.decode(&mut whole).unwrap().unwrap();
        assert_eq!(frame.correlation_id, 7);
        assert_eq!(frame.api_key, 5);
        assert_eq!(&frame.body[..], b"hello");
        assert!(whole.is_empty());
    }

    #[test]
    fn oversized_frames_are_refused_before_allocating() {
        let mut codec = ServerCodec::new(1024);
        let mut src = BytesMut::new();
        src.put_u32_le(u32::MAX);
        src.put_u32_le(42);
        let err = codec.decode(&mut src).unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLarge { size, max: 1024, correlation_id: Some(42) } if size == u32::MAX as usize
        ));
        assert!(src.capacity() < 1024, "no buffer reserved for the frame");
    }

    #[test]
    fn frames_shorter_than_their_header_are_refused() {
        let mut codec = ServerCodec::new(1024);
        let mut src = BytesMut::new();
        src.put_u32_le(3);
        src.put_slice(&[0, 0, 0]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::TooShort { size: 3, .. })
        ));
    }

    #[test]
    fn responses_round_trip() {
        let mut server = ServerCodec::new(1024);
        let mut client = ClientCodec::new(1024);
        let mut buf = BytesMut::new();
        server
            .encode(
                OutgoingResponse::error(9, ErrorCode::UnknownTopic, "unknown topic \"x\""),
                &mut buf,
            )
            .unwrap();
        let frame = client.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.correlation_id, 9);
        assert_eq!(frame.error_code, ErrorCode::UnknownTopic);
    }
}
