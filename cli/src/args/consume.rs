//! `skiff consume`: which topic and partitions, where to start, when to stop,
//! the output format and an optional consumer group.

use clap::Args;
use skiff_client::StartFrom;

use super::group::group_name;

/// `skiff consume`
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Where to start: earliest, latest, an OFFSET, or @UNIX_MS.
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: StartFrom,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Stop after this long without a message, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// One JSON object per message: topic, partition, offset, timestamp_ms,
    /// key, value, headers.
    #[arg(long)]
    pub json: bool,
    /// Consume as a member of this consumer group.
    #[arg(long, value_name = "GROUP", conflicts_with = "partition", value_parser = group_name)]
    pub group: Option<String>,
}

fn parse_start(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        _ => {
            if let Some(ms) = s.strip_prefix('@') {
                ms.parse::<i64>()
                    .map(StartFrom::Timestamp)
                    .map_err(|_| format!("expected @UNIX_MS, got {s:?}"))
            } else {
                s.parse::<u64>().map(StartFrom::Offset).map_err(|_| {
                    format!("expected earliest, latest, an offset or @UNIX_MS, got {s:?}")
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("earliest"), Ok(StartFrom::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartFrom::Latest));
        assert_eq!(parse_start("42"), Ok(StartFrom::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(StartFrom::Timestamp(1_700_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("@x").is_err());
    }
}
