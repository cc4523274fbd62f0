//! SCRAM (RFC 5802, RFC 7677): the stored credentials of a password and
//! the broker's side of a login exchange, for Kafka clients'
//! SCRAM-SHA-256 and SCRAM-SHA-512.
//!
//! A SCRAM credential is what the server must keep to check a SCRAM login
//! without the password: a random salt, an iteration count, `StoredKey =
//! H(HMAC(SaltedPassword, "Client Key"))` and `ServerKey =
//! HMAC(SaltedPassword, "Server Key")`, where `SaltedPassword =
//! PBKDF2-HMAC-H(password, salt, iterations)`. It cannot be derived from an
//! argon2 hash, so one is made for each mechanism whenever a password is
//! set (`PutUser`, `SKIFF_ADMIN_PASSWORD`, `skiffd hash-password --toml`).
//! It is written as Kafka writes it (`salt=<b64>,stored_key=<b64>,
//! server_key=<b64>,iterations=<n>`).
//!
//! Invariants: the keys never appear in `Debug` output; proofs are compared
//! in constant time; an unknown user runs the exchange to the end against a
//! made-up credential (same messages, same work), so a refusal does not
//! tell which user names exist; every length and count read from a client
//! is bounded ([`SCRAM_MESSAGE_BYTES_MAX`], [`ITERATIONS_MAX`]).

use std::fmt;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// PBKDF2 iterations of a new credential: 4096, RFC 7677's recommended
/// minimum and the least Kafka accepts. One login costs this many HMACs
/// (about a millisecond or two on this project's machines).
pub const ITERATIONS_DEFAULT: u32 = 4096;
/// Least iteration count accepted in a configured credential (Kafka's floor).
pub const ITERATIONS_MIN: u32 = 4096;
/// Most iteration count accepted in a configured credential (Kafka's
/// ceiling): bounds the CPU time of one login.
pub const ITERATIONS_MAX: u32 = 16_384;
/// Bytes of a new credential's salt.
pub const SALT_BYTES: usize = 16;
/// Longest salt accepted in a configured credential, in bytes.
pub const SALT_BYTES_MAX: usize = 128;
/// Random bytes of the broker's part of a login's nonce.
const NONCE_RANDOM_BYTES: usize = 18;
/// Longest SCRAM message accepted from a client, in bytes: its parts are a
/// user name, a nonce and a proof, each far shorter.
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 1024;

/// The SCRAM mechanisms served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramMechanism {
    /// Both, in the order they are listed to clients.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism a SASL name stands for, if served.
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC is defined for keys of every length: this cannot fail.
            #[allow(clippy::expect_used)]
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes a key of any length");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What the broker keeps of one password for one mechanism. `Debug` is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a configured or stored SCRAM credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not `salt=..,stored_key=..,server_key=..,iterations=..`.
    #[error(
        "not a SCRAM credential ({0}); expected salt=<base64>,stored_key=<base64>,server_key=<base64>,iterations=<n> as `skiffd hash-password --toml` prints"
    )]
    Malformed(String),
    /// A value is out of its range.
    #[error("SCRAM credential {0}")]
    OutOfRange(String),
}

impl ScramCredential {
    /// A new credential for `password`: a fresh random salt and
    /// [`ITERATIONS_DEFAULT`] iterations.
    pub fn derive(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        let mut salt = vec![0u8; SALT_BYTES];
        OsRng.fill_bytes(&mut salt);
        ScramCredential::derive_with(mechanism, password, salt, ITERATIONS_DEFAULT)
    }

