//! `skiff bench queue`: the work-queue load's own options (workers, work
//! per record, redeliveries); the topic, message count, size and output
//! options are `skiff bench`'s.

use clap::Args;

/// Options of `skiff bench queue`.
#[derive(Debug, Clone, Args)]
pub struct BenchQueueArgs {
    /// queue: worker counts to run, one run each on a fresh queue over the
    /// same records, e.g. `1,8` (each worker has its own connection).
    #[arg(
        long,
        value_name = "N[,N...]",
        value_delimiter = ',',
        default_value = "4",
        value_parser = clap::value_parser!(u32).range(1..=1024)
    )]
    pub workers: Vec<u32>,
    /// queue: time each worker spends per record (a sleep, as waiting on
    /// another service is), in ms.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    pub work_ms: f64,
    /// queue: records asked for per receive.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub receive_records: u32,
    /// queue: nack (delay 0) every Nth record on its first delivery and time
    /// until it is handed out again (redelivery latency); 0: none.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub nack_every: u64,
    /// queue: the queue's lock time, ms.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub lock_ms: u64,
}
