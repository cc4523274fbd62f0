//! `skiff produce`: one `--value`, or each stdin line as a message.
//!
//! Invariant: the exit status is 0 only once every message read has been
//! acknowledged. Acks are awaited in send order with a bounded window, so a
//! long stdin never buffers without limit.

use std::collections::VecDeque;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::FutureExt;
use skiff_client::{Client, Producer, ProducerConfig, ProducerRecord, SendFuture};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::ProduceArgs;

/// Messages sent but not yet acknowledged before reading more stdin.
const OUTSTANDING_MESSAGES_MAX: usize = 10_000;
/// Bytes sent but not yet acknowledged before reading more stdin: half the
/// producer's buffer, so one more line (up to a batch) always fits.
const OUTSTANDING_BYTES_MAX: usize = skiff_client::BUFFER_BYTES_MAX_DEFAULT / 2;

/// Runs `skiff produce`.
pub async fn run(client: &Client, args: ProduceArgs) -> Result<()> {
    args.compression.check().map_err(anyhow::Error::msg)?;
    let config = ProducerConfig::default()
        .compression(args.compression.compression)
        .compression_level(args.compression.compression_level);
    let producer = Producer::new(client.clone(), config);
    let make = |key: Option<String>, value: String| {
        let mut record = ProducerRecord::new(args.topic.clone(), value);
        if let Some(key) = key.or_else(|| args.key.clone()) {
            record = record.key(key);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        for (name, value) in &args.headers {
            record = record.header(name.clone(), Bytes::from(value.clone()));
        }
        record
    };

    let mut outstanding: VecDeque<SendFuture> = VecDeque::new();
    let mut acked: u64 = 0;
    if let Some(value) = &args.value {
        outstanding.push_back(producer.send(make(None, value.clone())));
    } else {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut line_no: u64 = 0;
        while let Some(line) = lines.next_line().await.context("reading stdin")? {
            line_no += 1;
            let (key, value) = match &args.key_separator {
                None => (None, line),
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
                    None => bail!("line {line_no} has no key separator {sep:?}"),
                },
            };
            while outstanding.len() >= OUTSTANDING_MESSAGES_MAX
                || producer.buffered_bytes() > OUTSTANDING_BYTES_MAX
            {
                let Some(oldest) = outstanding.pop_front() else {
                    break;
                };
                oldest.await.context("producing")?;
                acked += 1;
            }
            outstanding.push_back(producer.send(make(key, value)));
            // Collect acks that are already in, so a failure (e.g. an
            // unknown topic) stops the command without reading all stdin.
            while let Some(result) = outstanding.front_mut().and_then(|f| f.now_or_never()) {
                outstanding.pop_front();
                result.context("producing")?;
                acked += 1;
            }
        }
    }
    producer.flush().await?;
    for ack in outstanding {
        ack.await.context("producing")?;
        acked += 1;
    }
    let plural = if acked == 1 { "" } else { "s" };
    eprintln!("produced {acked} message{plural} to {}", args.topic);
    Ok(())
}
