//! `skiff queue`: create, alter, describe, delete, list and consume work
//! queues. Human output is aligned columns; `--json` is one object per
//! queue.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::json;
use skiff_client::protocol::ErrorCode;
use skiff_client::protocol::messages::{
    AlterQueueRequest, CreateQueueRequest, DeleteQueueRequest, DescribeQueueRequest,
    ListQueuesRequest, QueueConfig, QueueSettingsInfo,
};
use skiff_client::{
    AutoCommit, Client, Consumer, Delivery, GroupConfig, Producer, ProducerConfig, ProducerRecord,
    QueueConsumer, QueueConsumerConfig, StartFrom,
};

use crate::args::queue::{
    OnFailure, OrderingArg, QueueCommand, QueueConsumeArgs, QueueReplayArgs, QueueSettingsArgs,
};
use crate::output;

fn config(s: &QueueSettingsArgs, dead_letter_topic: Option<String>) -> QueueConfig {
    QueueConfig {
        lock_ms: s.lock_ms,
        max_deliveries: s.max_deliveries,
        backoff_initial_ms: s.backoff_initial_ms,
        backoff_multiplier: s.backoff_multiplier,
        backoff_max_ms: s.backoff_max_ms,
        ordering: s.ordering.map(|o| {
            match o {
                OrderingArg::None => "none",
                OrderingArg::Key => "key",
            }
            .to_owned()
        }),
        dead_letter_topic,
        window_records: s.window_records,
    }
}

fn settings_json(s: &QueueSettingsInfo) -> serde_json::Value {
    json!({
        "topic": s.topic,
        "lock_ms": s.lock_ms,
        "max_deliveries": s.max_deliveries,
        "backoff_initial_ms": s.backoff_initial_ms,
        "backoff_multiplier": s.backoff_multiplier,
        "backoff_max_ms": s.backoff_max_ms,
        "ordering": s.ordering,
        "dead_letter_topic": s.dead_letter_topic,
        "window_records": s.window_records,
    })
}

fn print_settings(out: &mut impl Write, s: &QueueSettingsInfo) -> Result<()> {
    writeln!(out, "topic              {}", s.topic)?;
    writeln!(out, "dead_letter_topic  {}", s.dead_letter_topic)?;
    writeln!(out, "lock_ms            {}", s.lock_ms)?;
    writeln!(out, "max_deliveries     {}", s.max_deliveries)?;
    writeln!(
        out,
        "backoff            {} ms x{} (max {} ms)",
        s.backoff_initial_ms, s.backoff_multiplier, s.backoff_max_ms
    )?;
    writeln!(out, "ordering           {}", s.ordering)?;
    writeln!(out, "window_records     {}", s.window_records)?;
    Ok(())
}

/// Runs `skiff queue ...`.
pub async fn run(client: &Client, command: QueueCommand) -> Result<()> {
    let mut out = output::stdout();
    match command {
        QueueCommand::Create(args) => {
            let r = client
                .send(CreateQueueRequest {
                    name: args.queue.clone(),
                    topic: args.topic.clone(),
                    config: config(&args.settings, args.dead_letter_topic),
                })
                .await?;
            eprintln!(
                "created queue {} on {} (dead letters: {})",
                args.queue, args.topic, r.dead_letter_topic
            );
        }
        QueueCommand::Alter(args) => {
            let r = client
                .send(AlterQueueRequest {
                    name: args.queue,
                    config: config(&args.settings, None),
                })
                .await?;
            print_settings(&mut out, &r.settings)?;
        }
        QueueCommand::Describe { queue, json } => {
            let d = client.send(DescribeQueueRequest { name: queue }).await?;
            if json {
                let partitions: Vec<_> = d
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition, "floor": p.floor, "log_end": p.log_end,
                            "available": p.available, "in_flight": p.in_flight,
                            "delayed": p.delayed, "dead_lettered": p.dead_lettered,
                            "acked": p.acked, "lock_expiries": p.lock_expiries,
                            "oldest_unacked_age_ms": p.oldest_unacked_age_ms,
                        })
                    })
                    .collect();
                let mut v = settings_json(&d.settings);
                v["partitions"] = json!(partitions);
                writeln!(out, "{v}")?;
            } else {
                print_settings(&mut out, &d.settings)?;
                writeln!(
                    out,
                    "\n{:>9} {:>12} {:>10} {:>10} {:>9} {:>8} {:>13} {:>15}",
                    "PARTITION",
                    "FLOOR",
                    "AVAILABLE",
                    "IN_FLIGHT",
                    "DELAYED",
                    "ACKED",
                    "DEAD_LETTERED",
                    "OLDEST_UNACKED"
                )?;
                for p in &d.partitions {
                    writeln!(
                        out,
                        "{:>9} {:>12} {:>10} {:>10} {:>9} {:>8} {:>13} {:>13}ms",
                        p.partition,
                        p.floor,
                        p.available,
                        p.in_flight,
                        p.delayed,
                        p.acked,
                        p.dead_lettered,
                        p.oldest_unacked_age_ms
                    )?;
                }
            }
        }
        QueueCommand::Delete { queue } => {
            client
                .send(DeleteQueueRequest {
                    name: queue.clone(),
                })
                .await?;
            eprintln!("deleted queue {queue}");
        }
        QueueCommand::List { json } => {
            let queues = client.send(ListQueuesRequest).await?.queues;
            if !json {
                writeln!(out, "{:<32} TOPIC", "QUEUE")?;
            }
            for q in &queues {
                if json {
                    writeln!(out, "{}", json!({"queue": q.name, "topic": q.topic}))?;
                } else {
                    writeln!(out, "{:<32} {}", q.name, q.topic)?;
                }
            }
        }
        QueueCommand::Consume(args) => return consume(client, args).await,
        QueueCommand::ReplayDlq(args) => return replay(client, args).await,
    }
    out.finish()
}

