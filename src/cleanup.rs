//! The periodic reaper: removes sessions older than `cleanup.max_age`, idle
//! longer than `cleanup.max_idle` (no pane output, no input, and no CPU used
//! by the session's process tree since the last run), and `exited`/`lost`
//! sessions whose `ended_at` is older than `cleanup.exited_grace`. Sessions
//! created with `keep: true`, or named with `cleanup.keep_label_prefix`, are
//! exempt. The same pass serves `cleanup.run` (optionally as a dry run).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{CleanupConfig, Config, ConfigHandle};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::protocol::types::{CleanupReport, Removal, Session, SessionState};
use crate::sessions::{parse_time, procs, Record, Sessions};
use crate::shutdown::ShutdownListener;

/// The first run comes at most this long after start (sooner when the
/// interval is shorter), so a daemon that restarts often still reaps.
pub const FIRST_RUN_MAX_DELAY: Duration = Duration::from_secs(10);

/// Removal reason: older than `cleanup.max_age`.
pub const REASON_MAX_AGE: &str = "max_age";
/// Removal reason: idle longer than `cleanup.max_idle`.
pub const REASON_IDLE: &str = "idle";
/// Removal reason: exited or lost longer than `cleanup.exited_grace`.
pub const REASON_EXITED: &str = "exited";

/// What the reaper remembers between runs.
#[derive(Default)]
pub struct Reaper {
    /// CPU ticks of each session's process tree at the last (real) run.
    /// Also serialises runs (the loop and `cleanup.run` may race).
    ticks: tokio::sync::Mutex<HashMap<String, u64>>,
}

/// Whether the reaper must leave `s` alone.
pub fn exempt(s: &Session, cfg: &CleanupConfig) -> bool {
    let prefix = cfg.keep_label_prefix.as_str();
    s.keep || (!prefix.is_empty() && s.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
}

fn older_than(stamp: Option<&str>, limit: Option<Duration>, now: SystemTime) -> bool {
    match (stamp.and_then(parse_time), limit) {
        (Some(t), Some(limit)) => now.duration_since(t).is_ok_and(|age| age >= limit),
        _ => false,
    }
}

/// Why `s` should go now, if it should. `busy`: its process tree used CPU
/// since the last run (or that is not known yet), so it is not idle.
pub fn verdict(
    s: &Session,
    cfg: &CleanupConfig,
    now: SystemTime,
    busy: bool,
) -> Option<&'static str> {
    if exempt(s, cfg) {
        return None;
    }
    if older_than(Some(&s.created_at), cfg.max_age.0, now) {
        return Some(REASON_MAX_AGE);
    }
    match s.state {
        SessionState::Exited | SessionState::Lost => {
            older_than(s.ended_at.as_deref(), cfg.exited_grace.0, now).then_some(REASON_EXITED)
        }
        SessionState::Running => {
            let idle = older_than(s.last_activity_at.as_deref(), cfg.max_idle.0, now);
            (idle && !busy).then_some(REASON_IDLE)
        }
    }
}

