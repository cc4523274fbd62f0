//! One module per subcommand; each takes its parsed arguments and a
//! [`skiff_client::Client`] and returns `anyhow::Result`.

pub mod acl;
pub mod bench;
pub mod bench_queue;
pub mod bench_rebalance;
pub mod consume;
pub mod group;
pub mod ops;
pub mod produce;
pub mod queue;
pub mod topic;
pub mod user;
