//! Gauges computed at scrape time (sessions by state, oldest session age,
//! each tmux server's pid and RSS by uid, health status), appended to the counters
//! of [`crate::metrics`] to make the full `daemon.metrics` exposition; also
//! the atomic write of that text for node_exporter's textfile collector.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

use std::sync::Arc;
use std::time::Instant;

use crate::health::Checker;
use crate::metrics::Metrics;
use crate::protocol::types::SessionState;
use crate::sessions::{parse_time, Sessions};
use crate::shutdown::ShutdownListener;

/// Bytes per `kB` in `/proc/<pid>/status`.
const KIB: u64 = 1024;

/// What the gauges read: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Gauges {
    /// The counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The sessions and their servers.
    pub sessions: Sessions,
    /// The health checks (their status is a gauge).
    pub health: Checker,
    /// When the daemon started.
    pub started: Instant,
}

impl Gauges {
    /// The whole `daemon.metrics` text: counters, then gauges.
    pub fn exposition(&self) -> String {
        let mut out = String::new();
        self.metrics.render(&mut out);
        self.render_gauges(&mut out);
        out
    }

    /// Writes [`Gauges::exposition`] to `path` atomically (temp file in the
    /// same directory, then rename), as node_exporter's textfile collector
    /// expects.
    pub fn write_textfile(&self, path: &Path) -> std::io::Result<()> {
        let text = self.exposition();
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

    /// Every health interval, writes the textfile when `metrics.textfile`
    /// is set. Runs until shutdown.
    pub async fn textfile_loop(self, mut shutdown: ShutdownListener) {
        loop {
            let config = self.health.config.get();
            if let Some(path) = &config.metrics.textfile {
                if let Err(e) = self.write_textfile(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the metrics textfile");
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(config.health.interval.0) => {}
            }
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

impl Gauges {
    fn render_gauges(&self, out: &mut String) {
        let c = self.sessions.counts();
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
        let oldest = self
            .sessions
            .registry()
            .lock()
            .oldest_created_at()
            .and_then(parse_time)
            .and_then(|t| now.duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64().floor());
        gauge(
            out,
            "ccmanagerd_oldest_session_age_seconds",
            "Age of the oldest session (0 when none).",
            &[("", oldest)],
        );
        let servers = self.sessions.servers();
        // A uid's servers are told apart by their number (0: the first).
        let label = |s: &crate::protocol::types::ServerStatus| {
            let name = s.socket.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let shard = crate::sessions::server::shard_of_socket(name).unwrap_or(0);
            format!("{{uid=\"{}\",server=\"{shard}\"}}", s.uid)
        };
        let pids: Vec<(String, f64)> = servers
            .iter()
            .map(|s| (label(s), f64::from(s.pid.filter(|_| s.alive).unwrap_or(0))))
            .collect();
        let samples: Vec<(&str, f64)> = pids.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        gauge(
            out,
            "ccmanagerd_tmux_server_pid",
            "pid of each uid's tmux server (0 when down).",
            &samples,
        );
        let rss: Vec<(String, f64)> = servers
            .iter()
            .map(|s| (label(s), s.pid.filter(|_| s.alive).and_then(rss_bytes).unwrap_or(0) as f64))
            .collect();
        let samples: Vec<(&str, f64)> = rss.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        gauge(
            out,
            "ccmanagerd_tmux_server_rss_bytes",
            "Resident memory of each uid's tmux server.",
            &samples,
        );
        let failures = self.sessions.registry().persist().failures();
        let _ = writeln!(
            out,
            "# HELP ccmanagerd_state_save_failures_total Saves of the state directory that failed."
        );
        let _ = writeln!(out, "# TYPE ccmanagerd_state_save_failures_total counter");
        let _ = writeln!(out, "ccmanagerd_state_save_failures_total {failures}");
        self.render_log_gauges(out);
        let health = self.health.evaluate_cheap();
        let severity = f64::from(crate::health::severity(&health.status));
        gauge(
            out,
            "ccmanagerd_health_status",
            "Health: 0 ok, 1 degraded, 2 failing.",
            &[("", severity)],
        );
        let uptime = self.started.elapsed().as_secs_f64().floor();
        gauge(
            out,
            "ccmanagerd_uptime_seconds",
            "Seconds since the daemon started.",
            &[("", uptime)],
        );
    }
}

impl Gauges {
    /// The session logs (src/logs): disk used against the total cap, what
    /// the daemon dropped, and what the logs say was never logged.
    fn render_log_gauges(&self, out: &mut String) {
        let stats = self.sessions.log_stats();
        let usage = stats.usage().unwrap_or_default();
        let cap = self.health.config.get().logs.max_bytes_total.0;
        gauge(
            out,
            "ccmanagerd_log_bytes",
            "Disk the session logs take (at the last check).",
            &[("", usage.bytes as f64)],
        );
        gauge(out, "ccmanagerd_log_max_bytes", "logs.max_bytes_total.", &[("", cap as f64)]);
        gauge(out, "ccmanagerd_logs", "Session log directories.", &[("", usage.logs as f64)]);
        gauge(
            out,
            "ccmanagerd_log_gap_bytes",
            "Bytes the logs on disk say were not logged (disk errors; 0 for gaps of unknown size).",
            &[("", usage.gap_bytes as f64)],
        );
        for (name, help, value) in [
            (
                "ccmanagerd_log_segments_dropped_total",
                "Log segments removed to keep logs.max_bytes_total.",
                stats.segments_dropped(),
            ),
            (
                "ccmanagerd_log_orphans_removed_total",
                "Logs of sessions that no longer exist, removed after cleanup.exited_grace.",
                stats.orphans_removed(),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
    }
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
