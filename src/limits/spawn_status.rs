//! The exec-wrapper's status pipe: how the daemon learns whether a pane's
//! program really started, so that a bad cwd or a missing program fails the
//! create (with the reason) instead of leaving a session that exits 126/127.
//!
//! The daemon creates a FIFO ([`create_fifo`], mode 0600, owned by the session
//! uid, in a directory only it writes and the owner can traverse), opens its
//! read end ([`StatusPipe::open`]) BEFORE tmux starts the pane, passes the
//! path as `--status`, and then awaits [`StatusPipe::wait`]. The wrapper, as
//! the session owner, opens the write end (close-on-exec) and writes:
//!
//! ```text
//! STARTED                      at once, before any setup
//! EXECUTING <pid> "\n"          the program's process, right before its execvp,
//!                              after rlimits, scope, cwd, env
//! "<what>: <detail>\n"         on any failure (what = rlimit|scope|cwd|exec|setup)
//! ```
//! Success is `STARTED EXECUTING <pid>\n` then EOF: the exec closed the
//! program's copy of the pipe, and the wrapper closed its own right after
//! forking the program. The EXECUTING byte is there because a wrapper killed
//! during its setup closes the pipe just as an exec does; without it that
//! death would read as a success. (A kill between EXECUTING and the exec
//! still does; the pane's exit status tells then, as for any program that
//! dies early.) The pid is the program's (the wrapper stays as its parent,
//! see [`super::wrapper`]); a bare EXECUTING (an older wrapper) is a success
//! without one.
//!
//! Linux FIFO semantics shape the reader: a read end opened O_NONBLOCK reads
//! 0 bytes, and polls as neither readable nor hung up, as long as no writer
//! has ever opened the FIFO (`pipe_poll` compares the writer counter seen at
//! open). So the wait sleeps in epoll (tokio's [`AsyncFd`]) until the wrapper
//! comes, and "no wrapper yet" is a timeout, never an early EOF.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::unistd::{fchown, geteuid, mkfifo, Gid, Uid};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// First byte the wrapper writes: it has opened the pipe.
pub const STARTED: u8 = b'+';
/// Byte the program's process writes right before execvp, followed by its
/// pid and a newline ([`executing_line`]); EOF after it means the exec worked.
pub const EXECUTING: u8 = b'!';
/// The most the daemon reads from one wrapper (bytes). Also below PIPE_BUF,
/// so the wrapper's one write of a report is atomic.
pub const MAX_REPORT: usize = 4096;
/// How long [`StatusPipe::wait`] should be given: longer than the wrapper's
/// own scope wait, so a slow scope reports the wrapper's clear error rather
/// than the daemon's timeout. The daemon places the pane in its scope while it
/// waits (the wrapper cannot exec before that).
pub const WAIT: Duration = Duration::from_secs(SCOPE_WAIT.as_secs() + 5);
/// How long the wrapper waits to be placed in its scope (defined here, with
/// the rest of what wrapper and daemon agree on).
pub const SCOPE_WAIT: Duration = Duration::from_secs(10);
/// The FIFO's mode: the session owner alone may open it.
const FIFO_MODE: u32 = 0o600;

/// The wrapper's step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Setting an rlimit (e.g. above the hard limit of an unprivileged owner).
    Rlimit,
    /// Waiting to be placed in the systemd scope.
    Scope,
    /// Changing to the session's directory.
    Cwd,
    /// execvp of the program.
    Exec,
    /// Anything else: the command line, the passwd entry, the environment.
    Setup,
}

impl Stage {
    const ALL: [Stage; 5] = [Stage::Rlimit, Stage::Scope, Stage::Cwd, Stage::Exec, Stage::Setup];

    /// The name on the pipe.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Rlimit => "rlimit",
            Stage::Scope => "scope",
            Stage::Cwd => "cwd",
            Stage::Exec => "exec",
            Stage::Setup => "setup",
        }
    }

    fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a pane's program did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnFailure {
    /// The wrapper reported it, e.g. `cwd: /root/x: Permission denied`.
    #[error("{what}: {detail}")]
    Failed {
        /// The step that failed.
        what: Stage,
        /// The wrapper's words: the directory, program or limit, and the reason.
        detail: String,
    },
    /// The wrapper opened the pipe and went away before exec (killed, crashed).
    #[error("the exec-wrapper exited before it started")]
    ExitedEarly,
    /// Nothing conclusive within the given time (the wrapper may never have run).
    #[error("the exec-wrapper did not start the program within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The pipe held something the wrapper does not write.
    #[error("the exec-wrapper's status pipe held {0:?}")]
    Garbled(String),
    /// Reading the pipe failed.
    #[error("reading the exec-wrapper's status pipe: {0}")]
    Io(#[from] io::Error),
}

