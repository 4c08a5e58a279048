//! The exec-wrapper: `ccmanagerd __exec [--rlimit NAME=VALUE]... [--wait-scope UNIT]
//! [--cwd DIR] [--status FIFO] -- ARGV...` (command line: [`super::exec_args`]).
//!
//! tmux forks every pane from its server, which runs as the session's owner,
//! so limits set in the daemon never reach the session's program. Each pane
//! therefore runs this small mode of the daemon's own binary: single-threaded,
//! no runtime. In order, it
//! 1. takes the request's environment (`CCMANAGERD_ENV_*`) and the daemon's
//!    private variables out of its own environment, all at once;
//! 2. opens the `--status` FIFO and says it started ([`super::spawn_status`]);
//! 3. waits (bounded) until the daemon has moved it into its systemd scope,
//!    in every hierarchy that enforces one of its caps;
//! 4. sets HOME, USER, LOGNAME and SHELL from the passwd entry of its uid;
//! 5. changes to `--cwd`, or to the passwd home, as the owner (the daemon, as
//!    root, could not tell what the owner may enter; and tmux's own `-c`
//!    format-expands `#(...)`);
//! 6. becomes the subreaper of what it starts, blocks the signals it will
//!    forward, and forks the program's process, which
//!    - sets the rlimits (on itself only: the wrapper, which stays, keeps
//!      its own, so a small `as` or `nproc` cannot make it fail),
//!    - makes itself a process group and the terminal's foreground group
//!      (so Ctrl-C, Ctrl-Z and SIGWINCH from the terminal reach it, and a
//!      shell inside has job control), restores the signal mask,
//!    - applies the request's environment, which may override step 4,
//!    - reports its pid and execvp's the argv (never through a shell);
//! 7. stays as the program's parent ([`super::reaper`]): it forwards signals,
//!    ends the descendants the program leaves, waits until tmux has read the
//!    program's last output, and exits with the program's status.
//!
//! So tmux's `pane_pid` is the wrapper's pid; the program's is the one on the
//! status pipe, and what `session.get` reports.
//!
//! The request's variables reach the environment only in the program's
//! process, right before its exec: the dynamic loader read this process's
//! environment when the wrapper was exec'd, and saw only prefixed names, so a
//! request's `LD_PRELOAD` runs in the program alone, under its rlimits and in
//! its scope. Any failure is reported on the status pipe and on stderr, and
//! the wrapper exits 126 (127: program not found).

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::resource::setrlimit;
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::ForkResult;

use super::exec_args::{self, request_var};
use super::spawn_status::{executing_line, report_line, Stage, STARTED};

pub use super::exec_args::{rlimit_args, MODE};

pub use super::spawn_status::SCOPE_WAIT;
/// Poll interval while waiting for the scope.
const SCOPE_POLL: Duration = Duration::from_millis(2);
/// Exit code when the wrapper itself fails (like a shell's "cannot execute").
const EXIT_SETUP_FAILED: i32 = 126;
/// Exit code when the program cannot be found.
const EXIT_NOT_FOUND: i32 = 127;
/// SHELL when the passwd entry names none (as login(1) does).
const DEFAULT_SHELL: &str = "/bin/sh";

/// The wrapper's end of the status pipe (absent without `--status`).
struct Reporter {
    fd: Option<OwnedFd>,
}

impl Reporter {
    /// Opens the FIFO write-only, close-on-exec, and writes [`STARTED`]. Non-blocking
    /// open: with no reader (the daemon stopped waiting) it fails instead of hanging.
    fn open(path: &Path) -> Result<Reporter, String> {
        let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        let what = || format!("status pipe {}", path.display());
        let fd = nix::fcntl::open(path, flags, Mode::empty())
            .map_err(|e| format!("{}: {}", what(), e.desc()))?;
        let st = fstat(&fd).map_err(|e| format!("{}: {}", what(), e.desc()))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFIFO {
            return Err(format!("{}: not a FIFO", what()));
        }
        let reporter = Reporter { fd: Some(fd) };
        reporter.send(&[STARTED]).map_err(|e| format!("{}: {}", what(), e.desc()))?;
        Ok(reporter)
    }

