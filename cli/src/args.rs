//! Command-line arguments (clap derive). Parsing is strict: a malformed
//! value is a usage error (exit 2) before anything connects.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use skiff_client::{ClientConfig, ConfigChange};
use skiff_client::{ResetTo, StartFrom};
use skiff_client::{ResourceKind, ResourcePattern, Secret};

const AFTER_HELP: &str = "\
Examples:
  skiff topic create orders --partitions 3
  echo 'hello' | skiff produce orders
  printf 'k1:v1\\nk2:v2\\n' | skiff produce orders --key-separator :
  skiff consume orders --from earliest --max-messages 10
  skiff consume orders --from @1700000000000 --json
  skiff consume orders --group billing --idle-timeout-ms 5000
  skiff group describe billing
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

/// `skiff user ...` (admin only once the broker has users)
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace an existing user's password and admin flag.
    #[command(after_help = "\
Examples:
  printf '%s\\n' \"$ALICE_PW\" | skiff user add alice --password-stdin
  SKIFF_NEW_PASSWORD=... skiff user add ops --admin

The password comes from the first line of stdin (--password-stdin) or from
$SKIFF_NEW_PASSWORD, never from a flag, and is never printed.")]
    Add(UserAddArgs),
    /// Remove a user with its tokens and grants (not the last admin).
    #[command(after_help = "Example:\n  skiff user remove alice")]
    Remove {
        /// User name.
        name: String,
    },
    /// List users with their admin flag and token ids.
    #[command(after_help = "Examples:\n  skiff user list\n  skiff user list --json")]
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Create or revoke a user's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `skiff user add`
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// User name: 1-128 characters of A-Z a-z 0-9 . _ @ -
    pub name: String,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// The user may do anything, including managing users and ACLs.
    #[arg(long)]
    pub admin: bool,
}

/// `skiff user token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; prints it once (stdout), and its id.
    #[command(after_help = "\
Examples:
  skiff user token create billing-svc > billing.token
  SKIFF_TOKEN=$(cat billing.token) skiff topic list

The broker keeps only a digest: a lost token cannot be shown again, only
revoked and replaced.")]
    Create {
        /// User name.
        #[arg(id = "token_user", value_name = "USER")]
        user: String,
    },
    /// Revoke a user's token by its id (from create or `skiff user list`).
    #[command(after_help = "Example:\n  skiff user token revoke billing-svc 3f2a9c01d4e5")]
    Revoke {
        /// User name.
        #[arg(id = "token_user", value_name = "USER")]
        user: String,
        /// Token id.
        token_id: String,
    },
}

/// `skiff acl ...` (admin only once the broker has users)
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow a user operations on a topic or group (by name or prefix).
    #[command(after_help = "\
Examples:
  skiff acl grant alice --topic orders --ops produce,consume
  skiff acl grant alice --topic-prefix logs. --ops consume
  skiff acl grant alice --group billing --ops consume

Operations: produce, consume, create, delete, describe, alter, or all.
Any operation on a resource implies describe. Consuming in a group needs
consume on the group and on its topics.")]
    Grant(AclArgs),
    /// Take operations back from a user's grant.
    #[command(after_help = "Example:\n  skiff acl revoke alice --topic orders --ops produce")]
    Revoke(AclArgs),
    /// List grants, of one user or of everyone.
    #[command(after_help = "Examples:\n  skiff acl list\n  skiff acl list alice --json")]
    List {
        /// Only this user's grants.
        #[arg(id = "grantee", value_name = "USER")]
        user: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// A name or prefix flag's value: an empty one would be a mistake (an
/// empty exact name matches nothing, an empty prefix everything).
fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(
            "must not be empty (to cover every topic or group, use --all-topics or --all-groups)"
                .into(),
        )
    } else {
        Ok(value.to_owned())
    }
}

