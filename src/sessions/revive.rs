//! Sessions that come back: restores after a reboot or the death of their
//! tmux server (`restore`), and restarts of programs that exit (`restart`).
//! One task ([`run`]) decides and starts them; the work of starting a
//! program again is [`super::restart`]'s.
//!
//! - **Reboot.** The kernel's boot id (`/proc/sys/kernel/random/boot_id`)
//!   is kept in the state directory ([`BOOT_ID_FILE`]). When it differs at
//!   start, every session whose policy is `on_boot` or `always` and that
//!   had not exited is marked `restore_due` ([`mark_boot_restores`], on the
//!   state as saved, before adoption finds their servers gone); the marks
//!   are made durable before the new boot id is written, so a crash in
//!   between marks them again. No file (a first start, or an upgrade from a
//!   version without it) restores nothing.
//! - **Server death.** `always` sessions that are `lost` come back at once.
//! - **Exits.** An `exited` session whose `restart` policy matches its exit
//!   status comes back `sessions.restart_delay` after it ended.
//!
//! Automatic comebacks of one session are limited to
//! `sessions.restart_burst` within `sessions.restart_window`; past that it
//! stays as it is with the reason in `state_reason`, which also stops
//! further attempts (as a failed restore does) until `session.restart`.
//!
//! The task wakes when a session stops running (the registry's
//! [`super::registry::Registry::session_ended`]), when the next delay is
//! due, and every health interval as a backstop. Restores run after READY,
//! at most [`PARALLEL`] at once: see docs/design.md ("Sessions that come
//! back") for why they do not hold up READY.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

use super::ops::Sessions;
use super::record::{parse_time, Record};
use crate::config::{ConfigHandle, SessionsConfig};
use crate::protocol::types::{RestartPolicy, RestartReason, RestorePolicy, SessionState};
use crate::shutdown::ShutdownListener;

/// The boot id of the daemon's last start, in the state directory.
pub const BOOT_ID_FILE: &str = "boot_id";
/// Where the kernel tells this boot's id.
const KERNEL_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// Most sessions started again at once. Each waits mostly on its tmux
/// server and systemd; more in flight only queue there.
pub const PARALLEL: usize = 32;

/// What the start found about the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// This boot's id.
    pub id: String,
    /// Whether the host rebooted since the id on file was written (false
    /// when there was none).
    pub rebooted: bool,
    file: PathBuf,
}

impl Boot {
    /// Compares this boot's id with the one in `state_dir`.
    pub fn check(state_dir: &Path) -> Boot {
        let id = std::fs::read_to_string(KERNEL_BOOT_ID).unwrap_or_default().trim().to_string();
        Boot::compare(state_dir, id)
    }

    fn compare(state_dir: &Path, id: String) -> Boot {
        let file = state_dir.join(BOOT_ID_FILE);
        let saved = std::fs::read_to_string(&file).ok().map(|s| s.trim().to_string());
        let rebooted = saved.is_some_and(|s| !s.is_empty() && !id.is_empty() && s != id);
        Boot { id, rebooted, file }
    }

    /// Writes this boot's id (atomically: temp file, rename).
    pub fn save(&self) -> std::io::Result<()> {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", self.id))?;
        std::fs::rename(&tmp, &self.file)
    }
}

/// After a reboot: marks `restore_due` every loaded session whose policy
/// brings it back after one and that had not exited. Returns how many.
pub fn mark_boot_restores<'a>(records: impl Iterator<Item = &'a mut Record>) -> usize {
    let mut n = 0;
    for r in records {
        let s = &r.session;
        if !s.adopted && s.restore != RestorePolicy::Never && s.state != SessionState::Exited {
            r.restore_due = true;
            n += 1;
        }
    }
    n
}

/// What the reviver does about one session now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Start it again at this time, for this reason.
    At(SystemTime, RestartReason),
    /// Its policy would, but the restart limit is hit: say so and stop.
    GiveUp(String),
}

impl Record {
    /// Whether this session's program will be started again by its policy
    /// (the limit aside): a viewer's stream stays open across it.
    pub fn comes_back(&self) -> bool {
        plan_ignoring_limit(self, Duration::ZERO).is_some()
    }
}