impl Reaper {
    /// One pass. A dry run reports what would go and changes nothing (not
    /// even the CPU baselines used to tell busy from idle).
    pub async fn run(
        &self,
        sessions: &Sessions,
        config: &ConfigHandle,
        metrics: &Metrics,
        dry_run: bool,
    ) -> CleanupReport {
        let mut ticks = self.ticks.lock().await;
        let full = config.get();
        let cfg = full.cleanup.clone();
        let records = sessions.all_records();
        let forest =
            procs::Forest::new(&if cfg.max_idle.0.is_some() { procs::all() } else { Vec::new() });
        let now = SystemTime::now();
        let mut seen = HashMap::new();
        let mut removed = Vec::new();
        // Removals by server: each uid's go one after the other, the uids at
        // once, so one stalled server delays only its own.
        let mut doomed: BTreeMap<crate::sessions::record::ServerKey, Vec<(Record, &'static str)>> =
            BTreeMap::new();
        for record in records {
            let s = &record.session;
            let busy = match (s.state, s.pid, cfg.max_idle.0) {
                (SessionState::Running, Some(pid), Some(_)) => {
                    let used = forest.cpu_ticks(&forest.tree(pid));
                    seen.insert(s.id.clone(), used);
                    // First sight: unknown, so not idle (never reap live work on a guess).
                    ticks.get(&s.id).is_none_or(|before| used > *before)
                }
                _ => false,
            };
            let Some(reason) = verdict(s, &cfg, now, busy) else { continue };
            // Being started again, or about to be by its restore or restart
            // policy (the age limit still applies to those).
            if record.spawning || (reason == REASON_EXITED && record.comes_back()) {
                continue;
            }
            if dry_run {
                tracing::info!(session_id = %s.id, reason, "cleanup dry run: would remove");
                removed.push(Removal { id: s.id.clone(), reason: reason.to_string() });
                continue;
            }
            doomed.entry(record.server_key()).or_default().push((record, reason));
        }
        let passes = doomed.into_values().map(|batch| remove_all(sessions, &full, metrics, batch));
        for done in futures::future::join_all(passes).await.into_iter().flatten() {
            seen.remove(&done.id);
            removed.push(done);
        }
        if !dry_run {
            *ticks = seen;
            logs_pass(sessions, &full).await;
        }
        CleanupReport { removed, dry_run }
    }
}

/// Removes one server's doomed sessions in turn. A server that does not
/// answer (stopped, or flooded) would make every later removal wait its
/// timeout too: its remaining removals wait for the next pass.
async fn remove_all(
    sessions: &Sessions,
    config: &Config,
    metrics: &Metrics,
    batch: Vec<(Record, &'static str)>,
) -> Vec<Removal> {
    let mut removed = Vec::new();
    let total = batch.len();
    for (i, (record, reason)) in batch.into_iter().enumerate() {
        let id = &record.session.id;
        tracing::info!(session_id = %id, reason, "cleanup: removing session");
        match sessions.remove(&record, reason).await {
            Ok(()) => {
                // The log goes with the session (a kill keeps it, for a
                // while: see logs::usage).
                let dir = crate::logs::dir_of(config, id);
                let gone = dir.clone();
                let removed_log =
                    tokio::task::spawn_blocking(move || crate::logs::setup::remove(&gone))
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                if let Err(e) = removed_log {
                    tracing::warn!(session_id = %id, dir = %dir.display(), error = %e, "cleanup: cannot remove the session's log");
                }
                metrics.reaped(reason);
                removed.push(Removal { id: id.clone(), reason: reason.to_string() });
            }
            Err(e @ Error::TmuxUnavailable(_)) => {
                let left = total - i - 1;
                tracing::warn!(session_id = %id, reason, uid = record.server_uid(), error = %e, left,
                    "cleanup: the tmux server does not answer; its removals wait for the next pass");
                break;
            }
            Err(e) => {
                tracing::warn!(session_id = %id, reason, error = %e, "cleanup: removal failed; will retry")
            }
        }
    }
    removed
}

/// The pass over the session logs (logs::usage): usage, the total cap,
/// orphans. Blocking file work, off the runtime's threads.
async fn logs_pass(sessions: &Sessions, config: &Arc<Config>) {
    let known: std::collections::HashSet<String> =
        sessions.all_records().into_iter().map(|r| r.session.id).collect();
    let (config, stats) = (config.clone(), sessions.log_stats().clone());
    let done =
        tokio::task::spawn_blocking(move || crate::logs::usage::pass(&config, &known, &stats))
            .await;
    match done {
        Ok(Ok(u)) => tracing::debug!(bytes = u.bytes, logs = u.logs, "session logs checked"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot check the session logs"),
        Err(e) => tracing::warn!(error = %e, "the session logs pass failed"),
    }
}

/// Runs the reaper soon after start, then every `cleanup.interval` (re-read
/// each time, so a reload applies), until shutdown.
pub async fn reaper_loop(
    reaper: Arc<Reaper>,
    sessions: Sessions,
    config: ConfigHandle,
    metrics: Arc<Metrics>,
    mut shutdown: ShutdownListener,
) {
    let mut pause = config.get().cleanup.interval.0.min(FIRST_RUN_MAX_DELAY);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        let report = reaper.run(&sessions, &config, &metrics, false).await;
        if !report.removed.is_empty() {
            tracing::info!(removed = report.removed.len(), "cleanup pass done");
        }
        pause = config.get().cleanup.interval.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptDuration;
    use crate::sessions::rfc3339;

    fn session(age_s: u64, state: SessionState) -> Session {
        let now = SystemTime::now();
        let t = rfc3339(now - Duration::from_secs(age_s));
        serde_json::from_value(serde_json::json!({
            "id": "a1", "name": null, "tmux_session": "ccmanager_sess_a1", "command": ["sh"],
            "cwd": null, "state": state, "exit_status": null, "pid": null, "created_at": t,
            "last_activity_at": t, "ended_at": if state == SessionState::Running { None } else { Some(t) },
            "owner_uid": 0, "limits": {}, "keep": false
        }))
        .unwrap()
    }

    fn cfg(max_age: u64, idle: Option<u64>, grace: u64) -> CleanupConfig {
        CleanupConfig {
            max_age: OptDuration(Some(Duration::from_secs(max_age))),
            max_idle: OptDuration(idle.map(Duration::from_secs)),
            exited_grace: OptDuration(Some(Duration::from_secs(grace))),
            ..CleanupConfig::default()
        }
    }

    #[test]
    fn reasons() {
        let now = SystemTime::now();
        let c = cfg(100, Some(50), 30);
        assert_eq!(verdict(&session(10, SessionState::Running), &c, now, false), None);
        assert_eq!(
            verdict(&session(200, SessionState::Running), &c, now, true),
            Some(REASON_MAX_AGE)
        );
        assert_eq!(verdict(&session(60, SessionState::Running), &c, now, false), Some(REASON_IDLE));
        assert_eq!(
            verdict(&session(60, SessionState::Running), &c, now, true),
            None,
            "busy is not idle"
        );
        assert_eq!(
            verdict(&session(40, SessionState::Exited), &c, now, false),
            Some(REASON_EXITED)
        );
        assert_eq!(verdict(&session(40, SessionState::Lost), &c, now, false), Some(REASON_EXITED));
        assert_eq!(verdict(&session(20, SessionState::Exited), &c, now, false), None);
    }

    #[test]
    fn exemptions() {
        let now = SystemTime::now();
        let c = cfg(1, None, 1);
        let mut s = session(200, SessionState::Running);
        s.keep = true;
        assert_eq!(verdict(&s, &c, now, false), None);
        s.keep = false;
        s.name = Some("keep-me".into());
        assert_eq!(verdict(&s, &c, now, false), None);
        s.name = Some("other".into());
        assert_eq!(verdict(&s, &c, now, false), Some(REASON_MAX_AGE));
    }
}