    fn derive_with(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
        ScramCredential {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, &[b"Server Key"]),
            salt,
            iterations,
        }
    }

    /// Parses Kafka's form, checking every part for `mechanism`.
    pub fn parse(
        mechanism: ScramMechanism,
        text: &str,
    ) -> Result<ScramCredential, CredentialError> {
        let mut salt = None;
        let mut stored_key = None;
        let mut server_key = None;
        let mut iterations = None;
        for part in text.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| CredentialError::Malformed(format!("{part:?} has no '='")))?;
            let decode = || {
                B64.decode(value)
                    .map_err(|e| CredentialError::Malformed(format!("{key}: {e}")))
            };
            match key {
                "salt" => salt = Some(decode()?),
                "stored_key" => stored_key = Some(decode()?),
                "server_key" => server_key = Some(decode()?),
                "iterations" => {
                    iterations = Some(value.parse::<u32>().map_err(|_| {
                        CredentialError::Malformed(format!("iterations {value:?} is not a number"))
                    })?)
                }
                other => {
                    return Err(CredentialError::Malformed(format!(
                        "unknown part {other:?}"
                    )));
                }
            }
        }
        let missing = |name: &str| CredentialError::Malformed(format!("{name} is missing"));
        let credential = ScramCredential {
            salt: salt.ok_or_else(|| missing("salt"))?,
            iterations: iterations.ok_or_else(|| missing("iterations"))?,
            stored_key: stored_key.ok_or_else(|| missing("stored_key"))?,
            server_key: server_key.ok_or_else(|| missing("server_key"))?,
        };
        let key_bytes = mechanism.hash(b"").len();
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&credential.iterations) {
            return Err(CredentialError::OutOfRange(format!(
                "iterations {} must be {ITERATIONS_MIN}-{ITERATIONS_MAX}",
                credential.iterations
            )));
        }
        if credential.salt.is_empty() || credential.salt.len() > SALT_BYTES_MAX {
            return Err(CredentialError::OutOfRange(format!(
                "salt of {} bytes must be 1-{SALT_BYTES_MAX} bytes",
                credential.salt.len()
            )));
        }
        if credential.stored_key.len() != key_bytes || credential.server_key.len() != key_bytes {
            return Err(CredentialError::OutOfRange(format!(
                "keys must be {key_bytes} bytes for {}",
                mechanism.name()
            )));
        }
        Ok(credential)
    }

    /// Kafka's form (for storing, never for logging).
    pub fn to_text(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key),
            self.iterations
        )
    }
}

/// A password's credentials for every SCRAM mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSecrets {
    /// For SCRAM-SHA-256.
    pub sha256: ScramCredential,
    /// For SCRAM-SHA-512.
    pub sha512: ScramCredential,
}

impl ScramSecrets {
    /// Fresh credentials of `password` for both mechanisms.
    pub fn derive(password: &str) -> ScramSecrets {
        ScramSecrets {
            sha256: ScramCredential::derive(ScramMechanism::Sha256, password),
            sha512: ScramCredential::derive(ScramMechanism::Sha512, password),
        }
    }

    /// Parses the stored or configured pair (`scram_sha256`,
    /// `scram_sha512`): both or neither; an error names the bad key.
    pub fn from_texts(
        sha256: Option<&str>,
        sha512: Option<&str>,
    ) -> Result<Option<ScramSecrets>, String> {
        match (sha256, sha512) {
            (Some(a), Some(b)) => Ok(Some(ScramSecrets {
                sha256: ScramCredential::parse(ScramMechanism::Sha256, a)
                    .map_err(|e| format!("scram_sha256: {e}"))?,
                sha512: ScramCredential::parse(ScramMechanism::Sha512, b)
                    .map_err(|e| format!("scram_sha512: {e}"))?,
            })),
            (None, None) => Ok(None),
            _ => Err("scram_sha256 and scram_sha512 go together (`skiffd hash-password --toml` prints both)".into()),
        }
    }

    /// The pair's text forms, for storing.
    pub fn to_texts(secrets: Option<&ScramSecrets>) -> (Option<String>, Option<String>) {
        match secrets {
            Some(s) => (Some(s.sha256.to_text()), Some(s.sha512.to_text())),
            None => (None, None),
        }
    }

    /// The credential for `mechanism`.
    pub fn get(&self, mechanism: ScramMechanism) -> &ScramCredential {
        match mechanism {
            ScramMechanism::Sha256 => &self.sha256,
            ScramMechanism::Sha512 => &self.sha512,
        }
    }
}

/// Why a SCRAM exchange failed. The text goes back to the client, so it
/// never tells whether the user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// The client's message is not valid SCRAM.
    #[error("invalid SCRAM message: {0}")]
    Malformed(String),
    /// Something valid SCRAM allows that the broker does not serve.
    #[error("unsupported in SCRAM: {0}")]
    Unsupported(&'static str),
    /// Unknown user or wrong password (one message for both).
    #[error("authentication failed: unknown user or wrong password")]
    Refused,
}

