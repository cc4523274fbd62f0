//! Authentication and authorization.
//!
//! - [`password`]: argon2id hashes of user passwords (PHC strings).
//! - [`scram`]: SCRAM-SHA-256/512 credentials of a password (stored beside
//!   its argon2 hash) and the broker's side of a SCRAM login.
//! - [`token`]: API tokens, stored as SHA-256 digests.
//! - [`acl`]: a user's grants and the rule that evaluates them.
//! - [`store`]: `<data_dir>/security.json`, replaced atomically.
//! - [`throttle`]: failed logins per client address.
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
//! on for every connection: new ones must authenticate, and anonymous ones
//! already open are refused from their next request. The first user must be
//! an admin, and the last admin cannot be removed or demoted.
//!
//! A session ([`Principal`]) records its user's id and, for a password
//! login, the password's epoch, for a token login the token's digest; every
//! check verifies them, so removing a user (even if the name is created
//! again), changing its password or revoking the token ends its sessions at
//! their next request. Changes re-check their actor under the writer lock,
//! so a request admitted before the first user existed, or by an admin
//! since demoted, cannot apply.

pub mod acl;
pub mod password;
pub mod scram;
pub mod store;
pub mod throttle;
pub mod token;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use skiff_protocol::messages::{
    AclEntry, Credentials, Operation, Operations, ResourceKind, ResourcePattern, UserListing,
};

pub use password::{HashError, PhcHash, hash_password};
pub use scram::{ScramError, ScramMechanism, ScramSecrets};
pub use store::StoreError;

use store::{State, User};

/// Longest user name, in bytes: long enough for an email address.
pub const USER_NAME_BYTES_MAX: usize = 128;
/// Longest SASL PLAIN message accepted, in bytes: a user name, a password
/// and an authorization id fit many times over.
pub const SASL_PLAIN_BYTES_MAX: usize = 1024;

/// A SCRAM login between the client's first and final messages.
#[derive(Debug)]
pub struct ScramLogin {
    exchange: scram::ScramExchange,
    /// The user's id and password epoch when it exists with SCRAM
    /// credentials.
    found: Option<(u64, u64)>,
}

impl ScramLogin {
    /// The user name the client gave (a claim until the login finishes).
    pub fn user(&self) -> &str {
        self.exchange.user()
    }
}

/// A user created or updated at every start, from the config file
/// (`[[users]]`) or `SKIFF_ADMIN_USER`/`SKIFF_ADMIN_PASSWORD`. Its password
/// hash, SCRAM credentials and admin flag replace the stored ones; its
/// grants and tokens are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BootstrapUserText", into = "BootstrapUserText")]
pub struct BootstrapUser {
    /// The user name.
    pub name: String,
    /// An argon2id PHC string (`skiffd hash-password` makes one).
    pub password_hash: PhcHash,
    /// The same password's SCRAM credentials (`skiffd hash-password --toml`
    /// prints them); `None`: Kafka clients sign in with PLAIN only.
    pub scram: Option<ScramSecrets>,
    /// Whether the user is an admin.
    pub admin: bool,
}

impl BootstrapUser {
    /// A bootstrap user from a plain password: its argon2 hash and SCRAM
    /// credentials. Blocking (one argon2 run and the PBKDF2 runs).
    pub fn from_password(name: &str, password: &str, admin: bool) -> Result<Self, HashError> {
        Ok(BootstrapUser {
            name: name.to_owned(),
            password_hash: hash_password(password)?,
            scram: Some(ScramSecrets::derive(password)),
            admin,
        })
    }
}

/// A `[[users]]` entry as written in the config file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapUserText {
    name: String,
    password_hash: PhcHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram_sha512: Option<String>,
    #[serde(default)]
    admin: bool,
}

impl TryFrom<BootstrapUserText> for BootstrapUser {
    type Error = String;

    fn try_from(t: BootstrapUserText) -> Result<Self, String> {
        let scram = ScramSecrets::from_texts(t.scram_sha256.as_deref(), t.scram_sha512.as_deref())
            .map_err(|e| format!("user {:?}: {e}", t.name))?;
        Ok(BootstrapUser {
            name: t.name,
            password_hash: t.password_hash,
            scram,
            admin: t.admin,
        })
    }
}

