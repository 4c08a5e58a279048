//! Health: the checks behind `health.check` (and the cheap variant behind
//! `daemon.status`), the `STATUS=` line, the periodic monitor (health
//! transitions in the log, the metrics textfile), and feeding the systemd
//! watchdog only while the daemon's own loop and the control connection work.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::protocol::types::{Check, Health};
use crate::tmux::Cmd;

/// Status word: all good.
pub const OK: &str = "ok";
/// Status word: working, but something needs attention.
pub const DEGRADED: &str = "degraded";
/// Status word: the daemon cannot do its job.
pub const FAILING: &str = "failing";
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

/// The full evaluation for `health.check`, with a timed tmux round trip.
pub async fn evaluate(daemon: &Daemon) -> Health {
    let mut checks = vec![tmux_server(daemon).await];
    checks.extend(cheap_checks(daemon));
    summarise(checks)
}

/// The same checks without the tmux round trip (for `daemon.status`,
/// metrics, and the monitor): the tmux server counts as up while the
/// control connection to it is.
pub fn evaluate_cheap(daemon: &Daemon) -> Health {
    summarise(cheap_checks(daemon))
}

fn summarise(checks: Vec<Check>) -> Health {
    let worst = checks.iter().map(|c| c.status.as_str()).max_by_key(|s| severity(s)).unwrap_or(OK);
    Health { status: worst.to_string(), checks }
}

async fn tmux_server(daemon: &Daemon) -> Check {
    const NAME: &str = "tmux_server";
    let client = match daemon.sessions.client() {
        Ok(c) => c,
        Err(e) => return check(NAME, FAILING, format!("not reachable: {e}"), &[]),
    };
    let started = Instant::now();
    let cmd = Cmd::new("display-message").flag("-p").arg("#{pid}");
    match tokio::time::timeout(TMUX_PING_TIMEOUT, client.run(&cmd)).await {
        Ok(Ok(out)) => {
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let pid: Option<u32> = out.first().and_then(|l| l.trim().parse().ok());
            let detail = format!("answering (pid {}), {latency_ms:.1} ms", pid.unwrap_or_default());
            check(NAME, OK, detail, &[("latency_ms", json!(latency_ms)), ("pid", json!(pid))])
        }
        Ok(Err(e)) => check(NAME, FAILING, format!("not answering: {e}"), &[]),
        Err(_) => check(NAME, FAILING, format!("no answer within {TMUX_PING_TIMEOUT:?}"), &[]),
    }
}

fn cheap_checks(daemon: &Daemon) -> Vec<Check> {
    vec![
        control_connection(daemon),
        socket(&daemon.socket_path),
        disk(daemon),
        sessions(daemon),
        cgroups(daemon),
    ]
}

fn control_connection(daemon: &Daemon) -> Check {
    match daemon.sessions.client() {
        Ok(c) => check(
            "control_connection",
            OK,
            format!("up (client pid {})", c.pid().unwrap_or_default()),
            &[],
        ),
        Err(e) => check("control_connection", FAILING, e.to_string(), &[]),
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

fn disk(daemon: &Daemon) -> Check {
    let config = daemon.config();
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
    let detail = format!(
        "{free_percent:.1}% free on {} (degraded below {}%, failing below {}%)",
        dir.display(),
        h.disk_warning_free_percent,
        h.disk_failing_free_percent
    );
    check(
        "disk",
        status,
        detail,
        &[("free_percent", json!(free_percent)), ("free_bytes", json!(free_bytes))],
    )
}

fn sessions(daemon: &Daemon) -> Check {
    let max = daemon.config().limits.max_sessions;
    let c = daemon.sessions.counts();
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
fn cgroups(daemon: &Daemon) -> Check {
    if daemon.sessions.cgroups {
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

/// Every health interval: logs health transitions, refreshes `STATUS=`, and
/// writes the metrics textfile when configured. Runs until shutdown.
pub async fn monitor(daemon: Arc<Daemon>) {
    let mut shutdown = daemon.shutdown.listener();
    let mut last = OK.to_string();
    loop {
        let health = evaluate_cheap(&daemon);
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
        crate::systemd::status(&daemon.status_line());
        if let Some(path) = daemon.config().metrics.textfile.clone() {
            if let Err(e) = crate::gauges::write_textfile(&daemon, &path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the metrics textfile");
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(daemon.config().health.interval.0) => {}
        }
    }
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for, as long as the
/// runtime keeps scheduling this task and the control connection to tmux
/// works (a connection down for longer than one health interval, which the
/// supervisor failed to bring back, stops the feeding so systemd restarts
/// the daemon). Updates `STATUS=` each tick. Returns at once when the
/// watchdog is off.
pub async fn feed_watchdog(daemon: Arc<Daemon>) {
    let Some(interval) = crate::systemd::watchdog_interval() else { return };
    let mut tick = tokio::time::interval(interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = daemon.shutdown.listener();
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let up = daemon.sessions.client().is_ok();
        down_since = if up { None } else { down_since.or(Some(Instant::now())) };
        let grace = daemon.config().health.interval.0;
        if down_since.is_none_or(|t| t.elapsed() <= grace) {
            crate::systemd::watchdog();
        } else {
            tracing::error!("tmux control connection down for more than one health interval; not feeding the watchdog");
        }
        crate::systemd::status(&daemon.status_line());
    }
}
