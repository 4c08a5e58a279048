//! A process's descendants from /proc, for ending a session's processes
//! (the daemon's `session.kill`, the exec-wrapper's leftovers). Written by
//! hand: `procfs` would read every process to build the same tree, and this
//! walks only the tree itself.

use std::collections::{BTreeSet, HashMap};

/// The children of `pid`, from `/proc/PID/task/*/children` (Linux 3.5+,
/// `CONFIG_PROC_CHILDREN`): `Some(empty)` for a process that is gone,
/// `None` when the kernel does not offer the lists.
fn children_of(pid: u32) -> Option<Vec<u32>> {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => out.extend(text.split_whitespace().filter_map(|c| c.parse::<u32>().ok())),
            // The file is missing while the thread is not: no lists here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && task.path().exists() => {
                return None
            }
            // The thread ended meanwhile.
            Err(_) => {}
        }
    }
    Some(out)
}

/// The same tree from one reading of every process (kernels without the
/// children lists).
fn by_full_scan(roots: &[u32]) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    walk(roots, |pid| Some(children.get(&pid).cloned().unwrap_or_default()))
        .expect("the listing answers for every pid")
}

/// Most processes a walk collects: a fork bomb in a session must not keep
/// the daemon walking (its cgroup, or the wrapper's repeated rounds, get
/// the rest).
const MAX_WALK: usize = 1 << 16;

fn walk(roots: &[u32], mut children: impl FnMut(u32) -> Option<Vec<u32>>) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(pid) = stack.pop() {
        if out.len() < MAX_WALK && out.insert(pid) {
            stack.extend(children(pid)?);
        }
    }
    Some(out)
}

/// `roots` and all their descendants that still exist. The cost is the size
/// of the trees, not of the host: a kill at 10,000 sessions (20,000
/// processes) read every process on the host before. A process started
/// during the walk may be missed; callers that must end everything walk
/// again until nothing is left.
pub fn descendants(roots: &[u32]) -> BTreeSet<u32> {
    let mut out = walk(roots, children_of).unwrap_or_else(|| by_full_scan(roots));
    out.retain(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A child `sh` with a `sleep` of its own; both ended on drop (and only
    /// they: tests run in parallel in this process).
    struct Family(std::process::Child);

    impl Drop for Family {
        fn drop(&mut self) {
            for pid in descendants(&[self.0.id()]) {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = self.0.wait();
        }
    }

    fn family() -> (Family, u32) {
        let f = Family(
            std::process::Command::new("sh").args(["-c", "sleep 30 & wait"]).spawn().unwrap(),
        );
        let sh = f.0.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let d = descendants(&[sh]);
            if let Some(p) = d.iter().find(|p| **p != sh) {
                return (f, *p);
            }
            assert!(Instant::now() < deadline, "sh started no child: {d:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn walks_children_lists_and_full_scan_alike() {
        let (f, sleep) = family();
        let sh = f.0.id();
        assert_eq!(descendants(&[sh]), BTreeSet::from([sh, sleep]));
        assert_eq!(by_full_scan(&[sh]), BTreeSet::from([sh, sleep]));
        let me = std::process::id();
        assert!(descendants(&[me]).is_superset(&BTreeSet::from([me, sh, sleep])));
    }

    #[test]
    fn a_gone_process_has_no_tree() {
        assert!(descendants(&[u32::MAX - 1]).is_empty());
    }
}
