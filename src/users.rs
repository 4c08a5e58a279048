//! Accounts from the passwd and group databases: who a session runs as, and
//! what its program gets from that (uid, gid, supplementary groups, home,
//! shell). Knows nothing of sessions or tmux; everything above uses it.

use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A user as a request names it: a login name or a numeric uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum UserSpec {
    /// A uid, e.g. `1000`.
    Uid(u32),
    /// A login name, e.g. `"alice"`.
    Name(String),
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSpec::Uid(uid) => write!(f, "uid {uid}"),
            UserSpec::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// Why an account could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// No passwd entry.
    #[error("no such user: {0}")]
    NotFound(String),
    /// The databases could not be read.
    #[error("cannot look up {what}: {error}")]
    Lookup {
        /// What was looked up.
        what: String,
        /// The system's error.
        error: String,
    },
}

/// One passwd entry with its groups: everything a session's program gets
/// from its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Login name.
    pub name: String,
    /// Home directory (`HOME`, and the default cwd).
    pub home: PathBuf,
    /// Login shell (`SHELL`).
    pub shell: PathBuf,
    /// Supplementary groups (including the primary one), as `initgroups`
    /// would set them.
    pub groups: Vec<u32>,
}

impl Account {
    /// The account of `uid`.
    pub fn by_uid(uid: u32) -> Result<Account, AccountError> {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map_err(|e| AccountError::Lookup { what: format!("uid {uid}"), error: e.to_string() })?
            .ok_or_else(|| AccountError::NotFound(format!("uid {uid} has no passwd entry")))?;
        Self::from_user(user)
    }

    /// The account named `name`.
    pub fn by_name(name: &str) -> Result<Account, AccountError> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| AccountError::Lookup { what: format!("{name:?}"), error: e.to_string() })?
            .ok_or_else(|| AccountError::NotFound(format!("{name:?}")))?;
        Self::from_user(user)
    }

    /// The account a [`UserSpec`] names.
    pub fn lookup(spec: &UserSpec) -> Result<Account, AccountError> {
        match spec {
            UserSpec::Uid(uid) => Self::by_uid(*uid),
            UserSpec::Name(name) => Self::by_name(name),
        }
    }

    /// The account this process runs as (by effective uid).
    pub fn current() -> Result<Account, AccountError> {
        Self::by_uid(nix::unistd::geteuid().as_raw())
    }

    fn from_user(user: nix::unistd::User) -> Result<Account, AccountError> {
        let groups = CString::new(user.name.as_bytes())
            .ok()
            .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
            .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![user.gid.as_raw()]);
        Ok(Account {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name,
            home: user.dir,
            shell: user.shell,
            groups,
        })
    }

    /// Whether this is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_by_name_and_uid() {
        let by_uid = Account::by_uid(0).unwrap();
        assert_eq!(by_uid.name, "root");
        assert!(by_uid.groups.contains(&0));
        assert_eq!(Account::lookup(&UserSpec::Name("root".into())).unwrap(), by_uid);
        assert!(by_uid.is_root());
    }

    #[test]
    fn unknown_users_are_named_in_the_error() {
        let e = Account::by_name("no-such-user-ccm").unwrap_err();
        assert!(e.to_string().contains("no-such-user-ccm"), "{e}");
        let e = Account::by_uid(3_999_999_999).unwrap_err();
        assert!(e.to_string().contains("3999999999"), "{e}");
    }

    #[test]
    fn specs_decode_from_names_and_numbers() {
        let spec: UserSpec = serde_json::from_str("1000").unwrap();
        assert_eq!(spec, UserSpec::Uid(1000));
        let spec: UserSpec = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(spec, UserSpec::Name("alice".into()));
        assert!(serde_json::from_str::<UserSpec>("-1").is_err());
    }
}
