//! Health: the checks behind `health.check` (and the cheap variant behind
//! `daemon.status`), the `STATUS=` line, the periodic monitor (health
//! transitions in the log), and feeding the systemd watchdog while the
//! daemon's own loop runs. A tmux server's trouble is its uid's alone (its
//! supervisor reconnects, or marks its sessions lost): restarting the daemon
//! would not help it, so it does not stop the watchdog.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{Config, ConfigHandle};
use crate::limits::ByteSize;
use crate::protocol::types::{Check, Health, ServerStatus};
use crate::sessions::server::Server;
use crate::sessions::Sessions;
use crate::shutdown::ShutdownListener;
use crate::tmux::Cmd;

/// Status word: all good.
pub const OK: &str = "ok";
/// Status word: working, but something needs attention.
pub const DEGRADED: &str = "degraded";
/// Status word: the daemon cannot do its job.
pub const FAILING: &str = "failing";
/// Name of the check that every needed control connection is up.
pub const CONTROL_CONNECTION: &str = "control_connection";
/// How long the tmux round trip may take before the server counts as not answering.
pub const TMUX_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Sessions at or above this percentage of `limits.max_sessions` are `degraded`.
pub const SESSIONS_DEGRADED_PERCENT: usize = 90;

/// Numeric value of a status word for metrics: 0 ok, 1 degraded, 2 failing.
pub fn severity(status: &str) -> u8 {
    match status {
        OK => 0,
        DEGRADED => 1,
        _ => 2,
    }
}

fn check(name: &str, status: &'static str, detail: String, extra: &[(&str, Value)]) -> Check {
    Check {
        name: name.to_string(),
        ok: status == OK,
        detail,
        status: status.to_string(),
        extra: extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
    }
}

/// What the checks look at: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Checker {
    /// The running config.
    pub config: ConfigHandle,
    /// The sessions and their servers.
    pub sessions: Sessions,
    /// The control socket clients use.
    pub socket: PathBuf,
}

impl Checker {
    /// The full evaluation for `health.check`, with a timed round trip to
    /// each tmux server.
    pub async fn evaluate(&self) -> Health {
        let mut checks = tmux_servers(&self.sessions).await;
        checks.extend(self.cheap_checks());
        summarise(checks)
    }

    /// The same checks without the tmux round trips (for `daemon.status`,
    /// metrics, and the monitor): a server counts as up while the control
    /// connection to it is.
    pub fn evaluate_cheap(&self) -> Health {
        summarise(self.cheap_checks())
    }

    fn cheap_checks(&self) -> Vec<Check> {
        let config = self.config.get();
        let mut checks = vec![
            control_connections(&self.sessions),
            socket(&self.socket),
            disk(&config, self.sessions.log_stats().usage()),
            sessions(&config, &self.sessions),
            cgroups(&self.sessions),
            state_file(&self.sessions),
            ptys(),
        ];
        if self.sessions.root_fallback(&config) {
            let detail = format!(
                "tmux.session_user = {:?} does not exist: the sessions root creates run as root",
                config.tmux.session_user
            );
            checks.push(check("session_user", DEGRADED, detail, &[]));
        }
        checks
    }

    /// A one-line human status for `STATUS=` and logs.
    pub fn status_line(&self) -> String {
        let c = self.sessions.counts();
        let servers = self.sessions.servers();
        let up = servers.iter().filter(|s| s.alive).count();
        format!(
            "{} sessions ({} running), {up} of {} tmux servers up",
            c.total,
            c.running,
            servers.len()
        )
    }

    /// Every health interval: logs health transitions and refreshes
    /// `STATUS=`. Runs until shutdown.
    pub async fn monitor(self, mut shutdown: ShutdownListener) {
        let mut last = OK.to_string();
        loop {
            let health = self.evaluate_cheap();
            if health.status != last {
                let bad: Vec<String> = health
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect();
                tracing::warn!(from = %last, to = %health.status, problems = ?bad, "health changed");
                last = health.status.clone();
            }
            crate::systemd::status(&self.status_line());
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(self.config.get().health.interval.0) => {}
            }
        }
    }

    /// Sends `WATCHDOG=1` at half the interval systemd asked for, as long as
    /// the runtime keeps scheduling this task and the registry can be read
    /// (a deadlock stops the feeding, so systemd restarts the daemon).
    /// Updates `STATUS=` each tick. Returns at once when the watchdog is off.
    pub async fn feed_watchdog(self, mut shutdown: ShutdownListener) {
        let Some(interval) = crate::systemd::watchdog_interval() else { return };
        let mut tick = tokio::time::interval(interval / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            let line = self.status_line();
            crate::systemd::watchdog();
            crate::systemd::status(&line);
        }
    }
}

