//! `skiff user`: add, remove and list users; create and revoke API tokens.
//! A new user's password comes from stdin (`--password-stdin`) or
//! `$SKIFF_NEW_PASSWORD`, never from a flag, and is never printed; a new
//! token is printed once, alone on stdout, so it can be redirected to a file.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use serde_json::json;
use skiff_client::{Client, Secret};

use crate::args::{TokenCommand, UserAddArgs, UserCommand};
use crate::output;

/// Where `skiff user add` reads the password when not from stdin.
pub const NEW_PASSWORD_ENV: &str = "SKIFF_NEW_PASSWORD";

/// Runs `skiff user ...`.
pub async fn run(client: &Client, command: UserCommand) -> Result<()> {
    let security = client.security();
    let mut out = output::stdout();
    match command {
        UserCommand::Add(args) => {
            let password = new_password(&args)?;
            let created = security.put_user(&args.name, password, args.admin).await?;
            let role = if args.admin { "admin" } else { "user" };
            let what = if created { "created" } else { "updated" };
            eprintln!("{what} {role} {}", args.name);
        }
        UserCommand::Remove { name } => {
            security.delete_user(&name).await?;
            eprintln!("removed user {name}");
        }
        UserCommand::List { json } => {
            let users = security.list_users().await?;
            if json {
                for u in &users {
                    let line =
                        json!({ "name": u.name, "admin": u.admin, "token_ids": u.token_ids });
                    writeln!(out, "{line}")?;
                }
            } else {
                writeln!(out, "{:<32} {:<6} TOKENS", "USER", "ADMIN")?;
                for u in &users {
                    writeln!(
                        out,
                        "{:<32} {:<6} {}",
                        u.name,
                        if u.admin { "yes" } else { "no" },
                        u.token_ids.join(",")
                    )?;
                }
            }
        }
        UserCommand::Token(TokenCommand::Create { user }) => {
            let (id, token) = security.create_token(&user).await?;
            writeln!(out, "{}", token.expose())?;
            eprintln!("created token {id} for user {user} (shown once; store it now)");
        }
        UserCommand::Token(TokenCommand::Revoke { user, token_id }) => {
            security.revoke_token(&user, &token_id).await?;
            eprintln!("revoked token {token_id} of user {user}");
        }
    }
    out.finish()
}

/// The new user's password: stdin's first line, or `$SKIFF_NEW_PASSWORD`.
fn new_password(args: &UserAddArgs) -> Result<Secret> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        match std::env::var(NEW_PASSWORD_ENV) {
            Ok(p) => p,
            Err(_) => bail!("give the password with --password-stdin or ${NEW_PASSWORD_ENV}"),
        }
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(Secret::new(password))
}
