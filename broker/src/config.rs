//! Broker configuration: one [`BrokerConfig`] with a documented default for
//! every setting, loaded from a TOML file, overridden by `SKIFF_<KEY>`
//! environment variables (one per key, see [`KEYS`]), overridden by
//! command-line flags (see `skiffd --help`). Unknown keys and bad values are
//! refused at startup, naming the key (or the variable).
//!
//! Invariant: `skiff.toml` at the repository root documents every key with
//! its default; a test checks it parses to [`BrokerConfig::default`] and
//! names every key in [`KEYS`], and another that [`KEYS`] lists every field.
//!
//! Limits are named with their unit last (`frame_bytes_max`) and each says
//! why its default is what it is. Segment and retention limits live in
//! `log::limits` (one home for the config file, topic settings and the log).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::{Durability, LogConfig};

/// Everything a broker needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Directory holding topics, partitions and broker state.
    pub data_dir: PathBuf,
    /// Address the client listener binds to; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Default durability of appends (`always`, `interval:<ms>`, `never`).
    pub fsync: Durability,
    /// Most client connections served at once; further connections are
    /// closed at accept. Bounds sockets and per-connection buffers.
    pub connections_max: usize,
    /// Largest request frame accepted, in bytes, checked before any buffer is
    /// reserved for it. Bounds the memory one request can take.
    pub frame_bytes_max: usize,
    /// Largest frame accepted before the handshake has succeeded (capped at
    /// `frame_bytes_max`): a handshake is small, so an unauthenticated
    /// connection cannot make the broker reserve a full `frame_bytes_max`.
    pub handshake_frame_bytes_max: usize,
    /// Requests one connection may have in flight; the broker stops reading
    /// from a connection that reaches it (backpressure, bounded memory).
    pub requests_in_flight_max: usize,
    /// A connection with no request and nothing in flight for this long is
    /// closed.
    pub idle_timeout_ms: u64,
    /// A connection must complete its handshake (authentication included)
    /// within this many milliseconds of being accepted, or it is closed.
    /// Bounds what silent or stalled unauthenticated clients can hold.
    pub handshake_timeout_ms: u64,
    /// Once the first byte of a frame has arrived, the whole frame must
    /// arrive within this many milliseconds, or the connection is closed
    /// (slowloris defence; applies before and after the handshake).
    pub frame_read_timeout_ms: u64,
    /// Failed authentications allowed on one connection; the one that
    /// reaches it closes the connection (slows down password guessing).
    pub auth_failures_max: u32,
    /// Failed password checks allowed from one client address
    /// (IPv4 address, IPv6 /64) within `auth_failure_window_ms`; past it,
    /// logins from the address are refused unchecked until the window,
    /// which starts at its first failure, ends. 0: no limit (for brokers
    /// behind a proxy that hides client addresses).
    pub auth_failures_per_address_max: u32,
    /// The window of `auth_failures_per_address_max`, in milliseconds.
    pub auth_failure_window_ms: u64,
    /// Password checks (one argon2 run each, about 19 MiB with the default
    /// cost) running at once across all connections; a handshake that
    /// cannot start its check before its `handshake_timeout_ms` runs out is
    /// refused ("too many logins in progress"). Bounds the CPU and memory
    /// that login attempts can take, and keeps them from filling the
    /// blocking pool that produces, fetches and commits use.
    pub auth_checks_concurrent_max: usize,
    /// Users created or updated at start (`[[users]]`: `name`,
    /// `password_hash` (argon2id PHC string), `admin`). Any user turns
    /// authentication on; see the README's "Authentication and permissions".
    pub users: Vec<crate::auth::BootstrapUser>,
    /// Longest a fetch may long-poll, whatever the client asks for.
    pub fetch_wait_ms_max: u64,
    /// Most record bytes one fetch response carries (one oversized batch is
    /// still served whole so a consumer can always progress).
    pub fetch_bytes_max: usize,
    /// Most partitions one topic may have.
    pub partitions_max: u32,
    /// How far ahead of the broker's clock a batch's newest record timestamp
    /// may be, in milliseconds; a batch further ahead is refused. One
    /// far-future timestamp would otherwise pin its segment against
    /// retention by age (and mislead timestamp lookups) for that long.
    pub timestamp_after_ms_max: u64,
    /// Idempotent producers remembered per partition; past it the least
    /// recently writing one is forgotten (its next batch is taken as from a
    /// new producer). Bounds each partition's producer table and snapshot.
    pub producers_per_partition_max: usize,
    /// Create a topic (with `default_partitions`) when a produce names one
    /// that does not exist. Off: such a produce is an error naming the topic.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics.
    pub default_partitions: u32,
    /// Default segment size before rolling, in bytes.
    pub segment_bytes: u64,
    /// Default segment age before rolling, in milliseconds (unset: no age roll).
    pub segment_ms: Option<u64>,
    /// Default retention by age, in milliseconds (unset: keep forever).
    pub retention_ms: Option<u64>,
    /// Default retention by partition size, in bytes (unset: no size limit).
    pub retention_bytes: Option<u64>,
    /// How often retention and age-based rolls are checked.
    pub retention_check_interval_ms: u64,
    /// How long shutdown waits for in-flight requests before closing anyway.
    pub shutdown_grace_ms: u64,
    /// Most members one consumer group may have. Bounds the per-group state
    /// and the work of each rebalance.
    pub group_members_max: usize,
    /// Most consumer groups the broker keeps (with members or committed
    /// offsets). Bounds coordinator memory and the offset snapshot size.
    pub groups_max: usize,
    /// Shortest session timeout a group member may ask for, in milliseconds.
    /// Shorter timeouts expire members on a GC pause or a slow network.
    pub session_timeout_ms_min: u32,
    /// Longest session timeout a group member may ask for, in milliseconds.
    /// Bounds how long a dead member's partitions stay unconsumed.
    pub session_timeout_ms_max: u32,
    /// Session timeout of members that do not ask for one, in milliseconds.
    pub session_timeout_ms_default: u32,
    /// Heartbeat interval told to group members, in milliseconds (capped at a
    /// third of each member's session timeout, so two heartbeats may be lost
    /// before it expires).
    pub heartbeat_interval_ms: u32,
    /// How long a group member may keep a partition it was told to revoke,
    /// in milliseconds; after that the broker takes that partition (only
    /// that one) from it and hands it to its new owner, and the old owner's
    /// commits for it are refused.
    pub revoke_timeout_ms: u32,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`); unset:
    /// no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// PEM file with the listener's certificate chain (leaf first); with
    /// `tls_key_file`, the client listener speaks only TLS. Unset: plaintext.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert_file` (PKCS#8, PKCS#1 or
    /// SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// PEM file with the CA certificates that sign client certificates; set:
    /// every client must present a certificate that chains to one of them
    /// (mutual TLS). Needs `tls_cert_file`.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Longest a new connection may take to finish the TLS handshake, in
    /// milliseconds; a client that connects and sends nothing loses its
    /// connection slot after this long.
    pub tls_handshake_timeout_ms: u64,
    /// Address of the Kafka-protocol listener (`broker/src/kafka/`); unset:
    /// no Kafka listener. Port 0 picks a free port. With `tls_cert_file` set
    /// it speaks only TLS (Kafka's SSL and SASL_SSL), with the same
    /// certificate, client CA and handshake timeout as `listen`.
    pub kafka_listen: Option<SocketAddr>,
    /// `host:port` that Metadata tells Kafka clients to connect to; unset:
    /// the address the Kafka listener actually bound (with its real port).
    pub kafka_advertised_address: Option<String>,
    /// Largest Kafka request frame accepted, in bytes (the 4-byte size
    /// prefix not counted); a larger size is refused before anything is
    /// buffered and the connection closed.
    pub kafka_frame_bytes_max: usize,
}

