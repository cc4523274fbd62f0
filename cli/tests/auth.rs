//! `skiff user`, `skiff acl` and the credential flags, through the real
//! binary against an embedded broker with a bootstrap admin.

mod common;

use std::process::Output;

use common::TestBroker;
use skiff_broker::{BootstrapUser, hash_password};

const ADMIN_PW: &str = "admin-Pw-5150";
const ALICE_PW: &str = "alice-Pw-8086";

fn secure_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.users = vec![BootstrapUser {
            name: "admin".into(),
            password_hash: hash_password(ADMIN_PW).expect("hash"),
            scram: None,
            admin: true,
        }]
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn as_admin(b: &TestBroker, args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["--user", "admin"];
    all.extend_from_slice(args);
    run_env(b, &all, stdin, &[("SKIFF_PASSWORD", ADMIN_PW)])
}

fn run_env(b: &TestBroker, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    b.run_env(args, stdin, env)
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}", text(&o));
    text(&o)
}

#[track_caller]
fn refused(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        !t.contains(ADMIN_PW) && !t.contains(ALICE_PW),
        "secret printed: {t}"
    );
    t
}

#[test]
fn users_acls_and_tokens_through_the_cli() {
    let b = secure_broker();
    let refused_anon = refused(b.run(&["topic", "list"], ""));
    assert!(
        refused_anon.contains("authentication_failed"),
        "{refused_anon}"
    );

    ok(as_admin(&b, &["topic", "create", "orders"], ""));
    ok(as_admin(&b, &["topic", "create", "payments"], ""));
    let added = ok(as_admin(
        &b,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    ));
    assert!(
        added.contains("created user alice") && !added.contains(ALICE_PW),
        "{added}"
    );
    ok(as_admin(
        &b,
        &[
            "acl",
            "grant",
            "alice",
            "--topic",
            "orders",
            "--ops",
            "produce,consume",
        ],
        "",
    ));
    let listed = ok(as_admin(&b, &["acl", "list", "alice"], ""));
    assert!(
        listed.contains("orders") && listed.contains("produce,consume"),
        "{listed}"
    );
    let users = ok(as_admin(&b, &["user", "list", "--json"], ""));
    assert!(
        users.contains("\"name\":\"alice\"") && users.contains("\"admin\":true"),
        "{users}"
    );

    let alice = [("SKIFF_USER", "alice"), ("SKIFF_PASSWORD", ALICE_PW)];
    ok(run_env(
        &b,
        &["produce", "orders", "--value", "v1"],
        "",
        &alice,
    ));
    let denied = refused(run_env(
        &b,
        &["produce", "payments", "--value", "v"],
        "",
        &alice,
    ));
    assert!(
        denied.contains("not_authorized")
            && denied.contains("user 'alice' may not produce to topic 'payments'"),
        "{denied}"
    );
    let denied = refused(run_env(
        &b,
        &["user", "add", "mallory", "--admin"],
        "",
        &[
            ("SKIFF_USER", "alice"),
            ("SKIFF_PASSWORD", ALICE_PW),
            ("SKIFF_NEW_PASSWORD", "x"),
        ],
    ));
    assert!(denied.contains("admin only"), "{denied}");
    let wrong = refused(run_env(
        &b,
        &["topic", "list"],
        "",
        &[("SKIFF_USER", "alice"), ("SKIFF_PASSWORD", "nope-7")],
    ));
    assert!(
        wrong.contains("authentication_failed") && !wrong.contains("nope-7"),
        "{wrong}"
    );

    // A token: printed once on stdout, usable with --token, then revoked.
    let created = as_admin(&b, &["user", "token", "create", "alice"], "");
    assert!(created.status.success(), "{}", text(&created));
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("skt_"), "{token}");
    let consumed = ok(b.run(
        &[
            "--token",
            &token,
            "consume",
            "orders",
            "--from",
            "earliest",
            "--max-messages",
            "1",
        ],
        "",
    ));
    assert!(consumed.contains("v1"), "{consumed}");
    let users = ok(as_admin(&b, &["user", "list", "--json"], ""));
    let id = &token_id_of(&users, "alice");
    ok(as_admin(&b, &["user", "token", "revoke", "alice", id], ""));
    refused(run_env(
        &b,
        &["topic", "list"],
        "",
        &[("SKIFF_TOKEN", &token)],
    ));

    ok(as_admin(
        &b,
        &[
            "acl", "revoke", "alice", "--topic", "orders", "--ops", "produce",
        ],
        "",
    ));
    refused(run_env(
        &b,
        &["produce", "orders", "--value", "v2"],
        "",
        &alice,
    ));
    ok(as_admin(&b, &["user", "remove", "alice"], ""));
    refused(run_env(&b, &["topic", "list"], "", &alice));
}

fn token_id_of(users_json: &str, user: &str) -> String {
    for line in users_json.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["name"] == user {
            return v["token_ids"][0].as_str().expect("a token id").to_owned();
        }
    }
    panic!("no user {user} in {users_json}");
}

#[test]
fn user_add_needs_a_password_source() {
    let b = secure_broker();
    let o = as_admin(&b, &["user", "add", "bob"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--password-stdin"), "{}", text(&o));
    let o = b.run(&["--user", "admin", "topic", "list"], "");
    assert_eq!(
        o.status.code(),
        Some(2),
        "--user needs --password: {}",
        text(&o)
    );
}

#[test]
fn granting_on_everything_is_explicit_and_empty_names_are_refused() {
    let b = secure_broker();
    ok(as_admin(
        &b,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    ));
    for empty in [
        ["--topic", ""],
        ["--topic-prefix", ""],
        ["--group-prefix", ""],
    ] {
        let mut args = vec!["acl", "grant", "alice", "--ops", "consume"];
        args.extend_from_slice(&empty);
        let o = as_admin(&b, &args, "");
        assert_eq!(o.status.code(), Some(2), "{empty:?}: {}", text(&o));
        assert!(text(&o).contains("--all-topics"), "{}", text(&o));
    }
    ok(as_admin(
        &b,
        &["acl", "grant", "alice", "--all-topics", "--ops", "consume"],
        "",
    ));
    ok(as_admin(
        &b,
        &["acl", "grant", "alice", "--all-groups", "--ops", "consume"],
        "",
    ));
    let listed = ok(as_admin(&b, &["acl", "list", "alice", "--json"], ""));
    assert_eq!(listed.matches("\"name\":\"\"").count(), 2, "{listed}");
}
