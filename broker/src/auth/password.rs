//! Password hashes: argon2id with the crate's default cost (19 MiB, 2
//! passes, 1 lane: the OWASP baseline), a fresh random salt per hash, kept
//! as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) so the
//! cost travels with the hash and can be raised later without breaking old
//! hashes.
//!
//! Invariants: a plain password is never stored or logged; [`PhcHash`]'s
//! `Debug` is redacted too (a leaked hash still invites offline guessing).
//! Verifying costs one argon2 run: call it off the async workers.

use std::fmt;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// The only algorithm accepted in a stored or configured hash.
const ALGORITHM: &str = "argon2id";

/// Least memory cost accepted, in KiB: the argon2 crate's default (19 MiB),
/// what `skiffd hash-password` uses. Less makes offline guessing cheap.
pub const MEMORY_KIB_MIN: u32 = argon2::Params::DEFAULT_M_COST;
/// Most memory cost accepted, in KiB (256 MiB): each login check takes this
/// much, `auth_checks_concurrent_max` at once.
pub const MEMORY_KIB_MAX: u32 = 256 * 1024;
/// Fewest passes accepted: the crate's default (2).
pub const PASSES_MIN: u32 = argon2::Params::DEFAULT_T_COST;
/// Most passes accepted: bounds the CPU time of one login check.
pub const PASSES_MAX: u32 = 16;
/// Most lanes accepted (at least 1).
pub const LANES_MAX: u32 = 16;

/// An argon2id PHC string, checked when built. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhcHash(String);

/// Why a password hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The text is not a PHC string.
    #[error("not a PHC password hash ({0}); make one with `skiffd hash-password`")]
    Malformed(String),
    /// The PHC string names another algorithm.
    #[error("password hash uses {0}, expected argon2id")]
    Algorithm(String),
    /// The cost parameters are too weak or too expensive.
    #[error("password hash parameters {0}")]
    Params(String),
    /// Hashing failed (bad parameters; not expected with the defaults).
    #[error("cannot hash password: {0}")]
    Hashing(String),
}

impl PhcHash {
    /// Checks that `text` is an argon2id PHC string.
    pub fn parse(text: &str) -> Result<PhcHash, HashError> {
        let parsed = PasswordHash::new(text).map_err(|e| HashError::Malformed(e.to_string()))?;
        if parsed.algorithm.as_str() != ALGORITHM {
            return Err(HashError::Algorithm(parsed.algorithm.as_str().to_owned()));
        }
        let params =
            argon2::Params::try_from(&parsed).map_err(|e| HashError::Malformed(e.to_string()))?;
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if !(MEMORY_KIB_MIN..=MEMORY_KIB_MAX).contains(&m)
            || !(PASSES_MIN..=PASSES_MAX).contains(&t)
            || !(1..=LANES_MAX).contains(&p)
        {
            return Err(HashError::Params(format!(
                "m={m},t={t},p={p} are out of range: memory m must be {MEMORY_KIB_MIN}-{MEMORY_KIB_MAX} KiB, \
                 passes t {PASSES_MIN}-{PASSES_MAX}, lanes p 1-{LANES_MAX}; make one with `skiffd hash-password`"
            )));
        }
        Ok(PhcHash(text.to_owned()))
    }

    /// The PHC string (for storing, never for logging).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PhcHash {
    type Error = HashError;
    fn try_from(text: String) -> Result<Self, HashError> {
        PhcHash::parse(&text)
    }
}

impl From<PhcHash> for String {
    fn from(hash: PhcHash) -> String {
        hash.0
    }
}

impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhcHash(<redacted>)")
    }
}

/// Hashes a password with argon2id and a fresh salt.
pub fn hash_password(password: &str) -> Result<PhcHash, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HashError::Hashing(e.to_string()))?;
    Ok(PhcHash(hash.to_string()))
}

/// Whether `password` matches `hash` (constant-time compare inside argon2).
pub fn verify_password(password: &str, hash: &PhcHash) -> bool {
    match PasswordHash::new(hash.as_str()) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends as long as a real check, for a user that does not exist, so the
/// time a refusal takes does not tell which user names exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<Option<PhcHash>> = OnceLock::new();
    if let Some(hash) = DUMMY.get_or_init(|| hash_password("skiff-dummy").ok()) {
        let _ = verify_password(password, hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("hunter2").unwrap();
        let b = hash_password("hunter2").unwrap();
        assert_ne!(a, b, "salts differ");
        assert!(a.as_str().starts_with("$argon2id$"));
        assert!(verify_password("hunter2", &a));
        assert!(!verify_password("hunter3", &a));
        assert!(!format!("{a:?}").contains("argon2id"));
    }

    #[test]
    fn parse_refuses_other_formats() {
        assert!(matches!(
            PhcHash::parse("hunter2"),
            Err(HashError::Malformed(_))
        ));
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$8m0nDRqYOL4pPq9Xb4pj0A";
        assert!(matches!(
            PhcHash::parse(argon2i),
            Err(HashError::Algorithm(_))
        ));
        let ok = hash_password("x").unwrap();
        assert_eq!(PhcHash::parse(ok.as_str()).unwrap(), ok);
    }

    #[test]
    fn parse_refuses_weak_or_huge_parameters() {
        let ok = hash_password("x").unwrap();
        let with = |params: &str| ok.as_str().replace("m=19456,t=2,p=1", params);
        assert!(ok.as_str().contains("m=19456,t=2,p=1"), "{}", ok.as_str());
        for bad in [
            "m=16,t=1,p=1",
            "m=19456,t=1,p=1",
            "m=4194304,t=2,p=1",
            "m=19456,t=1000,p=1",
            "m=19456,t=2,p=64",
        ] {
            let err = PhcHash::parse(&with(bad)).unwrap_err();
            assert!(matches!(err, HashError::Params(_)), "{bad}: {err}");
            assert!(err.to_string().contains("out of range"), "{err}");
        }
        assert!(PhcHash::parse(&with("m=65536,t=3,p=4")).is_ok());
    }
}