    fn send(&self, bytes: &[u8]) -> Result<(), Errno> {
        let Some(fd) = &self.fd else { return Ok(()) };
        // Reports are below PIPE_BUF: one write, all or nothing. SIGPIPE is
        // ignored here (Rust's runtime), so a gone reader is EPIPE.
        loop {
            match nix::unistd::write(fd.as_fd(), bytes) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Reports `what: detail` (pipe and stderr) and exits.
    fn fail(&self, what: Stage, detail: &str, code: i32) -> ! {
        set_sigpipe(SigHandler::SigIgn); // after a failed exec it is back at the default
                                         // The pane shows this; the daemon reads the pipe's terser `what: detail`.
        let doing = match what {
            Stage::Exec => "cannot run ",
            Stage::Cwd => "cannot change to directory ",
            Stage::Rlimit | Stage::Scope | Stage::Setup => "",
        };
        eprintln!("ccmanagerd: {doing}{detail}");
        let _ = self.send(&report_line(what, detail));
        std::process::exit(code)
    }

    fn setup(&self, detail: &str) -> ! {
        self.fail(Stage::Setup, detail, EXIT_SETUP_FAILED)
    }
}

fn set_sigpipe(disposition: SigHandler) {
    // SAFETY: SIG_DFL and SIG_IGN run no handler code. It cannot fail for SIGPIPE.
    let _ = unsafe { signal(Signal::SIGPIPE, disposition) };
}

/// Removes the request's variables and [`crate::systemd::PRIVATE_ENV`] from
/// this process's environment, returning the request's, unprefixed.
fn take_request_env() -> Result<Vec<(OsString, OsString)>, String> {
    let mut request = Vec::new();
    let mut bad = None;
    for (name, value) in std::env::vars_os() {
        let Some(var) = request_var(&name) else { continue };
        if var.is_empty() {
            bad = Some(format!("{name:?} names no variable"));
        } else {
            request.push((var.to_os_string(), value));
        }
        // SAFETY: this mode is single-threaded.
        unsafe { std::env::remove_var(&name) };
    }
    for var in crate::systemd::PRIVATE_ENV {
        // SAFETY: as above.
        unsafe { std::env::remove_var(var) };
    }
    bad.map_or(Ok(request), Err)
}

fn wait_for_scope(unit: &str, controllers: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + SCOPE_WAIT;
    loop {
        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let missing = not_placed(&cg, unit, controllers);
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not placed in {unit} within {} (still outside it: {}); refusing to run uncapped",
                humantime::format_duration(SCOPE_WAIT),
                missing.join(", ")
            ));
        }
        std::thread::sleep(SCOPE_POLL);
    }
}

/// The hierarchies of `/proc/self/cgroup` text `cg` that do not show this
/// process in `unit` yet: systemd's own (`name=systemd` on a v1 host, else
/// the unified one) and those of `controllers`. Empty once placed.
///
/// On a v1 host systemd moves a pid one hierarchy at a time, its own first;
/// a wrapper that went on when that one showed the scope forked the program
/// before the `pids` hierarchy had moved, and the program ran uncapped (a
/// fork loop of 100 under `tasks_max=32`, once in a CI run). A controller
/// that no line names is the unified hierarchy's (cgroup v2), moved with it.
fn not_placed(cg: &str, unit: &str, controllers: &[String]) -> Vec<String> {
    let needle = format!("/{unit}");
    let nested = format!("{needle}/");
    let shows = |path: &str| path.ends_with(&needle) || path.contains(&nested);
    // hierarchy-id:controllers:path
    let lines: Vec<(&str, &str)> = cg
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            Some((f.next()?, f.next()?))
        })
        .collect();
    let own = match lines.iter().any(|(c, _)| *c == "name=systemd") {
        true => "name=systemd",
        false => "",
    };
    let mut missing = Vec::new();
    for (names, path) in &lines {
        let needed = *names == own || names.split(',').any(|n| controllers.iter().any(|c| c == n));
        if needed && !shows(path) {
            missing.push(if names.is_empty() { "unified".to_string() } else { names.to_string() });
        }
    }
    if !lines.iter().any(|(c, _)| *c == own) {
        missing.push(if own.is_empty() { "unified".into() } else { own.into() });
    }
    missing
}

