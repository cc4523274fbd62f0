//! `skiff queue ...`: create, alter, describe, delete, list and consume
//! work queues.

use clap::{Args, Subcommand, ValueEnum};
use skiff_client::protocol::topic_name::validate_topic_name;

/// A queue name argument: the topic-name rule, checked before connecting.
pub fn queue_name(value: &str) -> Result<String, String> {
    validate_topic_name(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string().replace("topic name", "queue name"))
}

/// `skiff queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a work queue on a topic, and its dead-letter topic.
    #[command(after_help = "\
Examples:
  skiff queue create mail --topic jobs
  skiff queue create per-customer --topic orders --ordering key --max-deliveries 3 \\
      --backoff-initial-ms 1000 --backoff-multiplier 2 --backoff-max-ms 60000")]
    Create(QueueCreateArgs),
    /// Change a queue's lock time, delivery limit, backoff, ordering or
    /// window.
    #[command(after_help = "Example:\n  skiff queue alter mail --lock-ms 120000")]
    Alter(QueueAlterArgs),
    /// Show a queue's settings and, per partition, floor, available, in
    /// flight, delayed and dead-lettered records and the oldest
    /// unacknowledged record's age.
    #[command(after_help = "Example:\n  skiff queue describe mail --json")]
    Describe {
        /// Queue name.
        #[arg(value_parser = queue_name)]
        queue: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete a queue and its state (its topic and dead-letter topic stay).
    #[command(after_help = "Example:\n  skiff queue delete mail")]
    Delete {
        /// Queue name.
        #[arg(value_parser = queue_name)]
        queue: String,
    },
    /// List queues and their topics.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Take records of TOPIC from queue --queue, print each and acknowledge
    /// it once printed; with --exec, run a command per record (value on
    /// stdin) and acknowledge on exit status 0, else nack or reject.
    #[command(after_help = "\
Examples:
  skiff queue consume jobs --queue mail --max-messages 10
  skiff queue consume jobs --queue mail --exec './send-mail.sh' --on-failure nack --nack-delay-ms 5000")]
    Consume(QueueConsumeArgs),
    /// Send a queue's dead letters back to its topic (without the
    /// skiff-dlq-* headers), resuming where the last replay stopped: the
    /// position is committed by the consumer group `<queue>~replay-dlq`
    /// after each record is acknowledged (a record whose commit a crash
    /// lost is replayed again).
    #[command(after_help = "Example:\n  skiff queue replay-dlq mail --max-messages 100")]
    ReplayDlq(QueueReplayArgs),
}

/// Settings shared by create and alter; unset flags keep the default
/// (create) or the current value (alter).
#[derive(Debug, Clone, Default, Args)]
pub struct QueueSettingsArgs {
    /// How long a handed-out record stays locked to its worker, ms.
    #[arg(long, value_name = "MS")]
    pub lock_ms: Option<u64>,
    /// Deliveries after which a failed record is dead-lettered.
    #[arg(long, value_name = "N")]
    pub max_deliveries: Option<u64>,
    /// Redelivery delay after the first delivery, ms.
    #[arg(long, value_name = "MS")]
    pub backoff_initial_ms: Option<u64>,
    /// Growth of the redelivery delay per delivery.
    #[arg(long, value_name = "N")]
    pub backoff_multiplier: Option<u64>,
    /// Cap of the redelivery delay, ms.
    #[arg(long, value_name = "MS")]
    pub backoff_max_ms: Option<u64>,
    /// Keep records with the same key in order.
    #[arg(long, value_enum)]
    pub ordering: Option<OrderingArg>,
    /// Records tracked per partition above the oldest unfinished one.
    #[arg(long, value_name = "N")]
    pub window_records: Option<u64>,
}

/// `--ordering`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OrderingArg {
    /// Any record to any worker.
    None,
    /// A key waits while an earlier record with that key is out.
    Key,
}

/// `skiff queue create`
#[derive(Debug, Args)]
pub struct QueueCreateArgs {
    /// Queue name (shared namespace with consumer groups).
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// The topic the queue reads.
    #[arg(long)]
    pub topic: String,
    /// Dead-letter topic [default: <topic>.<queue>.dlq].
    #[arg(long, value_name = "TOPIC")]
    pub dead_letter_topic: Option<String>,
    /// The settings.
    #[command(flatten)]
    pub settings: QueueSettingsArgs,
}

/// `skiff queue alter`
#[derive(Debug, Args)]
pub struct QueueAlterArgs {
    /// Queue name.
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// The settings to change.
    #[command(flatten)]
    pub settings: QueueSettingsArgs,
}

/// What `--exec` failures do.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnFailure {
    /// Redeliver later (after --nack-delay-ms, or the queue's backoff).
    Nack,
    /// Straight to the dead-letter topic.
    Reject,
}

/// `skiff queue consume`
#[derive(Debug, Args)]
pub struct QueueConsumeArgs {
    /// The topic the queue reads (checked against the queue's binding).
    pub topic: String,
    /// Queue name.
    #[arg(long, value_parser = queue_name)]
    pub queue: String,
    /// Run this shell command per record (value on stdin; SKIFF_PARTITION,
    /// SKIFF_OFFSET, SKIFF_DELIVERIES in its environment) instead of
    /// printing; exit status 0 acknowledges.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// What a non-zero exit status of --exec does.
    #[arg(long, value_enum, default_value = "nack")]
    pub on_failure: OnFailure,
    /// Delay of a nack after a failed --exec, ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub nack_delay_ms: u64,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Stop when no record arrives for this long, ms.
    #[arg(long, value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
}

/// `skiff queue replay-dlq`
#[derive(Debug, Args)]
pub struct QueueReplayArgs {
    /// Queue name.
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Stop when no dead letter arrives for this long, ms.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub idle_timeout_ms: u64,
}
