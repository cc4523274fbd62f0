//! `skiff bench e2e --metrics HOST:PORT`: where a message's time goes inside
//! the broker. Reads the broker's `skiff_stage_seconds` histogram (label
//! `stage`: produce_queue, produce_commit, fetch_wake, fetch_read) from its
//! Prometheus endpoint before and after the run, and reports each stage's
//! percentiles over the run from the difference of the bucket counts.
//!
//! A percentile is interpolated linearly inside the bucket that holds it
//! (the broker's stage buckets are about 1.5x apart, so within about 25%);
//! one in the last, unbounded bucket is reported as that bucket's lower
//! bound. Scrapes are bounded by [`SCRAPE_BYTES_MAX`] and
//! [`SCRAPE_TIMEOUT`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The broker's stage histogram.
const STAGE_METRIC: &str = "skiff_stage_seconds";
/// Largest metrics page read, in bytes.
const SCRAPE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Time one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The percentiles reported per stage.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p99", 0.99), ("p99_9", 0.999)];

/// Cumulative bucket counts per stage: upper bound (seconds; infinity for
/// `+Inf`) to count, as Prometheus exposes them.
#[derive(Debug, Default, Clone)]
pub(super) struct StageBuckets(BTreeMap<String, Vec<(f64, u64)>>);

/// Reads the stage histogram from the Prometheus endpoint at `addr`.
pub(super) async fn scrape(addr: &str) -> Result<StageBuckets> {
    let page = tokio::time::timeout(SCRAPE_TIMEOUT, get_metrics(addr))
        .await
        .with_context(|| format!("reading metrics from {addr}: timed out"))??;
    Ok(parse(&page))
}

async fn get_metrics(addr: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the metrics endpoint {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(SCRAPE_BYTES_MAX + 1)
        .read_to_end(&mut raw)
        .await
        .with_context(|| format!("reading metrics from {addr}"))?;
    if raw.len() as u64 > SCRAPE_BYTES_MAX {
        bail!("the metrics page at {addr} is over {SCRAPE_BYTES_MAX} bytes");
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{addr} did not answer with HTTP"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{addr} answered the metrics request with {status:?}");
    }
    Ok(body.to_owned())
}

/// The stage histogram's buckets in a Prometheus text page.
fn parse(page: &str) -> StageBuckets {
    let prefix = format!("{STAGE_METRIC}_bucket{{");
    let mut stages: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, count)) = rest.rsplit_once("} ") else {
            continue;
        };
        let (mut stage, mut le) = (None, None);
        for pair in labels.split(',') {
            match pair.split_once('=') {
                Some(("stage", v)) => stage = Some(v.trim_matches('"').to_owned()),
                Some(("le", v)) => le = Some(v.trim_matches('"')),
                _ => {}
            }
        }
        let le = match le {
            Some("+Inf") => Some(f64::INFINITY),
            Some(v) => v.parse().ok(),
            None => None,
        };
        if let (Some(stage), Some(le), Ok(count)) = (stage, le, count.trim().parse::<f64>()) {
            stages.entry(stage).or_default().push((le, count as u64));
        }
    }
    for buckets in stages.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    StageBuckets(stages)
}

/// Each stage's count and percentiles (milliseconds) over what `after`
/// counted beyond `before`.
pub(super) fn report(before: &StageBuckets, after: &StageBuckets) -> Value {
    let mut out = serde_json::Map::new();
    for (stage, buckets) in &after.0 {
        let earlier = before.0.get(stage);
        let run: Vec<(f64, u64)> = buckets
            .iter()
            .map(|&(le, n)| {
                let was = earlier
                    .and_then(|b| b.iter().find(|(l, _)| *l == le))
                    .map_or(0, |&(_, n)| n);
                (le, n.saturating_sub(was))
            })
            .collect();
        let count = run.last().map_or(0, |&(_, n)| n);
        let mut entry = json!({ "count": count });
        for (name, q) in QUANTILES {
            entry[name] = json!(quantile_ms(&run, q));
        }
        out.insert(stage.clone(), entry);
    }
    Value::Object(out)
}

/// The `q` quantile, in milliseconds, of cumulative `buckets` (None when
/// empty), interpolated inside its bucket.
fn quantile_ms(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(le, cumulative) in buckets {
        if cumulative as f64 >= rank && cumulative > below {
            if le.is_infinite() {
                return Some(lower * 1e3);
            }
            let within = (rank - below as f64) / (cumulative - below) as f64;
            return Some((lower + (le - lower) * within.clamp(0.0, 1.0)) * 1e3);
        }
        lower = le;
        below = cumulative;
    }
    Some(lower * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# TYPE skiff_stage_seconds histogram
skiff_stage_seconds_bucket{stage="fetch_wake",le="0.0001"} 50
skiff_stage_seconds_bucket{stage="fetch_wake",le="0.0002"} 90
skiff_stage_seconds_bucket{stage="fetch_wake",le="+Inf"} 100
skiff_stage_seconds_sum{stage="fetch_wake"} 0.02
skiff_stage_seconds_count{stage="fetch_wake"} 100
skiff_fsync_seconds_bucket{le="0.001"} 7
"#;

    #[test]
    fn parses_and_interpolates_the_run_only() {
        let after = parse(PAGE);
        assert_eq!(after.0.len(), 1, "only the stage histogram");
        let r = report(&StageBuckets::default(), &after);
        let wake = &r["fetch_wake"];
        assert_eq!(wake["count"], 100);
        // Rank 50 ends the first bucket: its upper bound.
        assert!((wake["p50"].as_f64().unwrap() - 0.1).abs() < 1e-9, "{wake}");
        // Rank 99 is in +Inf: reported as its lower bound.
        assert!((wake["p99"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{wake}");

        // Counts before the run are taken away.
        let before = parse(
            &PAGE
                .replace("} 50", "} 40")
                .replace("} 90", "} 40")
                .replace("} 100", "} 40"),
        );
        let r = report(&before, &after);
        assert_eq!(r["fetch_wake"]["count"], 60);
        // 10 of 60 in the first bucket, 40 in the second: p50 (rank 30)
        // is half way through the second.
        assert!(
            (r["fetch_wake"]["p50"].as_f64().unwrap() - 0.15).abs() < 1e-9,
            "{r}"
        );
    }

    #[test]
    fn empty_histograms_have_no_percentiles() {
        assert_eq!(quantile_ms(&[], 0.5), None);
        assert_eq!(quantile_ms(&[(0.001, 0), (f64::INFINITY, 0)], 0.5), None);
    }
}
