//! [`TimedDecoder`]: the server's request decoder, noting when the frame it
//! is waiting for began to arrive, so the connection can close a client
//! that starts a frame and never finishes it (`frame_read_timeout_ms`,
//! the slowloris defence), however long its idle timeout is.
//!
//! Invariant: `partial_since` is `Some` exactly while the read buffer holds
//! the start of an incomplete frame; it is set the first time the decoder
//! sees such bytes (the decoder runs on every read), so it is accurate to
//! one read. It counts only time the connection spends reading: after the
//! decoder hands out a frame, the connection stops reading while it
//! handles it (in-flight permit, response backpressure, the handshake's
//! password check), and TCP flow control stops the client with it; so
//! [`TimedDecoder::resume`] moves the clock of a partial frame already
//! buffered forward by that pause when reading resumes.

use bytes::BytesMut;
use skiff_protocol::frame::ServerCodec;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// A request decoder ([`ServerCodec`], or the Kafka front end's codec) that
/// remembers when the pending partial frame started.
#[derive(Debug)]
pub(crate) struct TimedDecoder<C = ServerCodec> {
    inner: C,
    partial_since: Option<Instant>,
    /// When the last frame was handed out, until reading resumes.
    paused_since: Option<Instant>,
}

impl<C> TimedDecoder<C> {
    pub(crate) fn new(inner: C) -> Self {
        Self {
            inner,
            partial_since: None,
            paused_since: None,
        }
    }

    /// The codec, e.g. to raise its frame size limit after the handshake.
    pub(crate) fn codec_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// The connection is about to read again after handling the last frame
    /// handed out: the time since then was not spent waiting for the client,
    /// so the pending partial frame's clock is moved forward by it. Returns
    /// whether reading had been paused (a frame was handed out since the
    /// last call).
    pub(crate) fn resume(&mut self, now: Instant) -> bool {
        let Some(paused) = self.paused_since.take() else {
            return false;
        };
        if let Some(since) = self.partial_since {
            self.partial_since = Some(since + now.saturating_duration_since(paused));
        }
        true
    }

    /// When the first byte of the frame not yet complete arrived; `None`
    /// when no partial frame is buffered.
    pub(crate) fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }
}

impl<C: Decoder> Decoder for TimedDecoder<C> {
    type Item = C::Item;
    type Error = C::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, C::Error> {
        let frame = self.inner.decode(src)?;
        let now = Instant::now();
        if src.is_empty() {
            self.partial_since = None;
        } else if frame.is_some() || self.partial_since.is_none() {
            // Bytes of the next frame are already here: its clock starts now.
            self.partial_since = Some(now);
        }
        if frame.is_some() {
            self.paused_since = Some(now);
        }
        Ok(frame)
    }

    /// The inner codec tells a clean close from a close mid-frame.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, C::Error> {
        self.inner.decode_eof(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tracks_the_partial_frame() {
        let mut d = TimedDecoder::new(ServerCodec::new(1024));
        let mut buf = BytesMut::new();
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(d.partial_since().is_none());
        // Length prefix 8 (header only) then a partial header.
        buf.extend_from_slice(&8u32.to_le_bytes());
        buf.extend_from_slice(&[1, 0]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        let started = d.partial_since().expect("partial frame noticed");
        buf.extend_from_slice(&[0, 0]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert_eq!(d.partial_since(), Some(started), "clock not restarted");
        buf.extend_from_slice(&[5, 0, 0, 0]);
        assert!(d.decode(&mut buf).unwrap().is_some());
        assert!(d.partial_since().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_not_reading_does_not_count() {
        let mut d = TimedDecoder::new(ServerCodec::new(1024));
        let mut buf = BytesMut::new();
        // One whole frame (header only) and the start of the next.
        buf.extend_from_slice(&8u32.to_le_bytes());
        buf.extend_from_slice(&[1, 0, 0, 0, 5, 0, 0, 0]);
        buf.extend_from_slice(&8u32.to_le_bytes());
        assert!(d.decode(&mut buf).unwrap().is_some());
        let stamped = d.partial_since().expect("next frame started");
        // The connection handles the frame for 10 s without reading.
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        let now = Instant::now();
        assert!(d.resume(now));
        assert_eq!(d.partial_since(), Some(now), "the pause is not counted");
        // Resuming again without a frame in between changes nothing.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert!(!d.resume(Instant::now()));
        assert_eq!(d.partial_since(), Some(now));
        assert!(stamped < now);
    }
}
