//! `skiff status` (the `completions` subcommand has only its shell, an
//! argument of the [`Command`](super::Command) variant itself).

use clap::Args;

/// `skiff status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}