/// The broker's state between the client's first and final messages.
#[derive(Debug)]
pub struct ScramExchange {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    /// Whether the user exists (a made-up credential otherwise).
    known: bool,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramExchange {
    /// Reads the client's first message and answers the server's first.
    /// `lookup` gives the user's stored credential for `mechanism` (`None`:
    /// no such user, or no SCRAM credential: the exchange goes on against a
    /// made-up one and fails at the proof).
    pub fn start(
        mechanism: ScramMechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramExchange, String), ScramError> {
        let text = message_text(client_first)?;
        // gs2-header: channel-binding flag, optional authzid, then the bare
        // message.
        let (cbind, rest) = text
            .split_once(',')
            .ok_or_else(|| ScramError::Malformed("no GS2 header".into()))?;
        match cbind {
            "n" | "y" => {}
            c if c.starts_with("p=") => {
                return Err(ScramError::Unsupported("channel binding"));
            }
            other => {
                return Err(ScramError::Malformed(format!(
                    "channel binding flag {other:?}"
                )));
            }
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| ScramError::Malformed("no client-first-message-bare".into()))?;
        let mut attrs = bare.split(',');
        let user = match attrs.next() {
            Some(n) if n.starts_with("n=") => decode_sasl_name(&n[2..])?,
            Some(m) if m.starts_with("m=") => {
                return Err(ScramError::Unsupported("mandatory extensions"));
            }
            _ => return Err(ScramError::Malformed("no user name (n=)".into())),
        };
        if let Some(a) = authzid.strip_prefix("a=") {
            if decode_sasl_name(a)? != user {
                return Err(ScramError::Unsupported(
                    "an authorization id other than the user",
                ));
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed(format!("authzid {authzid:?}")));
        }
        let client_nonce = match attrs.next() {
            Some(r) if r.starts_with("r=") && r.len() > 2 => &r[2..],
            _ => return Err(ScramError::Malformed("no client nonce (r=)".into())),
        };
        // Extensions after the nonce: Kafka's `tokenauth=true` asks for a
        // delegation-token login, which skiff does not have.
        for ext in attrs {
            if ext == "tokenauth=true" {
                return Err(ScramError::Unsupported("delegation tokens (tokenauth)"));
            }
        }
        let (credential, known) = match lookup(&user) {
            Some(c) => (c, true),
            None => (made_up_credential(mechanism, &user), false),
        };
        let mut random = [0u8; NONCE_RANDOM_BYTES];
        OsRng.fill_bytes(&mut random);
        let nonce = format!("{client_nonce}{}", B64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = ScramExchange {
            mechanism,
            user,
            credential,
            known,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// The user name the client gave.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client's final message (its proof); answers the server's
    /// final message (the server signature) when the password was right.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text = message_text(client_final)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| ScramError::Malformed("no proof (p=)".into()))?;
        let mut attrs = without_proof.split(',');
        match attrs.next() {
            // "n,," or "y,," base64: biws / eSws, the GS2 header with no
            // authzid; with one, its base64 differs, so only the form
            // matters here.
            Some(c) if c.starts_with("c=") => {}
            _ => return Err(ScramError::Malformed("no channel binding (c=)".into())),
        }
        // The nonce must end with the one the server sent (which starts
        // with the client's): librdkafka sends the client's nonce again
        // before it, and Kafka accepts that (`endsWith`), so skiff does
        // too. The proof covers the message as sent, and the server's
        // fresh random part is in it either way.
        match attrs.next() {
            Some(r)
                if r.strip_prefix("r=")
                    .is_some_and(|n| n.ends_with(&self.nonce)) => {}
            _ => return Err(ScramError::Malformed("the nonce does not match".into())),
        }
        let proof = B64
            .decode(proof)
            .map_err(|e| ScramError::Malformed(format!("proof: {e}")))?;
        let m = self.mechanism;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = m.hmac(&self.credential.stored_key, &[auth_message.as_bytes()]);
        if proof.len() != client_signature.len() {
            return Err(ScramError::Refused);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches: bool = m
            .hash(&client_key)
            .ct_eq(&self.credential.stored_key)
            .into();
        if !(matches && self.known) {
            return Err(ScramError::Refused);
        }
        let server_signature = m.hmac(&self.credential.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// A client message as text, bounded.
fn message_text(bytes: &[u8]) -> Result<&str, ScramError> {
    if bytes.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(ScramError::Malformed(format!(
            "message of {} bytes is over {SCRAM_MESSAGE_BYTES_MAX}",
            bytes.len()
        )));
    }
    std::str::from_utf8(bytes).map_err(|_| ScramError::Malformed("not UTF-8".into()))
}

/// A SCRAM `saslname`: `=2C` is a comma, `=3D` an equals sign, any other
/// `=` is invalid.
fn decode_sasl_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name".into())),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name".into()));
    }
    Ok(out)
}

/// A credential for a user that does not exist: the salt is the same for
/// the same name within this process (a client probing twice sees no
/// difference), the keys are random, so no password matches.
fn made_up_credential(mechanism: ScramMechanism, user: &str) -> ScramCredential {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        OsRng.fill_bytes(&mut s);
        s
    });
    let salt = mechanism.hmac(secret, &[user.as_bytes()])[..SALT_BYTES].to_vec();
    let mut key = vec![0u8; mechanism.hash(b"").len()];
    OsRng.fill_bytes(&mut key);
    ScramCredential {
        salt,
        iterations: ITERATIONS_DEFAULT,
        stored_key: key.clone(),
        server_key: key,
    }
}