fn summarise(checks: Vec<Check>) -> Health {
    let worst = checks.iter().map(|c| c.status.as_str()).max_by_key(|s| severity(s)).unwrap_or(OK);
    Health { status: worst.to_string(), checks }
}

/// Pings every server that runs or holds live sessions, concurrently.
async fn tmux_servers(sessions: &Sessions) -> Vec<Check> {
    let statuses = sessions.servers();
    let servers = sessions.server_handles();
    let pings = statuses.into_iter().map(|st| {
        let server = servers.iter().find(|s| s.paths.socket == st.socket).cloned();
        let name = "tmux_server".to_string();
        let uid = [("uid", json!(st.uid))];
        async move {
            let Some(server) = server.clone().filter(|s| s.is_up()) else {
                if let Some(server) = server.filter(|s| s.lives()) {
                    return stalled(&st, &server, "not connected");
                }
                let detail =
                    format!("uid {}: not connected ({} live sessions wait)", st.uid, st.sessions);
                return check(&name, FAILING, detail, &uid);
            };
            let started = Instant::now();
            let cmd = Cmd::new("display-message").flag("-p").arg("#{pid}");
            match tokio::time::timeout(TMUX_PING_TIMEOUT, server.tmux(cmd)).await {
                Ok(Ok(out)) => {
                    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                    let pid: Option<u32> = out.first().and_then(|l| l.trim().parse().ok());
                    let detail = format!(
                        "uid {} ({}): answering (pid {}), {latency_ms:.1} ms",
                        st.uid,
                        st.user,
                        pid.unwrap_or_default()
                    );
                    let extra =
                        [uid[0].clone(), ("latency_ms", json!(latency_ms)), ("pid", json!(pid))];
                    check(&name, OK, detail, &extra)
                }
                Ok(Err(e @ crate::error::Error::TmuxUnavailable(_))) if server.lives() => {
                    stalled(&st, &server, &e.to_string())
                }
                Ok(Err(e)) => {
                    check(&name, FAILING, format!("uid {}: not answering: {e}", st.uid), &uid)
                }
                Err(_) if server.lives() => {
                    stalled(&st, &server, &format!("no answer within {TMUX_PING_TIMEOUT:?}"))
                }
                Err(_) => {
                    let detail = format!("uid {}: no answer within {TMUX_PING_TIMEOUT:?}", st.uid);
                    check(&name, FAILING, detail, &uid)
                }
            }
        }
    });
    futures::future::join_all(pings).await
}

/// A server that does not answer but lives (stopped, stalled, busy) is
/// `degraded`, not `failing`: its sessions are kept, and requests to it fail
/// with `tmux_unavailable` until it answers again.
fn stalled(st: &ServerStatus, server: &Server, why: &str) -> Check {
    let detail = format!(
        "uid {} ({}): the tmux server is stalled ({}; {why}); its {} sessions are kept and the daemon waits for it",
        st.uid,
        st.user,
        server.stall(),
        st.sessions
    );
    let pid = server.info().map(|i| i.pid);
    let extra = [("uid", json!(st.uid)), ("pid", json!(pid)), ("stalled", json!(true))];
    check("tmux_server", DEGRADED, detail, &extra)
}

fn control_connections(sessions: &Sessions) -> Check {
    let servers = sessions.servers();
    let up = servers.iter().filter(|s| s.alive).count();
    let handles = sessions.server_handles();
    let lives = |uid: u32| handles.iter().any(|h| h.uid == uid && h.lives());
    let (stalled, down): (Vec<_>, Vec<_>) = servers
        .iter()
        .filter(|s| s.is_down())
        .map(|s| (format!("uid {}", s.uid), lives(s.uid)))
        .partition(|(_, lives)| *lives);
    let names = |v: Vec<(String, bool)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    let (stalled, down) = (names(stalled), names(down));
    if down.is_empty() && !stalled.is_empty() {
        let detail = format!(
            "the tmux servers of {} live but do not answer (stalled); their sessions are kept",
            stalled.join(", ")
        );
        check("control_connection", DEGRADED, detail, &[("servers", json!(up))])
    } else if down.is_empty() {
        let detail = format!("{up} tmux servers connected");
        check(CONTROL_CONNECTION, OK, detail, &[("servers", json!(up))])
    } else {
        let detail = format!(
            "not connected to the tmux servers of {} (their sessions wait)",
            down.join(", ")
        );
        check(CONTROL_CONNECTION, FAILING, detail, &[("servers", json!(up))])
    }
}

fn socket(path: &Path) -> Check {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            check("socket", OK, format!("{} is served", path.display()), &[])
        }
        Ok(_) => check("socket", FAILING, format!("{} is not a socket", path.display()), &[]),
        Err(e) => check(
            "socket",
            FAILING,
            format!("{}: {e} (clients cannot connect)", path.display()),
            &[],
        ),
    }
}

