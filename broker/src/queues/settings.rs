//! A queue's settings: lock time, delivery limit, redelivery backoff, key
//! ordering and the dead-letter topic, with their bounds and validation.
//!
//! Invariants: a [`QueueSettings`] that passed [`QueueSettings::validate`]
//! has every number inside its named bounds, so the state machine can add
//! and multiply them without overflow checks failing in practice (it still
//! saturates).

use skiff_protocol::messages::QueueSettingsInfo;
use skiff_protocol::topic_name::{TopicNameError, validate_topic_name};

/// Shortest lock, in milliseconds. Below this a worker could not even answer
/// before its lock ran out.
pub const LOCK_MS_MIN: u32 = 100;
/// Longest lock, in milliseconds (12 hours, SQS's visibility timeout limit).
pub const LOCK_MS_MAX: u32 = 12 * 60 * 60 * 1000;
/// Default lock time, in milliseconds (30 s, as SQS).
pub const LOCK_MS_DEFAULT: u32 = 30_000;
/// Most deliveries a queue may allow before dead-lettering. The count is
/// persisted as a `u32`; 1000 is far beyond any useful retry policy.
pub const MAX_DELIVERIES_MAX: u32 = 1000;
/// Default `max_deliveries`.
pub const MAX_DELIVERIES_DEFAULT: u32 = 5;
/// Longest redelivery delay, in milliseconds (12 hours, as the lock): a
/// delayed record holds its window slot, so it must not wait forever.
pub const DELAY_MS_MAX: u32 = 12 * 60 * 60 * 1000;
/// Largest backoff multiplier (each delivery multiplies the delay by at most
/// this much).
pub const BACKOFF_MULTIPLIER_MAX: u32 = 10;
/// Most records of one partition a queue tracks between its ack floor and
/// the end of its window. Each costs ~64 bytes of memory; the floor cannot
/// pass a record still in the window, so this is also how far workers can
/// run ahead of the oldest unfinished record.
pub const QUEUE_WINDOW_RECORDS_MAX: u32 = 100_000;
/// Default window, in records.
pub const QUEUE_WINDOW_RECORDS_DEFAULT: u32 = 10_000;
/// Longest reject or nack reason kept, in bytes (it becomes a DLQ header).
pub const REASON_BYTES_MAX: usize = 1024;

const _: () = assert!(LOCK_MS_MIN <= LOCK_MS_DEFAULT && LOCK_MS_DEFAULT <= LOCK_MS_MAX);
const _: () = assert!(MAX_DELIVERIES_DEFAULT >= 1 && MAX_DELIVERIES_DEFAULT <= MAX_DELIVERIES_MAX);
const _: () = assert!(
    QUEUE_WINDOW_RECORDS_DEFAULT >= 1 && QUEUE_WINDOW_RECORDS_DEFAULT <= QUEUE_WINDOW_RECORDS_MAX
);

/// Whether records with the same key are processed in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// Any available record goes to any worker.
    #[default]
    None,
    /// A key is not handed out while an earlier record with that key is
    /// locked or delayed.
    Key,
}

impl std::str::FromStr for Ordering {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "key" => Ok(Self::Key),
            other => Err(SettingsError::Ordering(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Ordering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Key => "key",
        })
    }
}

/// The redelivery delay after a nack or a lock expiry: `initial_ms ×
/// multiplier^(deliveries - 1)`, capped at `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first delivery, in milliseconds.
    pub initial_ms: u32,
    /// Growth per delivery (1 = constant).
    pub multiplier: u32,
    /// Cap, in milliseconds.
    pub max_ms: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        // No delay unless asked: a nack without a delay retries at once, as
        // RabbitMQ's requeue does.
        Self {
            initial_ms: 0,
            multiplier: 2,
            max_ms: 60_000,
        }
    }
}

