//! The daemon's side of the log directories: making them (root's logs
//! directory 0711, each session's owned by its owner, 0700), the
//! `pipe-pane` command that taps a pane into its logger, and removal.
//!
//! Everything below `<logs dir>/<id>/` is the owner's: the daemon creates
//! and `lchown`s the directory itself (in a directory only root writes, so
//! the name cannot be swapped), and never follows anything inside it.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::args::{pipe_command, LogArgs, Program};
use crate::config::Config;
use crate::tmux::Cmd;

/// Mode of the logs directory (and the state directory above it when the
/// daemon is root): owners pass through to their own log, cannot list.
pub const TRAVERSE_MODE: u32 = 0o711;
/// Mode of a session's log directory.
pub const SESSION_DIR_MODE: u32 = 0o700;

/// Creates the logs directory (root's, 0711; 0700 for a daemon that is not
/// root) and, when it is the default `<state_dir>/logs`, lets owners pass
/// through the state directory (it holds only 0600 files).
pub fn prepare_root(config: &Config) -> io::Result<PathBuf> {
    let dir = config.logs_dir();
    let me = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let root = me == 0;
    if root && config.logs.dir.is_none() {
        let state = config.state_dir();
        let meta = std::fs::symlink_metadata(&state)?;
        if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o011 != 0o011 {
            let mode = (meta.mode() & 0o7777) | 0o011;
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode))?;
        }
    }
    if let Some(parent) = dir.parent() {
        // Missing parents are made passable for the owners (their loggers
        // reach their own log through them).
        use std::os::unix::fs::DirBuilderExt;
        let mode = if root { TRAVERSE_MODE } else { 0o700 };
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(parent)?;
    }
    crate::dirs::ensure_owned(&dir, me, gid, if root { TRAVERSE_MODE } else { 0o700 })?;
    Ok(dir)
}

/// Makes a session's log directory `dir` for `uid`:`gid`. `fresh`: a new
/// session, which must not continue someone's old log, so a directory left
/// there is removed first; otherwise (adoption) an existing directory of
/// the same owner is kept, one of another owner refused.
pub fn prepare_session(dir: &Path, uid: u32, gid: u32, fresh: bool) -> io::Result<()> {
    if fresh {
        remove(dir)?;
    }
    crate::dirs::ensure_owned(dir, uid, gid, SESSION_DIR_MODE)
}

/// Removes a log directory and everything in it; a missing one is fine.
/// `std::fs::remove_dir_all` does not follow symlinks inside, and since
/// Rust 1.58 (CVE-2022-21658) works on directory fds with `O_NOFOLLOW`, so
/// an owner swapping a subdirectory for a link mid-removal cannot make
/// root delete anything outside.
pub fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.is_dir() => std::fs::remove_file(dir),
        Ok(_) => match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
    }
}

/// `pipe-pane -O -t TARGET 'exec EXE [__log] --dir DIR --cap N [--adopted]'`.
pub fn pipe_pane(exe: &Program, target: &str, args: &LogArgs) -> Result<Cmd, String> {
    let line = pipe_command(exe, args).ok_or_else(|| {
        format!(
            "the logger's command line ({} {}) holds a control character or is not UTF-8",
            exe.path.display(),
            args.dir.display()
        )
    })?;
    Ok(Cmd::new("pipe-pane").flag("-O").opt("-t", target).arg(line))
}

/// The logger's arguments for session `id` under `config`.
pub fn log_args(config: &Config, id: &str, adopted: bool) -> LogArgs {
    LogArgs { dir: super::dir_of(config, id), cap: config.logs.max_bytes_per_session.0, adopted }
}
