//! skiff client.
