//! The broker's and the client's frame decoders on arbitrary bytes, fed in
//! arbitrary chunks: never a panic, never an allocation beyond the limit,
//! and a decoded frame never claims more bytes than were given.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use skiff_protocol::frame::{ClientCodec, ServerCodec};
use tokio_util::codec::Decoder;

/// A small limit so oversized frames are exercised too.
const FRAME_BYTES_MAX: usize = 64 * 1024;

fn run<D: Decoder>(mut codec: D, data: &[u8], chunk: usize) {
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return, // the connection would be closed
            }
        }
        assert!(buf.capacity() <= FRAME_BYTES_MAX * 2 + data.len());
    }
    let _ = codec.decode_eof(&mut buf);
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    run(ServerCodec::new(FRAME_BYTES_MAX), rest, usize::from(chunk));
    run(ClientCodec::new(FRAME_BYTES_MAX), rest, usize::from(chunk));
});
