//! Process-tree discovery from /proc, for ending a session's processes when
//! its exec-wrapper cannot ([`end_tree`]; usually `session.kill` leaves it to
//! the wrapper, which needs no scan), for finding a program under its
//! exec-wrapper, and for telling a busy session from an idle one.
//!
//! Without cgroups the tree is what /proc shows under the pane's process.
//! That finds every descendant, also those that called `setsid` and lost
//! their parent: the exec-wrapper is the pane's process and their
//! subreaper, so orphans stay under it (`PR_SET_CHILD_SUBREAPER`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use nix::sys::signal::Signal;

/// One process as read from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// pid.
    pub pid: u32,
    /// Parent pid.
    pub ppid: u32,
    /// Session id.
    pub sid: u32,
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    /// State letter (`R`, `S`, `Z`...).
    pub state: char,
    /// Start time after boot, in clock ticks: with the pid, it names one
    /// process (a pid can be reused, the pair cannot).
    pub start: u64,
}

/// Parses the content of `/proc/PID/stat` (the command name may contain
/// spaces and parentheses, so fields are counted from the last `)`).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11)
    // stime(12) ... starttime(19)
    Some(ProcStat {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        state: f.first()?.chars().next()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// One process, read now (`None`: gone).
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process on the system.
pub fn all() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        e.file_name().to_str()?.parse::<u32>().ok()?;
        parse_stat(&std::fs::read_to_string(e.path().join("stat")).ok()?)
    })
    .collect()
}

/// Every process, indexed once (a cleanup pass asks about every session:
/// each question costs the size of its tree, not of the host).
pub struct Forest {
    by_pid: HashMap<u32, ProcStat>,
    children: HashMap<u32, Vec<u32>>,
    by_sid: HashMap<u32, Vec<u32>>,
}

impl Forest {
    /// Indexes `procs`.
    pub fn new(procs: &[ProcStat]) -> Forest {
        let mut f = Forest {
            by_pid: HashMap::with_capacity(procs.len()),
            children: HashMap::new(),
            by_sid: HashMap::new(),
        };
        for p in procs {
            f.by_pid.insert(p.pid, *p);
            f.children.entry(p.ppid).or_default().push(p.pid);
            f.by_sid.entry(p.sid).or_default().push(p.pid);
        }
        f
    }

    /// `root`, its descendants, and every process still in the session
    /// `root` leads (children that were reparented but did not call setsid).
    pub fn tree(&self, root: u32) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            if out.insert(pid) {
                stack.extend(self.children.get(&pid).into_iter().flatten());
            }
        }
        out.extend(self.by_sid.get(&root).into_iter().flatten());
        out.retain(|pid| self.by_pid.contains_key(pid));
        out
    }

    /// Total CPU ticks used by the processes in `pids`.
    pub fn cpu_ticks(&self, pids: &BTreeSet<u32>) -> u64 {
        pids.iter().filter_map(|p| self.by_pid.get(p)).map(|p| p.cpu_ticks).sum()
    }
}

/// See [`Forest::tree`] (for a single question).
pub fn tree(procs: &[ProcStat], root: u32) -> BTreeSet<u32> {
    Forest::new(procs).tree(root)
}

/// Whether `pid` runs as `uid` (the owner of `/proc/PID`, its effective
/// uid). A pid a tmux server reports is only a claim: a server run by its
/// user in a pid namespace can report any number, so the daemon (root)
/// signals or moves a pid only after this check.
pub fn owned_by(pid: u32, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    pid > 1 && std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid)
}

/// `pids` without those that do not run as `uid` (see [`owned_by`]).
pub fn owned(pids: &BTreeSet<u32>, uid: u32) -> BTreeSet<u32> {
    pids.iter().copied().filter(|p| owned_by(*p, uid)).collect()
}

/// SIGKILL every pid in `pids`; errors (already gone) are ignored.
pub fn kill_all(pids: &BTreeSet<u32>) {
    signal_all(pids, &[Signal::SIGKILL]);
}

fn signal_all<'a>(pids: impl IntoIterator<Item = &'a u32>, signals: &[Signal]) {
    for pid in pids {
        for sig in signals {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), *sig);
        }
    }
}

/// How long [`end_tree`] gives a session's processes between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// The first pause of [`end_tree`]'s wait; it doubles up to [`KILL_POLL_MAX`]
/// (most programs are gone within a millisecond of SIGTERM).
const KILL_POLL_FIRST: Duration = Duration::from_millis(1);
/// See [`KILL_POLL_FIRST`].
const KILL_POLL_MAX: Duration = Duration::from_millis(20);

