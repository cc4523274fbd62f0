//! skiff: a lightweight, durable message broker.
//!
//! This root crate only gathers the workspace for the black-box tests in
//! `tests/` and the benchmarks in `benches/`; the code lives in
//! [`skiff_protocol`], [`skiff_broker`] and [`skiff_client`].

pub use skiff_broker as broker;
pub use skiff_client as client;
pub use skiff_protocol as protocol;
