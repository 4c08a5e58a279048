//! The exit scenario: how soon a program's exit shows in `session.get`
//! (issue 11's target: within 250 ms on tmux 3.3a), and what the
//! exec-wrapper that stays as each program's parent costs. Each session
//! runs `sh -c 'read line; exit 3'`; the clock starts when `session.send`
//! of its line has answered and stops at the first `session.get` that
//! says `exited` (polled every millisecond).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::{call, Client, Stats};

/// How long one exit may take before the run fails (the old periodic
/// refresh saw exits up to `health.interval`, 5 s, late).
const GIVE_UP: Duration = Duration::from_secs(30);
/// Polling period of `session.get`.
const POLL: Duration = Duration::from_millis(1);

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ExitLatency {
    /// Sessions whose exit was timed.
    pub sessions: usize,
    /// From the program told to exit to `session.get` showing it.
    pub visible: Stats,
    /// Mean proportional set size of one exec-wrapper process (the pane's
    /// process, parent of the program), KiB.
    pub wrapper_pss_kib: u64,
}

fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// Runs the scenario with `n` new sessions of the daemon `d`, and kills them.
pub fn measure(d: &mut Client, n: usize) -> Result<ExitLatency> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let s = call(d, "session.create", json!({"command": ["sh", "-c", "read line; exit 3"]}))?;
        ids.push(s["id"].as_str().context("no id")?.to_string());
    }
    let mut pss = Vec::new();
    for id in &ids {
        let pid = call(d, "session.get", json!({"id": id}))?["pid"].as_u64();
        if let Some(kib) = pid.and_then(|p| parent(p as u32)).and_then(pss_kib) {
            pss.push(kib);
        }
    }
    let mut samples = Vec::with_capacity(n);
    for id in &ids {
        call(d, "session.send", json!({"id": id, "text": "go", "enter": true}))?;
        let sent = Instant::now();
        loop {
            let s = call(d, "session.get", json!({"id": id}))?;
            if s["state"] == "exited" {
                if s["exit_status"] != json!(3) {
                    bail!("session {id} exited with {}, expected 3", s["exit_status"]);
                }
                break;
            }
            if sent.elapsed() > GIVE_UP {
                bail!("session {id} not seen exited {GIVE_UP:?} after its program was told to");
            }
            std::thread::sleep(POLL);
        }
        samples.push(sent.elapsed());
    }
    for id in &ids {
        call(d, "session.kill", json!({"id": id}))?;
    }
    let wrapper_pss_kib = pss.iter().sum::<u64>() / pss.len().max(1) as u64;
    Ok(ExitLatency { sessions: n, visible: Stats::of(samples), wrapper_pss_kib })
}
