//! skiff broker.