/// `skiff acl grant|revoke`: a user, one resource pattern, operations.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("resource").required(true).args(["topic", "topic_prefix", "all_topics", "group", "group_prefix", "all_groups"])))]
pub struct AclArgs {
    /// The user (a positional argument: `--user` is the global flag naming
    /// who runs the command).
    #[arg(id = "grantee", value_name = "USER")]
    pub user: String,
    /// A topic, by exact name.
    #[arg(long, value_parser = non_empty)]
    pub topic: Option<String>,
    /// Every topic whose name starts with this (not empty: see
    /// --all-topics).
    #[arg(long, value_name = "PREFIX", value_parser = non_empty)]
    pub topic_prefix: Option<String>,
    /// Every topic, present and future.
    #[arg(long)]
    pub all_topics: bool,
    /// A consumer group, by exact name.
    #[arg(long, value_parser = non_empty)]
    pub group: Option<String>,
    /// Every group whose name starts with this (not empty: see
    /// --all-groups).
    #[arg(long, value_name = "PREFIX", value_parser = non_empty)]
    pub group_prefix: Option<String>,
    /// Every consumer group, present and future.
    #[arg(long)]
    pub all_groups: bool,
    /// Comma-separated operations: produce, consume, create, delete,
    /// describe, alter, or all.
    #[arg(long, value_parser = skiff_client::Operations::parse)]
    pub ops: skiff_client::Operations,
}

impl AclArgs {
    /// The resource pattern the flags name (clap makes exactly one present).
    pub fn resource(&self) -> ResourcePattern {
        let all = String::new();
        let (kind, name, prefix) = match (
            &self.topic,
            &self.topic_prefix,
            &self.group,
            &self.group_prefix,
        ) {
            _ if self.all_topics => (ResourceKind::Topic, &all, true),
            _ if self.all_groups => (ResourceKind::Group, &all, true),
            (Some(t), ..) => (ResourceKind::Topic, t, false),
            (_, Some(p), ..) => (ResourceKind::Topic, p, true),
            (_, _, Some(g), _) => (ResourceKind::Group, g, false),
            (_, _, _, Some(p)) => (ResourceKind::Group, p, true),
            (None, None, None, None) => unreachable!("clap requires one resource flag"),
        };
        ResourcePattern {
            kind,
            name: name.clone(),
            prefix,
        }
    }
}

/// `skiff topic ...`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    #[command(
        after_help = "Example:\n  skiff topic create orders --partitions 6 --retention-ms 604800000"
    )]
    Create(TopicCreateArgs),
    /// Change a live topic's retention and segment settings.
    #[command(after_help = "\
Examples:
  skiff topic alter orders --retention-ms 604800000
  skiff topic alter orders --retention-bytes 10737418240 --segment-bytes 268435456
  skiff topic alter orders --retention-ms default   # back to the broker's default

Changes apply to every partition at once and survive restarts; the next
retention check (retention_check_interval_ms) deletes what the new limits exclude.")]
    Alter(TopicAlterArgs),
    /// List topics with their partition counts.
    #[command(after_help = "Examples:\n  skiff topic list\n  skiff topic list --json")]
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's settings and partitions (offsets, sizes).
    #[command(
        after_help = "Examples:\n  skiff topic describe orders\n  skiff topic describe orders --json"
    )]
    Describe {
        /// Topic name.
        name: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and all its data.
    #[command(after_help = "Example:\n  skiff topic delete orders")]
    Delete {
        /// Topic name.
        name: String,
    },
}

/// `skiff topic create`
#[derive(Debug, Args)]
pub struct TopicCreateArgs {
    /// Topic name: 1-249 characters of A-Z a-z 0-9 . _ -
    pub name: String,
    /// Number of partitions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Delete segments older than this, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub retention_ms: Option<u64>,
    /// Keep at most this many bytes per partition.
    #[arg(long, value_name = "B")]
    pub retention_bytes: Option<u64>,
    /// Roll segments at this size, in bytes.
    #[arg(long, value_name = "B")]
    pub segment_bytes: Option<u64>,
}

/// `skiff topic alter`: each setting is a number, or `default` to fall
/// back to the broker's default; settings not given stay as they are.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["retention_ms", "retention_bytes", "segment_bytes", "segment_ms"])))]
pub struct TopicAlterArgs {
    /// Topic name.
    pub name: String,
    /// Delete segments older than this, in milliseconds, or `default`.
    #[arg(long, value_name = "MS|default", value_parser = parse_change)]
    pub retention_ms: Option<ConfigChange>,
    /// Keep at most this many bytes per partition, or `default`.
    #[arg(long, value_name = "B|default", value_parser = parse_change)]
    pub retention_bytes: Option<ConfigChange>,
    /// Roll segments at this size, in bytes (at least 1024), or `default`.
    #[arg(long, value_name = "B|default", value_parser = parse_change)]
    pub segment_bytes: Option<ConfigChange>,
    /// Roll segments at this age, in milliseconds, or `default`.
    #[arg(long, value_name = "MS|default", value_parser = parse_change)]
    pub segment_ms: Option<ConfigChange>,
}

