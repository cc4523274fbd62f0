//! Authentication and authorization.
//!
//! - [`password`]: argon2id hashes of user passwords (PHC strings).
//! - [`token`]: API tokens, stored as SHA-256 digests.
//! - [`acl`]: a user's grants and the rule that evaluates them.
//! - [`store`]: `<data_dir>/security.json`, replaced atomically.
//!
//! [`Security`] holds the state behind an `RwLock`: checks take a read lock
//! and look the user up by name each time, so a removed user, a revoked
//! grant or a lost admin flag applies to open connections at their next
//! request. Changes are serialized by a separate mutex, written to disk
//! first, and only then swapped in, so readers never wait for an fsync.
//!
//! Authentication is on exactly when at least one user exists. With no user,
//! every connection is anonymous and allowed everything (and the check is
//! one atomic load); the first user, from the config (`[[users]]`),
//! `SKIFF_ADMIN_USER`/`SKIFF_ADMIN_PASSWORD` or a `PutUser` request, turns it
//! on for every new connection, and the last admin cannot be removed.

pub mod acl;
pub mod password;
pub mod store;
pub mod token;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use skiff_protocol::messages::{
    AclEntry, Credentials, Operation, Operations, ResourceKind, ResourcePattern, UserListing,
};

pub use password::{HashError, PhcHash, hash_password};
pub use store::StoreError;

use store::{State, User};

/// Longest user name, in bytes: long enough for an email address.
pub const USER_NAME_BYTES_MAX: usize = 128;

/// A user created or updated at every start, from the config file
/// (`[[users]]`) or `SKIFF_ADMIN_USER`/`SKIFF_ADMIN_PASSWORD`. Its password
/// hash and admin flag replace the stored ones; its grants and tokens are
/// kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapUser {
    /// The user name.
    pub name: String,
    /// An argon2id PHC string (`skiffd hash-password` makes one).
    pub password_hash: PhcHash,
    /// Whether the user is an admin.
    #[serde(default)]
    pub admin: bool,
}

/// Why a security operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The security file could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Credentials were missing, unknown or wrong. The message is the same
    /// in every case, so a client cannot probe for user names.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(&'static str),
    /// The named user does not exist.
    #[error("user '{0}' does not exist")]
    UnknownUser(String),
    /// A request was refused (bad name, last admin, unknown token).
    #[error("{0}")]
    Invalid(String),
    /// A password could not be hashed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// The broker's users, tokens and grants.
#[derive(Debug)]
pub struct Security {
    data_dir: PathBuf,
    state: RwLock<State>,
    /// Serializes changes (load, change, save, swap).
    writer: Mutex<()>,
    /// Whether any user exists: the hot-path check when auth is off.
    enabled: AtomicBool,
}

/// Checks a user name: 1 to [`USER_NAME_BYTES_MAX`] bytes of
/// `[A-Za-z0-9._@-]`.
pub fn validate_user_name(name: &str) -> Result<(), SecurityError> {
    let ok = !name.is_empty()
        && name.len() <= USER_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SecurityError::Invalid(format!(
            "invalid user name {name:?}: use 1-{USER_NAME_BYTES_MAX} characters of [A-Za-z0-9._@-]"
        )))
    }
}

impl Security {
    /// Loads `<data_dir>/security.json` and applies the bootstrap users
    /// (saving only if they changed something). Blocking.
    pub fn open(data_dir: &Path, bootstrap: &[BootstrapUser]) -> Result<Security, SecurityError> {
        let mut state = store::load(data_dir)?;
        let mut changed = false;
        for b in bootstrap {
            validate_user_name(&b.name)?;
            let user = state.users.entry(b.name.clone()).or_default();
            if user.password_hash.as_ref() != Some(&b.password_hash) || user.admin != b.admin {
                user.password_hash = Some(b.password_hash.clone());
                user.admin = b.admin;
                changed = true;
            }
        }
        if changed {
            store::save(data_dir, &state)?;
        }
        let enabled = !state.users.is_empty();
        Ok(Security {
            data_dir: data_dir.to_owned(),
            state: RwLock::new(state),
            writer: Mutex::new(()),
            enabled: AtomicBool::new(enabled),
        })
    }

