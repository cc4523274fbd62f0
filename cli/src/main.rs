//! `skiff`: the command-line client. A thin main: parse arguments (usage
//! errors exit 2, from clap), run the command on a tokio runtime, print any
//! error as one `error: ...` line and exit 1. A closed stdout pipe is a clean
//! exit 0.

mod args;
mod commands;
mod output;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use skiff_client::Client;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Every command connects with these settings (address, TLS).
    let config = cli.client_config("skiff-cli");
    let cli = match cli.command {
        // The bench runs its actors on a multi-threaded runtime of its own.
        Command::Bench(args) => {
            return commands::bench::run(config.client_id("skiff-bench"), args);
        }
        command => Cli { command, ..cli },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::lazy(config);
        match cli.command {
            Command::Topic(command) => commands::topic::run(&client, command).await,
            Command::Produce(args) => commands::produce::run(&client, args).await,
            Command::Consume(args) => commands::consume::run(&client, args).await,
            Command::Status(args) => commands::ops::status(&client, args).await,
            Command::Completions { shell } => commands::ops::completions(shell),
            Command::Bench(_) => unreachable!("handled before the runtime starts"),
            Command::Group(command) => commands::group::run(&client, command).await,
        }
    })
}
