//! The handlers: one [`Handler`](super::api::Handler) per API of the table,
//! each with its authorization rule and run mode next to its work, grouped
//! by the service they use:
//!
//! - `topics`: create, delete, list, describe and alter topics;
//! - `produce`: produce (in the ordered pipeline) and producer ids;
//! - `fetch`: fetch (long polls, tail reads served inline) and list offsets;
//! - `groups`: consumer groups and their committed offsets;
//! - `queues`: work queues (create, alter, delete, list, describe, receive,
//!   settle); `queue_members`: a connection's queue members, whose locks
//!   are released when it closes;
//! - `security`: users, grants and tokens (admin only), and the handshake
//!   stub (a second handshake is refused);
//! - `ops`: status.
//!
//! Disk I/O runs on the blocking pool ([`blocking`]), never on an async
//! worker; a fetch reads on its worker only bytes already in the page cache.

pub(crate) mod fetch;
mod groups;
mod ops;
pub(crate) mod produce;
pub(crate) mod queue_members;
pub(crate) mod queues;
mod security;
pub(crate) mod topics;

use skiff_protocol::ErrorCode;

use super::failure::Failure;

/// Runs blocking work (disk I/O) on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Failure>
where
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::new(ErrorCode::Unknown, format!("internal task failed: {e}")))?
}
