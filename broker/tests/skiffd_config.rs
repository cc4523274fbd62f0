//! `skiffd` start-up as an operator meets it: bad `SKIFF_*` variables are
//! refused naming the variable, the CLI's TLS variables without broker TLS
//! are refused naming the broker's, and `--log-format json` writes JSON lines
//! with the start-up facts.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn skiffd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiffd"));
    // Keep the caller's SKIFF_* out, so only what a test sets applies.
    for (k, _) in std::env::vars() {
        if k.starts_with("SKIFF_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn bad_and_unknown_env_variables_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("SKIFF_CONNECTIONS_MAX", "lots"),
        ("SKIFF_FSYNC", "sometimes"),
        ("SKIFF_LISTNE", "127.0.0.1:0"),
    ] {
        let out = skiffd()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env(var, value)
            .output()
            .expect("skiffd runs");
        assert!(!out.status.success(), "{var} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn json_logs_carry_the_startup_facts() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = skiffd()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SKIFF_FSYNC", "never")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skiffd runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    let mut started = None;
    for line in lines.by_ref() {
        let line = line.expect("reads");
        let v: serde_json::Value = serde_json::from_str(&line).expect("each log line is JSON");
        seen.push(line);
        if v["fields"]["message"] == "skiffd started" {
            started = Some(v);
            break;
        }
    }
    // SAFETY: kill(2) on our own child's pid has no memory-safety effect.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    // Keep reading, so shutdown logging never meets a closed pipe.
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("exits");
    let started = started.expect("a start-up line");
    let fields = &started["fields"];
    assert_eq!(fields["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(fields["fsync"], "never", "SKIFF_FSYNC applies");
    assert!(
        fields["listen"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.1:"))
    );
    assert!(
        status.success(),
        "SIGTERM is a clean exit: {status:?}\n{}",
        seen.join("\n")
    );
}

#[test]
fn missing_or_invalid_tls_files_are_startup_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        // (flags, what stderr must name)
        (
            vec![
                "--tls-cert",
                missing.to_str().unwrap(),
                "--tls-key",
                garbage.to_str().unwrap(),
            ],
            vec!["tls_cert_file", "missing.pem", "No such file"],
        ),
        (
            vec![
                "--tls-cert",
                garbage.to_str().unwrap(),
                "--tls-key",
                garbage.to_str().unwrap(),
            ],
            vec!["invalid tls_cert_file", "garbage.pem", "CERTIFICATE"],
        ),
        (
            vec!["--tls-cert", garbage.to_str().unwrap()],
            vec!["tls_key_file"],
        ),
    ];
    for (flags, expected) in cases {
        let out = skiffd()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&flags)
            .output()
            .expect("skiffd runs");
        assert!(!out.status.success(), "{flags:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
        for word in expected {
            assert!(stderr.contains(word), "{flags:?}: no {word:?} in {stderr}");
        }
        // The cause is printed once, not once per error in the chain.
        assert!(
            stderr.matches("No such file").count() <= 1,
            "{flags:?}: cause repeated in {stderr}"
        );
    }
}

#[test]
fn the_clis_tls_variables_without_broker_tls_are_refused_naming_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    for (vars, named) in [
        (
            &[("SKIFF_TLS_CERT", "cert.pem"), ("SKIFF_TLS_KEY", "key.pem")][..],
            "SKIFF_TLS_CERT_FILE",
        ),
        (&[("SKIFF_TLS_KEY", "key.pem")][..], "SKIFF_TLS_KEY_FILE"),
        (
            &[("SKIFF_TLS_CA", "ca.pem")][..],
            "SKIFF_TLS_CLIENT_CA_FILE",
        ),
    ] {
        let mut child = skiffd()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("skiffd runs");
        // Bounded: a broker that (wrongly) starts is killed, not waited on.
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waits") {
                break Some(status);
            }
            if Instant::now() > deadline {
                child.kill().expect("kills");
                child.wait().expect("reaps");
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("reads stderr");
        assert!(
            status.is_some_and(|s| !s.success()),
            "{vars:?} started a plaintext broker: {stderr}"
        );
        assert!(stderr.contains(named), "{vars:?}: no {named} in {stderr}");
        assert!(stderr.contains("TLS is off"), "{vars:?}: {stderr}");
    }
}

/// SIGHUP reloads TLS (here: says there is nothing to reload) and leaves
/// the broker running; before, its default action killed skiffd.
#[test]
fn sighup_reloads_tls_and_keeps_the_broker_running() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Kills and reaps the broker if the test fails half-way.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        skiffd()
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("skiffd runs"),
    );
    let pid = child.0.id() as i32;
    // A bound on the whole test: a broker that never logs what we wait for
    // is killed, and the reads below end.
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until && !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done.load(Ordering::Acquire) {
                // SAFETY: kill(2) on our own, still unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
    };
    let mut lines = BufReader::new(child.0.stderr.take().expect("stderr")).lines();
    let mut wait_for = |message: &str| {
        lines.by_ref().map_while(Result::ok).any(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            v["fields"]["message"] == message
        })
    };
    assert!(wait_for("skiffd started"), "started");
    // SAFETY: kill(2) on our own child's pid has no memory-safety effect.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert!(
        wait_for("SIGHUP: TLS is off, nothing to reload"),
        "SIGHUP handled"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_for("shutdown signal received"),
        "still running until SIGTERM"
    );
    // Keep reading, so shutdown logging never meets a closed pipe.
    lines.for_each(drop);
    // The watchdog stops before the child is reaped (its pid stays ours
    // until then).
    done.store(true, Ordering::Release);
    watchdog.join().unwrap();
    let status = child.0.wait().expect("exits");
    assert!(
        status.success(),
        "clean exit after SIGHUP then SIGTERM: {status:?}"
    );
}

#[test]
fn out_of_range_segment_and_retention_values_are_refused_not_clamped() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, message) in [
        (
            "SKIFF_SEGMENT_BYTES",
            "1023",
            "segment_bytes = 1023 is out of range: allowed 1024..=2147483648",
        ),
        (
            "SKIFF_SEGMENT_BYTES",
            "2147483649",
            "segment_bytes = 2147483649 is out of range: allowed 1024..=2147483648",
        ),
    ] {
        let out = skiffd()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env(var, value)
            .output()
            .expect("skiffd runs");
        assert!(!out.status.success(), "{var}={value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{var}={value}: {stderr}");
    }
}
