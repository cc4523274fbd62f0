//! A connection's response writer: writes responses as they come, flushing
//! once the queue is momentarily empty so pipelined responses share
//! syscalls; large bodies (fetches) go out with one vectored write instead
//! of a copy into the codec's buffer. When the queue closes, it shuts the
//! write side down (bounded by [`SINK_CLOSE_TIMEOUT`]), so a TLS session
//! ends with close_notify and the client sees the broker close.

use std::time::Duration;

use futures::SinkExt;
use skiff_protocol::frame::{FrameError, OutgoingResponse, ServerCodec};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

/// Bodies at least this big (fetch responses, up to `fetch_bytes_max`) are
/// written straight from their buffer rather than copied into the codec's
/// write buffer: one copy less per fetched byte, and the write buffer never
/// grows to (and keeps) the size of the largest fetch.
pub(crate) const DIRECT_WRITE_BYTES_MIN: usize = 64 * 1024;

/// How long closing a connection's write side may take once every response
/// is written: time for a TLS close_notify (and the TCP FIN), not for a
/// client that stopped reading.
const SINK_CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// Writes responses until every sender is dropped or the socket breaks.
pub(crate) async fn write_responses<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, ServerCodec>,
    mut rx: mpsc::Receiver<OutgoingResponse>,
) {
    while let Some(response) = rx.recv().await {
        if write_response(&mut sink, response).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if write_response(&mut sink, more).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(SINK_CLOSE_TIMEOUT, sink.close()).await;
}

/// Queues one response: small ones into the codec's buffer, large ones
/// (after flushing what is buffered, to keep the order) with one vectored
/// write of header and body.
async fn write_response<W: AsyncWrite + Unpin>(
    sink: &mut FramedWrite<W, ServerCodec>,
    response: OutgoingResponse,
) -> Result<(), FrameError> {
    if response.body.len() < DIRECT_WRITE_BYTES_MIN {
        return sink.feed(response).await;
    }
    let header = response.header_bytes();
    write_direct(sink, &header, response.body).await
}

/// Writes one frame (`header`, then `body`) straight to the socket with a
/// vectored write, after flushing what `sink` buffered so frames stay in
/// order: for bodies of at least [`DIRECT_WRITE_BYTES_MIN`], which would
/// otherwise be copied into the codec's buffer. Shared by both front ends.
pub(crate) async fn write_direct<W, C, I>(
    sink: &mut FramedWrite<W, C>,
    header: &[u8],
    body: bytes::Bytes,
) -> Result<(), C::Error>
where
    W: AsyncWrite + Unpin,
    C: tokio_util::codec::Encoder<I>,
    C::Error: From<std::io::Error>,
{
    SinkExt::<I>::flush(sink).await?;
    let mut frame = bytes::Buf::chain(header, body);
    sink.get_mut().write_all_buf(&mut frame).await?;
    Ok(())
}