async fn consume(client: &Client, args: QueueConsumeArgs) -> Result<()> {
    check_binding(client, &args.queue, &args.topic).await?;
    let mut consumer = QueueConsumer::new(
        client.clone(),
        &args.queue,
        QueueConsumerConfig {
            // One at a time: each record is locked only while worked on.
            max_records: 1,
            max_wait_ms: 500,
        },
    );
    let idle = args.idle_timeout_ms.map(Duration::from_millis);
    let mut done = 0u64;
    while args.max_messages.is_none_or(|max| done < max) {
        let next = consumer.next();
        let delivery = match idle {
            Some(idle) => match tokio::time::timeout(idle, next).await {
                Ok(d) => d?,
                Err(_) => break,
            },
            None => next.await?,
        };
        match &args.exec {
            None => {
                let mut out = output::stdout();
                writeln!(out, "{}", output::lossy(delivery.value()))?;
                out.finish()?;
                delivery.ack().await?;
            }
            Some(cmd) => run_exec(cmd, &args, delivery).await?,
        }
        done += 1;
    }
    eprintln!("processed {done} records of queue {}", args.queue);
    Ok(())
}

/// Refuses to consume when `queue` does not read `topic`. A session that
/// may consume but not describe the queue cannot see its binding; the
/// broker still checks that it may consume the queue's topic.
async fn check_binding(client: &Client, queue: &str, topic: &str) -> Result<()> {
    let described = client
        .send(DescribeQueueRequest {
            name: queue.to_owned(),
        })
        .await;
    let bound = match described {
        Ok(d) => d.settings.topic,
        Err(skiff_client::Error::Broker {
            code: ErrorCode::NotAuthorized,
            ..
        }) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("looking up queue {queue:?}")),
    };
    if bound != topic {
        return Err(anyhow!(
            "queue {queue:?} reads topic {bound:?}, not {topic:?}"
        ));
    }
    Ok(())
}

/// Runs `cmd` with the record on stdin and settles by its exit status.
async fn run_exec(cmd: &str, args: &QueueConsumeArgs, delivery: Delivery) -> Result<()> {
    let value = delivery.value().clone();
    let env = [
        ("SKIFF_PARTITION", delivery.partition().to_string()),
        ("SKIFF_OFFSET", delivery.offset().to_string()),
        ("SKIFF_DELIVERIES", delivery.deliveries().to_string()),
    ];
    let cmd = cmd.to_owned();
    let status = tokio::task::spawn_blocking(move || -> Result<std::process::ExitStatus> {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .envs(env)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {cmd:?}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is fine.
            let _ = stdin.write_all(&value);
        }
        Ok(child.wait()?)
    })
    .await
    .map_err(|e| anyhow!("--exec task failed: {e}"))??;
    if status.success() {
        delivery.ack().await?;
    } else {
        let reason = format!("--exec exited with {status}");
        match args.on_failure {
            OnFailure::Nack => {
                delivery
                    .nack(Duration::from_millis(args.nack_delay_ms))
                    .await?
            }
            OnFailure::Reject => delivery.reject(&reason).await?,
        }
    }
    Ok(())
}

/// Header prefix the broker adds to dead letters.
const DLQ_HEADER_PREFIX: &str = "skiff-dlq-";

/// Sends dead letters back to the queue's topic, one at a time, each
/// committed once its produce is acknowledged.
async fn replay(client: &Client, args: QueueReplayArgs) -> Result<()> {
    let d = client
        .send(DescribeQueueRequest {
            name: args.queue.clone(),
        })
        .await?;
    let (topic, dlq) = (d.settings.topic, d.settings.dead_letter_topic);
    let group = format!("{}~replay-dlq", args.queue);
    let config = GroupConfig::new(&group, [&dlq])
        .reset(StartFrom::Earliest)
        .auto_commit(AutoCommit::Manual);
    let mut consumer = Consumer::with_group(client.clone(), config)
        .await
        .with_context(|| format!("joining group {group:?}"))?;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let idle = Duration::from_millis(args.idle_timeout_ms);
    let mut replayed = 0u64;
    while args.max_messages.is_none_or(|max| replayed < max) {
        let Ok(next) = tokio::time::timeout(idle, consumer.next()).await else {
            break;
        };
        let Some(record) = next else {
            break;
        };
        let record = record?;
        let mut out =
            ProducerRecord::new(&topic, record.value.clone()).timestamp_ms(record.timestamp_ms);
        if let Some(key) = &record.key {
            out = out.key(key.clone());
        }
        for h in record
            .headers
            .iter()
            .filter(|h| !h.key.starts_with(DLQ_HEADER_PREFIX))
        {
            out = out.header(h.key.clone(), h.value.clone());
        }
        producer.send(out).await?;
        consumer.commit().await?;
        replayed += 1;
    }
    consumer
        .close()
        .await
        .with_context(|| format!("committing and leaving group {group:?}"))?;
    eprintln!(
        "replayed {replayed} dead letters of queue {} to {topic}",
        args.queue
    );
    Ok(())
}