impl From<BootstrapUser> for BootstrapUserText {
    fn from(u: BootstrapUser) -> Self {
        let (scram_sha256, scram_sha512) = ScramSecrets::to_texts(u.scram.as_ref());
        BootstrapUserText {
            name: u.name,
            password_hash: u.password_hash,
            scram_sha256,
            scram_sha512,
            admin: u.admin,
        }
    }
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
    /// The acting session may not make this change (checked again when the
    /// change is applied).
    #[error("{0}")]
    NotAuthorized(String),
    /// A password could not be hashed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A SCRAM login failed (bad message, or wrong user or password).
    #[error(transparent)]
    Scram(#[from] ScramError),
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

/// Who a connection authenticated as, and with what: checked again at every
/// request, so a session ends when its user is removed (or removed and
/// created again), its password changes, or its token is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    name: Arc<str>,
    user_id: u64,
    credential: SessionCredential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SessionCredential {
    /// Signed in with the password of this epoch.
    Password { epoch: u64 },
    /// Signed in with the token of this digest.
    Token { digest: String },
}

impl Principal {
    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl State {
    /// The principal's user, if its session is still valid.
    fn session_user(&self, p: &Principal) -> Result<&User, SecurityError> {
        let stale = |why| Err(SecurityError::AuthenticationFailed(why));
        let Some(user) = self.users.get(p.name()) else {
            return stale("session no longer valid: the user was removed");
        };
        if user.id != p.user_id {
            return stale("session no longer valid: the user was removed (and created again)");
        }
        match &p.credential {
            SessionCredential::Password { epoch } if *epoch != user.password_epoch => stale(
                "session no longer valid: the password was changed; reconnect with the new one",
            ),
            SessionCredential::Token { digest } if !user.tokens.contains(digest) => {
                stale("session no longer valid: the token was revoked")
            }
            _ => Ok(user),
        }
    }

    /// Whether `actor` may change the security state now: anonymous only
    /// while no user exists, otherwise a currently valid admin session.
    fn may_change(&self, actor: Option<&Principal>) -> Result<(), SecurityError> {
        match actor {
            None if self.users.is_empty() => Ok(()),
            None => Err(SecurityError::NotAuthorized(
                "this connection has not authenticated and authentication is on now (a user was created meanwhile); reconnect with an admin's credentials".into(),
            )),
            Some(p) if self.session_user(p)?.admin => Ok(()),
            Some(p) => Err(SecurityError::NotAuthorized(format!(
                "user '{}' may not manage users, tokens or ACLs (admin only)",
                p.name()
            ))),
        }
    }
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

/// A SASL PLAIN message (RFC 4616), read: the user it names and the
/// credentials to check for it.
#[derive(Debug)]
pub struct PlainLogin {
    /// The user name the client gave.
    pub user: String,
    /// Its password, or an API token when the password has a token's form
    /// (`skt_` and 64 hex digits): Kafka's SASL has no field for a token.
    pub credentials: Credentials,
}

impl PlainLogin {
    /// Whether `principal`, who the credentials signed in as, is the user
    /// the message named (a token names its owner, whoever is claimed).
    pub fn names(&self, principal: &Principal) -> bool {
        principal.name() == self.user
    }
}

/// Reads a SASL PLAIN message (`authzid NUL user NUL password`). An
/// authorization id, when given, must be the user itself. Checks nothing
/// against the users: the caller runs the credentials through the same
/// (throttled) check as a native handshake's.
pub fn parse_plain(message: &[u8]) -> Result<PlainLogin, SecurityError> {
    const MALFORMED: &str = "SASL PLAIN message is not authzid NUL user NUL password";
    if message.len() > SASL_PLAIN_BYTES_MAX {
        return Err(SecurityError::AuthenticationFailed(
            "SASL PLAIN message is longer than 1024 bytes",
        ));
    }
    let text =
        std::str::from_utf8(message).map_err(|_| SecurityError::AuthenticationFailed(MALFORMED))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SecurityError::AuthenticationFailed(MALFORMED));
    };
    if !authzid.is_empty() && authzid != user {
        return Err(SecurityError::AuthenticationFailed(
            "SASL PLAIN authorization id must be empty or the user itself",
        ));
    }
    let credentials = if token::has_token_form(password) {
        Credentials::Token {
            token: password.to_owned().into(),
        }
    } else {
        Credentials::Password {
            user: user.to_owned(),
            password: password.to_owned().into(),
        }
    };
    Ok(PlainLogin {
        user: user.to_owned(),
        credentials,
    })
}

impl Security {
    /// Loads `<data_dir>/security.json` and applies the bootstrap users
    /// (saving only if they changed something). Refuses to start with users
    /// but no admin (nobody could manage them). Blocking.
    pub fn open(data_dir: &Path, bootstrap: &[BootstrapUser]) -> Result<Security, SecurityError> {
        let mut state = store::load(data_dir)?;
        let mut changed = false;
        for b in bootstrap {
            validate_user_name(&b.name)?;
            let user = state.user_entry(&b.name);
            if user.password_hash.as_ref() != Some(&b.password_hash)
                || user.scram != b.scram
                || user.admin != b.admin
            {
                user.admin = b.admin;
                state.set_password(&b.name, b.password_hash.clone(), b.scram.clone());
                changed = true;
            }
        }
        if !state.users.is_empty() && state.admin_count() == 0 {
            return Err(SecurityError::Invalid(format!(
                "{} has users but no admin (a [[users]] entry with admin = false may have demoted the last one): \
                 set admin = true on one, or bootstrap one with SKIFF_ADMIN_USER and SKIFF_ADMIN_PASSWORD",
                store::path(data_dir).display()
            )));
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
        crate::poison::read(&self.state)
    }

    /// Checks a handshake's credentials; returns who signed in, or `None`
    /// for an anonymous connection while auth is off. Blocking (a password
    /// check is one argon2 run): call it on the blocking pool.
    pub fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<Principal>, SecurityError> {
        const REFUSED: &str = "unknown user or wrong password or token";
        match credentials {
            Credentials::None if !self.enabled() => Ok(None),
            Credentials::None => Err(SecurityError::AuthenticationFailed(
                "this broker requires credentials (user and password, or a token)",
            )),
            Credentials::Password { user, password } => {
                // The hash, id and epoch are read together: a password
                // changed during the check leaves this session stale.
                let found = self
                    .read()
                    .users
                    .get(user)
                    .and_then(|u| u.password_hash.clone().map(|h| (h, u.id, u.password_epoch)));
                match found {
                    Some((hash, user_id, epoch))
                        if password::verify_password(password.expose(), &hash) =>
                    {
                        Ok(Some(Principal {
                            name: Arc::from(user.as_str()),
                            user_id,
                            credential: SessionCredential::Password { epoch },
                        }))
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
                let state = self.read();
                let owner = state
                    .token_owners
                    .get(&digest)
                    .and_then(|name| state.users.get(name).map(|u| (name, u.id)));
                match owner {
                    Some((name, user_id)) => Ok(Some(Principal {
                        name: Arc::from(name.as_str()),
                        user_id,
                        credential: SessionCredential::Token { digest },
                    })),
                    None => Err(SecurityError::AuthenticationFailed(REFUSED)),
                }
            }
        }
    }

    /// Starts a SCRAM login from the client's first message; answers the
    /// server's first message. Cheap: the PBKDF2 work was done when the
    /// password was set.
    pub fn scram_start(
        &self,
        mechanism: ScramMechanism,
        client_first: &[u8],
    ) -> Result<(ScramLogin, String), SecurityError> {
        let mut found = None;
        let (exchange, server_first) =
            scram::ScramExchange::start(mechanism, client_first, |name| {
                let state = self.read();
                let u = state.users.get(name)?;
                let credential = u.scram.as_ref()?.get(mechanism).clone();
                found = Some((u.id, u.password_epoch));
                Some(credential)
            })?;
        Ok((ScramLogin { exchange, found }, server_first))
    }

    /// Checks the client's final SCRAM message: who signed in, and the
    /// server's final message. The session is a password session of the
    /// password read at the start (a change in between ends it).
    pub fn scram_finish(
        &self,
        login: ScramLogin,
        client_final: &[u8],
    ) -> Result<(Principal, String), SecurityError> {
        let name: Arc<str> = Arc::from(login.exchange.user());
        let server_final = login.exchange.finish(client_final)?;
        let (user_id, epoch) = login.found.ok_or(ScramError::Refused)?;
        let principal = Principal {
            name,
            user_id,
            credential: SessionCredential::Password { epoch },
        };
        self.check_session(&principal)?;
        Ok((principal, server_final))
    }

    /// Whether the principal may do `op` on `kind`/`name` (admins may do
    /// anything). An error (`AuthenticationFailed`) when its session is no
    /// longer valid.
    pub fn allows(
        &self,
        p: &Principal,
        op: Operation,
        kind: ResourceKind,
        name: &str,
    ) -> Result<bool, SecurityError> {
        let state = self.read();
        let u = state.session_user(p)?;
        Ok(u.admin || acl::allows(&u.grants, op, kind, name))
    }

    /// Whether the principal is an admin; an error when its session is no
    /// longer valid.
    pub fn is_admin(&self, p: &Principal) -> Result<bool, SecurityError> {
        Ok(self.read().session_user(p)?.admin)
    }

    /// Checks that the principal's session is still valid.
    pub fn check_session(&self, p: &Principal) -> Result<(), SecurityError> {
        self.read().session_user(p).map(|_| ())
    }

    /// Applies `change` to a copy of the state, saves it, then swaps it in.
    /// `actor` (`None`: anonymous) is checked again under the writer lock:
    /// it must be an admin whose session is still valid, or anonymous while
    /// no user exists, whatever was true when its request was admitted.
    /// Blocking.
    fn change<T>(
        &self,
        actor: Option<&Principal>,
        change: impl FnOnce(&mut State) -> Result<T, SecurityError>,
    ) -> Result<T, SecurityError> {
        let _writer = crate::poison::lock(&self.writer);
        let mut next = self.read().clone();
        next.may_change(actor)?;
        let out = change(&mut next)?;
        next.reindex();
        let saved = store::save(&self.data_dir, &next);
        if let Err(e) = &saved {
            if !e.is_applied() {
                return saved.map(|()| out).map_err(Into::into);
            }
            // The new file is in place but may not survive a machine crash:
            // memory follows the file, and the caller is told.
            tracing::error!(error = %e, "security change applied but not durable");
        }
        let enabled = !next.users.is_empty();
        *crate::poison::write(&self.state) = next;
        self.enabled.store(enabled, Ordering::Release);
        saved?;
        Ok(out)
    }

    /// Creates a user or replaces its password and admin flag (either way,
    /// sessions signed in with its old password end). Returns whether it was
    /// created. Refuses to demote the last admin, and a first user that is
    /// not an admin. Blocking.
    pub fn put_user(
        &self,
        actor: Option<&Principal>,
        name: &str,
        password: &str,
        admin: bool,
    ) -> Result<bool, SecurityError> {
        validate_user_name(name)?;
        if password.is_empty() {
            return Err(SecurityError::Invalid("the password is empty".into()));
        }
        let hash = hash_password(password)?;
        let scram = ScramSecrets::derive(password);
        self.change(actor, |state| {
            if state.users.is_empty() && !admin {
                return Err(SecurityError::Invalid(format!(
                    "the first user turns authentication on and must be an admin: create '{name}' with admin set"
                )));
            }
            let was_admin = state.users.get(name).is_some_and(|u| u.admin);
            if was_admin && !admin && state.admin_count() == 1 {
                return Err(SecurityError::Invalid(format!(
                    "user '{name}' is the last admin; make another admin first"
                )));
            }
            let created = !state.users.contains_key(name);
            state.user_entry(name).admin = admin;
            state.set_password(name, hash, Some(scram));
            Ok(created)
        })
    }

    /// Removes a user with its tokens and grants (its sessions end).
    /// Blocking.
    pub fn delete_user(&self, actor: Option<&Principal>, name: &str) -> Result<(), SecurityError> {
        self.change(actor, |state| {
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

    /// Adds operations to a user's grant on a pattern. An exact pattern
    /// needs a name; an empty prefix (every topic or group) is allowed.
    /// Blocking.
    pub fn grant(
        &self,
        actor: Option<&Principal>,
        user: &str,
        resource: ResourcePattern,
        operations: Operations,
    ) -> Result<(), SecurityError> {
        if operations.is_empty() {
            return Err(SecurityError::Invalid("no operation to grant".into()));
        }
        if resource.name.is_empty() && !resource.prefix {
            return Err(SecurityError::Invalid(format!(
                "empty {} name: name one, or grant on every {} with an empty prefix",
                resource.kind.name(),
                resource.kind.name()
            )));
        }
        self.change(actor, |state| {
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
        actor: Option<&Principal>,
        user: &str,
        resource: &ResourcePattern,
        operations: Operations,
    ) -> Result<(), SecurityError> {
        self.change(actor, |state| {
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
    pub fn create_token(
        &self,
        actor: Option<&Principal>,
        user: &str,
    ) -> Result<(String, String), SecurityError> {
        let new = token::generate();
        self.change(actor, |state| {
            Self::user_mut(state, user)?
                .tokens
                .insert(new.digest.clone());
            Ok(())
        })?;
        Ok((token::token_id(&new.digest).to_owned(), new.token))
    }

    /// Revokes the token of `user` with id `token_id` (sessions signed in
    /// with it end). Blocking.
    pub fn revoke_token(
        &self,
        actor: Option<&Principal>,
        user: &str,
        token_id: &str,
    ) -> Result<(), SecurityError> {
        self.change(actor, |state| {
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

    fn login(s: &Security, creds: &Credentials) -> Principal {
        s.authenticate(creds).unwrap().expect("a user")
    }

    fn stale(r: Result<impl std::fmt::Debug, SecurityError>) -> String {
        match r {
            Err(e @ SecurityError::AuthenticationFailed(_)) => e.to_string(),
            other => panic!("expected a stale session, got {other:?}"),
        }
    }

    #[test]
    fn auth_turns_on_with_the_first_user_and_tokens_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = Security::open(dir.path(), &[]).unwrap();
        assert!(!s.enabled());
        assert_eq!(s.authenticate(&Credentials::None).unwrap(), None);
        assert!(s.put_user(None, "admin", "pw", true).unwrap());
        assert!(s.enabled());
        assert!(s.authenticate(&Credentials::None).is_err());
        let admin = login(&s, &password("admin", "pw"));
        assert_eq!(admin.name(), "admin");
        assert!(s.authenticate(&password("admin", "nope")).is_err());
        assert!(s.authenticate(&password("ghost", "pw")).is_err());
        let a = Some(&admin);
        s.put_user(a, "bob", "pw2", false).unwrap();
        let (id, tok) = s.create_token(a, "bob").unwrap();
        let creds = Credentials::Token {
            token: Secret::new(tok),
        };
        assert_eq!(login(&s, &creds).name(), "bob");
        s.revoke_token(a, "bob", &id).unwrap();
        assert!(s.authenticate(&creds).is_err());
        assert!(s.delete_user(a, "admin").is_err(), "last admin");
        assert!(
            s.put_user(a, "admin", "pw", false).is_err(),
            "last admin demoted"
        );
        assert!(validate_user_name("a b").is_err());
    }

    #[test]
    fn kafka_sasl_logins_plain_and_scram_use_the_same_users() {
        let dir = tempfile::tempdir().unwrap();
        let s = Security::open(dir.path(), &[]).unwrap();
        s.put_user(None, "admin", "pw", true).unwrap();
        // PLAIN: parsed, then the same check as a native password login.
        let plain = |s: &Security, message: &[u8]| -> Result<Principal, SecurityError> {
            let login = parse_plain(message)?;
            let p = s.authenticate(&login.credentials)?.expect("a user");
            if login.names(&p) {
                Ok(p)
            } else {
                Err(SecurityError::AuthenticationFailed("another user's token"))
            }
        };
        assert_eq!(plain(&s, b"\0admin\0pw").unwrap().name(), "admin");
        assert_eq!(plain(&s, b"admin\0admin\0pw").unwrap().name(), "admin");
        for bad in [
            &b"\0admin\0nope"[..],
            b"\0ghost\0pw",
            b"other\0admin\0pw",
            b"admin",
            b"\0a\0b\0c",
            &[b'x'; SASL_PLAIN_BYTES_MAX + 1],
        ] {
            assert!(plain(&s, bad).is_err(), "{bad:?}");
        }
        // A token as the password signs in as its owner, and only as it.
        let admin = plain(&s, b"\0admin\0pw").unwrap();
        s.put_user(Some(&admin), "bob", "bob-pw", false).unwrap();
        let (_, tok) = s.create_token(Some(&admin), "bob").unwrap();
        let p = plain(&s, format!("\0bob\0{tok}").as_bytes()).unwrap();
        assert_eq!(p.name(), "bob");
        assert!(plain(&s, format!("\0admin\0{tok}").as_bytes()).is_err());
        let scram = |s: &Security, m: ScramMechanism, user: &str, pw: &str| {
            let bare = format!("n={user},r=nonce1");
            let (login, server_first) = s.scram_start(m, format!("n,,{bare}").as_bytes())?;
            let fin = scram::tests::client_final(m, pw, &bare, &server_first);
            s.scram_finish(login, fin.as_bytes())
        };
        for m in ScramMechanism::ALL {
            let (p, server_final) = scram(&s, m, "admin", "pw").unwrap();
            assert_eq!(p.name(), "admin");
            assert!(server_final.starts_with("v="));
            assert!(scram(&s, m, "admin", "nope").is_err());
            assert!(scram(&s, m, "ghost", "pw").is_err());
        }
        // Stored with the user: a restart keeps SCRAM working.
        drop(s);
        let s = Security::open(dir.path(), &[]).unwrap();
        let (admin, _) = scram(&s, ScramMechanism::Sha512, "admin", "pw").unwrap();
        // A new password ends the SCRAM session, as any password session.
        s.put_user(Some(&admin), "admin", "pw2", true).unwrap();
        assert!(s.check_session(&admin).is_err());
        assert!(scram(&s, ScramMechanism::Sha256, "admin", "pw2").is_ok());
        // A bare `[[users]]` hash has no SCRAM credentials: PLAIN only.
        let boot = BootstrapUser {
            name: "old".into(),
            password_hash: hash_password("pw").unwrap(),
            scram: None,
            admin: true,
        };
        let s = Security::open(dir.path(), &[boot]).unwrap();
        let login = parse_plain(b"\0old\0pw").unwrap();
        assert!(s.authenticate(&login.credentials).is_ok());
        assert!(scram(&s, ScramMechanism::Sha256, "old", "pw").is_err());
        let with = BootstrapUser::from_password("old", "pw", true).unwrap();
        let s = Security::open(dir.path(), &[with]).unwrap();
        assert!(scram(&s, ScramMechanism::Sha256, "old", "pw").is_ok());
    }

    #[test]
    fn bootstrap_users_read_scram_lines_as_hash_password_prints_them() {
        let u = BootstrapUser::from_password("kafka", "pw", false).unwrap();
        let toml_text = toml::to_string(&u).unwrap();
        assert!(toml_text.contains("scram_sha256 = \"salt="), "{toml_text}");
        let back: BootstrapUser = toml::from_str(&toml_text).unwrap();
        assert_eq!(back, u);
        let only_one = toml_text
            .lines()
            .filter(|l| !l.starts_with("scram_sha512"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = toml::from_str::<BootstrapUser>(&only_one).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        let bad = toml_text.replace("iterations=4096", "iterations=1");
        let err = toml::from_str::<BootstrapUser>(&bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("scram_sha256: SCRAM credential iterations 1"),
            "{err}"
        );
    }

    #[test]
    fn sessions_end_with_their_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let s = Security::open(dir.path(), &[]).unwrap();
        s.put_user(None, "admin", "pw", true).unwrap();
        let admin = login(&s, &password("admin", "pw"));
        let a = Some(&admin);
        let t = ResourceKind::Topic;
        let op = Operation::Describe;
        s.put_user(a, "bob", "old", true).unwrap();
        let bob = login(&s, &password("bob", "old"));
        let (id, tok) = s.create_token(a, "bob").unwrap();
        let bob_token = login(
            &s,
            &Credentials::Token {
                token: Secret::new(tok),
            },
        );
        assert!(s.allows(&bob, op, t, "x").unwrap());

        // A new password ends password sessions, not token ones.
        s.put_user(a, "bob", "new", true).unwrap();
        let msg = stale(s.allows(&bob, op, t, "x"));
        assert!(
            msg.contains("session no longer valid: the password"),
            "{msg}"
        );
        assert!(s.allows(&bob_token, op, t, "x").unwrap());
        // Revoking the token ends its sessions.
        s.revoke_token(a, "bob", &id).unwrap();
        let msg = stale(s.check_session(&bob_token));
        assert!(msg.contains("token was revoked"), "{msg}");
        // Removed, then created again with the same name: old sessions
        // (even with the same password) do not carry over.
        let bob = login(&s, &password("bob", "new"));
        s.delete_user(a, "bob").unwrap();
        assert!(stale(s.is_admin(&bob)).contains("removed"));
        s.put_user(a, "bob", "new", true).unwrap();
        assert!(stale(s.is_admin(&bob)).contains("removed"));
        assert!(s.is_admin(&login(&s, &password("bob", "new"))).unwrap());
        assert!(s.is_admin(&admin).unwrap(), "others are unaffected");
    }

    #[test]
    fn changes_check_the_actor_again_when_applied() {
        let dir = tempfile::tempdir().unwrap();
        let s = Security::open(dir.path(), &[]).unwrap();
        // The first user must be an admin.
        let err = s.put_user(None, "bob", "pw", false).unwrap_err();
        assert!(err.to_string().contains("must be an admin"), "{err}");
        assert!(!s.enabled());
        // An anonymous request admitted before the first user existed is
        // refused once one does.
        s.put_user(None, "root", "pw", true).unwrap();
        for r in [
            s.put_user(None, "root", "evil", true).map(|_| ()),
            s.put_user(None, "mallory", "pw", true).map(|_| ()),
            s.create_token(None, "root").map(|_| ()),
            s.delete_user(None, "root"),
        ] {
            match r {
                Err(SecurityError::NotAuthorized(m)) => {
                    assert!(m.contains("authentication is on"), "{m}")
                }
                other => panic!("anonymous change applied: {other:?}"),
            }
        }
        assert!(s.authenticate(&password("root", "pw")).is_ok());
        assert_eq!(s.list_users().len(), 1);
        // A user demoted since its request was admitted is refused too.
        let root = login(&s, &password("root", "pw"));
        s.put_user(Some(&root), "carol", "pw", true).unwrap();
        let carol = login(&s, &password("carol", "pw"));
        s.put_user(Some(&root), "carol", "pw", false).unwrap();
        let carol_again = login(&s, &password("carol", "pw"));
        match s.put_user(Some(&carol_again), "eve", "pw", true) {
            Err(SecurityError::NotAuthorized(m)) => assert!(m.contains("admin only"), "{m}"),
            other => panic!("{other:?}"),
        }
        // And a stale session (password changed) is refused as such.
        stale(s.put_user(Some(&carol), "eve", "pw", true));
    }

    #[test]
    fn empty_exact_names_are_refused_in_grants() {
        let dir = tempfile::tempdir().unwrap();
        let s = Security::open(dir.path(), &[]).unwrap();
        s.put_user(None, "root", "pw", true).unwrap();
        let root = login(&s, &password("root", "pw"));
        s.put_user(Some(&root), "bob", "pw", false).unwrap();
        let pattern = |prefix| ResourcePattern {
            kind: ResourceKind::Topic,
            name: String::new(),
            prefix,
        };
        let ops = Operations::parse("consume").unwrap();
        let err = s
            .grant(Some(&root), "bob", pattern(false), ops)
            .unwrap_err();
        assert!(err.to_string().contains("empty topic name"), "{err}");
        s.grant(Some(&root), "bob", pattern(true), ops).unwrap();
    }

    #[test]
    fn bootstrap_users_are_applied_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let boot = BootstrapUser {
            name: "root".into(),
            password_hash: hash_password("pw").unwrap(),
            scram: None,
            admin: true,
        };
        let s = Security::open(dir.path(), std::slice::from_ref(&boot)).unwrap();
        assert!(s.enabled());
        assert!(s.is_admin(&login(&s, &password("root", "pw"))).unwrap());
        drop(s);
        let s = Security::open(dir.path(), &[]).unwrap();
        assert!(
            s.is_admin(&login(&s, &password("root", "pw"))).unwrap(),
            "bootstrap user persisted"
        );
        drop(s);
        // A bootstrap entry that would leave no admin stops the start.
        let demote = BootstrapUser {
            admin: false,
            ..boot
        };
        let err = Security::open(dir.path(), &[demote]).unwrap_err();
        assert!(err.to_string().contains("no admin"), "{err}");
        let s = Security::open(dir.path(), &[]).unwrap();
        assert!(
            s.is_admin(&login(&s, &password("root", "pw"))).unwrap(),
            "nothing was saved"
        );
    }
}
