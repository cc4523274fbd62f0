//! Realistic record payloads for benchmarks and tests: JSON order events
//! generated from a seed.
//!
//! Compression ratios and speeds depend on the data: repeated bytes compress
//! a thousandfold and random bytes not at all, and neither says what a
//! service's events will do. These events look like a shop's: a few event
//! types, ids, a customer object, amounts, timestamps and one to four line
//! items, about 500 bytes each. The codec benches and `skiff bench` use them.
//!
//! Invariant: the same seed gives the same events, on every platform and
//! version of this crate (a private SplitMix64, no dependency whose stream
//! could change), so benchmark figures stay comparable.

use std::fmt::Write as _;

use bytes::Bytes;

const EVENT_TYPES: [&str; 5] = [
    "order_created",
    "order_paid",
    "order_shipped",
    "order_delivered",
    "order_cancelled",
];
const TIERS: [&str; 4] = ["free", "silver", "gold", "platinum"];
const COUNTRIES: [&str; 8] = ["DE", "FR", "US", "GB", "NL", "SE", "JP", "BR"];
const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "JPY"];
const CHANNELS: [&str; 3] = ["web", "ios", "android"];
const CATEGORIES: [&str; 6] = ["books", "garden", "kitchen", "toys", "audio", "sports"];
/// First event's timestamp: 2024-01-01T00:00:00Z, in ms since the epoch.
const EPOCH_MS: i64 = 1_704_067_200_000;

/// An endless, deterministic stream of JSON order events (one per `next`),
/// each about 500 bytes of UTF-8 JSON with no trailing newline.
#[derive(Debug, Clone)]
pub struct JsonEvents {
    state: u64,
    timestamp_ms: i64,
    sequence: u64,
}

impl JsonEvents {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        JsonEvents {
            state: seed,
            timestamp_ms: EPOCH_MS,
            sequence: 0,
        }
    }

    /// SplitMix64: small, fast, and stable forever.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let i = self.below(from.len() as u64) as usize;
        from.get(i).copied().unwrap_or_default()
    }

    /// The next event as a JSON string.
    pub fn next_json(&mut self) -> String {
        self.sequence += 1;
        self.timestamp_ms += self.below(250) as i64;
        let mut s = String::with_capacity(640);
        let event = self.pick(&EVENT_TYPES);
        let order = self.next_u64();
        let trace = (self.next_u64(), self.next_u64());
        let customer = 100_000 + self.below(900_000);
        let tier = self.pick(&TIERS);
        let country = self.pick(&COUNTRIES);
        let currency = self.pick(&CURRENCIES);
        let channel = self.pick(&CHANNELS);
        let verified = self.below(2) == 1;
        let seq = self.sequence;
        let ts = self.timestamp_ms;
        let _ = write!(
            s,
            r#"{{"type":"{event}","schema_version":3,"event_id":"evt-{seq:012}","order_id":"ord-{order:016x}","trace_id":"{t0:016x}{t1:016x}","timestamp_ms":{ts},"channel":"{channel}","customer":{{"id":"cus-{customer}","tier":"{tier}","country":"{country}","email_verified":{verified}}},"#,
            t0 = trace.0,
            t1 = trace.1,
        );
        s.push_str(r#""items":["#);
        let items = 1 + self.below(4);
        let mut amount_cents = 0u64;
        for i in 0..items {
            let sku = self.below(50_000);
            let category = self.pick(&CATEGORIES);
            let quantity = 1 + self.below(5);
            let unit_price_cents = 199 + self.below(20_000);
            amount_cents += quantity * unit_price_cents;
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"sku":"SKU-{category}-{sku:05}","quantity":{quantity},"unit_price_cents":{unit_price_cents}}}"#
            );
        }
        let method = if self.below(3) == 0 {
            "express"
        } else {
            "standard"
        };
        let addr = self.next_u64();
        let _ = write!(
            s,
            r#"],"amount_cents":{amount_cents},"currency":"{currency}","shipping":{{"method":"{method}","address_hash":"{addr:016x}"}}}}"#
        );
        s
    }

    /// Events laid back to back until at least `bytes` are gathered.
    pub fn fill(&mut self, bytes: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut total = 0;
        while total < bytes {
            let event = self.next_json();
            total += event.len();
            out.push(Bytes::from(event));
        }
        out
    }
}

impl Iterator for JsonEvents {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        Some(Bytes::from(self.next_json()))
    }
}

/// The first event of the stream for `seed`: a quick way to a realistic
/// value.
pub fn json_event(seed: u64) -> Bytes {
    Bytes::from(JsonEvents::new(seed).next_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_deterministic_json_of_about_500_bytes() {
        let a: Vec<Bytes> = JsonEvents::new(7).take(200).collect();
        let b: Vec<Bytes> = JsonEvents::new(7).take(200).collect();
        assert_eq!(a, b);
        assert_ne!(a, JsonEvents::new(8).take(200).collect::<Vec<_>>());
        let mean = a.iter().map(Bytes::len).sum::<usize>() / a.len();
        assert!((350..=650).contains(&mean), "mean event size {mean}");
        for e in &a {
            let s = std::str::from_utf8(e).expect("utf-8");
            assert!(
                s.starts_with(r#"{"type":"order_"#) && s.ends_with("}}"),
                "{s}"
            );
            // Balanced braces and brackets: well-formed nesting.
            let depth = s.chars().fold(0i32, |d, c| match c {
                '{' | '[' => d + 1,
                '}' | ']' => d - 1,
                _ => d,
            });
            assert_eq!(depth, 0, "{s}");
        }
        let filled = JsonEvents::new(1).fill(64 * 1024);
        let total: usize = filled.iter().map(Bytes::len).sum();
        assert!((64 * 1024..64 * 1024 + 1024).contains(&total));
        assert_eq!(json_event(7), a[0]);
    }
}
