//! Output helpers: JSON shapes for records and topics, and the broken-pipe
//! rule (a reader that goes away, as in `skiff consume t | head`, is a clean
//! exit, not an error).
//!
//! The rule holds because every command writes its data through one path,
//! [`Stdout`]: a write error comes back as an `io::Error` (never a panic, as
//! from `println!` or a library that writes to stdout itself), and `main`
//! turns a `BrokenPipe` anywhere in the error chain into exit 0
//! ([`is_broken_pipe`]). `clippy::print_stdout` is denied in the crate so no
//! command writes around it.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use skiff_client::{ConsumedRecord, DescribeTopicResponse, TopicListing};

/// A command's standard output: locked and buffered. Write with
/// `write!`/`writeln!` and `?`, then [`Stdout::finish`]; anything dropped
/// unfinished is flushed with its errors ignored (the command already
/// failed).
pub struct Stdout(io::BufWriter<io::StdoutLock<'static>>);

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stdout")
    }
}

/// Standard output for a command's data (see [`Stdout`]).
pub fn stdout() -> Stdout {
    Stdout(io::BufWriter::new(io::stdout().lock()))
}

impl Stdout {
    /// Flushes everything written (a closed pipe is a `BrokenPipe` error,
    /// which `main` reports as a clean exit).
    pub fn finish(mut self) -> Result<()> {
        self.flush().context("writing to stdout")
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Prints a bench summary: as one JSON line with `json`, else through
/// `human` (each bench's table).
pub fn summary(
    json: bool,
    summary: &Value,
    human: impl FnOnce(&mut Stdout, &Value) -> io::Result<()>,
) -> Result<()> {
    let mut out = stdout();
    if json {
        writeln!(out, "{summary}")?;
    } else {
        human(&mut out, summary)?;
    }
    out.finish()
}

/// Whether an error chain ends in a closed stdout pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Bytes as text: UTF-8, with invalid sequences replaced.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A consumed record as one JSON object.
pub fn record_json(r: &ConsumedRecord) -> Value {
    json!({
        "topic": &*r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp_ms": r.timestamp_ms,
        "key": r.key.as_deref().map(lossy),
        "value": lossy(&r.value),
        "headers": r.headers.iter().map(|h| json!({"key": h.key, "value": lossy(&h.value)})).collect::<Vec<_>>(),
    })
}

/// A topic listing entry as JSON.
pub fn listing_json(t: &TopicListing) -> Value {
    json!({ "name": t.name, "partitions": t.partitions })
}

/// A topic description as JSON.
pub fn description_json(d: &DescribeTopicResponse) -> Value {
    json!({
        "name": d.name,
        "config": {
            "partitions": d.config.partitions,
            "retention_ms": d.config.retention_ms,
            "retention_bytes": d.config.retention_bytes,
            "segment_bytes": d.config.segment_bytes,
            "segment_ms": d.config.segment_ms,
            "compression": d.config.compression.name(),
        },
        "partitions": d.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset,
            "size_bytes": p.size_bytes,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use skiff_client::Header;

    #[test]
    fn records_render_as_json_with_lossy_text() {
        let r = ConsumedRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 5,
            key: None,
            value: Bytes::from_static(b"hi\xff"),
            headers: vec![Header {
                key: "h".into(),
                value: Bytes::from_static(b"v"),
            }],
        };
        let v = record_json(&r);
        assert_eq!(v["key"], Value::Null);
        assert_eq!(v["value"], "hi\u{fffd}");
        assert_eq!(v["headers"][0]["key"], "h");
        assert_eq!(v["offset"], 7);
    }

    #[test]
    fn broken_pipes_are_recognised_through_context() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