/// Every config key, in the order of `skiff.toml`. `SKIFF_<KEY>` (upper
/// case) overrides each; see [`env_var_name`].
pub const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "fsync",
    "connections_max",
    "frame_bytes_max",
    "handshake_frame_bytes_max",
    "requests_in_flight_max",
    "idle_timeout_ms",
    "handshake_timeout_ms",
    "frame_read_timeout_ms",
    "auth_failures_max",
    "auth_failures_per_address_max",
    "auth_failure_window_ms",
    "auth_checks_concurrent_max",
    "users",
    "fetch_wait_ms_max",
    "fetch_bytes_max",
    "partitions_max",
    "timestamp_after_ms_max",
    "producers_per_partition_max",
    "auto_create_topics",
    "default_partitions",
    "segment_bytes",
    "segment_ms",
    "retention_ms",
    "retention_bytes",
    "retention_check_interval_ms",
    "shutdown_grace_ms",
    "group_members_max",
    "groups_max",
    "session_timeout_ms_min",
    "session_timeout_ms_max",
    "session_timeout_ms_default",
    "heartbeat_interval_ms",
    "revoke_timeout_ms",
    "metrics_listen",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tls_handshake_timeout_ms",
    "kafka_listen",
    "kafka_advertised_address",
    "kafka_frame_bytes_max",
];

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "SKIFF_";

