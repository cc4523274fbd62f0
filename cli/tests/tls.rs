//! The `skiff` binary over TLS: `--tls-ca` with a plain address, a
//! `skiffs://` address with `SKIFF_TLS_*` fallbacks, client certificates
//! for a broker that requires them, and clear errors when TLS is missing
//! or TLS settings contradict the address.

mod common;
#[path = "../../tests/pki/mod.rs"]
mod pki;

use common::TestBroker;
use pki::Pki;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tls_broker(pki: &Pki, client_auth: bool) -> TestBroker {
    TestBroker::start_with(|config| {
        config.tls_cert_file = Some(pki.server_cert.clone());
        config.tls_key_file = Some(pki.server_key.clone());
        config.tls_client_ca_file = client_auth.then(|| pki.ca.clone());
    })
}

#[test]
fn commands_connect_with_tls_ca() {
    let pki = Pki::generate();
    let b = tls_broker(&pki, false);
    let ca = pki.ca.to_str().expect("utf-8 path");
    let out = b.run(&["--tls-ca", ca, "topic", "create", "t"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(&["--tls-ca", ca, "produce", "t"], "one\ntwo\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b.run(&["consume", "t", "--max-messages", "2", "--tls-ca", ca], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    let out = b.run(
        &[
            "bench",
            "produce",
            "--topic",
            "bt",
            "--messages",
            "200",
            "--json",
            "--tls-ca",
            ca,
        ],
        "",
    );
    assert!(
        out.status.success(),
        "bench over TLS: {}",
        text(&out.stderr)
    );

    // Without TLS settings the CLI is told the broker speaks TLS.
    let out = b.run(&["topic", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("speaks TLS"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn skiffs_addresses_and_env_fallbacks() {
    let pki = Pki::generate();
    let b = tls_broker(&pki, false);
    let skiffs = format!("skiffs://{}", b.addr);
    let out = b
        .skiff(&["--broker", &skiffs, "topic", "create", "s"])
        .env("SKIFF_TLS_CA", &pki.ca)
        .env("SKIFF_TLS_SERVER_NAME", "localhost")
        .output()
        .expect("skiff runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = b
        .skiff(&["topic", "list"])
        .env("SKIFF_BROKER", &skiffs)
        .env("SKIFF_TLS_CA", &pki.ca)
        .output()
        .expect("skiff runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "s\t1\n");

    // skiffs:// without a CA file says one is needed.
    let out = b.run(&["--broker", &skiffs, "topic", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("CA file"),
        "{}",
        text(&out.stderr)
    );

    // An explicit skiff:// is plaintext, even with SKIFF_TLS_CA set.
    let out = b
        .skiff(&["--broker", &format!("skiff://{}", b.addr), "topic", "list"])
        .env("SKIFF_TLS_CA", &pki.ca)
        .output()
        .expect("skiff runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("skiff:// is plaintext; use skiffs:// with a CA file"),
        "{}",
        text(&out.stderr)
    );

    // A server name without a CA file would be ignored: refused instead.
    let out = b
        .skiff(&["topic", "list"])
        .env("SKIFF_TLS_SERVER_NAME", "localhost")
        .output()
        .expect("skiff runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tls_server_name"),
        "{}",
        text(&out.stderr)
    );

    // A CA that did not sign the broker's certificate.
    let other = pki.other_ca.to_str().expect("utf-8 path");
    let out = b.run(
        &["--broker", &skiffs, "--tls-ca", other, "topic", "list"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("TLS handshake with") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}

#[test]
fn client_certificates_for_mutual_tls() {
    let pki = Pki::generate();
    let b = tls_broker(&pki, true);
    let ca = pki.ca.to_str().expect("utf-8 path");
    let out = b.run(&["--tls-ca", ca, "topic", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("CertificateRequired"),
        "{}",
        text(&out.stderr)
    );
    let out = b
        .skiff(&["--tls-ca", ca, "status"])
        .env("SKIFF_TLS_CERT", &pki.client_cert)
        .env("SKIFF_TLS_KEY", &pki.client_key)
        .output()
        .expect("skiff runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // --tls-cert without --tls-key is a usage error.
    let cert = pki.client_cert.to_str().expect("utf-8 path");
    let out = b.run(&["--tls-ca", ca, "--tls-cert", cert, "status"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
