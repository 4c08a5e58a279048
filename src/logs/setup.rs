//! The daemon's side of the log directories: making them (root's logs
//! directory 0711, each session's owned by its owner, 0700), the
//! `pipe-pane` command that taps a pane into its logger, and removal.
//!
//! Everything below `<logs dir>/<id>/` is the owner's: the daemon creates
//! and `lchown`s the directory itself (in a directory only root writes, so
//! the name cannot be swapped), and never follows anything inside it.

use std::io;
use std::os::unix::ffi::OsStrExt;
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

/// Deepest level of subdirectories [`remove`] descends into. The logger
/// makes none: anything below a log directory is its owner's planting, and
/// a tree deeper than this is refused (left in place, with an error naming
/// it). `std::fs::remove_dir_all` recurses once per level without bound: a
/// planted tree of 15,000 levels overflowed a 2 MiB thread stack and
/// aborted the whole daemon (found in review, reproduced).
pub const MAX_REMOVE_DEPTH: usize = 16;
/// Names unlinked per directory listing in [`remove`] (a listing is read
/// again after each batch, so no list of every name is ever held).
const REMOVE_BATCH: usize = 4096;
/// Most batches per directory: an owner creating files as fast as they are
/// removed cannot keep a removal going for ever.
const MAX_REMOVE_BATCHES: usize = 1024;

/// Removes a log directory and everything in it; a missing one is fine.
/// Written by hand for its bounds (see [`MAX_REMOVE_DEPTH`]): everything is
/// reached through directory fds opened `O_NOFOLLOW` and removed with
/// `unlinkat`, so an owner swapping a subdirectory for a link mid-removal
/// cannot make root delete anything outside; at most [`MAX_REMOVE_DEPTH`]
/// directory fds are open at once. Blocking: call it off the async threads.
pub fn remove(dir: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return std::fs::remove_file(dir),
        Ok(_) => {}
    }
    let fd = open_dir(CWD, dir)?;
    empty_dir(&fd, dir, 0)?;
    drop(fd);
    match rustix::fs::unlinkat(CWD, dir, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", dir.display()))),
    }
}

fn open_dir<Fd: std::os::fd::AsFd, P: rustix::path::Arg>(
    at: Fd,
    path: P,
) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(at, path, flags, Mode::empty())?)
}

/// Unlinks everything in the directory `fd` (`path`, for messages),
/// descending at most [`MAX_REMOVE_DEPTH`] levels.
fn empty_dir(fd: &std::os::fd::OwnedFd, path: &Path, depth: usize) -> io::Result<()> {
    use rustix::fs::AtFlags;
    use rustix::io::Errno;
    for _ in 0..MAX_REMOVE_BATCHES {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(fd)?.take(REMOVE_BATCH + 2) {
            let name = entry?.file_name().to_owned();
            if name.as_bytes() != b"." && name.as_bytes() != b".." {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        for name in names {
            match rustix::fs::unlinkat(fd, &name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) | Err(Errno::PERM) => {
                    let shown = path.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
                    if depth >= MAX_REMOVE_DEPTH {
                        return Err(io::Error::other(format!(
                            "{}: directories nested deeper than {MAX_REMOVE_DEPTH} levels in a log directory (not the logger's); left in place",
                            shown.display()
                        )));
                    }
                    let sub = open_dir(fd, &name)?;
                    empty_dir(&sub, &shown, depth + 1)?;
                    drop(sub);
                    match rustix::fs::unlinkat(fd, &name, AtFlags::REMOVEDIR) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Err(io::Error::other(format!(
        "{}: still not empty after {MAX_REMOVE_BATCHES} rounds of {REMOVE_BATCH} removals; left for the next pass",
        path.display()
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_is_bounded_in_depth_and_never_follows_links() {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        // A tree as deep as allowed, with files, a link out and a FIFO.
        let log = base.path().join("log");
        let mut d = log.clone();
        for i in 0..=MAX_REMOVE_DEPTH {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("{i:020}.log")), b"bytes").unwrap();
            std::os::unix::fs::symlink(&outside, d.join("link")).unwrap();
            d = d.join("d");
        }
        nix::unistd::mkfifo(&log.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        remove(&log).unwrap();
        assert!(!log.exists());
        assert!(outside.join("keep").exists(), "a link was followed");
        // One level deeper than allowed: refused, left in place, no crash.
        let deep = base.path().join("deep");
        let mut d = deep.clone();
        for _ in 0..MAX_REMOVE_DEPTH + 2 {
            d = d.join("d");
        }
        std::fs::create_dir_all(&d).unwrap();
        let e = remove(&deep).unwrap_err().to_string();
        assert!(e.contains("deeper than 16 levels"), "{e}");
        assert!(deep.exists());
        remove(&base.path().join("missing")).unwrap();
    }
}