/// `SKIFF_*` variables that are not config keys (read by `skiffd`'s own
/// flags or by the `skiff` CLI), so not refused as unknown. (`skiffd` with
/// TLS off still refuses the CLI's `SKIFF_TLS_CERT`, `SKIFF_TLS_KEY` and
/// `SKIFF_TLS_CA`, likely meant as the broker's `SKIFF_TLS_*_FILE`.)
pub const ENV_NOT_KEYS: &[&str] = &[
    "SKIFF_BROKER",
    "SKIFF_CONFIG",
    "SKIFF_LOG_LEVEL",
    "SKIFF_LOG_FORMAT",
    "SKIFF_TLS_CA",
    "SKIFF_TLS_CERT",
    "SKIFF_TLS_KEY",
    "SKIFF_TLS_SERVER_NAME",
    // skiffd's bootstrap admin and the CLI's credentials.
    "SKIFF_ADMIN_USER",
    "SKIFF_ADMIN_PASSWORD",
    "SKIFF_USER",
    "SKIFF_PASSWORD",
    "SKIFF_TOKEN",
    "SKIFF_NEW_PASSWORD",
];

/// The environment variable that overrides `key`: `SKIFF_` + the key in
/// upper case (`data_dir` -> `SKIFF_DATA_DIR`).
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./skiff-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9400)),
            fsync: Durability::default(),
            connections_max: 1024,
            frame_bytes_max: skiff_protocol::FRAME_BYTES_MAX_DEFAULT,
            handshake_frame_bytes_max: HANDSHAKE_FRAME_BYTES_MAX_DEFAULT,
            requests_in_flight_max: 64,
            idle_timeout_ms: 10 * 60 * 1000,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS_DEFAULT,
            frame_read_timeout_ms: FRAME_READ_TIMEOUT_MS_DEFAULT,
            auth_failures_max: AUTH_FAILURES_MAX_DEFAULT,
            auth_failures_per_address_max: AUTH_FAILURES_PER_ADDRESS_MAX_DEFAULT,
            auth_failure_window_ms: AUTH_FAILURE_WINDOW_MS_DEFAULT,
            auth_checks_concurrent_max: AUTH_CHECKS_CONCURRENT_MAX_DEFAULT,
            users: Vec::new(),
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 8 * 1024 * 1024,
            partitions_max: 1024,
            timestamp_after_ms_max: TIMESTAMP_AFTER_MS_MAX_DEFAULT,
            producers_per_partition_max: crate::log::PRODUCERS_PER_PARTITION_MAX_DEFAULT,
            auto_create_topics: false,
            default_partitions: 1,
            segment_bytes: crate::log::limits::SEGMENT_BYTES_DEFAULT,
            segment_ms: None,
            retention_ms: None,
            retention_bytes: None,
            retention_check_interval_ms: 30_000,
            shutdown_grace_ms: 10_000,
            group_members_max: 1000,
            groups_max: 10_000,
            session_timeout_ms_min: SESSION_TIMEOUT_MS_MIN_DEFAULT,
            session_timeout_ms_max: SESSION_TIMEOUT_MS_MAX_DEFAULT,
            session_timeout_ms_default: SESSION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            revoke_timeout_ms: REVOKE_TIMEOUT_MS_DEFAULT,
            metrics_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_handshake_timeout_ms: TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT,
            kafka_listen: None,
            kafka_advertised_address: None,
            kafka_frame_bytes_max: KAFKA_FRAME_BYTES_MAX_DEFAULT,
        }
    }
}

