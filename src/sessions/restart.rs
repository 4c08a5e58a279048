//! Running a session's program again in a fresh tmux session of the same
//! name: `session.restart`, and the restores and restarts of
//! [`super::revive`]. The session keeps its id, name, owner, cwd, env,
//! limits and log; its program gets a new pane, a new scope and a new exit
//! watch. The exec-wrapper prints a marker line (time, reason, argv) first,
//! so the log shows where one run ends and the next begins.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ops::Sessions;
use super::record::{rfc3339, Record};
use super::registry::{Caller, Caps, Records};
use super::spawn::Launch;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::types::{RestartReason, Session, SessionState};
use crate::users::Account;

impl Sessions {
    /// `session.restart`: the session's program again (its `resume_command`
    /// with `resume`), whatever its state; a running one is ended first.
    pub async fn restart(
        &self,
        caller: &Caller,
        config: &Config,
        id: &str,
        resume: bool,
    ) -> Result<Session> {
        let record = self.inner.registry.find(caller, id)?;
        if record.session.adopted {
            return Err(Error::InvalidState(format!(
                "session {id} was adopted from tmux: the daemon does not know its command, so it cannot restart it"
            )));
        }
        self.respawn(config, id, RestartReason::Requested, resume).await
    }

    /// Runs session `id`'s program again for `reason`: ends its current run
    /// (if any), then starts `command` (or `resume_command` with `resume`)
    /// in its owner's server. On failure the session stays as it was (a
    /// running one is then `lost`), with the reason in `state_reason` when
    /// the daemon, not a client, asked.
    pub(super) async fn respawn(
        &self,
        config: &Config,
        id: &str,
        reason: RestartReason,
        resume: bool,
    ) -> Result<Session> {
        let registry = &self.inner.registry;
        // The claim: refreshes and exit watches leave a spawning record alone,
        // and a second restart of it is refused until this one is done.
        let record = {
            let mut records = registry.lock();
            let Some(r) = records.get(id) else {
                return Err(Error::SessionNotFound(id.to_string()));
            };
            if r.spawning {
                return Err(Error::InvalidState(format!(
                    "session {id} is being started; try again once it runs"
                )));
            }
            // The reviver planned under an earlier lock: act only if the plan
            // still stands (a requested restart may have run meanwhile, or
            // the server answered again).
            if reason != RestartReason::Requested {
                let now = SystemTime::now();
                match super::revive::plan(r, &config.sessions, now) {
                    Some(super::revive::Plan::At(at, why)) if at <= now && why == reason => {}
                    _ => return Err(Error::InvalidState(format!("session {id} is no longer due"))),
                }
            }
            // A lost session starts a program again: it must fit the caps a
            // create would. Lost sessions do not count against them, but
            // those being started again (a batch of restores) do.
            let refused = (r.session.state == SessionState::Lost)
                .then(|| lost_over_caps(&records, config, r.session.uid))
                .flatten();
            records.modify(id, |r| r.spawning = true);
            (records.get(id).cloned(), refused)
        };
        let (Some(record), refused) = record else {
            return Err(Error::SessionNotFound(id.to_string()));
        };
        let started = match refused {
            Some(e) => Err(e),
            None => self.respawn_claimed(config, &record, reason, resume).await,
        };
        match started {
            Ok(session) => Ok(session),
            Err(e) => {
                let automatic = reason != RestartReason::Requested;
                let now = SystemTime::now();
                registry.update(id, |r| {
                    r.spawning = false;
                    r.restore_due = false;
                    // Its old run was ended: nothing of it is left in tmux.
                    if r.session.state == SessionState::Running {
                        r.mark_lost(now);
                    }
                    if automatic {
                        r.session.state_reason = Some(format!("{} failed: {e}", what(reason)));
                    }
                });
                tracing::warn!(session_id = %id, reason = reason.as_str(), error = %e,
                    "could not start session {id} again ({}): {e}", what(reason));
                Err(e)
            }
        }
    }