fn disk(config: &Config, logs: Option<crate::logs::usage::Usage>) -> Check {
    let dir = config.state_dir();
    let st = match rustix::fs::statvfs(&dir) {
        Ok(st) => st,
        Err(e) => return check("disk", FAILING, format!("statvfs {}: {e}", dir.display()), &[]),
    };
    let free_bytes = st.f_bavail.saturating_mul(st.f_frsize);
    let free_percent =
        if st.f_blocks == 0 { 100.0 } else { st.f_bavail as f64 * 100.0 / st.f_blocks as f64 };
    let h = &config.health;
    let status = if free_percent < f64::from(h.disk_failing_free_percent) {
        FAILING
    } else if free_percent < f64::from(h.disk_warning_free_percent) {
        DEGRADED
    } else {
        OK
    };
    let mut detail = format!(
        "{free_percent:.1}% free on {} (degraded below {}%, failing below {}%)",
        dir.display(),
        h.disk_warning_free_percent,
        h.disk_failing_free_percent
    );
    // The session logs: what the last pass found (every cleanup.interval).
    let cap = config.logs.max_bytes_total.0;
    let log_bytes = logs.map(|u| u.bytes);
    match log_bytes {
        Some(b) => {
            detail += &format!(
                "; session logs use {} of logs.max_bytes_total = {}",
                ByteSize(b),
                ByteSize(cap)
            )
        }
        None => {
            detail += &format!(
                "; session logs not measured yet (logs.max_bytes_total = {})",
                ByteSize(cap)
            )
        }
    }
    check(
        "disk",
        status,
        detail,
        &[
            ("free_percent", json!(free_percent)),
            ("free_bytes", json!(free_bytes)),
            ("log_bytes", json!(log_bytes)),
            ("log_max_bytes_total", json!(cap)),
        ],
    )
}

fn sessions(config: &Config, sessions: &Sessions) -> Check {
    let max = config.limits.max_sessions;
    let c = sessions.counts();
    // Lost sessions do not count against the limit (as in session.create).
    let live = c.total - c.lost;
    let status =
        if max > 0 && live * 100 >= max * SESSIONS_DEGRADED_PERCENT { DEGRADED } else { OK };
    let detail = format!(
        "{live} of limits.max_sessions = {max} ({} running, {} exited, {} lost)",
        c.running, c.exited, c.lost
    );
    check(
        "sessions",
        status,
        detail,
        &[("total", json!(c.total)), ("live", json!(live)), ("max_sessions", json!(max))],
    )
}

/// No cgroup support is a property of the host, not a fault the operator can
/// fix by restarting: it stays `ok` (so monitoring does not alarm forever on
/// a machine that simply has no systemd) and the detail says only rlimits apply.
fn cgroups(sessions: &Sessions) -> Check {
    if sessions.cgroups() {
        check(
            "cgroups",
            OK,
            "per-session cgroup scopes (memory_max, tasks_max, cpu_quota) available".into(),
            &[("available", json!(true))],
        )
    } else {
        let detail = "cgroup caps not available (no systemd or no delegation): rlimits only".into();
        check("cgroups", OK, detail, &[("available", json!(false))])
    }
}

/// Whether the state is being saved: `degraded` (with the path and the OS
/// error) while it cannot be, as creates are refused then and a kill's
/// removal may not survive a restart.
fn state_file(sessions: &Sessions) -> Check {
    let persist = sessions.registry().persist();
    let path = json!(persist.path().display().to_string());
    let failures = json!(persist.failures());
    match persist.saved().error {
        None => {
            let detail = format!("saved to {}", persist.path().display());
            check("state_file", OK, detail, &[("path", path), ("failures", failures)])
        }
        Some(why) => {
            let detail = format!(
                "{why}: sessions are kept in memory, creates are refused until it can be saved again"
            );
            check("state_file", DEGRADED, detail, &[("path", path), ("failures", failures)])
        }
    }
}

/// The host's pseudo-terminals (`kernel.pty.max`): one per session.
fn ptys() -> Check {
    use crate::sessions::pty;
    match pty::usage() {
        Ok(u) => {
            let status = if u.full() {
                FAILING
            } else if u.nearly_full() {
                DEGRADED
            } else {
                OK
            };
            let mut detail = u.describe();
            if status != OK {
                detail.push_str(&format!(
                    ": new sessions fail at the limit; raise {} (see /usr/lib/sysctl.d/ccmanagerd.conf)",
                    pty::SYSCTL
                ));
            }
            check("pty", status, detail, &[("nr", json!(u.nr)), ("max", json!(u.max))])
        }
        Err(e) => check("pty", OK, format!("cannot read {}: {e}", pty::PTY_DIR), &[]),
    }
}