/// Default `kafka_frame_bytes_max`: 16 MiB, as `frame_bytes_max`: one
/// produce request carries at most a few batches of at most
/// `BATCH_BYTES_MAX` (16 MiB) each in practice (Kafka's clients default to
/// 1 MiB requests), and a fetch request is small. Kafka's own
/// `socket.request.max.bytes` is 100 MiB; skiff keeps one connection's
/// buffering at the native listener's bound.
pub const KAFKA_FRAME_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// Default `timestamp_after_ms_max`: 1 hour, as Kafka's
/// `log.message.timestamp.after.max.ms`: room for badly set client clocks,
/// not for timestamps years ahead.
pub const TIMESTAMP_AFTER_MS_MAX_DEFAULT: u64 = 60 * 60 * 1000;
/// Default `handshake_frame_bytes_max`: 64 KiB, room for any handshake
/// (a client id, a user name and password or a token) many times over, while
/// `connections_max` unauthenticated connections hold at most 64 MiB of read
/// buffers rather than 16 GiB.
pub const HANDSHAKE_FRAME_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Default `handshake_timeout_ms`: 10 s, ample for a connect, a password
/// check (one argon2 run) and a retry, short enough that idle sockets from
/// scanners or stuck clients do not pile up.
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default `frame_read_timeout_ms`: 30 s, enough for a 16 MiB frame
/// (`frame_bytes_max`) at about 0.5 MB/s.
pub const FRAME_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default `auth_failures_max`: 3, room for a typo and a retry.
pub const AUTH_FAILURES_MAX_DEFAULT: u32 = 3;
/// Default `auth_failures_per_address_max`: 20 a window, room for a few
/// misconfigured clients on one host, few enough that guessing a password
/// takes forever (20 a minute is under 30,000 a day).
pub const AUTH_FAILURES_PER_ADDRESS_MAX_DEFAULT: u32 = 20;
/// Default `auth_failure_window_ms`: 1 minute.
pub const AUTH_FAILURE_WINDOW_MS_DEFAULT: u64 = 60_000;
/// Default `auth_checks_concurrent_max`: 2, about 38 MiB of argon2 memory
/// at most and two cores' worth of hashing (about 20 ms per check), which
/// serves 100 logins a second.
pub const AUTH_CHECKS_CONCURRENT_MAX_DEFAULT: usize = 2;

/// A fetch response must fit in a frame the client accepts (same default
/// limit), with room for the response header and offsets.
const _: () = assert!(8 * 1024 * 1024 + 64 < skiff_protocol::FRAME_BYTES_MAX_DEFAULT);

