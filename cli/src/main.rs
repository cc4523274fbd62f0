//! `skiff`: the command-line client. A thin main: parse arguments (usage
//! errors exit 2, from clap), run the command on a tokio runtime, print any
//! error as one `error: ...` line and exit 1. A closed stdout pipe is a clean
//! exit 0: every command writes its data through [`output::Stdout`], never
//! `print!`/`println!` (which panic on a closed pipe; denied below).

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout)]

mod args;
mod commands;
mod output;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use skiff_client::{Client, ClientConfig};

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

/// The client settings the global flags ask for (address, TLS,
/// credentials). Contradictory credentials are a usage error (exit 2); the
/// checks are here because clap's `requires` does not hold across global
/// flags.
fn client_config(cli: &Cli) -> ClientConfig {
    let config = cli.client_config("skiff-cli");
    let usage = |message: &str| -> ! {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit()
    };
    match (&cli.user, &cli.password, &cli.token) {
        (None, None, None) => config,
        (None, None, Some(token)) => config.token(token.clone()),
        (Some(user), Some(password), None) => config.password(user.clone(), password.clone()),
        (_, _, Some(_)) => usage("--token cannot be combined with --user/--password"),
        (Some(_), None, None) => usage("--user needs --password (or $SKIFF_PASSWORD)"),
        (None, Some(_), None) => usage("--password needs --user (or $SKIFF_USER)"),
    }
}

fn run(cli: Cli) -> Result<()> {
    // Every command connects with these settings (address, TLS, credentials).
    let config = client_config(&cli);
    let command = match cli.command {
        // The bench runs its actors on a multi-threaded runtime of its own.
        Command::Bench(args) => return commands::bench::run(config, args),
        command => command,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::lazy(config);
        match command {
            Command::Topic(command) => commands::topic::run(&client, command).await,
            Command::Produce(args) => commands::produce::run(&client, args).await,
            Command::Consume(args) => commands::consume::run(&client, args).await,
            Command::Status(args) => commands::ops::status(&client, args).await,
            Command::Completions { shell } => commands::ops::completions(shell),
            Command::Bench(_) => unreachable!("handled before the runtime starts"),
            Command::Group(command) => commands::group::run(&client, command).await,
            Command::Queue(command) => commands::queue::run(&client, command).await,
            Command::User(command) => commands::user::run(&client, command).await,
            Command::Acl(command) => commands::acl::run(&client, command).await,
        }
    })
}