/// `skiff status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_change(s: &str) -> Result<ConfigChange, String> {
    if s == "default" {
        return Ok(ConfigChange::Reset);
    }
    s.parse::<u64>()
        .map(ConfigChange::Set)
        .map_err(|_| format!("expected a whole number or `default`, got {s:?}"))
}

/// `skiff produce`
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to send to.
    pub topic: String,
    /// Key for every message (a key from --key-separator wins).
    #[arg(long)]
    pub key: Option<String>,
    /// Send to this partition (default: by key hash, else the broker picks).
    #[arg(long)]
    pub partition: Option<u32>,
    /// A header on every message, NAME=VALUE; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Send this one message instead of reading stdin.
    #[arg(long)]
    pub value: Option<String>,
    /// Split each stdin line at the first SEP into key and value.
    #[arg(long, value_name = "SEP", conflicts_with = "value")]
    pub key_separator: Option<String>,
}

/// Which load `skiff bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// Pre-built batches as fast as acknowledged (or at --rate).
    Produce,
    /// Read a topic from its start to the end seen at start.
    Consume,
    /// Paced producers and tailing consumers; publish-to-receive latency.
    E2e,
}

impl BenchMode {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Produce => "produce",
            BenchMode::Consume => "consume",
            BenchMode::E2e => "e2e",
        }
    }
}

/// `skiff bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// produce, consume or e2e.
    #[arg(value_enum)]
    pub mode: BenchMode,
    /// Topic to use (created if missing).
    #[arg(long)]
    pub topic: String,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Messages in total (default 1000000 unless --duration is given).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Run for this many seconds instead of a message count.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Payload bytes per message.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub size: usize,
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
    /// the intended send times (no coordinated omission).
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<u64>,
    /// Keys drawn from K distinct values (default: no keys).
    #[arg(long, value_name = "K")]
    pub key_space: Option<u64>,
    /// consume/e2e: read as members of this consumer group, through the
    /// client's group Consumer (default: direct fetches of every partition).
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Print one JSON summary object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `skiff consume`
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Where to start: earliest, latest, an OFFSET, or @UNIX_MS.
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: StartFrom,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Stop after this long without a message, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// One JSON object per message: topic, partition, offset, timestamp_ms,
    /// key, value, headers.
    #[arg(long)]
    pub json: bool,
    /// Consume as a member of this consumer group.
    #[arg(long, value_name = "GROUP", conflicts_with = "partition")]
    pub group: Option<String>,
}