fn plan_ignoring_limit(r: &Record, delay: Duration) -> Option<(SystemTime, RestartReason)> {
    let s = &r.session;
    if r.spawning || s.adopted || s.state_reason.is_some() {
        return None;
    }
    match s.state {
        SessionState::Running => None,
        SessionState::Lost if r.restore_due => {
            Some((SystemTime::UNIX_EPOCH, RestartReason::Reboot))
        }
        SessionState::Lost if s.restore == RestorePolicy::Always => {
            Some((SystemTime::UNIX_EPOCH, RestartReason::ServerDied))
        }
        SessionState::Lost => None,
        SessionState::Exited => {
            let again = match s.restart {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => s.exit_status != Some(0),
                RestartPolicy::Always => true,
            };
            let saved = || s.ended_at.as_deref().and_then(parse_time);
            let ended = r.ended.or_else(saved).unwrap_or(UNIX_EPOCH);
            again.then_some((ended + delay, RestartReason::Exited))
        }
    }
}

/// What to do about `r` now (`None`: nothing, ever, until it changes).
pub fn plan(r: &Record, cfg: &SessionsConfig, now: SystemTime) -> Option<Plan> {
    let (at, reason) = plan_ignoring_limit(r, cfg.restart_delay.0)?;
    let window = cfg.restart_window.0;
    let since = now.checked_sub(window).unwrap_or(UNIX_EPOCH);
    let since = since.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let recent = r.auto_restarts.iter().filter(|t| **t >= since).count();
    let burst = cfg.restart_burst as usize;
    if reason != RestartReason::Reboot && recent >= burst {
        return Some(Plan::GiveUp(format!(
            "not {}: {recent} automatic restarts within {} (sessions.restart_burst = {burst}); session.restart starts it",
            match reason {
                RestartReason::Exited => "restarted",
                _ => "restored",
            },
            humantime::format_duration(window)
        )));
    }
    Some(Plan::At(at, reason))
}

