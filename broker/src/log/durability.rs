//! When an append counts as done: the durability modes of the partition log.
//!
//! The mode decides when `fdatasync` runs relative to the acknowledgement, and
//! so exactly what a crash (power loss, kernel panic) can take away. A process
//! crash alone (kill -9) loses nothing in any mode once `write` returned,
//! because the data is in the OS page cache.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How hard the log works to keep acknowledged data across a machine crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` before every acknowledgement (grouped: appends that arrive
    /// while a sync runs share the next one). A crash loses nothing that was
    /// acknowledged; only in-flight, unacknowledged appends can be lost. Readers
    /// see a batch only after its sync. The default.
    #[default]
    Always,
    /// Acknowledge after `write`; `fdatasync` at least every interval: the
    /// broker calls `PartitionLog::flush` on a timer with this period, and an
    /// append also syncs when the last sync is older than the interval. A
    /// machine crash can lose up to about one interval of acknowledged
    /// batches (those written since the last completed sync); a process crash
    /// loses nothing. Readers see a batch right after its write, so a
    /// consumer may have read batches that a machine crash then removes.
    Interval(Duration),
    /// Acknowledge after `write`, never sync on the append path (only when a
    /// segment rolls and on `flush`/`close`). A machine crash can lose
    /// everything acknowledged since the last roll or flush, up to a whole
    /// segment; a process crash loses nothing. Readers see a batch right after
    /// its write.
    Never,
}

/// The text of a durability setting could not be parsed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error(
    "invalid durability {input:?}: expected \"always\", \"never\" or \"interval:<ms>\" with <ms> a whole number of milliseconds >= 1"
)]
pub struct ParseDurabilityError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for Durability {
    type Err = ParseDurabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurabilityError {
            input: s.to_owned(),
        };
        match s.trim() {
            "always" => Ok(Durability::Always),
            "never" => Ok(Durability::Never),
            other => {
                let ms = other.strip_prefix("interval:").ok_or_else(err)?;
                let ms: u64 = ms.trim().parse().map_err(|_| err())?;
                if ms == 0 {
                    return Err(err());
                }
                Ok(Durability::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Always => f.write_str("always"),
            Durability::Never => f.write_str("never"),
            Durability::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

impl serde::Serialize for Durability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Durability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for (text, mode) in [
            ("always", Durability::Always),
            ("never", Durability::Never),
            (
                "interval:250",
                Durability::Interval(Duration::from_millis(250)),
            ),
        ] {
            assert_eq!(text.parse::<Durability>(), Ok(mode.clone()));
            assert_eq!(mode.to_string(), text);
            let json = serde_json::to_string(&mode).expect("serializes");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<Durability>(&json).expect("parses"),
                mode
            );
        }
        assert_eq!(Durability::default(), Durability::Always);
    }

    #[test]
    fn bad_text_is_named() {
        for bad in [
            "sometimes",
            "interval:",
            "interval:0",
            "interval:-5",
            "interval:1.5",
            "",
        ] {
            let err = bad.parse::<Durability>().expect_err(bad);
            assert!(err.to_string().contains("interval:<ms>"), "{err}");
        }
        assert!(serde_json::from_str::<Durability>("\"sometimes\"").is_err());
    }
}