impl Backoff {
    /// The delay before the next delivery of a record delivered
    /// `deliveries` times.
    pub fn delay_ms(&self, deliveries: u32) -> u32 {
        let mut delay = u64::from(self.initial_ms);
        // A multiplier of at least 2 passes any u32 cap within 32 steps, and
        // a multiplier of 1 never changes the delay: 64 steps always suffice.
        for _ in 1..deliveries.min(64) {
            if delay >= u64::from(self.max_ms) {
                break;
            }
            delay = delay.saturating_mul(u64::from(self.multiplier));
        }
        u32::try_from(delay.min(u64::from(self.max_ms))).unwrap_or(self.max_ms)
    }
}

/// One queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The topic the queue reads.
    pub topic: String,
    /// How long a handed-out record stays locked to its member, in ms.
    pub lock_ms: u32,
    /// Deliveries after which a failed record is dead-lettered.
    pub max_deliveries: u32,
    /// Redelivery delay after a nack.
    pub backoff: Backoff,
    /// Key ordering.
    pub ordering: Ordering,
    /// Where dead letters go.
    pub dead_letter_topic: String,
    /// Window of tracked records per partition.
    pub window_records: u32,
}

impl QueueSettings {
    /// Defaults for queue `queue` on `topic`, with the dead-letter topic
    /// `<topic>.<queue>.dlq`.
    pub fn new(queue: &str, topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            lock_ms: LOCK_MS_DEFAULT,
            max_deliveries: MAX_DELIVERIES_DEFAULT,
            backoff: Backoff::default(),
            ordering: Ordering::None,
            dead_letter_topic: default_dead_letter_topic(queue, topic),
            window_records: QUEUE_WINDOW_RECORDS_DEFAULT,
        }
    }

    /// The settings flat, as the protocol's describe answer and the
    /// queue's settings file carry them: the one mapping both use.
    pub fn info(&self) -> QueueSettingsInfo {
        QueueSettingsInfo {
            topic: self.topic.clone(),
            lock_ms: self.lock_ms,
            max_deliveries: self.max_deliveries,
            backoff_initial_ms: self.backoff.initial_ms,
            backoff_multiplier: self.backoff.multiplier,
            backoff_max_ms: self.backoff.max_ms,
            ordering: self.ordering.to_string(),
            dead_letter_topic: self.dead_letter_topic.clone(),
            window_records: self.window_records,
        }
    }

    /// The inverse of [`info`](Self::info), validated for queue `queue`.
    pub fn from_info(queue: &str, info: QueueSettingsInfo) -> Result<Self, SettingsError> {
        let s = Self {
            topic: info.topic,
            lock_ms: info.lock_ms,
            max_deliveries: info.max_deliveries,
            backoff: Backoff {
                initial_ms: info.backoff_initial_ms,
                multiplier: info.backoff_multiplier,
                max_ms: info.backoff_max_ms,
            },
            ordering: info.ordering.parse()?,
            dead_letter_topic: info.dead_letter_topic,
            window_records: info.window_records,
        };
        s.validate(queue)?;
        Ok(s)
    }

    /// Checks every setting against its bounds and the names against the
    /// topic-name rule. `queue` is the queue's own name.
    pub fn validate(&self, queue: &str) -> Result<(), SettingsError> {
        validate_queue_name(queue)?;
        validate_topic_name(&self.topic).map_err(SettingsError::Topic)?;
        validate_topic_name(&self.dead_letter_topic).map_err(SettingsError::DeadLetterTopic)?;
        if self.dead_letter_topic == self.topic {
            return Err(SettingsError::DeadLetterIsSource(self.topic.clone()));
        }
        check_range("lock_ms", self.lock_ms, LOCK_MS_MIN, LOCK_MS_MAX)?;
        check_range("max_deliveries", self.max_deliveries, 1, MAX_DELIVERIES_MAX)?;
        check_range(
            "backoff initial_ms",
            self.backoff.initial_ms,
            0,
            DELAY_MS_MAX,
        )?;
        check_range("backoff max_ms", self.backoff.max_ms, 0, DELAY_MS_MAX)?;
        check_range(
            "backoff multiplier",
            self.backoff.multiplier,
            1,
            BACKOFF_MULTIPLIER_MAX,
        )?;
        check_range(
            "window_records",
            self.window_records,
            1,
            QUEUE_WINDOW_RECORDS_MAX,
        )?;
        Ok(())
    }
}

