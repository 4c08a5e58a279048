//! Finding the daemon's loggers (`ccmanagerd-log`, or `ccmanagerd __log`
//! when that binary is not beside the daemon's; children of its tmux
//! servers through `pipe-pane`) in /proc, and what they cost: PSS and
//! private memory from `smaps_rollup`, CPU from `stat`. Only processes
//! below this run's own tmux servers count: other daemons on the machine
//! (other test runs) have loggers too.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::super::{cpu_ticks, tmux_server_pid, tmux_sockets};

/// The memory of some processes, KiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    /// Processes counted.
    pub processes: usize,
    /// Sum of `Pss:` (shared pages split among their users).
    pub pss_kib: u64,
    /// Sum of `Private_Clean:` + `Private_Dirty:` (what each adds alone).
    pub private_kib: u64,
    /// Sum of `Rss:`.
    pub rss_kib: u64,
    /// Sum of `Anonymous:` (heap, stack, relocated data: never shared
    /// between loggers).
    pub anon_kib: u64,
}

/// pid -> (ppid, argv) of every process.
fn table() -> HashMap<i32, (i32, Vec<String>)> {
    let mut t = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        t.insert(pid, (ppid, argv));
    }
    t
}

/// `ccmanagerd-log ...` (the logger's own binary, used when it is beside
/// the daemon's) or `ccmanagerd __log ...`.
fn is_logger(argv: &[String]) -> bool {
    let own = argv
        .first()
        .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "ccmanagerd-log"));
    own || argv.get(1).is_some_and(|a| a == "__log")
}

/// The program the loggers below `tmux_dir` run (its path), if any runs.
pub fn program(loggers: &[Vec<i32>]) -> Option<String> {
    let pid = *loggers.first()?.first()?;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = argv
        .split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .take(2)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(if words.get(1).is_some_and(|w| w == "__log") {
        words.join(" ")
    } else {
        words[0].clone()
    })
}

/// The processes of every `pipe-pane` logger below the tmux servers under
/// `tmux_dir`: each `__log` process and its ancestors up to (not
/// including) the server (a `sh -c` tmux runs it through, if it stayed).
/// One entry per logger, with all its processes.
pub fn find(tmux_dir: &Path) -> Vec<Vec<i32>> {
    let servers: Vec<i32> =
        tmux_sockets(tmux_dir).iter().map(|s| tmux_server_pid(s)).filter(|&p| p > 1).collect();
    let t = table();
    let mut out = vec![];
    for (&pid, (_, argv)) in &t {
        if !is_logger(argv) {
            continue;
        }
        let mut chain = vec![pid];
        let mut at = t.get(&pid).map_or(0, |e| e.0);
        let mut ours = false;
        for _ in 0..64 {
            if servers.contains(&at) {
                ours = true;
                break;
            }
            if at <= 1 {
                break;
            }
            chain.push(at);
            at = t.get(&at).map_or(0, |e| e.0);
        }
        if ours {
            out.push(chain);
        }
    }
    out.sort();
    out
}

fn rollup(pid: i32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        processes: 1,
        pss_kib: field("Pss:"),
        private_kib: field("Private_Clean:") + field("Private_Dirty:"),
        rss_kib: field("Rss:"),
        anon_kib: field("Anonymous:"),
    }
}

/// The memory of all these loggers' processes together.
pub fn memory(loggers: &[Vec<i32>]) -> Memory {
    let mut m = Memory::default();
    for &pid in loggers.iter().flatten() {
        let r = rollup(pid);
        m.processes += 1;
        m.pss_kib += r.pss_kib;
        m.private_kib += r.private_kib;
        m.rss_kib += r.rss_kib;
        m.anon_kib += r.anon_kib;
    }
    m
}

/// utime + stime of all these loggers' processes, clock ticks.
pub fn ticks(loggers: &[Vec<i32>]) -> u64 {
    loggers.iter().flatten().map(|&p| cpu_ticks(p)).sum()
}

/// Clock ticks per second.
pub fn hz() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64
}

/// CPU (user + system) the processes of one run used, seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cpu {
    /// The tmux server of the pane.
    pub tmux_s: f64,
    /// The pane's logger (None: no logger).
    pub logger_s: Option<f64>,
    /// The daemon (None: not involved).
    pub daemon_s: Option<f64>,
    /// The viewer: the `tmux attach` client, or this harness decoding the
    /// subscription (None: no viewer).
    pub viewer_s: Option<f64>,
}

/// Counts the CPU of a run's processes from [`Meter::start`].
pub struct Meter {
    tmux: i32,
    loggers: Vec<Vec<i32>>,
    daemon: Option<i32>,
    viewer: Option<i32>,
    start: [u64; 4],
}

impl Meter {
    /// Starts counting; `loggers` from [`find`].
    pub fn start(
        tmux: i32,
        loggers: Vec<Vec<i32>>,
        daemon: Option<i32>,
        viewer: Option<i32>,
    ) -> Meter {
        let mut m = Meter { tmux, loggers, daemon, viewer, start: [0; 4] };
        m.start = m.now();
        m
    }

    fn now(&self) -> [u64; 4] {
        [
            cpu_ticks(self.tmux),
            ticks(&self.loggers),
            self.daemon.map_or(0, cpu_ticks),
            self.viewer.map_or(0, cpu_ticks),
        ]
    }

    /// The logger's ticks so far (to see it has stopped).
    pub fn logger_ticks(&self) -> u64 {
        ticks(&self.loggers)
    }

    /// CPU since the start (read before the processes exit).
    pub fn read(&self) -> Cpu {
        let now = self.now();
        let s = |i: usize| now[i].saturating_sub(self.start[i]) as f64 / hz();
        Cpu {
            tmux_s: s(0),
            logger_s: (!self.loggers.is_empty()).then(|| s(1)),
            daemon_s: self.daemon.map(|_| s(2)),
            viewer_s: self.viewer.map(|_| s(3)),
        }
    }
}