    async fn respawn_claimed(
        &self,
        config: &Config,
        record: &Record,
        reason: RestartReason,
        resume: bool,
    ) -> Result<Session> {
        let id = &record.session.id;
        let uid = record.session.uid;
        let account = Account::by_uid(uid)
            .map_err(|e| Error::InvalidState(format!("uid {uid} has no account any more: {e}")))?;
        // A uid given to someone else since (after a reboot, say) does not
        // get the old user's command, cwd and environment.
        if !record.session.user.is_empty() && account.name != record.session.user {
            return Err(Error::InvalidState(format!(
                "uid {uid} belonged to {} and is now {}'s; not starting the session as them",
                record.session.user, account.name
            )));
        }
        // Limits as saved at create, under today's ceiling.
        record
            .session
            .limits
            .check_ceiling(&config.limits.ceiling)
            .map_err(|e| Error::LimitReached(e.to_string()))?;
        super::pty::room_for_one().map_err(Error::LimitReached)?;
        let servers = &self.inner.servers;
        self.end_run(record, servers.get(record.server_key()).as_deref()).await?;
        let server = servers.get_or_start(&account, record.shard).await?;

        let mut session = record.session.clone();
        session.restarts = session.restarts.saturating_add(1);
        let command = match (resume, &session.resume_command) {
            (true, Some(argv)) => argv.clone(),
            _ => session.command.clone(),
        };
        let now = SystemTime::now();
        let log = crate::logs::setup::log_args(config, id, false);
        let launch = Launch {
            log: Some(&log),
            fresh_log: false,
            command: Some(&command),
            banner: Some(banner(now, reason, record, &command)),
        };
        let limits = session.limits.clone();
        let started = self
            .inner
            .spawner
            .spawn(&server, &session, &limits, &account, &launch)
            .await
            .map_err(super::pty::explain)?;

        let automatic = reason != RestartReason::Requested;
        let burst = config.sessions.restart_burst as usize;
        let updated = self.inner.registry.update(id, |r| {
            r.tmux_id = started.tmux_id.clone();
            r.window = started.window.clone();
            r.pane = started.pane.clone();
            r.pane_pid = started.pane_pid;
            r.scope = started.scope.clone();
            r.dead_seen = None;
            r.ended = None;
            let s = &mut r.session;
            s.pid = started.session.pid;
            s.state = SessionState::Running;
            s.exit_status = None;
            s.ended_at = None;
            s.last_activity_at = Some(rfc3339(now));
            s.restarts = session.restarts;
            s.restarted_at = Some(rfc3339(now));
            s.restart_reason = Some(reason);
            s.state_reason = None;
            if matches!(reason, RestartReason::Reboot | RestartReason::ServerDied) {
                s.restored_at = Some(rfc3339(now));
            }
            r.restore_due = false;
            if automatic {
                let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                r.auto_restarts.push(secs);
                let extra = r.auto_restarts.len().saturating_sub(burst.max(1));
                r.auto_restarts.drain(..extra);
            }
            // A listing taken before the new tmux session must not mark it
            // lost, nor apply the old pane to it.
            r.epoch = server.bump_epoch();
            r.spawning = false;
            r.session.clone()
        });
        let Some(out) = updated else {
            // Removed (killed) while it started: the new run goes too.
            let _ = self.end_run(&started, Some(&server)).await;
            return Err(Error::SessionNotFound(id.to_string()));
        };
        servers.exits().watch(&server, id);
        tracing::info!(session_id = %id, reason = reason.as_str(), pid = out.pid, uid = out.uid,
            restarts = out.restarts, command = ?command,
            "started session {id} again ({}): {}", what(reason), shell_words(&command));
        Ok(out)
    }
}

/// Why a lost session of `uid` may not run again now, if it may not: the
/// caps of a create, counting the lost sessions already being started again
/// as live (a batch of restores must not overshoot them).
fn lost_over_caps(records: &Records, config: &Config, uid: u32) -> Option<Error> {
    let starting: Vec<u32> = records
        .values()
        .filter(|r| r.spawning && r.session.state == SessionState::Lost)
        .map(|r| r.session.uid)
        .collect();
    let of_uid = starting.iter().filter(|u| **u == uid).count();
    let hit = records.cap_hit(uid, Caps::of(config), (starting.len(), of_uid))?;
    Some(Error::LimitReached(hit.message()))
}

/// What happened, in words (log messages and the marker).
fn what(reason: RestartReason) -> &'static str {
    match reason {
        RestartReason::Reboot => "restored after a reboot",
        RestartReason::ServerDied => "restored after its tmux server died",
        RestartReason::Exited => "restarted after its program exited",
        RestartReason::Requested => "restarted on request",
    }
}

/// The marker line the exec-wrapper prints before the new program:
/// `2026-11-21T10:00:00Z restarted after its program exited (status 1): claude --continue`.
/// Only printable text (argv elements hold no control characters; see
/// `validate::argv_named`), cut to what the wrapper accepts.
fn banner(now: SystemTime, reason: RestartReason, old: &Record, command: &[String]) -> String {
    let status = match (reason, old.session.exit_status) {
        (RestartReason::Exited, Some(n)) => format!(" (status {n})"),
        _ => String::new(),
    };
    let mut text = format!("{} {}{status}: {}", rfc3339(now), what(reason), shell_words(command));
    if text.len() > crate::limits::exec_args::MAX_BANNER {
        let mut end = crate::limits::exec_args::MAX_BANNER - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text.retain(|c| !c.is_control());
    text
}

/// An argv as one line, each word quoted when a shell would need it.
pub fn shell_words(argv: &[String]) -> String {
    let quote = |w: &String| {
        let plain = !w.is_empty()
            && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
        if plain {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_quoted_like_a_shell_would() {
        let argv: Vec<String> = ["claude", "--resume", "a b", "it's", ""].map(String::from).into();
        assert_eq!(shell_words(&argv), r#"claude --resume 'a b' 'it'\''s' ''"#);
    }
}