    /// Whether authentication is on (some user exists).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a handshake's credentials; returns the user's name, or `None`
    /// for an anonymous connection while auth is off. Blocking (a password
    /// check is one argon2 run): call it on the blocking pool.
    pub fn authenticate(&self, credentials: &Credentials) -> Result<Option<String>, SecurityError> {
        const REFUSED: &str = "unknown user or wrong password or token";
        match credentials {
            Credentials::None if !self.enabled() => Ok(None),
            Credentials::None => Err(SecurityError::AuthenticationFailed(
                "this broker requires credentials (user and password, or a token)",
            )),
            Credentials::Password { user, password } => {
                let hash = self
                    .read()
                    .users
                    .get(user)
                    .and_then(|u| u.password_hash.clone());
                match hash {
                    Some(hash) if password::verify_password(password.expose(), &hash) => {
                        Ok(Some(user.clone()))
                    }
                    Some(_) => Err(SecurityError::AuthenticationFailed(REFUSED)),
                    None => {
                        password::verify_nothing(password.expose());
                        Err(SecurityError::AuthenticationFailed(REFUSED))
                    }
                }
            }
            Credentials::Token { token } => {
                let digest = token::digest(token.expose());
                self.read()
                    .token_owners
                    .get(&digest)
                    .cloned()
                    .map(Some)
                    .ok_or(SecurityError::AuthenticationFailed(REFUSED))
            }
        }
    }

    /// Whether `user` may do `op` on `kind`/`name` (admins may do anything;
    /// a user removed since it authenticated may do nothing).
    pub fn allows(&self, user: &str, op: Operation, kind: ResourceKind, name: &str) -> bool {
        match self.read().users.get(user) {
            Some(u) => u.admin || acl::allows(&u.grants, op, kind, name),
            None => false,
        }
    }

    /// Whether `user` exists and is an admin.
    pub fn is_admin(&self, user: &str) -> bool {
        self.read().users.get(user).is_some_and(|u| u.admin)
    }

    /// Whether `user` still exists.
    pub fn user_exists(&self, user: &str) -> bool {
        self.read().users.contains_key(user)
    }

