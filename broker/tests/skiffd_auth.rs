//! `skiffd` as a process: `skiffd hash-password` makes a hash that a
//! `[[users]]` entry accepts, and `SKIFF_ADMIN_USER`/`SKIFF_ADMIN_PASSWORD`
//! bootstrap an admin on a fresh data directory without the password ever
//! reaching the logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use skiff_broker::PhcHash;
use skiff_client::{Client, ClientConfig, ErrorCode};

const PASSWORD: &str = "boot-Pw-6502";

fn skiffd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiffd"));
    for (var, _) in std::env::vars() {
        if var.starts_with("SKIFF_") {
            cmd.env_remove(var);
        }
    }
    cmd
}

#[test]
fn hash_password_reads_stdin_and_prints_a_phc_string() {
    let mut child = skiffd()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("skiffd runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("finishes");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("utf-8");
    let hash = PhcHash::parse(hash.trim()).expect("an argon2id PHC string");
    assert!(skiff_broker::verify_password(PASSWORD, &hash));
    assert!(!hash.as_str().contains(PASSWORD));
}

/// A spawned skiffd, killed (and reaped) when dropped still running, so a
/// failed assertion does not leave the broker behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts skiffd with a bootstrap admin from the environment, debug logs
/// on; returns the child and its address.
fn start(dir: &std::path::Path) -> (Running, SocketAddr) {
    let child = skiffd()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "debug",
            "--data-dir",
        ])
        .arg(dir)
        .env("SKIFF_ADMIN_USER", "root")
        .env("SKIFF_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skiffd runs");
    let mut child = Running(child);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reads");
    let addr = line
        .trim()
        .strip_prefix("skiffd listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    (child, addr)
}

#[test]
fn admin_from_the_environment_works_and_no_secret_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    #[cfg(target_os = "linux")]
    {
        // The environment block as the process started, which `remove_var`
        // alone leaves in place.
        let environ = std::fs::read(format!("/proc/{}/environ", child.id())).expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(environ.contains("SKIFF_ADMIN_USER=root"), "{environ}");
        assert!(
            !environ.contains(PASSWORD),
            "password in /proc/<pid>/environ"
        );
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = runtime.block_on(async {
        let config = |c: ClientConfig| c.reconnect_backoff(10, 10, 1).connect_timeout_ms(5_000);
        let anon = Client::connect(config(ClientConfig::new(addr.to_string()))).await;
        let code = anon.expect_err("credentials required").code();
        assert_eq!(code, Some(ErrorCode::AuthenticationFailed));
        let wrong = Client::connect(config(
            ClientConfig::new(addr.to_string()).password("root", "guess-2600"),
        ))
        .await;
        assert!(wrong.is_err());
        let root = Client::connect(config(
            ClientConfig::new(addr.to_string()).password("root", PASSWORD),
        ))
        .await
        .expect("bootstrap admin connects");
        let security = root.security();
        security
            .put_user("svc", "svc-Pw-1234", false)
            .await
            .unwrap();
        let (_, token) = security.create_token("svc").await.unwrap();
        let svc = Client::connect(config(
            ClientConfig::new(addr.to_string()).token(token.clone()),
        ))
        .await
        .expect("token works");
        drop(svc);
        token
    });
    // SIGTERM: a clean stop flushes the logs.
    // SAFETY: kill(2) with our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut logs = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut logs)
        .expect("logs");
    let status = child.wait().expect("exits");
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains("authentication failed"),
        "failures are logged: {logs}"
    );
    for secret in [PASSWORD, "guess-2600", "svc-Pw-1234", token.expose()] {
        assert!(!logs.contains(secret), "secret in the logs: {logs}");
    }
    let file = std::fs::read_to_string(dir.path().join("security.json")).unwrap();
    assert!(!file.contains(PASSWORD) && !file.contains(token.expose()));
}
