//! Test users for the isolation tests, and ways to act as them.
//!
//! `ccmtest-a` and `ccmtest-b` (both also in the group `ccmtest-shared`) are
//! created on demand when the tests run as root; creating them is idempotent
//! and serialised by a lock file, so parallel tests and test binaries do not
//! race `useradd`. Not root: [`users_or_skip`] prints a SKIP line.
//!
//! Acting as a user never goes through the daemon's own code paths: any
//! command runs under `setpriv --reuid --regid --init-groups`
//! ([`TestUser::command`]); `super::caller` runs the real CLI that way.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::sysbox::skip;

/// The first test user.
pub const USER_A: &str = "ccmtest-a";
/// The second test user.
pub const USER_B: &str = "ccmtest-b";
/// A group both test users are in (a supplementary group of each).
pub const SHARED_GROUP: &str = "ccmtest-shared";
/// Serialises user creation across test binaries running at once.
const LOCK_FILE: &str = "/tmp/ccmtest-users.lock";
/// PATH for commands run as a test user: root's PATH may name directories
/// they cannot read (e.g. /root/.pyenv/shims).
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A local user the tests may act as.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Both test users and their shared group.
#[derive(Debug, Clone)]
pub struct Users {
    pub a: TestUser,
    pub b: TestUser,
    pub shared_gid: u32,
}

/// The test users (created if missing), or `None` after printing
/// `SKIP <test>: ...` when not running as root.
pub fn users_or_skip(test: &str) -> Option<Users> {
    if !nix::unistd::geteuid().is_root() {
        skip(test, "needs root (creates test users and acts as them)");
        return None;
    }
    static USERS: OnceLock<Users> = OnceLock::new();
    Some(USERS.get_or_init(create_users).clone())
}

fn create_users() -> Users {
    let lock = std::fs::File::create(LOCK_FILE).expect("create the user lock file");
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the user lock file");
    run_root("groupadd", &["--force", SHARED_GROUP]);
    for name in [USER_A, USER_B] {
        if nix::unistd::User::from_name(name).expect("getpwnam").is_none() {
            run_root("useradd", &["--create-home", "--shell", "/bin/bash", name]);
        }
        run_root("usermod", &["--append", "--groups", SHARED_GROUP, name]);
    }
    let shared = nix::unistd::Group::from_name(SHARED_GROUP).expect("getgrnam").expect("group");
    Users { a: user(USER_A), b: user(USER_B), shared_gid: shared.gid.as_raw() }
}

fn user(name: &'static str) -> TestUser {
    let u = nix::unistd::User::from_name(name).expect("getpwnam").expect("user just created");
    TestUser { name, uid: u.uid.as_raw(), gid: u.gid.as_raw(), home: u.dir }
}

fn run_root(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl TestUser {
    /// `program` to be run as this user: its uid, gid and supplementary
    /// groups (`setpriv --init-groups`), a minimal environment, stdin null.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", USER_PATH)
            .env("HOME", &self.home)
            .env("USER", self.name)
            .env("LOGNAME", self.name)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        c
    }

    /// `sh -c script` as this user, waited for.
    pub fn sh(&self, script: &str) -> std::process::Output {
        self.command("/bin/sh").arg("-c").arg(script).output().expect("run sh as a test user")
    }

    /// A fresh directory in /tmp owned by this user (mode 0755: the test,
    /// as root, reads what the user's programs write there).
    pub fn scratch_dir(&self) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("ccm-iso-").tempdir_in("/tmp").expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch dir");
        nix::unistd::chown(
            dir.path(),
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .expect("chown scratch dir");
        dir
    }
}
