//! One module per subcommand; each takes its parsed arguments and a
//! [`skiff_client::Client`] and returns `anyhow::Result`.

pub mod consume;
pub mod ops;
pub mod group;
pub mod produce;
pub mod topic;