/// What a viewer replaying the log needs reset before a new program's
/// output: the previous program may have left the alternate screen, a
/// colour, a hidden cursor, mouse reporting or bracketed paste on. A fresh
/// tmux pane has none of these, so here they only reach the log's readers.
const BANNER_RESET: &str =
    "\x1b[?1049l\x1b[0m\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l";

/// Prints the marker of a restart on the terminal, so it is in the pane and
/// in the session's log between the old program's output and the new's.
/// A failure to print is not worth failing the start for.
fn print_banner(text: &str) {
    use std::io::Write;
    let line = format!("{BANNER_RESET}\r\n[ccmanagerd] {text}\r\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
    let _ = std::io::stdout().lock().flush();
}

/// Runs the wrapper; `args` are the arguments after [`MODE`]. Never returns.
pub fn main(args: Vec<OsString>) -> ! {
    let request_env = take_request_env();
    let mut status = Reporter { fd: None };
    if let Some(path) = exec_args::status_path(&args) {
        status = Reporter::open(&path).unwrap_or_else(|e| status.setup(&e));
    }
    let spec = exec_args::parse(args).unwrap_or_else(|e| status.setup(&e.to_string()));
    let request_env = request_env.unwrap_or_else(|e| status.setup(&e));

    if let Some(unit) = &spec.scope {
        wait_for_scope(unit, &spec.controllers)
            .unwrap_or_else(|e| status.fail(Stage::Scope, &e, EXIT_SETUP_FAILED));
    }
    if let Some(text) = &spec.banner {
        print_banner(text);
    }

    let uid = nix::unistd::getuid();
    let user = match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user,
        Ok(None) => status.setup(&format!("uid {uid} has no passwd entry")),
        Err(e) => status.setup(&format!("cannot read the passwd entry of uid {uid}: {}", e.desc())),
    };
    let shell = match user.shell.as_os_str().is_empty() {
        true => DEFAULT_SHELL.as_ref(),
        false => user.shell.as_os_str(),
    };
    // SAFETY (every set_var/remove_var below): this mode is single-threaded.
    unsafe {
        std::env::set_var("HOME", &user.dir);
        std::env::set_var("USER", &user.name);
        std::env::set_var("LOGNAME", &user.name);
        std::env::set_var("SHELL", shell);
    }

    let dir = spec.cwd.as_deref().unwrap_or(&user.dir);
    if let Err(e) = nix::unistd::chdir(dir) {
        status.fail(Stage::Cwd, &format!("{}: {}", dir.display(), e.desc()), EXIT_SETUP_FAILED);
    }

    let terminal = super::reaper::leads_a_terminal();
    let mut old_mask = SigSet::empty();
    if let Err(e) =
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&super::reaper::blocked_set()), Some(&mut old_mask))
    {
        status.setup(&format!("cannot block signals: {}", e.desc()));
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        status.setup(&format!("cannot become a subreaper: {}", e.desc()));
    }
    // SAFETY: this process is single-threaded, so the child may allocate and
    // use the environment until its exec.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => run_program(status, &spec, request_env, &old_mask),
        Ok(ForkResult::Parent { child }) => {
            // Also here, so the group exists whichever runs first (as shells do).
            let _ = nix::unistd::setpgid(child, child);
            // The program's copy of the pipe closes on its exec; EOF needs ours gone too.
            drop(status);
            super::reaper::supervise(child, terminal)
        }
        Err(e) => {
            let stage = if e == Errno::EAGAIN { Stage::Rlimit } else { Stage::Setup };
            status.fail(
                stage,
                &format!("cannot start the program: fork: {}", e.desc()),
                EXIT_SETUP_FAILED,
            )
        }
    }
}

/// Sets the rlimits on this process (the program's: the wrapper keeps its
/// own, so that a small `as` or `nproc` cannot make it fail while it waits).
fn set_rlimits(status: &Reporter, rlimits: &[super::exec_args::RlimitArg]) {
    for r in rlimits {
        if let Err(e) = setrlimit(r.resource, r.value, r.value) {
            let value = if r.value == nix::sys::resource::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                r.value.to_string()
            };
            let detail = format!("cannot set {} to {value}: {}", r.name, e.desc());
            status.fail(Stage::Rlimit, &detail, EXIT_SETUP_FAILED);
        }
    }
}

