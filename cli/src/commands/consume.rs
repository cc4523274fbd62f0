//! `skiff consume`: prints messages, one per line, until `--max-messages`,
//! `--idle-timeout-ms` or Ctrl-C.
//!
//! Output is flushed after each message when following (so `tail -f`-style
//! use sees messages at once) and buffered otherwise.
//!
//! With `--group` the command is a member of that consumer group. Every
//! message is flushed to stdout before the next is asked for, so whatever
//! the consumer commits (auto-commit, a revocation, the final commit on
//! exit) has been written out: at-least-once, never a skipped line. On a
//! normal end (including Ctrl-C) it commits and leaves the group; when
//! writing fails it exits without committing.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use skiff_client::{Client, Consumer, ConsumerConfig, GroupConfig};

use crate::args::ConsumeArgs;
use crate::output;

/// Runs `skiff consume`.
pub async fn run(client: &Client, args: ConsumeArgs) -> Result<()> {
    let mut consumer = match &args.group {
        Some(group) => {
            let config = GroupConfig::new(group, [&args.topic]).reset(args.from);
            Consumer::with_group(client.clone(), config)
                .await
                .with_context(|| format!("joining group {group:?}"))?
        }
        None => {
            let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
            match args.partition {
                Some(p) => consumer.assign(&args.topic, [p], args.from).await?,
                None => {
                    consumer.assign_all(&args.topic, args.from).await?;
                }
            }
            consumer
        }
    };
    if args.max_messages != Some(0) {
        print(&mut consumer, &args).await?;
    }
    // Only reached once everything printed is flushed.
    if let Some(group) = &args.group {
        consumer
            .close()
            .await
            .with_context(|| format!("committing and leaving group {group:?}"))?;
    }
    Ok(())
}

/// Prints messages until the end condition; flushed on return.
async fn print(consumer: &mut Consumer, args: &ConsumeArgs) -> Result<()> {
    let flush_each = args.max_messages.is_none() || args.group.is_some();
    let mut out = output::stdout();
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let mut printed: u64 = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = async {
            match idle {
                Some(idle) => tokio::time::timeout(idle, consumer.next()).await.ok(),
                None => Some(consumer.next().await),
            }
        };
        let item = tokio::select! {
            _ = &mut ctrl_c => break,
            item = next => item,
        };
        let record = match item {
            None => break,       // idle timeout
            Some(None) => break, // nothing left to read
            Some(Some(record)) => record?,
        };
        if args.json {
            writeln!(out, "{}", output::record_json(&record))
        } else {
            out.write_all(output::lossy(&record.value).as_bytes())
                .and_then(|()| out.write_all(b"\n"))
        }
        .context("writing to stdout")?;
        printed += 1;
        if args.max_messages.is_some_and(|max| printed >= max) {
            break;
        }
        if flush_each {
            out.flush().context("writing to stdout")?;
        }
    }
    out.finish()
}
