//! The exec-wrapper as the program's parent (see [`super::wrapper`] for the
//! setup before the fork): it forwards signals to the program, reaps it and
//! every descendant it leaves (it is their subreaper), waits until tmux has
//! read the program's last output, and exits the way the program did.
//!
//! Why it stays (tmux 3.3a, `server.c` and `window.c`): tmux marks a pane
//! exited and closes its pty either on EOF of the pty or on SIGCHLD of the
//! pane's process, whichever its event loop handles first;
//! `window_pane_destroy_ready` asks the pty for unread bytes (`FIONREAD`)
//! only while a `pipe-pane` is open. So when a program prints and exits at
//! once, the SIGCHLD often wins and `server_destroy_pane` closes the pty with
//! the last output unread: a blank pane, 5% of `sh -c 'echo x; exit 7'` in
//! plain tmux here, 7-26% through the daemon. tmux's pane process is now this
//! wrapper, and it exits only after tmux has closed the pty, which tmux does
//! only after it has read it to EOF: once the program and its descendants
//! are gone, the wrapper closes its own copies of the terminal (so tmux
//! reads the rest, then EOF) and waits for the hangup the kernel sends a
//! session leader when the other side of its controlling terminal closes
//! (`tty_signal_session_leader`: SIGHUP, and the session loses its tty,
//! which `/proc/self/stat` shows). Then it exits, tmux reaps it and the pane
//! is dead with its status. No sleep decides it; the wait is bounded
//! ([`HANGUP_WAIT`]) only for a process outside the session holding the
//! terminal open, or a tmux that is stopped.
//!
//! The pane closed: when tmux closes the terminal while the program runs
//! (`session.kill` removes the tmux session; or the server died), the kernel
//! sends the wrapper, the session's leader, SIGHUP; the wrapper passes it on,
//! adds SIGTERM and SIGCONT, and SIGKILL after [`LEFTOVER_GRACE`], so the
//! program never outlives its pane (a `nohup`'d one did before). The
//! wrapper runs as the session's owner: it can signal nothing else.
//!
//! Leftovers: when the program exits, whatever it left behind (background
//! jobs, daemons that called `setsid`, which the wrapper collects as their
//! subreaper) gets SIGTERM (and SIGCONT), then SIGKILL after
//! [`LEFTOVER_GRACE`], as in a container whose main process exited. A
//! process of another uid (a setuid program) cannot be signalled and is left
//! after [`LEFTOVER_GIVE_UP`].
//!
//! Exit: the program's exit code, or its signal raised again on the wrapper
//! (core dumps off), so tmux's `pane_dead_status`/`pane_dead_signal` are the
//! program's own.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals the wrapper passes on to the program (the usual ways to ask a
/// process to stop, reload or resize, as tini does). SIGHUP from the kernel
/// (the pane was closed) is passed on too: the program is not its session's
/// leader, so it would not get it from the kernel unless it is in the
/// foreground.
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGWINCH,
];
/// Blocked in the wrapper and never acted on: it must not stop on a
/// terminal's job-control signals (a blocked SIGTTOU also lets its rare
/// writes through), and SIGCHLD is taken with `sigtimedwait`.
const HELD: [Signal; 4] = [Signal::SIGCHLD, Signal::SIGTTIN, Signal::SIGTTOU, Signal::SIGTSTP];
/// How long leftovers have between SIGTERM and SIGKILL.
pub const LEFTOVER_GRACE: Duration = Duration::from_secs(1);
/// After this, leftovers that still live (another uid's) are left behind.
pub const LEFTOVER_GIVE_UP: Duration = Duration::from_secs(3);
/// How long the wrapper waits for tmux to close the pane's terminal after
/// the program ended. tmux does so within milliseconds of reading EOF; the
/// bound is for a tmux that is stopped or busy, and for a process outside
/// the session that holds the terminal open (then the pane shows the exit
/// this much later).
pub const HANGUP_WAIT: Duration = Duration::from_secs(10);
/// Polling period of the leftover and hangup loops (a signal wakes them
/// earlier).
const ROUND: Duration = Duration::from_millis(20);

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(Signal),
}

