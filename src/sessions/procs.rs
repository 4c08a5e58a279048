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

/// Every process indexed once, so that the trees of many sessions cost
/// O(processes) in all rather than each (the reaper looks at every session).
pub struct Index<'a> {
    children: HashMap<u32, Vec<u32>>,
    by_sid: HashMap<u32, Vec<u32>>,
    by_pid: HashMap<u32, &'a ProcStat>,
}

impl<'a> Index<'a> {
    /// Indexes `procs`.
    pub fn new(procs: &'a [ProcStat]) -> Index<'a> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut by_sid: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in procs {
            children.entry(p.ppid).or_default().push(p.pid);
            by_sid.entry(p.sid).or_default().push(p.pid);
        }
        Index { children, by_sid, by_pid: procs.iter().map(|p| (p.pid, p)).collect() }
    }

    /// What [`tree`] gives, in O(size of the tree).
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

    /// What [`cpu_ticks`] gives.
    pub fn cpu_ticks(&self, pids: &BTreeSet<u32>) -> u64 {
        pids.iter().filter_map(|p| self.by_pid.get(p)).map(|p| p.cpu_ticks).sum()
    }
}

/// Most processes [`descendants`] walks (a fork bomb must not keep the
/// daemon walking).
const MAX_WALK: usize = 1 << 16;

/// Whether the kernel lists children in `/proc/PID/task/TID/children`
/// (CONFIG_PROC_CHILDREN).
fn children_files() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::path::Path::new("/proc/thread-self/children").exists())
}

/// `root` and its descendants, from the kernel's list of each thread's
/// children: O(size of the tree), where [`tree`] over [`all`] reads every
/// process on the host (10,000 sessions are 10,000 processes, for every
/// kill). Processes that left the tree (reparented after their parent
/// exited) are not found: a session's scope (cgroups) or the subreaper
/// wrapper holds those. `None` when the kernel has no such lists.
pub fn descendants(root: u32) -> Option<BTreeSet<u32>> {
    if !children_files() {
        return None;
    }
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if out.len() >= MAX_WALK || !out.insert(pid) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(list) = std::fs::read_to_string(task.path().join("children")) else { continue };
            stack.extend(list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out.retain(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    Some(out)
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
    fn the_index_gives_the_same_trees() {
        let p = |pid, ppid, sid| ProcStat { pid, ppid, sid, cpu_ticks: u64::from(pid) };
        let procs = vec![
            p(10, 1, 10),
            p(11, 10, 10),
            p(12, 11, 10),
            p(13, 1, 10),
            p(14, 1, 14),
            p(15, 14, 14),
        ];
        let index = Index::new(&procs);
        for root in [10, 14, 99] {
            assert_eq!(index.tree(root), tree(&procs, root));
            assert_eq!(index.cpu_ticks(&index.tree(root)), cpu_ticks(&procs, &tree(&procs, root)));
        }
    }

    #[test]
    fn descendants_are_read_from_the_kernel() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let found = (0..100)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                descendants(pid).filter(|d| d.len() == 3)
            })
            .expect("sh and its two sleeps");
        assert_eq!(found, tree(&all(), pid));
        child.kill().unwrap();
        child.wait().unwrap();
        kill_all(&found);
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