/// Default `session_timeout_ms_min`: 1 s, below which a GC pause or a
/// congested link expires healthy members.
pub const SESSION_TIMEOUT_MS_MIN_DEFAULT: u32 = 1000;
/// Default `session_timeout_ms_max`: 5 min, the longest a dead member's
/// partitions may sit unconsumed.
pub const SESSION_TIMEOUT_MS_MAX_DEFAULT: u32 = 5 * 60 * 1000;
/// Default `session_timeout_ms_default`: 30 s.
pub const SESSION_TIMEOUT_MS_DEFAULT: u32 = 30_000;
/// Default `heartbeat_interval_ms`: 3 s.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u32 = 3000;
/// Default `revoke_timeout_ms`: 10 s. A current client releases a revoked
/// partition within a round trip plus one commit; a client that learns of
/// revocations only at its heartbeats (Heartbeat v0) needs up to one
/// heartbeat interval (3 s) more. A stuck member holds the partition at
/// most this long.
pub const REVOKE_TIMEOUT_MS_DEFAULT: u32 = 10_000;
/// Default `tls_handshake_timeout_ms`: 10 s, ample for a handshake over a
/// slow link (two round trips), short enough that idle sockets cannot hold
/// the `connections_max` slots for long.
pub const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// The default heartbeat leaves room for two lost heartbeats within the
/// default session timeout, and the default timeout lies within its bounds.
const _: () = assert!(
    3 * HEARTBEAT_INTERVAL_MS_DEFAULT <= SESSION_TIMEOUT_MS_DEFAULT
        && SESSION_TIMEOUT_MS_MIN_DEFAULT <= SESSION_TIMEOUT_MS_DEFAULT
        && SESSION_TIMEOUT_MS_DEFAULT <= SESSION_TIMEOUT_MS_MAX_DEFAULT
);

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key or bad value.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, naming the key.
        message: String,
    },
    /// An environment variable has a bad value for its key.
    #[error("invalid environment variable {var}: {message}")]
    Env {
        /// The variable, e.g. `SKIFF_LISTEN`.
        var: String,
        /// What was wrong.
        message: String,
    },
    /// A `SKIFF_*` environment variable names no config key.
    #[error("unknown environment variable {var}: no config key {key:?} (see skiff.toml)")]
    UnknownEnv {
        /// The variable.
        var: String,
        /// The key it would override.
        key: String,
    },
    /// A number is outside its allowed range (segment and retention
    /// settings, see `log::limits`).
    #[error("invalid config: {0}")]
    OutOfRange(#[from] crate::log::LimitError),
    /// A value is out of its allowed range.
    #[error("invalid config: {key} {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl BrokerConfig {
    /// Loads a TOML file; keys not in the file keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Applies `SKIFF_<KEY>` overrides from `vars` (pass
    /// `std::env::vars()`). Each value is parsed with the same rules as in
    /// the file: taken as a string when the key accepts one (paths,
    /// addresses, `fsync`), else as a TOML value (`42`, `true`). A `SKIFF_*`
    /// variable that is no key (and not in [`ENV_NOT_KEYS`]) is refused.
    pub fn apply_env<I>(self, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut table = toml::Table::try_from(&self).map_err(|e| ConfigError::Invalid {
            key: "config",
            message: format!("cannot represent the config as TOML: {e}"),
        })?;
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(var, _)| var.starts_with(ENV_PREFIX) && !ENV_NOT_KEYS.contains(&var.as_str()))
            .collect();
        // Deterministic: the first bad variable in name order is reported.
        vars.sort();
        for (var, raw) in vars {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            if !KEYS.contains(&key.as_str()) {
                return Err(ConfigError::UnknownEnv { var, key });
            }
            let value = env_value(&key, &raw).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            table.insert(key, value);
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                key: "config",
                message: e.to_string().trim_end().to_owned(),
            })
    }

    /// Checks ranges and relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.connections_max == 0 {
            return invalid("connections_max", "must be at least 1");
        }
        if self.requests_in_flight_max == 0 {
            return invalid("requests_in_flight_max", "must be at least 1");
        }
        if self.frame_bytes_max < 1024 || self.frame_bytes_max > u32::MAX as usize {
            return invalid("frame_bytes_max", "must be between 1024 and 4294967295");
        }
        if self.handshake_frame_bytes_max < 1024 {
            return invalid("handshake_frame_bytes_max", "must be at least 1024");
        }
        if self.handshake_timeout_ms == 0 {
            return invalid("handshake_timeout_ms", "must be at least 1");
        }
        if self.frame_read_timeout_ms == 0 {
            return invalid("frame_read_timeout_ms", "must be at least 1");
        }
        if self.auth_failures_max == 0 {
            return invalid("auth_failures_max", "must be at least 1");
        }
        if self.auth_failure_window_ms == 0 || self.auth_failure_window_ms > 86_400_000 {
            return invalid(
                "auth_failure_window_ms",
                "must be between 1 and 86400000 (one day)",
            );
        }
        if self.auth_checks_concurrent_max == 0 || self.auth_checks_concurrent_max > 1024 {
            return invalid("auth_checks_concurrent_max", "must be between 1 and 1024");
        }
        for (i, user) in self.users.iter().enumerate() {
            if let Err(e) = crate::auth::validate_user_name(&user.name) {
                return Err(ConfigError::Invalid {
                    key: "users",
                    message: e.to_string(),
                });
            }
            if self.users[..i].iter().any(|u| u.name == user.name) {
                return Err(ConfigError::Invalid {
                    key: "users",
                    message: format!("user {:?} is listed twice", user.name),
                });
            }
        }
        if self.fetch_bytes_max == 0 || self.fetch_bytes_max + 64 > self.frame_bytes_max {
            return invalid(
                "fetch_bytes_max",
                "must be at least 1 and leave 64 bytes of frame_bytes_max for headers",
            );
        }
        if self.partitions_max == 0 {
            return invalid("partitions_max", "must be at least 1");
        }
        if self.producers_per_partition_max == 0 {
            return invalid("producers_per_partition_max", "must be at least 1");
        }
        if self.default_partitions == 0 || self.default_partitions > self.partitions_max {
            return invalid("default_partitions", "must be between 1 and partitions_max");
        }
        let log_limits = crate::log::LogLimits {
            segment_bytes: Some(self.segment_bytes),
            segment_ms: self.segment_ms,
            retention_bytes: self.retention_bytes,
            retention_ms: self.retention_ms,
        };
        if let Err(e) = log_limits.check() {
            return Err(ConfigError::OutOfRange(e));
        }
        if self.group_members_max == 0 {
            return invalid("group_members_max", "must be at least 1");
        }
        if self.groups_max == 0 {
            return invalid("groups_max", "must be at least 1");
        }
        if self.session_timeout_ms_min == 0
            || self.session_timeout_ms_min > self.session_timeout_ms_max
        {
            return invalid(
                "session_timeout_ms_min",
                "must be at least 1 and at most session_timeout_ms_max",
            );
        }
        if !(self.session_timeout_ms_min..=self.session_timeout_ms_max)
            .contains(&self.session_timeout_ms_default)
        {
            return invalid(
                "session_timeout_ms_default",
                "must lie within session_timeout_ms_min..=session_timeout_ms_max",
            );
        }
        if self.heartbeat_interval_ms == 0 {
            return invalid("heartbeat_interval_ms", "must be at least 1");
        }
        if self.revoke_timeout_ms == 0 {
            return invalid("revoke_timeout_ms", "must be at least 1");
        }
        if self.retention_check_interval_ms == 0 {
            return invalid("retention_check_interval_ms", "must be at least 1");
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => return invalid("tls_key_file", "must be set with tls_cert_file"),
            (None, Some(_)) => return invalid("tls_cert_file", "must be set with tls_key_file"),
            _ => {}
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return invalid(
                "tls_client_ca_file",
                "needs tls_cert_file and tls_key_file (client certificates are checked only over TLS)",
            );
        }
        if self.tls_handshake_timeout_ms == 0 {
            return invalid("tls_handshake_timeout_ms", "must be at least 1");
        }
        if self.kafka_frame_bytes_max < 1024 || self.kafka_frame_bytes_max > i32::MAX as usize {
            return invalid(
                "kafka_frame_bytes_max",
                "must be between 1024 and 2147483647 (Kafka sizes are signed 32-bit)",
            );
        }
        if let Some(address) = &self.kafka_advertised_address {
            if let Err(message) = check_host_port(address) {
                return invalid("kafka_advertised_address", &message);
            }
        }
        Ok(())
    }

    /// The consumer-group limits.
    pub fn group_limits(&self) -> crate::groups::GroupLimits {
        crate::groups::GroupLimits {
            group_members_max: self.group_members_max,
            groups_max: self.groups_max,
            session_timeout_ms_min: self.session_timeout_ms_min,
            session_timeout_ms_max: self.session_timeout_ms_max,
            session_timeout_ms_default: self.session_timeout_ms_default,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            revoke_timeout_ms: self.revoke_timeout_ms,
        }
    }

    /// The log settings a partition gets from the broker's defaults.
    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            retention_bytes: self.retention_bytes,
            retention_ms: self.retention_ms,
            durability: self.fsync.clone(),
            producers_max: self.producers_per_partition_max,
            // Every broker log reports its fsync timings to the metrics.
            observer: crate::telemetry::log_observer(),
            ..LogConfig::default()
        }
    }
}