/// Every signal the wrapper blocks before it forks: [`FORWARDED`] and [`HELD`].
pub fn blocked_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED.into_iter().chain(HELD) {
        set.add(s);
    }
    set
}

/// Whether this process leads its session and has a controlling terminal
/// (a tmux pane: tmux's forkpty made it so). Only then does the kernel tell
/// it when the terminal's other side closes.
pub fn leads_a_terminal() -> bool {
    let me = nix::unistd::getpid();
    nix::unistd::getsid(None).is_ok_and(|sid| sid == me) && own_tty_nr().is_some_and(|t| t != 0)
}

/// `tty_nr` of this process (field 7 of /proc/self/stat): 0 once the session
/// has no controlling terminal (after a hangup).
fn own_tty_nr() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state ppid pgrp session tty_nr
    rest.split_whitespace().nth(4)?.parse().ok()
}

/// Waits for one of `set` (blocked) for at most `timeout` (forever: `None`).
fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Option<libc::siginfo_t> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ts = left.map(|l| libc::timespec {
            tv_sec: l.as_secs() as libc::time_t,
            tv_nsec: l.subsec_nanos() as libc::c_long,
        });
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: valid pointers to a sigset, a siginfo and a timespec (or null).
        let r = unsafe { libc::sigtimedwait(set.as_ref(), info.as_mut_ptr(), ts_ptr) };
        if r > 0 {
            // SAFETY: filled in by the kernel when a signal was taken.
            return Some(unsafe { info.assume_init() });
        }
        match Errno::last() {
            Errno::EINTR => continue,
            _ => return None, // EAGAIN: the time is up
        }
    }
}

/// The parent's whole job after the fork; never returns. `program` is the
/// child; `terminal`: see [`leads_a_terminal`].
pub fn supervise(program: Pid, terminal: bool) -> ! {
    let mut waited = SigSet::empty();
    for s in FORWARDED {
        waited.add(s);
    }
    waited.add(Signal::SIGCHLD);
    let ended = wait_program(program, &waited, terminal);
    end_leftovers(program);
    if terminal {
        await_hangup();
    }
    exit_as(ended)
}

/// Forwards signals to the program until it ends. When the terminal hangs
/// up while it runs (tmux closed the pane: `session.kill`, `kill-session`,
/// or the server died), the program goes too: SIGTERM and SIGCONT after the
/// SIGHUP, SIGKILL after [`LEFTOVER_GRACE`].
fn wait_program(program: Pid, waited: &SigSet, terminal: bool) -> Ended {
    let mut kill_at: Option<Instant> = None;
    loop {
        let timeout = kill_at.map(|at| at.saturating_duration_since(Instant::now()));
        let Some(info) = wait_signal(waited, timeout) else {
            if kill_at.take().is_some() {
                let _ = kill(program, Signal::SIGKILL);
            }
            continue;
        };
        let Ok(sig) = Signal::try_from(info.si_signo) else { continue };
        if sig == Signal::SIGCHLD {
            if let Some(ended) = reap(program) {
                return ended;
            }
            continue;
        }
        // Not reaped yet, so the pid is still the program's.
        let _ = kill(program, sig);
        // A hangup, not a SIGHUP someone sent: the session lost its terminal.
        let hangup = sig == Signal::SIGHUP && terminal && own_tty_nr() == Some(0);
        if hangup && kill_at.is_none() {
            for sig in [Signal::SIGTERM, Signal::SIGCONT] {
                let _ = kill(program, sig);
            }
            kill_at = Some(Instant::now() + LEFTOVER_GRACE);
        }
    }
}

