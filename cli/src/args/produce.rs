//! `skiff produce`: what to send (a value or stdin lines), keys, partition
//! and headers.

use clap::Args;
use skiff_client::{Compression, CompressionLevel};

/// `skiff produce`
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to send to.
    pub topic: String,
    /// Key for every message (a key from --key-separator wins).
    #[arg(long)]
    pub key: Option<String>,
    /// Send to this partition (default: by key hash, else the broker picks).
    #[arg(long)]
    pub partition: Option<u32>,
    /// A header on every message, NAME=VALUE; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Send this one message instead of reading stdin.
    #[arg(long)]
    pub value: Option<String>,
    /// Split each stdin line at the first SEP into key and value.
    #[arg(long, value_name = "SEP", conflicts_with = "value")]
    pub key_separator: Option<String>,
    /// Batch compression codec and level.
    #[command(flatten)]
    pub compression: CompressionArgs,
}

/// `--compression CODEC [--compression-level N]`, shared by the commands that
/// produce.
#[derive(Debug, Clone, Copy, Args)]
pub struct CompressionArgs {
    /// Compress each batch's records: none, gzip, snappy, lz4 or zstd.
    #[arg(long, value_name = "CODEC", default_value_t = Compression::None)]
    pub compression: Compression,
    /// Level for --compression (gzip 0-9, zstd -7..22; others have none).
    #[arg(
        long,
        value_name = "N",
        default_value_t = CompressionLevel::Default,
        allow_negative_numbers = true
    )]
    pub compression_level: CompressionLevel,
}

impl CompressionArgs {
    /// Checks the level against the codec, naming the flags when refused.
    pub fn check(&self) -> Result<(), String> {
        self.compression
            .check_level(self.compression_level)
            .map_err(|e| format!("--compression-level: {e}"))
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_header("a="), Ok(("a".into(), String::new())));
        assert!(parse_header("=b").is_err());
        assert!(parse_header("ab").is_err());
    }
}