impl SpawnFailure {
    /// The wrapper's step, when the wrapper reported one.
    pub fn what(&self) -> Option<Stage> {
        match self {
            SpawnFailure::Failed { what, .. } => Some(*what),
            _ => None,
        }
    }

    /// Whether the request is to blame (its cwd, program or limits), so the
    /// daemon answers "invalid params" rather than an internal error.
    pub fn is_request_error(&self) -> bool {
        matches!(self.what(), Some(Stage::Cwd | Stage::Exec | Stage::Rlimit))
    }
}

/// The report line the wrapper writes, bounded so that it fits in one atomic
/// write after [`STARTED`] and [`executing_line`] (cut at a character boundary).
pub fn report_line(what: Stage, detail: &str) -> Vec<u8> {
    let mut line = format!("{what}: {detail}");
    let max = MAX_REPORT - 16; // STARTED, EXECUTING, a pid, 2 '\n'
    if line.len() > max {
        let mut cut = max;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line.push('\n');
    line.into_bytes()
}

/// What the program's process writes right before its exec: [`EXECUTING`],
/// its pid, a newline (one write, far below PIPE_BUF).
pub fn executing_line(pid: u32) -> Vec<u8> {
    let mut line = vec![EXECUTING];
    line.extend_from_slice(pid.to_string().as_bytes());
    line.push(b'\n');
    line
}

/// A program the wrapper started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The program's pid, as the wrapper reported it (a claim of the
    /// session's owner: check it before signalling it); `None` from an
    /// older wrapper, whose program has the pane's own pid.
    pub pid: Option<u32>,
}

/// Reads what the wrapper wrote, up to EOF; see the module docs.
fn interpret(bytes: &[u8]) -> Result<Started, SpawnFailure> {
    let garbled = || SpawnFailure::Garbled(String::from_utf8_lossy(bytes).into_owned());
    let rest = match bytes.split_first() {
        None => return Err(SpawnFailure::ExitedEarly),
        Some((&STARTED, rest)) => rest,
        Some(_) => return Err(garbled()),
    };
    let (executing, mut report) = match rest.split_first() {
        Some((&EXECUTING, report)) => (true, report),
        _ => (false, rest),
    };
    let mut pid = None;
    if executing {
        let digits = report.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(b'\n') = report.get(digits) {
            pid = std::str::from_utf8(&report[..digits]).ok().and_then(|d| d.parse().ok());
            report = &report[digits + 1..];
        }
    }
    if report.is_empty() {
        return if executing { Ok(Started { pid }) } else { Err(SpawnFailure::ExitedEarly) };
    }
    let text = String::from_utf8_lossy(report);
    let line = text.lines().next().unwrap_or_default();
    let (what, detail) = line.split_once(": ").ok_or_else(garbled)?;
    let what = Stage::from_name(what).ok_or_else(garbled)?;
    Err(SpawnFailure::Failed { what, detail: detail.to_string() })
}

