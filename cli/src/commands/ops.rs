//! `skiff status` (the broker's health at a glance) and `skiff completions`
//! (shell completion scripts, generated from the clap definition so they
//! never drift from the real flags).

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::CommandFactory;
use serde_json::json;
use skiff_client::{Client, StatusResponse};

use crate::args::{Cli, StatusArgs};
use crate::output;

/// Runs `skiff status`.
pub async fn status(client: &Client, args: StatusArgs) -> Result<()> {
    let s = client.admin().status().await?;
    let mut out = output::stdout();
    if args.json {
        writeln!(out, "{}", status_json(&s))?;
    } else {
        writeln!(out, "broker_version: {}", s.broker_version)?;
        writeln!(
            out,
            "uptime: {}",
            human_duration(Duration::from_millis(s.uptime_ms))
        )?;
        writeln!(out, "data_dir: {}", s.data_dir)?;
        writeln!(out, "topics: {}", s.topics)?;
        writeln!(out, "partitions: {}", s.partitions)?;
        writeln!(out, "groups: {}", s.groups)?;
        writeln!(out, "connections: {}/{}", s.connections, s.connections_max)?;
        writeln!(out, "log_bytes: {}", s.log_bytes)?;
    }
    out.finish()
}

/// The status as one JSON object (field names as in the protocol).
pub fn status_json(s: &StatusResponse) -> serde_json::Value {
    json!({
        "broker_version": s.broker_version,
        "uptime_ms": s.uptime_ms,
        "data_dir": s.data_dir,
        "topics": s.topics,
        "partitions": s.partitions,
        "groups": s.groups,
        "connections": s.connections,
        "connections_max": s.connections_max,
        "log_bytes": s.log_bytes,
    })
}

/// `3d 4h 5m 6s`, leaving out leading zero units.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{mins}m {s}s"),
        (0, _, _) => format!("{hours}h {mins}m {s}s"),
        _ => format!("{days}d {hours}h {mins}m {s}s"),
    }
}

/// Runs `skiff completions SHELL`: the script goes to stdout.
///
/// Generated into memory first: `clap_complete` panics when its writer
/// fails, so it must not write to stdout itself (a closed pipe, as in
/// `skiff completions fish | head -1`, would be a panic, not a clean exit).
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "skiff", &mut script);
    let mut out = output::stdout();
    out.write_all(&script)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
        assert_eq!(human_duration(Duration::from_secs(65)), "1m 5s");
        assert_eq!(human_duration(Duration::from_secs(3_725)), "1h 2m 5s");
        assert_eq!(human_duration(Duration::from_secs(90_061)), "1d 1h 1m 1s");
    }
}
