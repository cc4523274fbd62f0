//! `skiffd`: the broker binary. Parses flags, sets up logging (human or
//! JSON), loads the config (file, then `SKIFF_*` environment, then flags),
//! starts [`skiff_broker::Broker`] and shuts it down cleanly on SIGINT or
//! SIGTERM. `skiffd hash-password` turns a password on stdin into the
//! argon2id PHC string a `[[users]]` entry takes.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use skiff_broker::Durability;
use skiff_broker::{BootstrapUser, hash_password};
use skiff_broker::{Broker, BrokerConfig};

/// With [`ADMIN_PASSWORD_ENV`], creates (or updates) this admin at start.
const ADMIN_USER_ENV: &str = "SKIFF_ADMIN_USER";
/// The bootstrap admin's password (hashed at start, never stored plain).
const ADMIN_PASSWORD_ENV: &str = "SKIFF_ADMIN_PASSWORD";

/// skiff broker: durable topics over one framed TCP protocol.
#[derive(Debug, Parser)]
#[command(
    name = "skiffd",
    version,
    after_help = "Examples:\n  skiffd                                   # ./skiff-data, 127.0.0.1:9400, fsync always\n  skiffd --data-dir /var/lib/skiff --listen 0.0.0.0:9400\n  skiffd --listen 127.0.0.1:0 --fsync interval:100\n  skiffd --config /etc/skiff/skiff.toml --metrics-listen 127.0.0.1:9464\n  skiffd --kafka-listen 127.0.0.1:9092          # Kafka clients too (kcat -b 127.0.0.1:9092)\n  skiffd --tls-cert broker.pem --tls-key broker.key   # TLS only; clients use skiffs://\n  SKIFF_CONNECTIONS_MAX=4096 skiffd --log-format json\n\nPrecedence: flags > SKIFF_<KEY> environment variables > config file > defaults.\nEvery key and its default: skiff.toml in the source tree.\n\nAuthentication: any user turns it on. Bootstrap an admin with\n  SKIFF_ADMIN_USER=admin SKIFF_ADMIN_PASSWORD=... skiffd\nor a [[users]] entry whose password_hash comes from\n  skiffd hash-password < password.txt\n\nSignals: SIGTERM or SIGINT shut down cleanly; SIGHUP reloads the TLS files."
)]
struct Args {
    /// A tool instead of the broker.
    #[command(subcommand)]
    command: Option<Tool>,
    /// TOML config file; the environment and flags override its values.
    #[arg(long, value_name = "FILE", env = "SKIFF_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./skiff-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address; port 0 picks a free port [default: 127.0.0.1:9400].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Durability: always (fdatasync before ack), interval:MS, or never
    /// [default: always].
    #[arg(long, value_name = "MODE")]
    fsync: Option<Durability>,
    /// Prometheus metrics endpoint address (GET /metrics) [default: off].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Kafka-protocol listener address; port 0 picks a free port
    /// [default: off, config key kafka_listen].
    #[arg(long, value_name = "ADDR")]
    kafka_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key the listener speaks only
    /// TLS [default: off, config key tls_cert_file].
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM) [config key tls_key_file].
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates: clients must
    /// present one (mutual TLS) [config key tls_client_ca_file].
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Log filter (e.g. info, debug, skiff_broker=trace) [default: RUST_LOG,
    /// else info].
    #[arg(long, value_name = "LEVEL", env = "SKIFF_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log line format.
    #[arg(
        long,
        value_name = "FORMAT",
        env = "SKIFF_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,
}

