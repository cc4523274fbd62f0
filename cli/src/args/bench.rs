//! `skiff bench`: the load to run (produce, consume or end-to-end) and its
//! shape (sizes, concurrency, rate, keys, group).

use clap::Args;

use super::group::group_name;
use super::produce::CompressionArgs;

/// Which load `skiff bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// Batches built and compressed per send, as fast as acknowledged (or
    /// at --rate).
    Produce,
    /// Read a topic from its start to the end seen at start.
    Consume,
    /// Paced producers and tailing consumers; publish-to-receive latency.
    E2e,
    /// Group members join and leave under a steady --rate; hand-over times
    /// and the longest time a partition went unread.
    Rebalance,
    /// Work-queue workers on one topic: records handed out and acknowledged
    /// per second, redelivery latency (see `--workers`, `--work-ms`).
    Queue,
    /// No broker: a bare append+fdatasync loop in --dir at --rate syncs/s,
    /// the disk's floor for `--fsync always` (see `--dir`).
    Fsync,
}

impl BenchMode {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Produce => "produce",
            BenchMode::Consume => "consume",
            BenchMode::E2e => "e2e",
            BenchMode::Queue => "queue",
            BenchMode::Rebalance => "rebalance",
            BenchMode::Fsync => "fsync",
        }
    }
}

/// Which protocol the bench's producers and consumers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchProtocol {
    /// skiff's own protocol, through the client crate's `Connection`.
    Native,
    /// Kafka's wire protocol (Produce v9, Fetch v12, record batches of
    /// magic 2) to the broker's Kafka listener at --kafka-broker.
    Kafka,
}

impl BenchProtocol {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BenchProtocol::Native => "native",
            BenchProtocol::Kafka => "kafka",
        }
    }
}

/// What the bench's message values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// Seeded random bytes (incompressible).
    Random,
    /// Seeded JSON order events laid back to back, cut at --size (they
    /// compress as a service's events do).
    Json,
}

impl Payload {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Payload::Random => "random",
            Payload::Json => "json",
        }
    }
}

/// `skiff bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// produce, consume, e2e, rebalance, queue or fsync.
    #[arg(value_enum)]
    pub mode: BenchMode,
    /// Topic to use (created if missing); every mode but fsync needs one.
    #[arg(long, default_value = "", hide_default_value = true,
          required_if_eq_any = [("mode", "produce"), ("mode", "consume"), ("mode", "e2e"),
                                ("mode", "rebalance"), ("mode", "queue")])]
    pub topic: String,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Messages in total (default 1000000 unless --duration is given;
    /// fsync: syncs, default 5 s of them).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Run for this many seconds (more than 0, at most a day) instead of a
    /// message count.
    #[arg(long, value_name = "S", value_parser = duration_s)]
    pub duration: Option<f64>,
    /// Payload bytes per message (fsync: bytes appended per sync; the
    /// issue #18 comparison uses 2500, 50,000 msg/s of 100 bytes in 2000
    /// syncs/s).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub size: usize,
    /// produce/e2e: what the values are: random bytes or JSON events.
    #[arg(long, value_enum, default_value_t = Payload::Random)]
    pub payload: Payload,
    /// Messages per produce request (e2e: at most, per paced send).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub batch: usize,
    /// Produce requests outstanding per producer connection.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub in_flight: usize,
    /// Concurrent producers, each with its own connection.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub producers: usize,
    /// Concurrent consumers, each with its own connection (at most one per
    /// partition).
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub consumers: usize,
    /// Offered load in messages per second over all producers, held from
    /// the intended send times (no coordinated omission); fsync: syncs per
    /// second (default 2000).
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<u64>,
    /// Keys drawn from K distinct values (default: no keys).
    #[arg(long, value_name = "K")]
    pub key_space: Option<u64>,
    /// consume/e2e: read as members of this consumer group, through the
    /// client's group Consumer (default: direct fetches of every partition).
    #[arg(long, value_name = "G", value_parser = group_name)]
    pub group: Option<String>,
    /// rebalance: most group members at once; members are added one at a
    /// time up to this, then removed one at a time down to one.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub members_max: u32,
    /// rebalance: membership changes (joins and clean leaves) to make.
    #[arg(long, value_name = "N", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub changes: u32,
    /// rebalance: crash rounds after the changes: a member joins, then
    /// its connections are cut as a SIGKILL would (no leave, no commit).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub crashes: u32,
    /// rebalance: session timeout of the members that crash, in ms (the
    /// broker must wait it out before their partitions move).
    #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..))]
    pub crash_session_timeout_ms: u32,
    /// rebalance: members learn of assignment changes at their heartbeats
    /// instead of having them pushed (the behaviour before Heartbeat v1).
    #[arg(long)]
    pub no_push: bool,
    /// produce/consume: the protocol producers and consumers speak (the
    /// topic is still created and described through skiff's protocol).
    #[arg(long, value_enum, default_value_t = BenchProtocol::Native)]
    pub protocol: BenchProtocol,
    /// The broker's Kafka listener (`host:port`), for --protocol kafka.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_broker: Option<String>,
    /// e2e: the broker's metrics endpoint (its `metrics_listen`), read
    /// before and after the run to report where the time went inside the
    /// broker (queue, commit, fetch wake-up, fetch read).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// fsync: directory of the file appended to and synced (default: a
    /// fresh temporary directory). To compare with a broker it must be on
    /// the broker's data disk.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// fsync: write zeros over the file's first bytes and sync them before
    /// the loop, then overwrite them instead of appending: each fdatasync
    /// then moves no file size or block allocation (what a log with
    /// pre-zeroed segments would pay).
    #[arg(long)]
    pub prezero: bool,
    /// e2e: run against an in-process echo of skiff's framing on
    /// 127.0.0.1 instead of the broker (acks each produce at once, hands
    /// it to the waiting fetch; no disk, no log): the floor that the bench
    /// itself and loopback set.
    #[arg(long)]
    pub echo: bool,
    /// e2e with --rate: shortest sleep of a producer's pacing thread, in
    /// µs (10 to 10000; default 100). Messages due within one tick go in
    /// one request: a shorter tick sends sooner but makes more, smaller
    /// requests.
    #[arg(long, value_name = "US",
          value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub pacing_tick_us: Option<u64>,
    /// Print one JSON summary object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// produce/e2e: batch compression, applied to each batch as it is sent
    /// (inside the timed loop, as a real producer does).
    #[command(flatten)]
    pub compression: CompressionArgs,
    /// queue: workers, work per record, redeliveries.
    #[command(flatten)]
    pub queue: super::bench_queue::BenchQueueArgs,
}

/// Longest `--duration`, in seconds (a day).
const DURATION_S_MAX: f64 = 86_400.0;

/// Parses `--duration`: a number of seconds above 0 and at most
/// [`DURATION_S_MAX`] (a negative, NaN or huge value would not make a
/// run's deadline).
fn duration_s(value: &str) -> Result<f64, String> {
    let s: f64 = value
        .parse()
        .map_err(|e| format!("{value:?} is not a number of seconds: {e}"))?;
    if s > 0.0 && s <= DURATION_S_MAX {
        Ok(s)
    } else {
        Err(format!(
            "{value:?} seconds: give more than 0 and at most {DURATION_S_MAX}"
        ))
    }
}
