//! `skiff group`: list, describe, reset offsets of, and delete consumer
//! groups. Human output is aligned columns; `--json` is one object per
//! group (list: one per line).

use std::io::Write;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use skiff_client::{
    Client, DescribeGroupResponse, ErrorCode, GroupListing, PartitionProgress, TopicPartition,
};

use crate::args::GroupCommand;
use crate::output;

/// Runs `skiff group ...`.
pub async fn run(client: &Client, command: GroupCommand) -> Result<()> {
    let admin = client.admin();
    let mut out = output::stdout();
    match command {
        GroupCommand::List { json } => {
            let groups = admin.list_groups().await?;
            if json {
                for g in &groups {
                    writeln!(out, "{}", listing_json(g))?;
                }
            } else {
                writeln!(
                    out,
                    "{:<32} {:<12} {:>8} {:>10}",
                    "GROUP", "STATE", "MEMBERS", "GENERATION"
                )?;
                for g in &groups {
                    writeln!(
                        out,
                        "{:<32} {:<12} {:>8} {:>10}",
                        g.group, g.state, g.members, g.generation
                    )?;
                }
            }
        }
        GroupCommand::Describe { group, json } => {
            let d = admin
                .describe_group(&group)
                .await
                .map_err(|e| about(e, &group))?;
            if json {
                writeln!(out, "{}", description_json(&d))?;
            } else {
                print_description(&mut out, &d)?;
            }
        }
        GroupCommand::ResetOffsets(args) => {
            let offsets = admin
                .reset_offsets(&args.group, &args.topic, args.target())
                .await
                .map_err(|e| about(e, &args.group))?;
            for (tp, offset) in &offsets {
                writeln!(out, "{tp} {offset}")?;
            }
            eprintln!(
                "reset {} partitions of {} for group {}",
                offsets.len(),
                args.topic,
                args.group
            );
        }
        GroupCommand::Delete { group } => {
            admin
                .delete_group(&group)
                .await
                .map_err(|e| about(e, &group))?;
            eprintln!("deleted group {group}");
        }
    }
    out.finish()
}

/// Adds what to do about the group errors a person can act on.
fn about(e: skiff_client::Error, group: &str) -> anyhow::Error {
    match e.code() {
        Some(ErrorCode::GroupNotEmpty) => {
            anyhow!("group {group:?} has members; stop its consumers first ({e})")
        }
        Some(ErrorCode::UnknownGroup) => anyhow!("unknown group {group:?}"),
        _ => anyhow::Error::new(e),
    }
}

fn tps(list: &[TopicPartition]) -> String {
    let parts: Vec<String> = list.iter().map(ToString::to_string).collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(",")
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn print_description(out: &mut impl Write, d: &DescribeGroupResponse) -> std::io::Result<()> {
    writeln!(
        out,
        "group {}  state {}  generation {}",
        d.group, d.state, d.generation
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:<16} {:<22} PARTITIONS",
        "MEMBER", "CLIENT", "HOST"
    )?;
    for m in &d.members {
        let revoking = if m.revoking.is_empty() {
            String::new()
        } else {
            format!("  (revoking {})", tps(&m.revoking))
        };
        writeln!(
            out,
            "{:<28} {:<16} {:<22} {}{revoking}",
            m.member_id,
            m.client_id,
            m.host,
            tps(&m.owned)
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<24} {:>9} {:<28} {:>12} {:>12} {:>10} {:>16}",
        "TOPIC", "PARTITION", "OWNER", "COMMITTED", "LOG-END", "LAG", "MOVING-FOR"
    )?;
    for p in &d.partitions {
        writeln!(
            out,
            "{:<24} {:>9} {:<28} {:>12} {:>12} {:>10} {:>16}",
            p.partition.topic,
            p.partition.partition,
            p.owner.as_deref().unwrap_or("-"),
            opt(p.committed),
            p.log_end_offset,
            opt(p.lag),
            p.waiting_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
        )?;
    }
    Ok(())
}

fn tps_json(list: &[TopicPartition]) -> Value {
    list.iter()
        .map(|tp| json!({"topic": tp.topic, "partition": tp.partition}))
        .collect()
}

/// A group listing entry as JSON.
fn listing_json(g: &GroupListing) -> Value {
    json!({
        "group": g.group,
        "state": g.state.name(),
        "members": g.members,
        "generation": g.generation,
    })
}

fn progress_json(p: &PartitionProgress) -> Value {
    json!({
        "topic": p.partition.topic,
        "partition": p.partition.partition,
        "owner": p.owner,
        "committed": p.committed,
        "log_end_offset": p.log_end_offset,
        "lag": p.lag,
        "waiting_ms": p.waiting_ms,
    })
}

/// A group description as JSON.
fn description_json(d: &DescribeGroupResponse) -> Value {
    json!({
        "group": d.group,
        "state": d.state.name(),
        "generation": d.generation,
        "members": d.members.iter().map(|m| json!({
            "member_id": m.member_id,
            "client_id": m.client_id,
            "host": m.host,
            "topics": m.topics,
            "partitions": tps_json(&m.owned),
            "revoking": tps_json(&m.revoking),
        })).collect::<Vec<_>>(),
        "partitions": d.partitions.iter().map(progress_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_client::{GroupState, MemberDescription};

    #[test]
    fn descriptions_render_as_json() {
        let d = DescribeGroupResponse {
            group: "g".into(),
            state: GroupState::Stable,
            generation: 2,
            members: vec![MemberDescription {
                member_id: "m-1".into(),
                client_id: "c".into(),
                host: "127.0.0.1:1".into(),
                topics: vec!["t".into()],
                owned: vec![TopicPartition::new("t", 0)],
                revoking: vec![],
            }],
            partitions: vec![PartitionProgress {
                partition: TopicPartition::new("t", 0),
                owner: Some("m-1".into()),
                committed: None,
                log_end_offset: 5,
                lag: None,
                waiting_ms: Some(40),
            }],
        };
        let v = description_json(&d);
        assert_eq!(v["state"], "stable");
        assert_eq!(v["members"][0]["partitions"][0]["partition"], 0);
        assert_eq!(v["partitions"][0]["committed"], Value::Null);
        assert_eq!(v["partitions"][0]["log_end_offset"], 5);
        assert_eq!(v["partitions"][0]["waiting_ms"], 40);
        let mut text = Vec::new();
        print_description(&mut text, &d).expect("write to a Vec");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("m-1") && text.contains("t/0"), "{text}");
        assert!(text.contains("40 ms"), "{text}");
    }
}
