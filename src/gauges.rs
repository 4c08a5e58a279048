//! Gauges computed at scrape time (sessions by state, oldest session age,
//! the tmux server's pid and RSS, health status), appended to the counters
//! of [`crate::metrics`] to make the full `daemon.metrics` exposition; also
//! the atomic write of that text for node_exporter's textfile collector.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

use crate::daemon::Daemon;
use crate::protocol::types::SessionState;
use crate::sessions::parse_time;

/// Bytes per `kB` in `/proc/<pid>/status`.
const KIB: u64 = 1024;

/// The whole Prometheus text exposition: counters, then gauges.
pub fn exposition(daemon: &Daemon) -> String {
    let mut out = String::new();
    daemon.metrics.render(&mut out);
    render_gauges(daemon, &mut out);
    out
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn render_gauges(daemon: &Daemon, out: &mut String) {
    let c = daemon.sessions.counts();
    gauge(
        out,
        "ccmanagerd_sessions",
        "Sessions the daemon knows, by state.",
        &[
            (&format!("{{state=\"{}\"}}", SessionState::Running.as_str()), c.running as f64),
            (&format!("{{state=\"{}\"}}", SessionState::Exited.as_str()), c.exited as f64),
            (&format!("{{state=\"{}\"}}", SessionState::Lost.as_str()), c.lost as f64),
        ],
    );
    let now = SystemTime::now();
    let oldest = daemon
        .sessions
        .all_records()
        .iter()
        .filter_map(|r| parse_time(&r.session.created_at))
        .filter_map(|t| now.duration_since(t).ok())
        .max()
        .map_or(0.0, |d| d.as_secs_f64().floor());
    gauge(
        out,
        "ccmanagerd_oldest_session_age_seconds",
        "Age of the oldest session (0 when none).",
        &[("", oldest)],
    );
    let pid = daemon.sessions.server().map(|s| s.pid).filter(|_| daemon.sessions.client().is_ok());
    gauge(
        out,
        "ccmanagerd_tmux_server_pid",
        "pid of the tmux server (0 when down).",
        &[("", f64::from(pid.unwrap_or(0)))],
    );
    let rss = pid.and_then(rss_bytes).unwrap_or(0);
    gauge(
        out,
        "ccmanagerd_tmux_server_rss_bytes",
        "Resident memory of the tmux server.",
        &[("", rss as f64)],
    );
    let health = crate::health::evaluate_cheap(daemon);
    let severity = f64::from(crate::health::severity(&health.status));
    gauge(
        out,
        "ccmanagerd_health_status",
        "Health: 0 ok, 1 degraded, 2 failing.",
        &[("", severity)],
    );
    let uptime = daemon.started.elapsed().as_secs_f64().floor();
    gauge(out, "ccmanagerd_uptime_seconds", "Seconds since the daemon started.", &[("", uptime)]);
}

/// `VmRSS` of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * KIB)
}

/// Writes the exposition to `path` atomically (a temp file in the same
/// directory, then rename), so a collector never reads half a file.
pub fn write_textfile(daemon: &Daemon, path: &Path) -> std::io::Result<()> {
    let text = exposition(daemon);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        assert_eq!(parse_vm_rss("Name:\ttmux\nVmRSS:\t    1234 kB\n"), Some(1234 * KIB));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