/// `skiff group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with their state, member count and generation.
    #[command(after_help = "Example:\n  skiff group list --json")]
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a group's members and, per partition, committed offset, log end
    /// offset and lag.
    #[command(after_help = "Example:\n  skiff group describe billing --json")]
    Describe {
        /// Group name.
        group: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets on every partition of a topic (the
    /// group must have no members).
    #[command(after_help = "\
Examples:
  skiff group reset-offsets billing --topic orders --to-earliest
  skiff group reset-offsets billing --topic orders --to-offset 1500
  skiff group reset-offsets billing --topic orders --to-timestamp 1700000000000")]
    ResetOffsets(GroupResetArgs),
    /// Delete a group and its committed offsets (the group must have no
    /// members).
    #[command(after_help = "Example:\n  skiff group delete billing")]
    Delete {
        /// Group name.
        group: String,
    },
}

/// `skiff group reset-offsets`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_timestamp"])))]
pub struct GroupResetArgs {
    /// Group name.
    pub group: String,
    /// Topic whose partitions are reset.
    #[arg(long)]
    pub topic: String,
    /// To each partition's first stored offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's end (skip everything stored).
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset on every partition (clamped to each log).
    #[arg(long, value_name = "N")]
    pub to_offset: Option<u64>,
    /// To the first record at or after this Unix time, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub to_timestamp: Option<i64>,
}

impl GroupResetArgs {
    /// The chosen target (clap makes exactly one present).
    pub fn target(&self) -> ResetTo {
        match (self.to_offset, self.to_timestamp) {
            (Some(offset), _) => ResetTo::Offset(offset),
            (_, Some(ms)) => ResetTo::Timestamp(ms),
            _ if self.to_latest => ResetTo::Latest,
            _ => ResetTo::Earliest,
        }
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

fn parse_start(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        _ => {
            if let Some(ms) = s.strip_prefix('@') {
                ms.parse::<i64>()
                    .map(StartFrom::Timestamp)
                    .map_err(|_| format!("expected @UNIX_MS, got {s:?}"))
            } else {
                s.parse::<u64>().map(StartFrom::Offset).map_err(|_| {
                    format!("expected earliest, latest, an offset or @UNIX_MS, got {s:?}")
                })
            }
        }
    }
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
    fn start_positions_parse() {
        assert_eq!(parse_start("earliest"), Ok(StartFrom::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartFrom::Latest));
        assert_eq!(parse_start("42"), Ok(StartFrom::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(StartFrom::Timestamp(1_700_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("@x").is_err());
    }

    #[test]
    fn reset_targets_parse_and_exactly_one_is_required() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["skiff", "group", "reset-offsets", "g", "--topic", "t"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        let target = |extra: &[&str]| match parse(extra).map(|c| c.command) {
            Ok(Command::Group(GroupCommand::ResetOffsets(a))) => Some(a.target()),
            _ => None,
        };
        assert_eq!(target(&["--to-earliest"]), Some(ResetTo::Earliest));
        assert_eq!(target(&["--to-latest"]), Some(ResetTo::Latest));
        assert_eq!(target(&["--to-offset", "7"]), Some(ResetTo::Offset(7)));
        assert_eq!(
            target(&["--to-timestamp", "5"]),
            Some(ResetTo::Timestamp(5))
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["--to-earliest", "--to-latest"]).is_err());
    }

    #[test]
    fn alter_changes_parse_and_one_is_required() {
        assert_eq!(parse_change("1000"), Ok(ConfigChange::Set(1000)));
        assert_eq!(parse_change("default"), Ok(ConfigChange::Reset));
        assert!(parse_change("-1").is_err());
        let parsed = Cli::try_parse_from(["skiff", "topic", "alter", "t", "--retention-ms", "5"]);
        assert!(matches!(
            parsed.map(|c| c.command),
            Ok(Command::Topic(TopicCommand::Alter(TopicAlterArgs {
                retention_ms: Some(ConfigChange::Set(5)),
                segment_ms: None,
                ..
            })))
        ));
        assert!(Cli::try_parse_from(["skiff", "topic", "alter", "t"]).is_err());
    }

    #[test]
    fn acl_flags_need_exactly_one_resource_and_valid_ops() {
        let parsed = Cli::try_parse_from([
            "skiff",
            "acl",
            "grant",
            "a",
            "--topic-prefix",
            "logs.",
            "--ops",
            "consume",
        ])
        .expect("parses");
        let Command::Acl(AclCommand::Grant(args)) = parsed.command else {
            panic!("acl grant");
        };
        assert_eq!(args.resource().to_string(), "topic prefix 'logs.'");
        let both = [
            "skiff", "acl", "grant", "a", "--topic", "t", "--group", "g", "--ops", "all",
        ];
        assert!(Cli::try_parse_from(both).is_err());
        let none = ["skiff", "acl", "grant", "a", "--ops", "all"];
        assert!(Cli::try_parse_from(none).is_err());
        let bad = ["skiff", "acl", "grant", "a", "--topic", "t", "--ops", "fly"];
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn debug_redacts_the_password() {
        let cli = Cli::try_parse_from(["skiff", "--user", "u", "--password", "hunter2", "status"])
            .expect("parses");
        assert!(!format!("{cli:?}").contains("hunter2"));
    }

    #[test]
    fn headers_parse() {
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_header("a="), Ok(("a".into(), String::new())));
        assert!(parse_header("=b").is_err());
        assert!(parse_header("ab").is_err());
    }
}