/// Starts what is due, until shutdown. `boot` is what the start found; its
/// restore marks are made durable before its id is saved.
pub async fn run(
    sessions: Sessions,
    config: ConfigHandle,
    boot: Boot,
    mut shutdown: ShutdownListener,
) {
    let registry = sessions.registry().clone();
    if boot.rebooted {
        let gen = registry.lock().save_where(|r| r.restore_due);
        if let Err(e) = registry.durable(gen).await {
            tracing::warn!(error = %e, "the restore marks of this boot are not saved");
        }
    }
    if let Err(e) = boot.save() {
        tracing::warn!(file = %boot.file.display(), error = %e,
            "cannot record this boot's id: the next start cannot tell a reboot");
    }
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        let cfg = config.get();
        let now = SystemTime::now();
        let mut next = now + cfg.health.interval.0;
        let mut due = Vec::new();
        let mut give_up = Vec::new();
        {
            let records = registry.lock();
            for r in records.values() {
                match plan(r, &cfg.sessions, now) {
                    Some(Plan::At(at, reason)) if at <= now => {
                        due.push((r.session.id.clone(), reason, at))
                    }
                    Some(Plan::At(at, _)) => next = next.min(at),
                    Some(Plan::GiveUp(why)) => give_up.push((r.session.id.clone(), why)),
                    None => {}
                }
            }
        }
        for (id, why) in give_up {
            tracing::warn!(session_id = %id, "session {id} stays down: {why}");
            registry.update(&id, |r| {
                // Only if that still holds (it may run again meanwhile).
                if matches!(plan(r, &cfg.sessions, SystemTime::now()), Some(Plan::GiveUp(_))) {
                    r.session.state_reason = Some(why);
                }
            });
        }
        // Boot restores first, then the oldest due.
        due.sort_by_key(|(_, reason, at)| (*reason != RestartReason::Reboot, *at));
        let mut left = due.into_iter();
        loop {
            while running.len() < PARALLEL {
                // The next scan waits for these: none is started twice.
                let Some((id, reason, _)) = left.next() else { break };
                let sessions = sessions.clone();
                let config = config.clone();
                running.spawn(async move {
                    // Restores run `resume_command`; restarts, `command`.
                    let resume = reason != RestartReason::Exited;
                    let _ = sessions.respawn(&config.get(), &id, reason, resume).await;
                });
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = running.join_next() => {}
            }
        }
        let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = registry.session_ended() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;
    use crate::sessions::record::rfc3339;

    fn record(state: SessionState) -> Record {
        let s: crate::protocol::types::Session = serde_json::from_value(serde_json::json!({
            "id": "a1", "name": null, "tmux_session": "ccmanager_sess_a1",
            "command": ["sh"], "cwd": "/", "state": state, "exit_status": null,
            "pid": null, "created_at": "2026-01-01T00:00:00Z", "last_activity_at": null,
            "owner_uid": 1000, "limits": {}, "keep": false
        }))
        .unwrap();
        Record::new(s, None)
    }

    fn cfg() -> SessionsConfig {
        SessionsConfig {
            restart_delay: HumanDuration(Duration::from_secs(2)),
            restart_burst: 3,
            restart_window: HumanDuration(Duration::from_secs(60)),
            ..Default::default()
        }
    }

    #[test]
    fn exits_come_back_after_the_delay_by_policy() {
        let now = SystemTime::now();
        let mut r = record(SessionState::Exited);
        r.session.ended_at = Some(rfc3339(now));
        r.session.exit_status = Some(1);
        assert_eq!(plan(&r, &cfg(), now), None, "restart: never");
        r.session.restart = RestartPolicy::OnFailure;
        let at = parse_time(&rfc3339(now)).unwrap() + Duration::from_secs(2);
        assert_eq!(plan(&r, &cfg(), now), Some(Plan::At(at, RestartReason::Exited)));
        assert!(r.comes_back());
        r.session.exit_status = Some(0);
        assert_eq!(plan(&r, &cfg(), now), None, "on_failure and status 0");
        assert!(!r.comes_back());
        r.session.restart = RestartPolicy::Always;
        assert!(plan(&r, &cfg(), now).is_some());
        r.session.exit_status = None; // killed, status unknown
        r.session.restart = RestartPolicy::OnFailure;
        assert!(plan(&r, &cfg(), now).is_some());
    }

    #[test]
    fn the_limit_gives_up_with_the_reason_and_stops_planning() {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut r = record(SessionState::Exited);
        r.session.restart = RestartPolicy::Always;
        r.auto_restarts = vec![secs - 120, secs - 30, secs - 20];
        assert!(matches!(plan(&r, &cfg(), now), Some(Plan::At(..))), "one is outside the window");
        r.auto_restarts.push(secs - 1);
        let Some(Plan::GiveUp(why)) = plan(&r, &cfg(), now) else { panic!("no give-up") };
        assert!(why.contains("3 automatic restarts within 1m"), "{why}");
        r.session.state_reason = Some(why);
        assert_eq!(plan(&r, &cfg(), now), None);
        assert!(!r.comes_back());
    }

    #[test]
    fn lost_sessions_come_back_by_restore_policy() {
        let now = SystemTime::now();
        let mut r = record(SessionState::Lost);
        assert_eq!(plan(&r, &cfg(), now), None);
        r.session.restore = RestorePolicy::OnBoot;
        assert_eq!(plan(&r, &cfg(), now), None, "on_boot: only after a reboot");
        r.restore_due = true;
        assert_eq!(plan(&r, &cfg(), now), Some(Plan::At(UNIX_EPOCH, RestartReason::Reboot)));
        r.restore_due = false;
        r.session.restore = RestorePolicy::Always;
        assert_eq!(plan(&r, &cfg(), now), Some(Plan::At(UNIX_EPOCH, RestartReason::ServerDied)));
        r.session.adopted = true;
        assert_eq!(plan(&r, &cfg(), now), None, "nothing a program claimed is run");
    }

    #[test]
    fn a_reboot_marks_what_had_not_exited_and_has_a_policy() {
        let mut rs: Vec<Record> = [
            (SessionState::Running, RestorePolicy::OnBoot),
            (SessionState::Lost, RestorePolicy::Always),
            (SessionState::Exited, RestorePolicy::OnBoot),
            (SessionState::Running, RestorePolicy::Never),
        ]
        .into_iter()
        .map(|(state, restore)| {
            let mut r = record(state);
            r.session.restore = restore;
            r
        })
        .collect();
        assert_eq!(mark_boot_restores(rs.iter_mut()), 2);
        let due: Vec<bool> = rs.iter().map(|r| r.restore_due).collect();
        assert_eq!(due, [true, true, false, false]);
    }

    #[test]
    fn a_boot_id_on_file_tells_a_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let b = Boot::compare(dir.path(), "one".into());
        assert!(!b.rebooted, "no file: a first start restores nothing");
        b.save().unwrap();
        assert!(!Boot::compare(dir.path(), "one".into()).rebooted);
        assert!(Boot::compare(dir.path(), "two".into()).rebooted);
    }
}
