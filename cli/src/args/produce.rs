//! `skiff produce`: what to send (a value or stdin lines), keys, partition
//! and headers.

use clap::Args;

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
