//! The durable security state: `<data_dir>/security.json`, holding users
//! (argon2id password hashes, admin flags), the SHA-256 digests of their API
//! tokens, and their grants.
//!
//! Invariants: the file is replaced whole (written to `security.json.tmp`,
//! fsynced, renamed over the old one, the directory fsynced), so a crash
//! leaves the old or the new state, never a mix; a file that does not parse
//! is a startup error naming it, never silently replaced by an empty (open)
//! state. Plain passwords and tokens are never in it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skiff_protocol::messages::{Operations, ResourceKind, ResourcePattern};

use super::acl::Grant;
use super::password::PhcHash;
use super::scram::ScramSecrets;
use crate::fsio;

/// The file's name in the data directory.
pub const SECURITY_FILE: &str = "security.json";
/// The file format version written.
const FORMAT_VERSION: u32 = 1;

/// Why the security file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The new file replaced the old one, but syncing the directory failed:
    /// the change is applied (and served) but may be lost if the machine
    /// crashes before the directory reaches the disk.
    #[error("the change was applied, but syncing directory {path} failed, so it may not survive a machine crash: {source}", path = path.display())]
    NotDurable {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file exists but is not a valid security file.
    #[error("corrupt security file {path}: {message} (restore it from a backup, or move it away to start without users)", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl StoreError {
    /// Whether the new state is in place despite the error.
    pub fn is_applied(&self) -> bool {
        matches!(self, StoreError::NotDurable { .. })
    }
}

/// One user in memory.
#[derive(Debug, Clone, Default)]
pub struct User {
    /// Unique in this process, never reused: a user deleted and created
    /// again under the same name gets a new id, so sessions of the old one
    /// do not carry over. In memory only (sessions do not outlive the
    /// process).
    pub id: u64,
    /// Changes (to a value never used before) whenever the password is set:
    /// sessions that signed in with the old password are no longer valid.
    pub password_epoch: u64,
    /// The password hash; `None`: the user signs in with tokens only.
    pub password_hash: Option<PhcHash>,
    /// The password's SCRAM credentials (Kafka clients' SCRAM logins);
    /// `None` for a password set before skiff kept them, or given as a
    /// bare `[[users]]` hash: such a user signs in with PLAIN only.
    pub scram: Option<ScramSecrets>,
    /// May do anything, including managing users and grants.
    pub admin: bool,
    /// SHA-256 digests (hex) of the user's API tokens.
    pub tokens: BTreeSet<String>,
    /// What the user may do (ignored for admins).
    pub grants: Vec<Grant>,
}

/// Every user, with an index from token digest to user.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Token digest -> user name; rebuilt by [`State::reindex`].
    pub token_owners: HashMap<String, String>,
    /// The last id or password epoch handed out (see [`State::fresh_id`]).
    pub last_id: u64,
}

impl State {
    /// Rebuilds the token index after a change.
    pub fn reindex(&mut self) {
        self.token_owners = self
            .users
            .iter()
            .flat_map(|(name, u)| u.tokens.iter().map(move |d| (d.clone(), name.clone())))
            .collect();
    }

    /// A number never handed out before in this process, for a user id or
    /// a password epoch.
    pub fn fresh_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Creates `name` with a fresh id (no password, no rights) unless it
    /// exists; returns it.
    pub fn user_entry(&mut self, name: &str) -> &mut User {
        if !self.users.contains_key(name) {
            let id = self.fresh_id();
            self.users.insert(
                name.to_owned(),
                User {
                    id,
                    ..User::default()
                },
            );
        }
        // Inserted just above when missing.
        #[allow(clippy::expect_used)]
        let user = self.users.get_mut(name).expect("just inserted");
        user
    }

    /// Sets a user's password hash and SCRAM credentials (both from the
    /// same password, or no SCRAM), ending the sessions of its old one.
    pub fn set_password(&mut self, name: &str, hash: PhcHash, scram: Option<ScramSecrets>) {
        let epoch = self.fresh_id();
        let user = self.user_entry(name);
        user.password_hash = Some(hash);
        user.scram = scram;
        user.password_epoch = epoch;
    }

    /// Admins in the state.
    pub fn admin_count(&self) -> usize {
        self.users.values().filter(|u| u.admin).count()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileState {
    version: u32,
    users: BTreeMap<String, FileUser>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<PhcHash>,
    /// Kafka's text form of each SCRAM credential (see `auth::scram`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram_sha512: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    token_digests: Vec<String>,
    #[serde(default)]
    grants: Vec<FileGrant>,
}

/// A grant as written: readable by a person (`"operations": "produce,consume"`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGrant {
    kind: String,
    name: String,
    #[serde(default)]
    prefix: bool,
    operations: String,
}

/// The file's path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECURITY_FILE)
}