/// Checks a `host:port` address (a host name, an IPv4 address, or a
/// bracketed IPv6 address, then a port).
fn check_host_port(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{address:?} is not host:port"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{address:?} has no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{address:?} has no valid port (1-65535)")),
        Ok(_) => Ok(()),
    }
}

/// Parses one environment value for `key`: as a string if the key takes
/// one, else as a TOML value; the error says what the key expected.
fn env_value(key: &str, raw: &str) -> Result<toml::Value, String> {
    let check = |value: &toml::Value| {
        let mut one = toml::Table::new();
        one.insert(key.to_owned(), value.clone());
        toml::Value::Table(one)
            .try_into::<BrokerConfig>()
            .map(|_| ())
            .map_err(|e| e.to_string().trim_end().to_owned())
    };
    let as_string = toml::Value::String(raw.to_owned());
    let string_error = match check(&as_string) {
        Ok(()) => return Ok(as_string),
        Err(e) => e,
    };
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut parsed) => {
            let value = parsed.remove("v").ok_or_else(|| string_error.clone())?;
            check(&value)?;
            Ok(value)
        }
        Err(_) => Err(string_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn example_file_documents_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../skiff.toml");
        let text = std::fs::read_to_string(&path).expect("skiff.toml at the repo root");
        let parsed = BrokerConfig::from_toml(&text).expect("skiff.toml parses");
        assert_eq!(parsed, BrokerConfig::default());
        for key in KEYS {
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
            });
            assert!(documented, "skiff.toml does not document {key}");
        }
    }

    #[test]
    fn keys_list_every_field() {
        let all_set = BrokerConfig {
            segment_ms: Some(1),
            retention_ms: Some(1),
            retention_bytes: Some(1),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            tls_cert_file: Some(PathBuf::from("cert.pem")),
            tls_key_file: Some(PathBuf::from("key.pem")),
            tls_client_ca_file: Some(PathBuf::from("ca.pem")),
            kafka_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            kafka_advertised_address: Some("broker.example:9092".to_owned()),
            ..BrokerConfig::default()
        };
        let table = toml::Table::try_from(&all_set).unwrap();
        let fields: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut keys = KEYS.to_vec();
        keys.sort_unstable();
        let mut fields_sorted = fields.clone();
        fields_sorted.sort_unstable();
        assert_eq!(keys, fields_sorted);
    }

    #[test]
    fn env_overrides_file_values_with_the_same_rules() {
        let file = BrokerConfig::from_toml("connections_max = 5\nfsync = \"never\"").unwrap();
        let c = file
            .apply_env(env(&[
                ("SKIFF_CONNECTIONS_MAX", "7"),
                ("SKIFF_DATA_DIR", "/var/lib/skiff"),
                ("SKIFF_LISTEN", "0.0.0.0:9401"),
                ("SKIFF_AUTO_CREATE_TOPICS", "true"),
                ("SKIFF_RETENTION_MS", "1000"),
                ("SKIFF_METRICS_LISTEN", "127.0.0.1:9464"),
                ("SKIFF_BROKER", "not-a-key"),
                ("PATH", "/bin"),
            ]))
            .unwrap();
        assert_eq!(c.connections_max, 7);
        assert_eq!(c.fsync, Durability::Never);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/skiff"));
        assert_eq!(c.listen.port(), 9401);
        assert!(c.auto_create_topics);
        assert_eq!(c.retention_ms, Some(1000));
        assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9464));
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = BrokerConfig::default()
            .apply_env(env(&[("SKIFF_CONNECTIONS_MAX", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SKIFF_CONNECTIONS_MAX"), "{err}");
        let err = BrokerConfig::default()
            .apply_env(env(&[("SKIFF_FSYNC", "sometimes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SKIFF_FSYNC"), "{err}");
        let err = BrokerConfig::default()
            .apply_env(env(&[("SKIFF_LISTNE", "127.0.0.1:1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SKIFF_LISTNE"), "{err}");
    }

    #[test]
    fn kafka_listener_settings_from_env_and_checked() {
        let c = BrokerConfig::default()
            .apply_env(env(&[
                ("SKIFF_KAFKA_LISTEN", "127.0.0.1:9092"),
                ("SKIFF_KAFKA_ADVERTISED_ADDRESS", "kafka.example:19092"),
            ]))
            .unwrap();
        assert_eq!(c.kafka_listen.map(|a| a.port()), Some(9092));
        assert_eq!(
            c.kafka_advertised_address.as_deref(),
            Some("kafka.example:19092")
        );
        c.validate().unwrap();
        for bad in ["kafka.example", "kafka.example:0", ":9092", "host:port"] {
            let c = BrokerConfig {
                kafka_advertised_address: Some(bad.to_owned()),
                ..BrokerConfig::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("kafka_advertised_address"), "{bad}: {err}");
        }
        let c = BrokerConfig {
            kafka_advertised_address: Some("[::1]:9092".to_owned()),
            ..BrokerConfig::default()
        };
        c.validate().unwrap();
        let c = BrokerConfig {
            kafka_frame_bytes_max: 10,
            ..BrokerConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("kafka_frame_bytes_max"), "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        BrokerConfig::default().validate().unwrap();
    }

    #[test]
    fn toml_overrides_defaults_and_unknown_keys_are_named() {
        let c = BrokerConfig::from_toml("listen = \"127.0.0.1:0\"\nfsync = \"never\"\n").unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.fsync, Durability::Never);
        assert_eq!(c.connections_max, 1024);

        let err = BrokerConfig::from_toml("listne = \"127.0.0.1:0\"").unwrap_err();
        assert!(err.contains("listne"), "{err}");
        let err = BrokerConfig::from_toml("fsync = \"sometimes\"").unwrap_err();
        assert!(err.contains("fsync") || err.contains("sometimes"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let c = BrokerConfig {
            connections_max: 0,
            ..BrokerConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("connections_max"), "{err}");
    }

    #[test]
    fn segment_and_retention_out_of_range_are_refused_with_key_value_and_range() {
        let small = BrokerConfig {
            segment_bytes: 1023,
            ..BrokerConfig::default()
        };
        let err = small.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid config: segment_bytes = 1023 is out of range: allowed 1024..=2147483648"
        );
        let large = BrokerConfig {
            segment_bytes: crate::log::SEGMENT_BYTES_MAX + 1,
            ..BrokerConfig::default()
        };
        let err = large.validate().unwrap_err().to_string();
        assert!(err.contains("segment_bytes = 2147483649"), "{err}");
        // TOML integers stop at i64::MAX; a struct built in code can go past.
        let age = BrokerConfig {
            retention_ms: Some(crate::log::limits::AGE_MS_MAX + 1),
            ..BrokerConfig::default()
        };
        let err = age.validate().unwrap_err().to_string();
        assert!(
            err.contains("retention_ms = 9223372036854775808")
                && err.contains("allowed 0..=9223372036854775807"),
            "{err}"
        );
        let at_bounds = BrokerConfig {
            segment_bytes: crate::log::SEGMENT_BYTES_MAX,
            ..BrokerConfig::default()
        };
        at_bounds.validate().unwrap();
    }

    #[test]
    fn tls_needs_both_cert_and_key_and_a_client_ca_needs_tls() {
        let cert_only = BrokerConfig {
            tls_cert_file: Some(PathBuf::from("cert.pem")),
            ..BrokerConfig::default()
        };
        let err = cert_only.validate().unwrap_err().to_string();
        assert!(err.contains("tls_key_file"), "{err}");
        let key_only = BrokerConfig {
            tls_key_file: Some(PathBuf::from("key.pem")),
            ..BrokerConfig::default()
        };
        let err = key_only.validate().unwrap_err().to_string();
        assert!(err.contains("tls_cert_file"), "{err}");
        let ca_only = BrokerConfig {
            tls_client_ca_file: Some(PathBuf::from("ca.pem")),
            ..BrokerConfig::default()
        };
        let err = ca_only.validate().unwrap_err().to_string();
        assert!(err.contains("tls_client_ca_file"), "{err}");
        let both = BrokerConfig {
            tls_cert_file: Some(PathBuf::from("cert.pem")),
            tls_key_file: Some(PathBuf::from("key.pem")),
            tls_client_ca_file: Some(PathBuf::from("ca.pem")),
            ..BrokerConfig::default()
        };
        both.validate().unwrap();
        let c = BrokerConfig::default()
            .apply_env(env(&[
                ("SKIFF_TLS_CERT_FILE", "/etc/skiff/cert.pem"),
                ("SKIFF_TLS_HANDSHAKE_TIMEOUT_MS", "250"),
                ("SKIFF_TLS_CA", "client-side, not a key"),
            ]))
            .unwrap();
        assert_eq!(c.tls_cert_file, Some(PathBuf::from("/etc/skiff/cert.pem")));
        assert_eq!(c.tls_handshake_timeout_ms, 250);
    }
}