/// Every process of `uid` in the trees of `roots` (descendants and members
/// of their sessions), each with its start time.
fn owned_trees(roots: &[u32], uid: u32) -> BTreeMap<u32, u64> {
    let pids = crate::proctree::descendants(roots);
    owned(&pids, uid).into_iter().filter_map(|p| Some((p, stat(p)?.start))).collect()
}

/// Whether the process `pid` that started at `start` still runs (a zombie
/// does not).
fn runs(pid: u32, start: u64) -> bool {
    stat(pid).is_some_and(|p| p.start == start && p.state != 'Z')
}

/// Ends the processes of a session (without a cgroup, all of them; with one,
/// gracefully before the scope is killed): SIGHUP, SIGTERM and SIGCONT to
/// every process of `uid` in the tree of `root` (the pane's process), except
/// `spare` (the exec-wrapper: it ends after its program, and would pass the
/// signals on a second time). If any is still there after `grace`, SIGKILL
/// to whatever is left of the tree, `root` included, and to anything it
/// started meanwhile. A process is signalled only while its pid still names
/// the process first seen (same start time).
pub async fn end_tree(root: u32, spare: Option<u32>, uid: u32, grace: Duration) {
    let scan = |roots: Vec<u32>| async move {
        tokio::task::spawn_blocking(move || owned_trees(&roots, uid)).await.unwrap_or_default()
    };
    let first = scan(vec![root]).await;
    let asked: Vec<u32> = first.keys().copied().filter(|p| Some(*p) != spare).collect();
    signal_all(&asked, &[Signal::SIGHUP, Signal::SIGTERM, Signal::SIGCONT]);
    let deadline = tokio::time::Instant::now() + grace;
    let mut pause = KILL_POLL_FIRST;
    loop {
        if !asked.iter().any(|p| runs(*p, first[p])) {
            // All gone. A spared wrapper ends once its terminal closes (the
            // caller removes the tmux session), and ends whatever its
            // program started since the scan.
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(KILL_POLL_MAX);
    }
    let alive: Vec<u32> = first.iter().filter(|(p, s)| runs(**p, **s)).map(|(p, _)| *p).collect();
    let rest = scan(alive).await;
    let rest: Vec<u32> = rest
        .iter()
        .filter(|(p, s)| first.get(p).is_none_or(|f| f == *s))
        .map(|(p, _)| *p)
        .collect();
    signal_all(&rest, &[Signal::SIGKILL]);
}

/// The program the exec-wrapper `wrapper` runs, from a listing of every
/// process: its oldest child of `uid` (everything else under a wrapper
/// descends from its program, so started later). `None` when `wrapper` is
/// not an exec-wrapper (a pane started before the wrapper stayed as the
/// program's parent runs its program itself) or has no child.
pub fn program_under(procs: &[ProcStat], wrapper: u32, uid: u32) -> Option<u32> {
    let cmdline = std::fs::read(format!("/proc/{wrapper}/cmdline")).ok()?;
    let is_wrapper =
        cmdline.split(|b| *b == 0).nth(1) == Some(crate::limits::wrapper::MODE.as_bytes());
    if !is_wrapper {
        return None;
    }
    procs
        .iter()
        .filter(|p| p.ppid == wrapper && owned_by(p.pid, uid))
        .min_by_key(|p| (p.start, p.pid))
        .map(|p| p.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let s = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        let p = parse_stat(s).unwrap();
        assert_eq!((p.pid, p.ppid, p.sid, p.cpu_ticks), (42, 1, 42, 10));
        assert_eq!((p.state, p.start), ('S', 5));
    }

    #[test]
    fn tree_includes_descendants_and_session_members() {
        let p = |pid, ppid, sid| ProcStat { pid, ppid, sid, cpu_ticks: 0, state: 'S', start: 0 };
        let procs = vec![
            p(10, 1, 10),
            p(11, 10, 10),
            p(12, 11, 10),
            p(13, 1, 10),
            p(14, 1, 14),
            p(15, 14, 14),
        ];
        let t = tree(&procs, 10);
        assert_eq!(t.into_iter().collect::<Vec<_>>(), vec![10, 11, 12, 13]);
    }

    #[test]
    fn ownership_is_the_kernels() {
        let me = std::process::id();
        let uid = nix::unistd::geteuid().as_raw();
        assert!(owned_by(me, uid));
        assert!(!owned_by(me, uid + 1));
        assert!(!owned_by(1, 0), "never pid 1");
        assert!(!owned_by(u32::MAX, uid));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(all().iter().any(|p| p.pid == me));
    }
}