/// Loads the state; a missing file is the empty state (auth off).
pub fn load(data_dir: &Path) -> Result<State, StoreError> {
    let path = path(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(source) => {
            return Err(StoreError::Io {
                op: "read",
                path,
                source,
            });
        }
    };
    let corrupt = |message: String| StoreError::Corrupt {
        path: path.clone(),
        message,
    };
    warn_if_shared(&path);
    let file: FileState = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not {FORMAT_VERSION}",
            file.version
        )));
    }
    let mut state = State::default();
    for (name, u) in file.users {
        let mut grants = Vec::with_capacity(u.grants.len());
        for g in u.grants {
            let kind = match g.kind.as_str() {
                "topic" => ResourceKind::Topic,
                "group" => ResourceKind::Group,
                other => {
                    return Err(corrupt(format!(
                        "user {name:?}: unknown resource kind {other:?}"
                    )));
                }
            };
            let operations = Operations::parse(&g.operations)
                .map_err(|e| corrupt(format!("user {name:?}: {e}")))?;
            grants.push(Grant {
                resource: ResourcePattern {
                    kind,
                    name: g.name,
                    prefix: g.prefix,
                },
                operations,
            });
        }
        let scram = ScramSecrets::from_texts(u.scram_sha256.as_deref(), u.scram_sha512.as_deref())
            .map_err(|e| corrupt(format!("user {name:?}: {e}")))?;
        let id = state.fresh_id();
        let password_epoch = state.fresh_id();
        state.users.insert(
            name,
            User {
                id,
                password_epoch,
                password_hash: u.password_hash,
                scram,
                admin: u.admin,
                tokens: u.token_digests.into_iter().collect(),
                grants,
            },
        );
    }
    state.reindex();
    Ok(state)
}

/// Writes the state atomically and durably.
pub fn save(data_dir: &Path, state: &State) -> Result<(), StoreError> {
    let file = FileState {
        version: FORMAT_VERSION,
        users: state
            .users
            .iter()
            .map(|(name, u)| {
                let (scram_sha256, scram_sha512) = ScramSecrets::to_texts(u.scram.as_ref());
                let user = FileUser {
                    password_hash: u.password_hash.clone(),
                    scram_sha256,
                    scram_sha512,
                    admin: u.admin,
                    token_digests: u.tokens.iter().cloned().collect(),
                    grants: u
                        .grants
                        .iter()
                        .map(|g| FileGrant {
                            kind: g.resource.kind.name().to_owned(),
                            name: g.resource.name.clone(),
                            prefix: g.resource.prefix,
                            operations: g.operations.to_string(),
                        })
                        .collect(),
                };
                (name.clone(), user)
            })
            .collect(),
    };
    let final_path = path(data_dir);
    let tmp = data_dir.join(format!("{SECURITY_FILE}.tmp"));
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { op, path, source }
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Io {
        op: "encode",
        path: final_path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut f = create_private(&tmp).map_err(io("create", &tmp))?;
    f.write_all(&json).map_err(io("write", &tmp))?;
    fsio::sync_all(&f, &tmp).map_err(io("sync", &tmp))?;
    fs::rename(&tmp, &final_path).map_err(io("rename", &final_path))?;
    fsio::sync_dir(data_dir).map_err(|source| StoreError::NotDurable {
        path: data_dir.to_owned(),
        source,
    })?;
    Ok(())
}

/// Creates a new file only its owner may read: it holds hashes. A stale
/// file left at `path` (by a crash, maybe with wider permissions, which
/// `mode` would not change) is removed first, and the mode is set again on
/// the open file whatever the umask did.
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Warns when others than the owner may read or write the file.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the security file is readable or writable by group or others; it holds password hashes: chmod 600 it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::hash_password;

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().users.is_empty());
        let mut state = State::default();
        let mut alice = User {
            password_hash: Some(hash_password("pw").unwrap()),
            ..User::default()
        };
        alice.tokens.insert("ab".repeat(32));
        crate::auth::acl::grant(
            &mut alice.grants,
            ResourcePattern {
                kind: ResourceKind::Group,
                name: "billing".into(),
                prefix: true,
            },
            Operations::parse("consume").unwrap(),
        );
        state.users.insert("alice".into(), alice);
        state.reindex();
        save(dir.path(), &state).unwrap();
        let back = load(dir.path()).unwrap();
        let a = &back.users["alice"];
        assert_eq!(a.grants, state.users["alice"].grants);
        assert_eq!(a.password_hash, state.users["alice"].password_hash);
        assert_eq!(
            back.token_owners.get(&"ab".repeat(32)).map(String::as_str),
            Some("alice")
        );
        let text = fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains("\"pw\""));
    }

    #[test]
    fn a_stale_temp_file_with_wide_permissions_does_not_leak_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(format!("{SECURITY_FILE}.tmp"));
        fs::write(&tmp, b"stale").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        save(dir.path(), &State::default()).unwrap();
        let mode = fs::metadata(path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), b"{ not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("security.json") && err.contains("corrupt"),
            "{err}"
        );
    }
}
