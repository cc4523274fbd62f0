//! `skiff acl ...`: grants of operations on topics and groups, by exact name,
//! by prefix, or on everything (said explicitly, never by an empty name).

use clap::{Args, Subcommand};
use skiff_client::{ResourceKind, ResourcePattern};

use super::group::group_name;

/// `skiff acl ...` (admin only once the broker has users)
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow a user operations on a topic or group (by name or prefix).
    #[command(after_help = "\
Examples:
  skiff acl grant alice --topic orders --ops produce,consume
  skiff acl grant alice --topic-prefix logs. --ops consume
  skiff acl grant alice --group billing --ops consume

Operations: produce, consume, create, delete, describe, alter, or all.
Any operation on a resource implies describe. Consuming in a group needs
consume on the group and on its topics.")]
    Grant(AclArgs),
    /// Take operations back from a user's grant.
    #[command(after_help = "Example:\n  skiff acl revoke alice --topic orders --ops produce")]
    Revoke(AclArgs),
    /// List grants, of one user or of everyone.
    #[command(after_help = "Examples:\n  skiff acl list\n  skiff acl list alice --json")]
    List {
        /// Only this user's grants.
        #[arg(id = "grantee", value_name = "USER")]
        user: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// A name or prefix flag's value: an empty one would be a mistake (an
/// empty exact name matches nothing, an empty prefix everything).
fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(
            "must not be empty (to cover every topic or group, use --all-topics or --all-groups)"
                .into(),
        )
    } else {
        Ok(value.to_owned())
    }
}

/// A group name or prefix flag's value: not empty (as above), and within
/// the group-name rule (a prefix of a valid name follows it too).
fn group_pattern(value: &str) -> Result<String, String> {
    non_empty(value).and_then(|value| group_name(&value))
}

/// `skiff acl grant|revoke`: a user, one resource pattern, operations.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("resource").required(true).args(["topic", "topic_prefix", "all_topics", "group", "group_prefix", "all_groups"])))]
pub struct AclArgs {
    /// The user (a positional argument: `--user` is the global flag naming
    /// who runs the command).
    #[arg(id = "grantee", value_name = "USER")]
    pub user: String,
    /// A topic, by exact name.
    #[arg(long, value_parser = non_empty)]
    pub topic: Option<String>,
    /// Every topic whose name starts with this (not empty: see
    /// --all-topics).
    #[arg(long, value_name = "PREFIX", value_parser = non_empty)]
    pub topic_prefix: Option<String>,
    /// Every topic, present and future.
    #[arg(long)]
    pub all_topics: bool,
    /// A consumer group, by exact name.
    #[arg(long, value_parser = group_pattern)]
    pub group: Option<String>,
    /// Every group whose name starts with this (not empty: see
    /// --all-groups).
    #[arg(long, value_name = "PREFIX", value_parser = group_pattern)]
    pub group_prefix: Option<String>,
    /// Every consumer group, present and future.
    #[arg(long)]
    pub all_groups: bool,
    /// Comma-separated operations: produce, consume, create, delete,
    /// describe, alter, or all.
    #[arg(long, value_parser = skiff_client::Operations::parse)]
    pub ops: skiff_client::Operations,
}

impl AclArgs {
    /// The resource pattern the flags name (clap makes exactly one present).
    pub fn resource(&self) -> ResourcePattern {
        let all = String::new();
        let (kind, name, prefix) = match (
            &self.topic,
            &self.topic_prefix,
            &self.group,
            &self.group_prefix,
        ) {
            _ if self.all_topics => (ResourceKind::Topic, &all, true),
            _ if self.all_groups => (ResourceKind::Group, &all, true),
            (Some(t), ..) => (ResourceKind::Topic, t, false),
            (_, Some(p), ..) => (ResourceKind::Topic, p, true),
            (_, _, Some(g), _) => (ResourceKind::Group, g, false),
            (_, _, _, Some(p)) => (ResourceKind::Group, p, true),
            (None, None, None, None) => unreachable!("clap requires one resource flag"),
        };
        ResourcePattern {
            kind,
            name: name.clone(),
            prefix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::args::{Cli, Command};

    #[test]
    fn acl_flags_need_exactly_one_resource_and_valid_ops() {
        let parsed = Cli::try_parse_from([
            "skiff",
            "acl",
            "grant",
            "a",
            "--topic-prefix",
            "logs.",
            "--ops",
            "consume",
        ])
        .expect("parses");
        let Command::Acl(AclCommand::Grant(args)) = parsed.command else {
            panic!("acl grant");
        };
        assert_eq!(args.resource().to_string(), "topic prefix 'logs.'");
        let both = [
            "skiff", "acl", "grant", "a", "--topic", "t", "--group", "g", "--ops", "all",
        ];
        assert!(Cli::try_parse_from(both).is_err());
        let none = ["skiff", "acl", "grant", "a", "--ops", "all"];
        assert!(Cli::try_parse_from(none).is_err());
        let bad = ["skiff", "acl", "grant", "a", "--topic", "t", "--ops", "fly"];
        assert!(Cli::try_parse_from(bad).is_err());
    }
}
