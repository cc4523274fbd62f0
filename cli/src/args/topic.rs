//! `skiff topic ...`: create, alter, list, describe and delete topics.

use clap::{Args, Subcommand};
use skiff_client::{ConfigChange, TopicCompression};

/// `skiff topic ...`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    #[command(
        after_help = "Example:\n  skiff topic create orders --partitions 6 --retention-ms 604800000"
    )]
    Create(TopicCreateArgs),
    /// Change a live topic's retention, segment and compression settings.
    #[command(after_help = "\
Examples:
  skiff topic alter orders --retention-ms 604800000
  skiff topic alter orders --retention-bytes 10737418240 --segment-bytes 268435456
  skiff topic alter orders --retention-ms default   # back to the broker's default
  skiff topic alter orders --compression zstd       # store new batches as zstd

Changes apply to every partition at once and survive restarts; the next
retention check (retention_check_interval_ms) deletes what the new limits exclude.")]
    Alter(TopicAlterArgs),
    /// List topics with their partition counts.
    #[command(after_help = "Examples:\n  skiff topic list\n  skiff topic list --json")]
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's settings and partitions (offsets, sizes).
    #[command(
        after_help = "Examples:\n  skiff topic describe orders\n  skiff topic describe orders --json"
    )]
    Describe {
        /// Topic name.
        name: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and all its data.
    #[command(after_help = "Example:\n  skiff topic delete orders")]
    Delete {
        /// Topic name.
        name: String,
    },
}

/// `skiff topic create`
#[derive(Debug, Args)]
pub struct TopicCreateArgs {
    /// Topic name: 1-249 characters of A-Z a-z 0-9 . _ -
    pub name: String,
    /// Number of partitions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Delete segments older than this, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub retention_ms: Option<u64>,
    /// Keep at most this many bytes per partition.
    #[arg(long, value_name = "B")]
    pub retention_bytes: Option<u64>,
    /// Roll segments at this size, in bytes.
    #[arg(long, value_name = "B")]
    pub segment_bytes: Option<u64>,
    /// How batches are stored: as the producer sent them (`producer`), or
    /// recompressed by the broker to none, gzip, snappy, lz4 or zstd.
    #[arg(long, value_name = "POLICY", default_value_t = TopicCompression::Producer)]
    pub compression: TopicCompression,
}

/// `skiff topic alter`: each setting is a number, or `default` to fall
/// back to the broker's default; settings not given stay as they are.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["retention_ms", "retention_bytes", "segment_bytes", "segment_ms", "compression"])))]
pub struct TopicAlterArgs {
    /// Topic name.
    pub name: String,
    /// Delete segments older than this, in milliseconds, or `default`.
    #[arg(long, value_name = "MS|default", value_parser = parse_change)]
    pub retention_ms: Option<ConfigChange>,
    /// Keep at most this many bytes per partition, or `default`.
    #[arg(long, value_name = "B|default", value_parser = parse_change)]
    pub retention_bytes: Option<ConfigChange>,
    /// Roll segments at this size, in bytes (at least 1024), or `default`.
    #[arg(long, value_name = "B|default", value_parser = parse_change)]
    pub segment_bytes: Option<ConfigChange>,
    /// Roll segments at this age, in milliseconds, or `default`.
    #[arg(long, value_name = "MS|default", value_parser = parse_change)]
    pub segment_ms: Option<ConfigChange>,
    /// Store batches produced from now on as sent (`producer`) or
    /// recompressed to none, gzip, snappy, lz4 or zstd.
    #[arg(long, value_name = "POLICY")]
    pub compression: Option<TopicCompression>,
}

fn parse_change(s: &str) -> Result<ConfigChange, String> {
    if s == "default" {
        return Ok(ConfigChange::Reset);
    }
    s.parse::<u64>()
        .map(ConfigChange::Set)
        .map_err(|_| format!("expected a whole number or `default`, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::args::{Cli, Command};

    #[test]
    fn alter_changes_parse_and_one_is_required() {
        assert_eq!(parse_change("1000"), Ok(ConfigChange::Set(1000)));
        assert_eq!(parse_change("default"), Ok(ConfigChange::Reset));
        assert!(parse_change("-1").is_err());
        let parsed = Cli::try_parse_from(["skiff", "topic", "alter", "t", "--retention-ms", "5"]);
        assert!(matches!(
            parsed.map(|c| c.command),
            Ok(Command::Topic(TopicCommand::Alter(TopicAlterArgs {
                retention_ms: Some(ConfigChange::Set(5)),
                segment_ms: None,
                ..
            })))
        ));
        assert!(Cli::try_parse_from(["skiff", "topic", "alter", "t"]).is_err());
    }

    #[test]
    fn compression_policies_parse_and_bad_ones_are_named() {
        let parsed = Cli::try_parse_from(["skiff", "topic", "alter", "t", "--compression", "zstd"]);
        assert!(matches!(
            parsed.map(|c| c.command),
            Ok(Command::Topic(TopicCommand::Alter(TopicAlterArgs {
                compression: Some(TopicCompression::Codec(skiff_client::Compression::Zstd)),
                ..
            })))
        ));
        let parsed = Cli::try_parse_from(["skiff", "topic", "create", "t"]);
        assert!(matches!(
            parsed.map(|c| c.command),
            Ok(Command::Topic(TopicCommand::Create(TopicCreateArgs {
                compression: TopicCompression::Producer,
                ..
            })))
        ));
        let err = Cli::try_parse_from(["skiff", "topic", "create", "t", "--compression", "brotli"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("brotli") && err.contains("producer"), "{err}");
    }
}