/// Reaps every child that changed state; how the program ended, if it did.
fn reap(program: Pid) -> Option<Ended> {
    let mut ended = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => ended = Some(Ended::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == program => {
                ended = Some(Ended::Signal(sig))
            }
            // What tmux does for a pane's process (`server_child_stopped`):
            // a stopped program is continued, unless it waits for the terminal.
            Ok(WaitStatus::Stopped(pid, sig))
                if pid == program && !matches!(sig, Signal::SIGTTIN | Signal::SIGTTOU) =>
            {
                if killpg(program, Signal::SIGCONT).is_err() {
                    let _ = kill(program, Signal::SIGCONT);
                }
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return ended,
            Err(Errno::EINTR) | Ok(_) => {}
            Err(_) => return ended,
        }
    }
}

/// Reaps what has ended; whether any child is left.
fn has_children() -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Err(Errno::ECHILD) => return false,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Ends every descendant the program left: SIGTERM and SIGCONT once each,
/// SIGKILL after [`LEFTOVER_GRACE`], until none is left (the wrapper is the
/// subreaper: an orphan comes back to it, so no child means no descendant)
/// or [`LEFTOVER_GIVE_UP`]. Without leftovers (the usual case) it returns at
/// once, without reading /proc. The program's process group (`group`, its
/// background jobs unless it had job control) is signalled first, which
/// needs no search at all.
fn end_leftovers(group: Pid) {
    let start = Instant::now();
    let me = std::process::id();
    let mut termed = HashSet::new();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let mut first = true;
    while has_children() && start.elapsed() < LEFTOVER_GIVE_UP {
        let hard = start.elapsed() >= LEFTOVER_GRACE;
        if first || hard {
            let sigs: &[Signal] =
                if hard { &[Signal::SIGKILL] } else { &[Signal::SIGTERM, Signal::SIGCONT] };
            for sig in sigs {
                let _ = killpg(group, *sig);
            }
        }
        if !first {
            for pid in crate::proctree::descendants(&[me]).into_iter().filter(|p| *p != me) {
                let p = Pid::from_raw(pid as i32);
                if hard {
                    let _ = kill(p, Signal::SIGKILL);
                } else if termed.insert(pid) {
                    let _ = kill(p, Signal::SIGTERM);
                    let _ = kill(p, Signal::SIGCONT);
                }
            }
        }
        first = false;
        wait_signal(&chld, Some(ROUND));
    }
}

/// Closes this process's copies of the terminal, so that tmux reads the
/// program's last output and then EOF, and waits (at most [`HANGUP_WAIT`])
/// until tmux has closed its side: the kernel then hangs up the session
/// (SIGHUP, and no controlling terminal any more).
fn await_hangup() {
    for fd in 0..=2 {
        // SAFETY: closing the standard descriptors; nothing here uses them again.
        unsafe { libc::close(fd) };
    }
    let mut hup = SigSet::empty();
    hup.add(Signal::SIGHUP);
    let deadline = Instant::now() + HANGUP_WAIT;
    while own_tty_nr().is_some_and(|t| t != 0) && Instant::now() < deadline {
        wait_signal(&hup, Some(ROUND.min(deadline.saturating_duration_since(Instant::now()))));
    }
}

/// Exits as the program did: its code, or its signal raised on this process.
fn exit_as(ended: Ended) -> ! {
    match ended {
        Ended::Code(code) => std::process::exit(code),
        Ended::Signal(sig) => {
            // The program's crash must not leave a core of the wrapper.
            let _ = nix::sys::prctl::set_dumpable(false);
            // SAFETY: SIG_DFL runs no handler code; fails (harmlessly) for SIGKILL/SIGSTOP.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
            let mut only = SigSet::empty();
            only.add(sig);
            let _ = kill(nix::unistd::getpid(), sig);
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
            // Only a signal whose default is not to terminate gets here.
            std::process::exit(128 + sig as i32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocked_set_holds_every_forwarded_signal_and_sigchld() {
        let set = blocked_set();
        for s in FORWARDED.into_iter().chain(HELD) {
            assert!(set.contains(s), "{s}");
        }
        assert!(!set.contains(Signal::SIGKILL));
    }

    #[test]
    fn reads_its_own_tty_number() {
        // The test runner may or may not have a terminal; the field parses either way.
        assert!(own_tty_nr().is_some());
    }
}
