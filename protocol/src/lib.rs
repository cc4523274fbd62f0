//! skiff-protocol: the wire contract shared by broker and client.
//!
//! Pure encode/decode, no I/O and no runtime: frames ([`frame`]), request and
//! response bodies ([`messages`]), the record-batch format used both on the
//! wire and on disk ([`batch`]), error codes ([`error`]) and naming rules
//! ([`topic_name`]). Every decoder is strict (leftover bytes are an error) and
//! checks every length against the bytes actually present before using it.

pub mod batch;
pub mod error;
pub mod frame;
pub mod messages;
pub mod partitioner;
pub mod primitives;
pub mod topic_name;
pub mod varint;

pub use error::ErrorCode;
pub use frame::FRAME_BYTES_MAX_DEFAULT;

/// The protocol version this crate speaks; sent in the handshake.
pub const PROTOCOL_VERSION: u16 = 1;
