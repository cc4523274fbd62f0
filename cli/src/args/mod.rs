//! Command-line arguments (clap derive). Parsing is strict: a malformed
//! value is a usage error (exit 2) before anything connects.
//!
//! This file holds the top-level [`Cli`] with its global flags (broker
//! address, TLS, credentials) and the [`Command`] enum; each resource's
//! subcommands and flags live in a file of their own, as the handlers do in
//! `commands/`.

pub mod acl;
pub mod bench;
pub mod bench_queue;
pub mod consume;
pub mod group;
pub mod ops;
pub mod produce;
pub mod queue;
pub mod topic;
pub mod user;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use skiff_client::{ClientConfig, Secret};

pub use acl::AclCommand;
pub use bench::{BenchArgs, BenchMode, BenchProtocol, Payload};
pub use consume::ConsumeArgs;
pub use group::GroupCommand;
pub use ops::StatusArgs;
pub use produce::{CompressionArgs, ProduceArgs};
pub use queue::QueueCommand;
pub use topic::{TopicAlterArgs, TopicCommand, TopicCreateArgs};
pub use user::{TokenCommand, UserAddArgs, UserCommand};

const AFTER_HELP: &str = "\
Examples:
  skiff topic create orders --partitions 3
  echo 'hello' | skiff produce orders
  printf 'k1:v1\\nk2:v2\\n' | skiff produce orders --key-separator :
  skiff consume orders --from earliest --max-messages 10
  skiff consume orders --from @1700000000000 --json
  skiff consume orders --group billing --idle-timeout-ms 5000
  skiff group describe billing
  skiff queue create mail --topic jobs && skiff queue consume jobs --queue mail --exec ./send.sh
  skiff --broker 10.0.0.5:9400 topic list
  skiff --broker skiffs://broker.internal:9400 --tls-ca ca.pem topic list
  skiff topic alter orders --retention-ms 86400000 --segment-ms default
  skiff status
  SKIFF_USER=alice SKIFF_PASSWORD=... skiff topic list
  skiff acl grant alice --topic orders --ops produce,consume
  skiff completions bash > /etc/bash_completion.d/skiff";

/// skiff: talk to a skiff broker.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Broker address: host:port (TLS with --tls-ca), skiff://host:port
    /// (always plaintext), or skiffs://host:port (TLS).
    #[arg(
        long,
        global = true,
        env = "SKIFF_BROKER",
        default_value = skiff_client::BROKER_DEFAULT
    )]
    pub broker: String,

    /// TLS settings (--tls-ca or a skiffs:// address turns TLS on).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// User to authenticate as (with --password).
    #[arg(long, global = true, env = "SKIFF_USER")]
    pub user: Option<String>,

    /// Password of --user. Prefer $SKIFF_PASSWORD: flags are visible to
    /// other local users in the process list.
    #[arg(long, global = true, env = "SKIFF_PASSWORD", hide_env_values = true)]
    pub password: Option<Secret>,

    /// API token to authenticate with (instead of --user/--password).
    #[arg(long, global = true, env = "SKIFF_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// TLS to the broker: global flags with `SKIFF_TLS_*` fallbacks.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// CA certificates (PEM) the broker's certificate must chain to; set:
    /// connect with TLS. Needed for skiffs:// (no system roots are used).
    #[arg(long, global = true, value_name = "FILE", env = "SKIFF_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for brokers that require one.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SKIFF_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SKIFF_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Name the broker's certificate must carry [default: the host of
    /// --broker].
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "SKIFF_TLS_SERVER_NAME"
    )]
    pub tls_server_name: Option<String>,
}

impl Cli {
    /// The client settings every command connects with.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new(self.broker.clone()).client_id(client_id);
        let tls = &self.tls;
        config.tls_ca_file = tls.tls_ca.clone();
        config.tls_cert_file = tls.tls_cert.clone();
        config.tls_key_file = tls.tls_key.clone();
        config.tls_server_name = tls.tls_server_name.clone();
        config
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Send messages: the --value, or each line of stdin.
    #[command(after_help = "\
Examples:
  skiff produce orders --value '{\"id\": 1}' --key customer-7
  seq 1 100 | skiff produce numbers
  printf 'k1=v1\\nk2=v2\\n' | skiff produce orders --key-separator = --header source=cli
  seq 1 100000 | skiff produce numbers --compression zstd --compression-level 9

Exits 0 only once every message is acknowledged; prints the count on stderr.")]
    Produce(ProduceArgs),
    /// Print messages of a topic, one per line.
    #[command(after_help = "\
Examples:
  skiff consume orders                      # all partitions from the start, follow
  skiff consume orders --from latest        # only new messages
  skiff consume orders --partition 2 --from 1500 --max-messages 10
  skiff consume orders --from @1700000000000 --json --idle-timeout-ms 2000
  skiff consume orders --group billing      # share partitions with the group's other members

With --group, partitions are assigned by the broker, each starts at the group's
committed offset (--from only applies where there is none), and what was printed
is committed before exiting (at --max-messages, --idle-timeout-ms or Ctrl-C).")]
    Consume(ConsumeArgs),
    /// Measure the broker: produce, consume or end-to-end load.
    #[command(after_help = "\
Examples:
  skiff bench produce --topic bench --messages 2000000 --size 100 --batch 1000
  skiff bench consume --topic bench --json
  skiff bench e2e --topic lat --rate 50000 --duration 10
  skiff bench produce --topic wide --partitions 8 --producers 8 --key-space 1000

Reports msgs/s and MB/s (payload, 10^6 bytes) per producer/consumer and in
total, with latency percentiles from an HDR histogram.")]
    Bench(BenchArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Work queues: per-record acks, redelivery and dead letters over a
    /// topic.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Show the broker's version, uptime, topics, partitions, connections
    /// and disk usage.
    #[command(
        after_help = "Examples:\n  skiff status\n  skiff --broker 10.0.0.5:9400 status --json"
    )]
    Status(StatusArgs),
    /// Add, remove and list users; create and revoke their API tokens.
    #[command(subcommand)]
    User(UserCommand),
    /// Grant, revoke and list users' permissions on topics and groups.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  skiff completions bash > ~/.local/share/bash-completion/completions/skiff
  skiff completions zsh > \"${fpath[1]}/_skiff\"
  skiff completions fish > ~/.config/fish/completions/skiff.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn produce_takes_a_codec_and_a_level() {
        let cli = Cli::try_parse_from([
            "skiff",
            "produce",
            "t",
            "--compression",
            "zstd",
            "--compression-level",
            "-3",
        ])
        .expect("parses");
        let Command::Produce(args) = cli.command else {
            panic!("not produce");
        };
        assert_eq!(
            args.compression.compression,
            skiff_client::Compression::Zstd
        );
        assert_eq!(
            args.compression.compression_level,
            skiff_client::CompressionLevel::Exact(-3)
        );
        args.compression.check().expect("in range");
        let cli = Cli::try_parse_from([
            "skiff",
            "produce",
            "t",
            "--compression",
            "gzip",
            "--compression-level",
            "12",
        ])
        .expect("parses");
        let Command::Produce(args) = cli.command else {
            panic!("not produce");
        };
        assert!(args.compression.check().is_err());
        assert!(Cli::try_parse_from(["skiff", "produce", "t", "--compression", "brotli"]).is_err());
    }

    #[test]
    fn debug_redacts_the_password() {
        let cli = Cli::try_parse_from(["skiff", "--user", "u", "--password", "hunter2", "status"])
            .expect("parses");
        assert!(!format!("{cli:?}").contains("hunter2"));
    }
}