fn named(path: &Path, e: impl Into<io::Error>) -> io::Error {
    let e = e.into();
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn open_read_end(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| named(path, e))?;
    let st = fstat(&fd).map_err(|e| named(path, e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFIFO {
        return Err(named(path, io::Error::other("not a FIFO")));
    }
    Ok(fd)
}

/// Creates the FIFO (mode 0600) and gives it to `uid`/`gid`. Never follows a
/// symlink; replaces only a FIFO left behind for the same owner (a daemon
/// that died mid-spawn) and refuses anything else at `path`.
pub fn create_fifo(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(FIFO_MODE);
    match mkfifo(path, mode) {
        Err(Errno::EEXIST) => {
            let old = std::fs::symlink_metadata(path).map_err(|e| named(path, e))?;
            let ours =
                [uid, geteuid().as_raw()].contains(&std::os::unix::fs::MetadataExt::uid(&old));
            if !old.file_type().is_fifo() || !ours {
                return Err(named(path, io::Error::from(io::ErrorKind::AlreadyExists)));
            }
            std::fs::remove_file(path).map_err(|e| named(path, e))?;
            mkfifo(path, mode).map_err(|e| named(path, e))?;
        }
        r => r.map_err(|e| named(path, e))?,
    }
    // Mode and owner through a descriptor of what we just made: the umask may
    // have taken bits, and a path could be swapped between the calls.
    let fd = open_read_end(path)?;
    let st = fstat(&fd).map_err(|e| named(path, e))?;
    if st.st_uid != geteuid().as_raw() || st.st_nlink != 1 {
        return Err(named(path, io::Error::other("replaced while being created")));
    }
    fchmod(&fd, mode).map_err(|e| named(path, e))?;
    fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(|e| named(path, e))
}

/// The read end of a status FIFO. Open it before the pane starts; the FIFO is
/// unlinked when this is dropped (after [`StatusPipe::wait`], or on cancel),
/// so a wrapper that comes later fails to open it and never runs its program.
#[derive(Debug)]
pub struct StatusPipe {
    fd: AsyncFd<OwnedFd>,
    path: PathBuf,
}

impl StatusPipe {
    /// Opens the read end (O_RDONLY|O_NONBLOCK|O_CLOEXEC, never following a
    /// symlink) and registers it with the tokio reactor (call inside a runtime).
    pub fn open(path: &Path) -> io::Result<StatusPipe> {
        let fd = open_read_end(path)?;
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the
        // same descriptor) until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| named(path, io::Error::from(e)))?;
        Ok(StatusPipe { fd, path: path.to_path_buf() })
    }

    /// The FIFO's path (for `--status`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`Started`] once the wrapper has exec'd the program; otherwise the
    /// wrapper's report, [`SpawnFailure::ExitedEarly`], or
    /// [`SpawnFailure::TimedOut`] after `timeout` (see [`WAIT`]).
    pub async fn wait(self, timeout: Duration) -> Result<Started, SpawnFailure> {
        match tokio::time::timeout(timeout, self.read_to_eof()).await {
            Ok(read) => interpret(&read?),
            Err(_) => Err(SpawnFailure::TimedOut(timeout)),
        }
    }

    /// Everything up to EOF, at most [`MAX_REPORT`] bytes (a writer that goes
    /// on past that is cut off: only the first line matters).
    async fn read_to_eof(&self) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; MAX_REPORT];
        loop {
            let mut ready = self.fd.readable().await?;
            let read = ready.try_io(|fd| {
                let room = MAX_REPORT - got.len();
                Ok(nix::unistd::read(fd.get_ref().as_fd(), &mut buf[..room])?)
            });
            match read {
                Ok(Ok(0)) => return Ok(got),
                Ok(Ok(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() == MAX_REPORT {
                        return Ok(got);
                    }
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(named(&self.path, e)),
                // Not readable after all: try_io cleared the readiness; wait again.
                Err(_would_block) => {}
            }
        }
    }
}

impl Drop for StatusPipe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn failed(what: Stage, detail: &str) -> String {
        SpawnFailure::Failed { what, detail: detail.into() }.to_string()
    }

    #[test]
    fn the_wrapper_protocol_reads_back() {
        assert_eq!(interpret(b"+!").unwrap(), Started { pid: None }, "an older wrapper");
        let mut started = b"+".to_vec();
        started.extend(executing_line(4242));
        assert_eq!(interpret(&started).unwrap(), Started { pid: Some(4242) });
        started.extend(report_line(Stage::Exec, "x: No such file or directory"));
        assert_eq!(
            interpret(&started).unwrap_err().to_string(),
            "exec: x: No such file or directory"
        );
        assert!(matches!(interpret(b""), Err(SpawnFailure::ExitedEarly)));
        assert!(matches!(interpret(b"+"), Err(SpawnFailure::ExitedEarly)));
        let mut cwd = b"+".to_vec();
        cwd.extend(report_line(Stage::Cwd, "/root/x: Permission denied"));
        let e = interpret(&cwd).unwrap_err();
        assert_eq!(e.to_string(), "cwd: /root/x: Permission denied");
        assert!(e.is_request_error());
        let mut exec = b"+!".to_vec();
        exec.extend(report_line(Stage::Exec, "nosuchprog: No such file or directory"));
        assert_eq!(interpret(&exec).unwrap_err().what(), Some(Stage::Exec));
        assert!(matches!(interpret(b"x"), Err(SpawnFailure::Garbled(_))));
        assert!(matches!(interpret(b"+frob: x\n"), Err(SpawnFailure::Garbled(_))));
        assert!(matches!(interpret(b"+no separator"), Err(SpawnFailure::Garbled(_))));
        assert_eq!(failed(Stage::Scope, "x"), "scope: x");
        let timeout = SpawnFailure::TimedOut(Duration::from_millis(300)).to_string();
        assert_eq!(timeout, "the exec-wrapper did not start the program within 300ms");
    }

    #[test]
    fn long_reports_are_cut_to_fit_one_write() {
        let line = report_line(Stage::Exec, &"é".repeat(MAX_REPORT));
        assert!(line.len() + 1 + executing_line(u32::MAX).len() <= MAX_REPORT, "{}", line.len());
        assert!(std::str::from_utf8(&line).is_ok());
        assert!(line.ends_with(b"\n"));
    }

    #[test]
    fn fifo_is_0600_and_refuses_what_is_not_a_leftover_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let fifo = dir.path().join("s1");
        create_fifo(&fifo, uid, gid).unwrap();
        let meta = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        // A leftover FIFO of ours is replaced.
        create_fifo(&fifo, uid, gid).unwrap();

        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = create_fifo(&file, uid, gid).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("file"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(create_fifo(&link, uid, gid).is_err());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        // The read end never follows a symlink either.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            assert!(StatusPipe::open(&link).is_err());
            assert!(StatusPipe::open(&file).is_err());
        });
    }
}
