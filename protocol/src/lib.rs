//! skiff wire protocol.
