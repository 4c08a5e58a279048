//! Process-tree discovery from /proc, for killing a session's processes when
//! no cgroup holds them, and for telling a busy session from an idle one.

use std::collections::{BTreeSet, HashMap};

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
}

/// Parses the content of `/proc/PID/stat` (the command name may contain
/// spaces and parentheses, so fields are counted from the last `)`).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12)
    Some(ProcStat {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
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

/// `root`, its descendants, and every process still in the session `root`
/// leads (children that were reparented but did not call setsid).
pub fn tree(procs: &[ProcStat], root: u32) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if out.insert(pid) {
            stack.extend(children.get(&pid).into_iter().flatten());
        }
    }
    for p in procs.iter().filter(|p| p.sid == root) {
        out.insert(p.pid);
    }
    out.retain(|pid| procs.iter().any(|p| p.pid == *pid));
    out
}

/// Total CPU ticks used by the processes in `pids`.
pub fn cpu_ticks(procs: &[ProcStat], pids: &BTreeSet<u32>) -> u64 {
    procs.iter().filter(|p| pids.contains(&p.pid)).map(|p| p.cpu_ticks).sum()
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
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let s = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        let p = parse_stat(s).unwrap();
        assert_eq!((p.pid, p.ppid, p.sid, p.cpu_ticks), (42, 1, 42, 10));
    }

    #[test]
    fn tree_includes_descendants_and_session_members() {
        let p = |pid, ppid, sid| ProcStat { pid, ppid, sid, cpu_ticks: 0 };
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
