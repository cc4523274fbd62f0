//! `skiff user ...`: users and their API tokens (admin only once the broker
//! has users). Passwords never come from a flag.

use clap::{Args, Subcommand};

/// `skiff user ...` (admin only once the broker has users)
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace an existing user's password and admin flag.
    #[command(after_help = "\
Examples:
  printf '%s\\n' \"$ALICE_PW\" | skiff user add alice --password-stdin
  SKIFF_NEW_PASSWORD=... skiff user add ops --admin

The password comes from the first line of stdin (--password-stdin) or from
$SKIFF_NEW_PASSWORD, never from a flag, and is never printed.")]
    Add(UserAddArgs),
    /// Remove a user with its tokens and grants (not the last admin).
    #[command(after_help = "Example:\n  skiff user remove alice")]
    Remove {
        /// User name.
        name: String,
    },
    /// List users with their admin flag and token ids.
    #[command(after_help = "Examples:\n  skiff user list\n  skiff user list --json")]
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Create or revoke a user's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `skiff user add`
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// User name: 1-128 characters of A-Z a-z 0-9 . _ @ -
    pub name: String,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// The user may do anything, including managing users and ACLs.
    #[arg(long)]
    pub admin: bool,
}

/// `skiff user token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; prints it once (stdout), and its id.
    #[command(after_help = "\
Examples:
  skiff user token create billing-svc > billing.token
  SKIFF_TOKEN=$(cat billing.token) skiff topic list

The broker keeps only a digest: a lost token cannot be shown again, only
revoked and replaced.")]
    Create {
        /// User name.
        #[arg(id = "token_user", value_name = "USER")]
        user: String,
    },
    /// Revoke a user's token by its id (from create or `skiff user list`).
    #[command(after_help = "Example:\n  skiff user token revoke billing-svc 3f2a9c01d4e5")]
    Revoke {
        /// User name.
        #[arg(id = "token_user", value_name = "USER")]
        user: String,
        /// Token id.
        token_id: String,
    },
}
