//! `skiff topic create|alter|list|describe|delete`. Data goes to stdout, status
//! lines to stderr.

use std::io::Write;

use anyhow::Result;
use skiff_client::{AlterTopicRequest, Client, ConfigChange, TopicConfig};

use crate::args::{TopicAlterArgs, TopicCommand, TopicCreateArgs};
use crate::output;

/// Runs one topic subcommand.
pub async fn run(client: &Client, command: TopicCommand) -> Result<()> {
    let admin = client.admin();
    let mut out = output::stdout();
    match command {
        TopicCommand::Create(TopicCreateArgs {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            compression,
        }) => {
            let config = TopicConfig {
                partitions,
                retention_ms,
                retention_bytes,
                segment_bytes,
                segment_ms: None,
                compression,
            };
            admin.create_topic(&name, config).await?;
            eprintln!(
                "created topic {name} with {partitions} partition(s), compression {compression}"
            );
        }
        TopicCommand::Alter(TopicAlterArgs {
            name,
            retention_ms,
            retention_bytes,
            segment_bytes,
            segment_ms,
            compression,
        }) => {
            let keep = |c: Option<ConfigChange>| c.unwrap_or(ConfigChange::Keep);
            let config = admin
                .alter_topic(AlterTopicRequest {
                    name: name.clone(),
                    retention_ms: keep(retention_ms),
                    retention_bytes: keep(retention_bytes),
                    segment_bytes: keep(segment_bytes),
                    segment_ms: keep(segment_ms),
                    compression,
                })
                .await?;
            let opt = |v: Option<u64>| v.map_or("default".to_owned(), |v| v.to_string());
            eprintln!(
                "altered topic {name}: retention_ms={} retention_bytes={} segment_bytes={} segment_ms={} compression={}",
                opt(config.retention_ms),
                opt(config.retention_bytes),
                opt(config.segment_bytes),
                opt(config.segment_ms),
                config.compression
            );
        }
        TopicCommand::List { json } => {
            for t in admin.list_topics().await? {
                if json {
                    writeln!(out, "{}", output::listing_json(&t))?;
                } else {
                    writeln!(out, "{}\t{}", t.name, t.partitions)?;
                }
            }
        }
        TopicCommand::Describe { name, json } => {
            let d = admin.describe_topic(&name).await?;
            if json {
                writeln!(out, "{}", output::description_json(&d))?;
            } else {
                let opt = |v: Option<u64>| v.map_or("default".to_owned(), |v| v.to_string());
                writeln!(out, "topic: {}", d.name)?;
                writeln!(out, "partitions: {}", d.partitions.len())?;
                writeln!(out, "retention_ms: {}", opt(d.config.retention_ms))?;
                writeln!(out, "retention_bytes: {}", opt(d.config.retention_bytes))?;
                writeln!(out, "segment_bytes: {}", opt(d.config.segment_bytes))?;
                writeln!(out, "segment_ms: {}", opt(d.config.segment_ms))?;
                writeln!(out, "compression: {}", d.config.compression)?;
                writeln!(
                    out,
                    "partition\tlog_start_offset\tlog_end_offset\tsize_bytes"
                )?;
                for p in &d.partitions {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        p.partition, p.log_start_offset, p.log_end_offset, p.size_bytes
                    )?;
                }
            }
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            eprintln!("deleted topic {name}");
        }
    }
    out.finish()
}