/// The client side of an exchange, as RFC 5802 describes it: the
/// client-final-message answering `server_first` for `client_first_bare`,
/// with `nonce_prefix` before the server's nonce (librdkafka sends its own
/// nonce there again; others send ""). `None` if `server_first` is not
/// `r=...,s=...,i=...`. A test seam (the `testing` feature): the broker
/// itself never signs in.
#[cfg(any(test, feature = "testing"))]
pub fn client_final_message(
    m: ScramMechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    nonce_prefix: &str,
) -> Option<String> {
    let mut attrs = server_first.split(',');
    let nonce = format!("{nonce_prefix}{}", attrs.next()?.strip_prefix("r=")?);
    let salt = B64.decode(attrs.next()?.strip_prefix("s=")?).ok()?;
    let iterations: u32 = attrs.next()?.strip_prefix("i=")?.parse().ok()?;
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = m.hmac(&salted, &[b"Client Key"]);
    let stored_key = m.hash(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = m.hmac(&stored_key, &[auth.as_bytes()]);
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    Some(format!("{without_proof},p={}", B64.encode(proof)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The client side of an exchange (see [`client_final_message`]).
    pub(crate) fn client_final(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        client_final_with_nonce_prefix(m, password, client_first_bare, server_first, "")
    }

    /// [`client_final`] with `prefix` before the server's nonce (librdkafka
    /// sends its own nonce there again).
    pub(crate) fn client_final_with_nonce_prefix(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        prefix: &str,
    ) -> String {
        client_final_message(m, password, client_first_bare, server_first, prefix)
            .expect("a well-formed server-first-message")
    }

    #[test]
    fn rfc7677_vector_gives_the_published_keys() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = ScramCredential::derive_with(ScramMechanism::Sha256, "pencil", salt, 4096);
        let m = ScramMechanism::Sha256;
        let first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let server_signature = m.hmac(&c.server_key, &[auth.as_bytes()]);
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_signature = m.hmac(&c.stored_key, &[auth.as_bytes()]);
        let salted = m.salted_password(b"pencil", &c.salt, 4096);
        let client_key = m.hmac(&salted, &[b"Client Key"]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
    }

    #[test]
    fn exchanges_succeed_with_the_password_and_fail_without() {
        for m in ScramMechanism::ALL {
            let stored = ScramCredential::derive(m, "s3cret");
            let first = "n,,n=alice,r=abcdef";
            let run = |password: &str| {
                let (ex, server_first) = ScramExchange::start(m, first.as_bytes(), |u| {
                    (u == "alice").then(|| stored.clone())
                })
                .unwrap();
                assert_eq!(ex.user(), "alice");
                let fin = client_final(m, password, "n=alice,r=abcdef", &server_first);
                ex.finish(fin.as_bytes())
            };
            assert!(run("s3cret").unwrap().starts_with("v="));
            assert_eq!(run("wrong"), Err(ScramError::Refused));
        }
    }

    /// librdkafka's client-final nonce is its own nonce, then the server's
    /// (which starts with the client's): accepted, as Kafka accepts it; a
    /// nonce that does not end with the server's is not.
    #[test]
    fn a_nonce_ending_with_the_servers_is_accepted_as_kafka_does() {
        let m = ScramMechanism::Sha256;
        let c = ScramCredential::derive(m, "pw");
        let start =
            || ScramExchange::start(m, b"n,,n=alice,r=cnonce", |_| Some(c.clone())).unwrap();
        let (ex, server_first) = start();
        let fin =
            client_final_with_nonce_prefix(m, "pw", "n=alice,r=cnonce", &server_first, "cnonce");
        assert!(ex.finish(fin.as_bytes()).unwrap().starts_with("v="));
        let (ex, server_first) = start();
        let fin = client_final(m, "pw", "n=alice,r=cnonce", &server_first);
        let cut = fin.replacen(",p=", "x,p=", 1);
        assert!(matches!(
            ex.finish(cut.as_bytes()),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_users_are_refused_after_a_normal_looking_exchange() {
        let m = ScramMechanism::Sha512;
        let first = "n,,n=mallory,r=xyz";
        let (ex, server_first) = ScramExchange::start(m, first.as_bytes(), |_| None).unwrap();
        let (_, again) = ScramExchange::start(m, first.as_bytes(), |_| None).unwrap();
        let salt_of = |s: &str| s.split(',').nth(1).unwrap().to_owned();
        assert_eq!(salt_of(&server_first), salt_of(&again), "stable fake salt");
        let fin = client_final(m, "anything", "n=mallory,r=xyz", &server_first);
        assert_eq!(ex.finish(fin.as_bytes()), Err(ScramError::Refused));
    }

    #[test]
    fn bad_messages_get_clear_errors() {
        let m = ScramMechanism::Sha256;
        let none = |_: &str| None;
        for (bad, expect) in [
            ("", "GS2"),
            ("p=tls-unique,,n=a,r=b", "channel binding"),
            ("x,,n=a,r=b", "flag"),
            ("n,,r=b", "user name"),
            ("n,,n=a", "nonce"),
            ("n,,n=a=ZZ,r=b", "escape"),
            ("n,a=other,n=a,r=b", "authorization id"),
            ("n,,n=a,r=b,tokenauth=true", "delegation"),
        ] {
            let err = ScramExchange::start(m, bad.as_bytes(), none).unwrap_err();
            assert!(err.to_string().contains(expect), "{bad:?}: {err}");
        }
        let huge = vec![b'n'; SCRAM_MESSAGE_BYTES_MAX + 1];
        assert!(ScramExchange::start(m, &huge, none).is_err());
        let (ex, _) = ScramExchange::start(m, b"n,,n=a=2Cb,r=b", none).unwrap();
        assert_eq!(ex.user(), "a,b");
        assert!(matches!(
            ex.finish(b"c=biws,r=wrong,p=AAAA"),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn credentials_round_trip_kafkas_text_form_and_refuse_bad_ones() {
        let c = ScramCredential::derive(ScramMechanism::Sha512, "pw");
        let text = c.to_text();
        assert_eq!(
            ScramCredential::parse(ScramMechanism::Sha512, &text),
            Ok(c.clone())
        );
        assert!(!format!("{c:?}").contains("salt="));
        // SHA-512 keys are too long for SHA-256.
        assert!(matches!(
            ScramCredential::parse(ScramMechanism::Sha256, &text),
            Err(CredentialError::OutOfRange(_))
        ));
        let weak = text.replace("iterations=4096", "iterations=10");
        assert!(matches!(
            ScramCredential::parse(ScramMechanism::Sha512, &weak),
            Err(CredentialError::OutOfRange(_))
        ));
        for bad in ["", "salt=!!", "salt=AAAA", "color=blue"] {
            assert!(
                ScramCredential::parse(ScramMechanism::Sha256, bad).is_err(),
                "{bad}"
            );
        }
    }
}