/// The program's process, between the fork and its exec.
fn run_program(
    status: Reporter,
    spec: &exec_args::Spec,
    request_env: Vec<(OsString, OsString)>,
    old_mask: &SigSet,
) -> ! {
    let argv = &spec.argv;
    set_rlimits(&status, &spec.rlimits);
    let me = nix::unistd::getpid();
    let _ = nix::unistd::setpgid(me, me);
    // The foreground group of the pane's terminal, if there is one (SIGTTOU,
    // which a background group gets for this, is blocked here).
    for fd in 0..=2 {
        // SAFETY: a standard descriptor, open (or not: then isatty says no)
        // for the length of these calls.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if nix::unistd::isatty(fd).unwrap_or(false) {
            let _ = nix::unistd::tcsetpgrp(fd, me);
            break;
        }
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None) {
        status.setup(&format!("cannot restore the signal mask: {}", e.desc()));
    }
    for (name, value) in request_env {
        // SAFETY: single-threaded (see the fork).
        unsafe { std::env::set_var(name, value) };
    }
    if let Err(e) = status.send(&executing_line(me.as_raw() as u32)) {
        // The daemon stopped waiting (and will not keep the session): do not start it.
        status.setup(&format!("the status pipe is gone ({}); not starting", e.desc()));
    }
    // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored
    // across exec: the program gets the default back (`yes | head` must end).
    set_sigpipe(SigHandler::SigDfl);

    let program = &argv[0];
    let err = nix::unistd::execvp(program, argv).unwrap_err();
    let code = if err == Errno::ENOENT { EXIT_NOT_FOUND } else { EXIT_SETUP_FAILED };
    status.fail(Stage::Exec, &format!("{}: {}", program.to_string_lossy(), err.desc()), code)
}

#[cfg(test)]
mod tests {
    use super::not_placed;

    const UNIT: &str = "ccmanager-sess-a.scope";

    fn caps(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_v1_host_waits_for_every_capping_hierarchy() {
        let s = "/ccmanager.slice/ccmanager-sess-a.scope";
        // systemd's own hierarchy moved, pids not yet: not placed.
        let half = format!("9:name=systemd:{s}\n8:pids:/t.service\n4:memory:{s}\n1:cpu:/\n0::/\n");
        assert_eq!(not_placed(&half, UNIT, &caps(&["pids", "memory"])), ["pids"]);
        // cpu is not among the caps, and the unified line is not systemd's here.
        let all = format!("9:name=systemd:{s}\n8:pids:{s}\n4:memory:{s}\n1:cpu:/\n0::/\n");
        assert!(not_placed(&all, UNIT, &caps(&["pids", "memory"])).is_empty());
        assert_eq!(not_placed(&all, UNIT, &caps(&["cpu"])), ["cpu"]);
        // Joint hierarchies name their controllers together.
        let joint = format!("9:name=systemd:{s}\n2:cpu,cpuacct:/x\n");
        assert_eq!(not_placed(&joint, UNIT, &caps(&["cpu"])), ["cpu,cpuacct"]);
    }

    #[test]
    fn a_v2_host_has_one_line_for_all() {
        assert_eq!(not_placed("0::/t.service\n", UNIT, &caps(&["pids"])), ["unified"]);
        let placed = "0::/ccmanager.slice/ccmanager-sess-a.scope\n";
        assert!(not_placed(placed, UNIT, &caps(&["pids", "memory", "cpu"])).is_empty());
        // A process of the program nested below the scope counts as in it.
        let nested = "0::/ccmanager.slice/ccmanager-sess-a.scope/sub\n";
        assert!(not_placed(nested, UNIT, &[]).is_empty());
        // A name that merely ends like the unit does not.
        let lookalike = "0::/ccmanager.slice/xccmanager-sess-a.scope\n";
        assert_eq!(not_placed(lookalike, UNIT, &[]), ["unified"]);
        assert_eq!(not_placed("", UNIT, &[]), ["unified"]);
    }
}