/// `<topic>.<queue>.dlq`: may be too long to be a topic name, which
/// [`QueueSettings::validate`] reports.
pub fn default_dead_letter_topic(queue: &str, topic: &str) -> String {
    format!("{topic}.{queue}.dlq")
}

/// Queue names follow the topic-name rule (`[A-Za-z0-9._-]`, 1 to 249).
pub fn validate_queue_name(name: &str) -> Result<(), SettingsError> {
    validate_topic_name(name).map_err(SettingsError::QueueName)
}

fn check_range(name: &'static str, value: u32, min: u32, max: u32) -> Result<(), SettingsError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingsError::OutOfRange {
            name,
            value,
            min,
            max,
        })
    }
}

/// Why queue settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The queue name breaks the naming rule.
    #[error("invalid queue name: {0}")]
    QueueName(TopicNameError),
    /// The topic name breaks the naming rule.
    #[error("invalid topic name: {0}")]
    Topic(TopicNameError),
    /// The dead-letter topic name breaks the naming rule.
    #[error("invalid dead-letter topic name: {0}")]
    DeadLetterTopic(TopicNameError),
    /// The dead-letter topic is the queue's own topic.
    #[error("the dead-letter topic cannot be the queue's own topic {0:?}")]
    DeadLetterIsSource(String),
    /// A number is outside its bounds.
    #[error("{name} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: u32,
        /// Lower bound.
        min: u32,
        /// Upper bound.
        max: u32,
    },
    /// The ordering is neither `none` nor `key`.
    #[error("ordering {0:?} is neither \"none\" nor \"key\"")]
    Ordering(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_name_the_dead_letter_topic() {
        let s = QueueSettings::new("mail", "jobs");
        assert_eq!(s.dead_letter_topic, "jobs.mail.dlq");
        assert_eq!(s.validate("mail"), Ok(()));
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let mut s = QueueSettings::new("q", "t");
        s.lock_ms = 5;
        assert!(matches!(
            s.validate("q"),
            Err(SettingsError::OutOfRange {
                name: "lock_ms",
                value: 5,
                ..
            })
        ));
        let mut s = QueueSettings::new("q", "t");
        s.max_deliveries = 0;
        assert!(matches!(
            s.validate("q"),
            Err(SettingsError::OutOfRange {
                name: "max_deliveries",
                ..
            })
        ));
        assert!(matches!(
            QueueSettings::new("q/x", "t").validate("q/x"),
            Err(SettingsError::QueueName(TopicNameError::InvalidChar {
                ch: '/',
                ..
            }))
        ));
        // A long topic and queue make a DLQ name longer than a topic may be.
        let long = "a".repeat(200);
        assert!(matches!(
            QueueSettings::new(&long, &long).validate(&long),
            Err(SettingsError::DeadLetterTopic(
                TopicNameError::TooLong { .. }
            ))
        ));
        let mut s = QueueSettings::new("q", "t");
        s.dead_letter_topic = "t".into();
        assert!(matches!(
            s.validate("q"),
            Err(SettingsError::DeadLetterIsSource(_))
        ));
        assert!(matches!(
            "fifo".parse::<Ordering>(),
            Err(SettingsError::Ordering(_))
        ));
        assert_eq!("key".parse::<Ordering>(), Ok(Ordering::Key));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            initial_ms: 100,
            multiplier: 3,
            max_ms: 1000,
        };
        let delays: Vec<_> = (1..=5).map(|n| b.delay_ms(n)).collect();
        assert_eq!(delays, [100, 300, 900, 1000, 1000]);
        assert_eq!(b.delay_ms(0), 100);
        assert_eq!(b.delay_ms(u32::MAX), 1000);
        let none = Backoff::default();
        assert_eq!(none.delay_ms(7), 0);
    }
}