    /// Applies `change` to a copy of the state, saves it, then swaps it in.
    /// Blocking.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, SecurityError>,
    ) -> Result<T, SecurityError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.read().clone();
        let out = change(&mut next)?;
        next.reindex();
        store::save(&self.data_dir, &next)?;
        let enabled = !next.users.is_empty();
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.enabled.store(enabled, Ordering::Release);
        Ok(out)
    }

    /// Creates a user or replaces its password and admin flag. Returns
    /// whether it was created. Refuses to demote the last admin. Blocking.
    pub fn put_user(&self, name: &str, password: &str, admin: bool) -> Result<bool, SecurityError> {
        validate_user_name(name)?;
        if password.is_empty() {
            return Err(SecurityError::Invalid("the password is empty".into()));
        }
        let hash = hash_password(password)?;
        self.change(|state| {
            let was_admin = state.users.get(name).is_some_and(|u| u.admin);
            if was_admin && !admin && state.admin_count() == 1 {
                return Err(SecurityError::Invalid(format!(
                    "user '{name}' is the last admin; make another admin first"
                )));
            }
            let created = !state.users.contains_key(name);
            let user = state.users.entry(name.to_owned()).or_default();
            user.password_hash = Some(hash);
            user.admin = admin;
            Ok(created)
        })
    }

    /// Removes a user with its tokens and grants. Blocking.
    pub fn delete_user(&self, name: &str) -> Result<(), SecurityError> {
        self.change(|state| {
            let user = state
                .users
                .get(name)
                .ok_or_else(|| SecurityError::UnknownUser(name.to_owned()))?;
            if user.admin && state.admin_count() == 1 {
                return Err(SecurityError::Invalid(format!(
                    "user '{name}' is the last admin and cannot be removed"
                )));
            }
            state.users.remove(name);
            Ok(())
        })
    }

    /// Every user, sorted by name, with its token ids.
    pub fn list_users(&self) -> Vec<UserListing> {
        self.read()
            .users
            .iter()
            .map(|(name, u)| UserListing {
                name: name.clone(),
                admin: u.admin,
                token_ids: u
                    .tokens
                    .iter()
                    .map(|d| token::token_id(d).to_owned())
                    .collect(),
            })
            .collect()
    }

    fn user_mut<'a>(state: &'a mut State, name: &str) -> Result<&'a mut User, SecurityError> {
        state
            .users
            .get_mut(name)
            .ok_or_else(|| SecurityError::UnknownUser(name.to_owned()))
    }

    /// Adds operations to a user's grant on a pattern. Blocking.
    pub fn grant(
        &self,
        user: &str,
        resource: ResourcePattern,
        operations: Operations,
    ) -> Result<(), SecurityError> {
        if operations.is_empty() {
            return Err(SecurityError::Invalid("no operation to grant".into()));
        }
        self.change(|state| {
            acl::grant(
                &mut Self::user_mut(state, user)?.grants,
                resource,
                operations,
            );
            Ok(())
        })
    }

    /// Removes operations from a user's grant on a pattern. Blocking.
    pub fn revoke(
        &self,
        user: &str,
        resource: &ResourcePattern,
        operations: Operations,
    ) -> Result<(), SecurityError> {
        self.change(|state| {
            if acl::revoke(
                &mut Self::user_mut(state, user)?.grants,
                resource,
                operations,
            ) {
                Ok(())
            } else {
                Err(SecurityError::Invalid(format!(
                    "user '{user}' has no grant on {resource}"
                )))
            }
        })
    }

    /// The grants of `user`, or of everyone.
    pub fn list_acls(&self, user: Option<&str>) -> Result<Vec<AclEntry>, SecurityError> {
        let state = self.read();
        if let Some(name) = user {
            if !state.users.contains_key(name) {
                return Err(SecurityError::UnknownUser(name.to_owned()));
            }
        }
        Ok(state
            .users
            .iter()
            .filter(|(name, _)| user.is_none_or(|u| u == name.as_str()))
            .flat_map(|(name, u)| {
                u.grants.iter().map(move |g| AclEntry {
                    user: name.clone(),
                    resource: g.resource.clone(),
                    operations: g.operations,
                })
            })
            .collect())
    }

    /// Creates an API token for `user`: returns its id and the token (the
    /// only time it exists outside the client). Blocking.
    pub fn create_token(&self, user: &str) -> Result<(String, String), SecurityError> {
        let new = token::generate();
        self.change(|state| {
            Self::user_mut(state, user)?
                .tokens
                .insert(new.digest.clone());
            Ok(())
        })?;
        Ok((token::token_id(&new.digest).to_owned(), new.token))
    }

    /// Revokes the token of `user` with id `token_id`. Blocking.
    pub fn revoke_token(&self, user: &str, token_id: &str) -> Result<(), SecurityError> {
        self.change(|state| {
            let u = Self::user_mut(state, user)?;
            let before = u.tokens.len();
            u.tokens.retain(|d| token::token_id(d) != token_id);
            if u.tokens.len() == before {
                return Err(SecurityError::Invalid(format!(
                    "user '{user}' has no token {token_id:?}"
                )));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_protocol::Secret;

    fn password(user: &str, pw: &str) -> Credentials {
        Credentials::Password {
            user: user.into(),
            password: Secret::new(pw),
        }
    }

    #[test]
    fn auth_turns_on_with_the_first_user_and_tokens_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = Security::open(dir.path(), &[]).unwrap();
        assert!(!s.enabled());
        assert_eq!(s.authenticate(&Credentials::None).unwrap(), None);
        assert!(s.put_user("admin", "pw", true).unwrap());
        assert!(s.enabled());
        assert!(s.authenticate(&Credentials::None).is_err());
        assert_eq!(
            s.authenticate(&password("admin", "pw")).unwrap().as_deref(),
            Some("admin")
        );
        assert!(s.authenticate(&password("admin", "nope")).is_err());
        assert!(s.authenticate(&password("ghost", "pw")).is_err());
        s.put_user("bob", "pw2", false).unwrap();
        let (id, tok) = s.create_token("bob").unwrap();
        let creds = Credentials::Token {
            token: Secret::new(tok),
        };
        assert_eq!(s.authenticate(&creds).unwrap().as_deref(), Some("bob"));
        s.revoke_token("bob", &id).unwrap();
        assert!(s.authenticate(&creds).is_err());
        assert!(s.delete_user("admin").is_err(), "last admin");
        assert!(
            s.put_user("admin", "pw", false).is_err(),
            "last admin demoted"
        );
        assert!(validate_user_name("a b").is_err());
    }

    #[test]
    fn bootstrap_users_are_applied_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let boot = BootstrapUser {
            name: "root".into(),
            password_hash: hash_password("pw").unwrap(),
            admin: true,
        };
        let s = Security::open(dir.path(), std::slice::from_ref(&boot)).unwrap();
        assert!(s.enabled() && s.is_admin("root"));
        drop(s);
        let s = Security::open(dir.path(), &[]).unwrap();
        assert!(s.is_admin("root"), "bootstrap user persisted");
    }
}