/// Tools run instead of the broker.
#[derive(Debug, clap::Subcommand)]
enum Tool {
    /// Read a password from stdin (one line), print its argon2id PHC hash
    /// for a `[[users]]` entry's `password_hash` (with --toml: that line and
    /// the SCRAM credentials Kafka clients' SCRAM logins need).
    #[command(
        after_help = "Examples:\n  skiffd hash-password < password.txt\n  printf '%s' \"$PW\" | skiffd hash-password\n  printf '%s' \"$PW\" | skiffd hash-password --toml   # password_hash, scram_sha256, scram_sha512 lines"
    )]
    HashPassword {
        /// Print `password_hash`, `scram_sha256` and `scram_sha512` lines
        /// for a `[[users]]` entry instead of the bare hash.
        #[arg(long)]
        toml: bool,
    },
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event, for log collectors.
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = args
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Some(Tool::HashPassword { toml }) = args.command {
        return match hash_password_from_stdin(toml) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("skiffd: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiffd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    let mut config = config.apply_env(std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(fsync) = args.fsync {
        config.fsync = fsync;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if let Some(addr) = args.kafka_listen {
        config.kafka_listen = Some(addr);
    }
    if let Some(file) = args.tls_cert {
        config.tls_cert_file = Some(file);
    }
    if let Some(file) = args.tls_key {
        config.tls_key_file = Some(file);
    }
    if let Some(file) = args.tls_client_ca {
        config.tls_client_ca_file = Some(file);
    }
    add_admin_from_env(&mut config)?;
    refuse_client_tls_env(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skiffd")
        .build()?;
    runtime.block_on(async move {
        // Handlers go in before the broker starts: a signal that arrives
        // while it starts still means a clean shutdown, not a kill.
        let signals = Signals::install()?;
        let broker = Broker::start(config).await?;
        // Scripts and tests read this line to find the port.
        println!("skiffd listening on {}", broker.local_addr());
        if let Some(addr) = broker.kafka_addr() {
            println!("skiffd kafka listening on {addr}");
        }
        if let Some(addr) = broker.metrics_addr() {
            println!("skiffd metrics listening on {addr}");
        }
        signals
            .wait(|| match broker.reload_tls() {
                Ok(true) => {}
                Ok(false) => tracing::info!("SIGHUP: TLS is off, nothing to reload"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the certificate in use"),
            })
            .await;
        tracing::info!("shutdown signal received");
        broker.shutdown().await?;
        Ok(())
    })
}

/// `skiffd hash-password`: the first line of stdin, hashed (with `toml`,
/// as the credential lines of a `[[users]]` entry).
fn hash_password_from_stdin(toml: bool) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "no password on stdin");
    if !toml {
        println!("{}", hash_password(password)?.as_str());
        return Ok(());
    }
    let user = BootstrapUser::from_password("-", password, false)?;
    println!("password_hash = \"{}\"", user.password_hash.as_str());
    if let Some(s) = &user.scram {
        println!("scram_sha256 = \"{}\"", s.sha256.to_text());
        println!("scram_sha512 = \"{}\"", s.sha512.to_text());
    }
    Ok(())
}

/// `SKIFF_ADMIN_USER` + `SKIFF_ADMIN_PASSWORD`: one more bootstrap admin
/// (replacing a `[[users]]` entry of the same name). Removes the password
/// variable from the environment once read. Call before any thread starts.
fn add_admin_from_env(config: &mut BrokerConfig) -> anyhow::Result<()> {
    let user = std::env::var(ADMIN_USER_ENV).ok();
    let password = std::env::var(ADMIN_PASSWORD_ENV).ok();
    scrub_env_value(ADMIN_PASSWORD_ENV);
    // SAFETY: `remove_var` is unsafe because another thread may read the
    // environment meanwhile. This runs on the main thread before the tokio
    // runtime is built: nothing spawned a thread yet (clap, the tracing
    // subscriber (no background writer) and config loading do not).
    // Removing it keeps the plain password out of every child process's
    // environment and of later reads of ours.
    unsafe { std::env::remove_var(ADMIN_PASSWORD_ENV) };
    let (name, password) = match (user, password) {
        (Some(u), Some(p)) => (u, p),
        (None, None) => return Ok(()),
        _ => anyhow::bail!("{ADMIN_USER_ENV} and {ADMIN_PASSWORD_ENV} must be set together"),
    };
    anyhow::ensure!(!password.is_empty(), "{ADMIN_PASSWORD_ENV} is empty");
    let admin = BootstrapUser::from_password(&name, &password, true)?;
    config.users.retain(|u| u.name != name);
    config.users.push(admin);
    Ok(())
}

/// Overwrites the value of environment variable `name` with zero bytes
/// where the process's environment block holds it, so it no longer shows in
/// `/proc/<pid>/environ` (which reads that block, whatever `remove_var`
/// does to the `environ` array; a run of NUL bytes as long as the value is
/// left). Linux; elsewhere a no-op. Call before any thread starts, before
/// `remove_var`.
#[cfg(target_os = "linux")]
fn scrub_env_value(name: &str) {
    unsafe extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: single-threaded here (see `add_admin_from_env`), so nothing
    // reads or changes the environment meanwhile. `environ` is the C
    // library's NULL-terminated array of NUL-terminated, writable strings
    // (the kernel's environment block, or copies made by `setenv`). Only
    // the bytes before the string's own NUL are overwritten, so every
    // string stays NUL-terminated within its bytes.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let var = std::ffi::CStr::from_ptr(*entry);
            if var.to_bytes().starts_with(prefix.as_bytes()) {
                let value = (*entry).add(prefix.len());
                std::ptr::write_bytes(value, 0, var.to_bytes().len() - prefix.len());
            }
            entry = entry.add(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn scrub_env_value(_name: &str) {}

/// The `skiff` CLI's TLS variables, each with the broker variable an
/// operator most likely meant.
const CLIENT_TLS_ENV: &[(&str, &str)] = &[
    ("SKIFF_TLS_CERT", "SKIFF_TLS_CERT_FILE"),
    ("SKIFF_TLS_KEY", "SKIFF_TLS_KEY_FILE"),
    ("SKIFF_TLS_CA", "SKIFF_TLS_CLIENT_CA_FILE"),
];

/// Fails closed: with TLS off, a set `SKIFF_TLS_CERT`, `SKIFF_TLS_KEY` or
/// `SKIFF_TLS_CA` (the CLI's client settings, which skiffd does not read)
/// most likely means an operator meant the broker's `SKIFF_TLS_*_FILE`
/// variables, and would otherwise get a plaintext broker without a word.
fn refuse_client_tls_env(config: &BrokerConfig) -> anyhow::Result<()> {
    if config.tls_cert_file.is_some() {
        return Ok(());
    }
    for (var, meant) in CLIENT_TLS_ENV {
        if std::env::var_os(var).is_some() {
            anyhow::bail!(
                "{var} is set, but TLS is off and skiffd does not read {var} (it is the skiff \
                 CLI's); the broker's variable is {meant} (a TLS broker needs \
                 SKIFF_TLS_CERT_FILE and SKIFF_TLS_KEY_FILE, or --tls-cert and --tls-key); \
                 unset {var} to run a plaintext broker"
            );
        }
    }
    Ok(())
}

/// SIGINT and SIGTERM (shut down) and SIGHUP (reload TLS files),
/// registered up front.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, running `on_hup` at each SIGHUP
    /// meanwhile.
    async fn wait(mut self, on_hup: impl Fn()) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                Some(()) = self.hup.recv() => on_hup(),
            }
        }
    }
}
