//! `skiff group ...`: list, describe, reset offsets of, and delete consumer
//! groups.

use clap::{Args, Subcommand};
use skiff_client::ResetTo;
use skiff_protocol::group_name::validate_group_name;

/// A group name argument, checked against the broker's rule
/// ([`skiff_protocol::group_name`]) so a bad one is a usage error (exit 2)
/// before anything connects.
pub fn group_name(value: &str) -> Result<String, String> {
    validate_group_name(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

/// `skiff group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with their state, member count and generation.
    #[command(after_help = "Example:\n  skiff group list --json")]
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a group's members and, per partition, committed offset, log end
    /// offset and lag.
    #[command(after_help = "Example:\n  skiff group describe billing --json")]
    Describe {
        /// Group name.
        #[arg(value_parser = group_name)]
        group: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets on every partition of a topic (the
    /// group must have no members).
    #[command(after_help = "\
Examples:
  skiff group reset-offsets billing --topic orders --to-earliest
  skiff group reset-offsets billing --topic orders --to-offset 1500
  skiff group reset-offsets billing --topic orders --to-timestamp 1700000000000")]
    ResetOffsets(GroupResetArgs),
    /// Delete a group and its committed offsets (the group must have no
    /// members).
    #[command(after_help = "Example:\n  skiff group delete billing")]
    Delete {
        /// Group name.
        #[arg(value_parser = group_name)]
        group: String,
    },
}

/// `skiff group reset-offsets`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_timestamp"])))]
pub struct GroupResetArgs {
    /// Group name.
    #[arg(value_parser = group_name)]
    pub group: String,
    /// Topic whose partitions are reset.
    #[arg(long)]
    pub topic: String,
    /// To each partition's first stored offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's end (skip everything stored).
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset on every partition (clamped to each log).
    #[arg(long, value_name = "N")]
    pub to_offset: Option<u64>,
    /// To the first record at or after this Unix time, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub to_timestamp: Option<i64>,
}

impl GroupResetArgs {
    /// The chosen target (clap makes exactly one present).
    pub fn target(&self) -> ResetTo {
        match (self.to_offset, self.to_timestamp) {
            (Some(offset), _) => ResetTo::Offset(offset),
            (_, Some(ms)) => ResetTo::Timestamp(ms),
            _ if self.to_latest => ResetTo::Latest,
            _ => ResetTo::Earliest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::args::{Cli, Command};

    #[test]
    fn reset_targets_parse_and_exactly_one_is_required() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["skiff", "group", "reset-offsets", "g", "--topic", "t"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        let target = |extra: &[&str]| match parse(extra).map(|c| c.command) {
            Ok(Command::Group(GroupCommand::ResetOffsets(a))) => Some(a.target()),
            _ => None,
        };
        assert_eq!(target(&["--to-earliest"]), Some(ResetTo::Earliest));
        assert_eq!(target(&["--to-latest"]), Some(ResetTo::Latest));
        assert_eq!(target(&["--to-offset", "7"]), Some(ResetTo::Offset(7)));
        assert_eq!(
            target(&["--to-timestamp", "5"]),
            Some(ResetTo::Timestamp(5))
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["--to-earliest", "--to-latest"]).is_err());
    }

    /// Every argument that names a group follows the one rule: a bad name
    /// is a usage error, a long one within the broker's limit is not.
    #[test]
    fn every_group_argument_follows_the_group_name_rule() {
        let with = |group: &str| -> Vec<Vec<String>> {
            let g = group.to_owned();
            [
                vec!["group", "describe", &g],
                vec!["group", "delete", &g],
                vec!["group", "reset-offsets", &g, "--topic", "t", "--to-latest"],
                vec!["consume", "t", "--group", &g],
                vec!["bench", "consume", "--topic", "t", "--group", &g],
                vec!["acl", "grant", "a", "--ops", "all", "--group", &g],
                vec!["acl", "grant", "a", "--ops", "all", "--group-prefix", &g],
            ]
            .into_iter()
            .map(|args| args.into_iter().map(str::to_owned).collect())
            .collect()
        };
        let parses = |args: &[String]| {
            Cli::try_parse_from(std::iter::once("skiff".to_owned()).chain(args.iter().cloned()))
        };
        let longest = "g".repeat(skiff_protocol::group_name::GROUP_NAME_BYTES_MAX);
        for ok in ["billing", "team a/billing", &longest] {
            for args in with(ok) {
                assert!(parses(&args).is_ok(), "{args:?}");
            }
        }
        let too_long = format!("{longest}g");
        for bad in ["", "a\nb", "tab\there", &too_long] {
            for args in with(bad) {
                let err = parses(&args).expect_err("refused");
                assert_eq!(
                    err.kind(),
                    clap::error::ErrorKind::ValueValidation,
                    "{args:?}"
                );
            }
        }
    }
}
