//! API tokens: 256 random bits from the OS, shown once as
//! `skt_<64 hex digits>`. The broker stores only the token's SHA-256 digest.
//!
//! Why a fast hash is enough here, unlike passwords: a password is chosen by
//! a person and guessable, so its hash must make each guess expensive
//! (argon2). A token is uniformly random with 256 bits of entropy, so even a
//! leaked digest cannot be reversed by guessing, and SHA-256's preimage
//! resistance is all that is needed; checking a token then costs
//! microseconds, not an argon2 run. For the same reason looking the digest up
//! in a hash map leaks nothing useful through timing.

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// Prefix of every token, so a leaked one is easy to recognise and grep for.
pub const TOKEN_PREFIX: &str = "skt_";
/// Random bytes in a token: 256 bits.
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// Hex digits of the digest that name a token (its id, safe to show).
pub const TOKEN_ID_HEX_DIGITS: usize = 12;

/// A new token: the secret to hand out once, and what to store.
#[derive(Clone)]
pub struct NewToken {
    /// The token itself.
    pub token: String,
    /// Its SHA-256 digest, hex.
    pub digest: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &token_id(&self.digest))
            .finish_non_exhaustive()
    }
}

/// Makes a token from the OS's random source.
pub fn generate() -> NewToken {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    OsRng.fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let digest = digest(&token);
    NewToken { token, digest }
}

/// Whether `s` has a token's form: the prefix and 64 lowercase hex digits.
/// (A password of that form is taken for a token by Kafka's SASL PLAIN.)
pub fn has_token_form(s: &str) -> bool {
    s.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 2 * TOKEN_RANDOM_BYTES
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The token's SHA-256 digest, hex (what the store keeps).
pub fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The id of the token with this digest: its first hex digits.
pub fn token_id(digest: &str) -> &str {
    digest.get(..TOKEN_ID_HEX_DIGITS).unwrap_or(digest)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let a = generate();
        let b = generate();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(TOKEN_PREFIX));
        assert_eq!(a.token.len(), TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES);
        assert_eq!(digest(&a.token), a.digest);
        assert!(has_token_form(&a.token));
        assert!(!has_token_form("skt_abc"));
        assert!(!has_token_form(&a.token.to_uppercase()));
        assert!(!has_token_form(&a.token[TOKEN_PREFIX.len()..]));
        assert_eq!(token_id(&a.digest).len(), TOKEN_ID_HEX_DIGITS);
        assert!(!format!("{a:?}").contains(&a.token));
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
