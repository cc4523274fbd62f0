//! skiff-protocol: the wire contract shared by broker and client.
//!
//! Pure encode/decode, no I/O and no runtime: frames ([`frame`]), request and
//! response bodies ([`messages`]), the record-batch format used both on the
//! wire and on disk ([`batch`]) and its codecs ([`compression`]), error
//! codes ([`error`]) and naming rules ([`topic_name`], [`group_name`]).
//! Every decoder is strict (leftover bytes are an error) and checks every
//! length against the bytes actually present before using it.

#![forbid(unsafe_code)]
// Decoders face untrusted bytes: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod batch;
pub mod compression;
pub mod error;
pub mod frame;
pub mod group_name;
pub mod kafka_batch;
pub mod messages;
pub mod partitioner;
pub mod primitives;
pub mod secret;
pub mod testdata;
pub mod topic_name;
pub mod varint;

pub use compression::Compression;
pub use error::ErrorCode;
pub use frame::FRAME_BYTES_MAX_DEFAULT;
pub use secret::Secret;

/// The protocol version this crate speaks; sent in the handshake.
///
/// Version 2 added credentials to the handshake (and the user to its
/// response). A broker answers a handshake of another version with
/// `UnsupportedVersion`, read from the first two bytes of its body, so an
/// old client gets a clear refusal rather than a decode error.
pub const PROTOCOL_VERSION: u16 = 2;
