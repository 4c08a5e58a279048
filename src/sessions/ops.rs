//! The operations behind the `session.*` methods, on the [`Sessions`]
//! handle: who a session runs as, the caps, create, kill, send, capture,
//! resize, attach. Every string a client sends reaches tmux only as a literal
//! argument that tmux does not parse or expand, or is refused.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::value::RawValue;

use super::record::{rfc3339, Record};
use super::registry::{Caller, Caps, Registry};
use super::server::Server;
use super::servers::Servers;
use super::spawn::{Launch, Spawner};
use super::{procs, validate, DEFAULT_COLS, DEFAULT_ROWS};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::methods::{SessionCapture, SessionCreate, SessionSend};
use crate::protocol::types::{
    ServerStatus, Session, SessionCounts, SessionField, SessionState, SESSION_PREFIX,
};
use crate::tmux::capture::CaptureSpec;
use crate::tmux::Cmd;
use crate::users::{Account, UserSpec};

/// Length of generated ids.
const ID_LEN: usize = 8;
/// Bytes per cell a capture is expected to take, for the tmux reply budget:
/// ASCII takes one, the box drawing of a TUI three (UTF-8), so two...
const CAPTURE_BYTES_PER_CELL: usize = 2;
/// ... and with `escapes`, colour and attribute changes add more.
const CAPTURE_BYTES_PER_CELL_ESCAPES: usize = 6;

/// The bytes a capture of `lines` of scrollback above a `cols` x `rows`
/// screen is expected to take (a pane whose history is shorter takes less).
fn capture_estimate(lines: u32, rows: u16, cols: u16, escapes: bool) -> usize {
    let per_cell = if escapes { CAPTURE_BYTES_PER_CELL_ESCAPES } else { CAPTURE_BYTES_PER_CELL };
    let rows = lines as usize + usize::from(rows);
    rows.saturating_mul(usize::from(cols) * per_cell + 1)
}

/// `text` if it fits in `max` bytes, else its last whole lines that do
/// (a terminal client wants the bottom of the screen), and whether it was cut.
fn keep_tail(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut start = text.len() - max;
    let at_line_start = text.as_bytes()[start - 1] == b'\n';
    if !at_line_start {
        start = match text.as_bytes()[start..].iter().position(|b| *b == b'\n') {
            Some(i) if start + i + 1 < text.len() => start + i + 1,
            // Not even the last line fits: keep its end.
            _ => (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len()),
        };
    }
    text.drain(..start);
    (text, true)
}

/// How long `session.kill` waits for the exec-wrapper to end the session's
/// processes once the pane is closed: its program's grace, its leftovers'
/// grace and give-up, and a margin.
const WRAPPER_WAIT: std::time::Duration = std::time::Duration::from_secs(
    crate::limits::reaper::LEFTOVER_GRACE.as_secs()
        + crate::limits::reaper::LEFTOVER_GIVE_UP.as_secs()
        + 1,
);

/// Whose servers this daemon may run.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The daemon is root: every session runs as its owner, in that owner's
    /// own server.
    MultiUser,
    /// The daemon is not root (development): every session runs as the
    /// daemon's own account, in one server.
    SingleUser(Account),
}

/// The session subsystem, as the RPC layer, cleanup and health see it: a
/// cheap, cloneable handle.
#[derive(Clone)]
pub struct Sessions {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) registry: Arc<Registry>,
    pub(super) servers: Arc<Servers>,
    pub(super) spawner: Spawner,
    mode: Mode,
    log_stats: Arc<crate::logs::usage::LogStats>,
    boot: super::revive::Boot,
}

fn new_id(taken: impl Fn(&str) -> bool) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    loop {
        let mut bytes = [0u8; ID_LEN];
        if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
            // Extremely unlikely; fall back to time-derived bytes.
            let n = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            bytes = (n as u64).to_le_bytes();
        }
        let id: String =
            bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
        if !taken(&id) {
            return id;
        }
    }
}

impl Sessions {
    /// A handle over the registry, the servers and the spawner.
    pub fn new(
        registry: Arc<Registry>,
        servers: Arc<Servers>,
        spawner: Spawner,
        mode: Mode,
        boot: super::revive::Boot,
    ) -> Sessions {
        let log_stats = Arc::default();
        Sessions { inner: Arc::new(Inner { registry, servers, spawner, mode, log_stats, boot }) }
    }

    /// What the start found about the boot (restores after a reboot).
    pub fn boot(&self) -> &super::revive::Boot {
        &self.inner.boot
    }

    /// What the passes over the session logs found (metrics, health).
    pub fn log_stats(&self) -> &Arc<crate::logs::usage::LogStats> {
        &self.inner.log_stats
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Whether per-session cgroup scopes are used.
    pub fn cgroups(&self) -> bool {
        self.inner.spawner.cgroups
    }

    /// Counts by state.
    pub fn counts(&self) -> SessionCounts {
        self.inner.registry.counts()
    }

    /// A copy of every record (cleanup, metrics).
    pub fn all_records(&self) -> Vec<Record> {
        self.inner.registry.all_records()
    }

    /// The servers, for `daemon.status` and health.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.inner.servers.status()
    }

    /// The server objects (health pings them).
    pub fn server_handles(&self) -> Vec<Arc<Server>> {
        self.inner.servers.all()
    }

    /// Whether sessions may end up running as root because
    /// `tmux.session_user` does not exist (a development machine).
    pub fn root_fallback(&self, config: &Config) -> bool {
        matches!(self.inner.mode, Mode::MultiUser)
            && Account::by_name(&config.tmux.session_user).is_err()
    }

    /// Who a new session runs as; see docs/design.md ("Who a session runs as").
    pub fn runs_as(
        &self,
        caller: &Caller,
        config: &Config,
        user: Option<&UserSpec>,
    ) -> Result<Account> {
        if let Some(spec) = user {
            if !caller.admin {
                return Err(Error::PermissionDenied(format!(
                    "user: only root and members of daemon.admin_group may create a session for another user (asked for {spec})"
                )));
            }
        }
        let account = match (&self.inner.mode, user) {
            (Mode::SingleUser(me), Some(spec)) => {
                let wanted = Account::lookup(spec)
                    .map_err(|e| Error::InvalidParams(format!("user: {e}")))?;
                if wanted.uid != me.uid {
                    return Err(Error::InvalidParams(format!(
                        "user: this daemon is not root and runs every session as {} (uid {}); it cannot run one as {spec}",
                        me.name, me.uid
                    )));
                }
                return Ok(wanted);
            }
            (Mode::SingleUser(me), None) => return Ok(me.clone()),
            (Mode::MultiUser, Some(spec)) => {
                Account::lookup(spec).map_err(|e| Error::InvalidParams(format!("user: {e}")))?
            }
            (Mode::MultiUser, None) if caller.uid == 0 => {
                match Account::by_name(&config.tmux.session_user) {
                    Ok(a) => a,
                    // A development machine without the package's user.
                    Err(_) => {
                        return Account::by_uid(0).map_err(|e| Error::Internal(e.to_string()))
                    }
                }
            }
            (Mode::MultiUser, None) => Account::by_uid(caller.uid).map_err(|e| {
                Error::PermissionDenied(format!("cannot run a session as uid {}: {e}", caller.uid))
            })?,
        };
        if account.is_root() && !config.tmux.allow_root_sessions {
            return Err(Error::PermissionDenied(
                "sessions may not run as root (set tmux.allow_root_sessions = true to allow it)"
                    .into(),
            ));
        }
        Ok(account)
    }

    /// `session.list`, as values.
    pub fn list(&self, caller: &Caller, state: Option<SessionState>) -> Vec<Session> {
        self.inner.registry.list(caller, state)
    }

    /// `session.list`, encoded straight from the registry.
    pub fn list_encoded(
        &self,
        caller: &Caller,
        state: Option<SessionState>,
        fields: &[SessionField],
    ) -> Result<Box<RawValue>> {
        self.inner.registry.list_encoded(caller, state, fields)
    }

    /// `session.get`.
    pub fn get(&self, caller: &Caller, id: &str) -> Result<Session> {
        Ok(self.inner.registry.find(caller, id)?.session)
    }

    /// `session.create`. `on_reject` names a limit that refused it (metrics).
    pub async fn create(
        &self,
        caller: &Caller,
        config: &Config,
        p: SessionCreate,
        on_reject: impl Fn(&str),
    ) -> Result<Session> {
        validate::command(&p.command)?;
        if let Some(n) = &p.name {
            validate::name(n)?;
        }
        if let Some(c) = &p.cwd {
            validate::cwd(c)?;
        }
        validate::env(&p.env)?;
        validate::size(p.cols, p.rows)?;
        if let Some(argv) = &p.resume_command {
            validate::argv_named("resume_command", argv)?;
        }
        let limits = p.limits.or(&config.limits.default);
        if let Err(e) = p.limits.check_ceiling(&config.limits.ceiling) {
            on_reject(e.field);
            return Err(Error::LimitReached(e.to_string()));
        }
        let account = self.runs_as(caller, config, p.user.as_ref())?;
        let now = SystemTime::now();
        let registry = &self.inner.registry;
        // Never an id whose old log is still there (a removed session's).
        let id = new_id(|id| {
            registry.lock().contains(id)
                || std::fs::symlink_metadata(crate::logs::dir_of(config, id)).is_ok()
        });
        let session = Session {
            tmux_session: format!("{SESSION_PREFIX}{id}"),
            id: id.clone(),
            name: p.name.clone(),
            command: p.command.clone(),
            cwd: Some(p.cwd.clone().unwrap_or_else(|| account.home.clone())),
            state: SessionState::Running,
            exit_status: None,
            pid: None,
            created_at: rfc3339(now),
            last_activity_at: Some(rfc3339(now)),
            ended_at: None,
            owner_uid: caller.uid,
            uid: account.uid,
            user: account.name.clone(),
            adopted: false,
            limits: limits.clone(),
            keep: p.keep,
            cols: Some(p.cols.unwrap_or(DEFAULT_COLS)),
            rows: Some(p.rows.unwrap_or(DEFAULT_ROWS)),
            env: p.env.clone(),
            restore: p.restore.unwrap_or(config.sessions.restore),
            resume_command: p.resume_command.clone(),
            restart: p.restart.unwrap_or(config.sessions.restart),
            restarts: 0,
            restarted_at: None,
            restored_at: None,
            restart_reason: None,
            state_reason: None,
        };
        // A session needs a pseudo-terminal, and the host has a fixed number.
        super::pty::room_for_one().map_err(|why| {
            on_reject("pty_max");
            Error::LimitReached(why)
        })?;
        // The record is reserved before the server is needed: caps cannot be
        // overshot by concurrent creates, and an idle server is not stopped
        // under a create. It is the create's intent, durable before tmux
        // makes the session: a daemon crash after `new-session` finds the
        // session and its owner, command and limits on start.
        let caps = Caps::of(config);
        let mut reserved =
            Record::new(session.clone(), self.inner.spawner.planned_scope(&id, &limits));
        reserved.spawning = true;
        reserved.pending = true;
        let (key, intent) = match registry.reserve(reserved, caps) {
            Ok(reserved) => reserved,
            Err(hit) => {
                on_reject(hit.limit());
                return Err(Error::LimitReached(hit.message()));
            }
        };
        // Nothing that cannot be kept is acknowledged: without a durable
        // intent the create is refused, before tmux is touched.
        if let Err(e) = registry.durable(intent).await {
            registry.remove(&id);
            tracing::warn!(session_id = %id, error = %e, "session create refused: its intent could not be saved");
            return Err(e);
        }
        let spawned = async {
            let server = self.inner.servers.get_or_start(&account, key.shard).await?;
            let log = crate::logs::setup::log_args(config, &id, false);
            let launch = Launch { log: Some(&log), fresh_log: true, ..Default::default() };
            let record =
                self.inner.spawner.spawn(&server, &session, &limits, &account, &launch).await;
            Ok::<_, Error>((server, record.map_err(super::pty::explain)))
        }
        .await;
        let spawned = match spawned {
            Ok((server, Ok(mut record))) => {
                let out = record.session.clone();
                let restorable = out.restore != crate::protocol::types::RestorePolicy::Never;
                let gen = {
                    let mut records = registry.lock();
                    record.shard = key.shard;
                    // A listing taken before new-session must not mark it lost.
                    record.epoch = server.bump_epoch();
                    // The intent is fulfilled; saved with the next save (the
                    // intent alone brings the session back after a daemon
                    // crash, from tmux)...
                    if restorable {
                        Some(records.insert(record))
                    } else {
                        records.insert_lazy(record);
                        None
                    }
                };
                self.inner.servers.exits().watch(&server, &id);
                // ... but not after a power loss, which takes tmux too: an
                // intent found then is dropped. A session to restore is
                // acknowledged once it would be.
                if let Some(gen) = gen {
                    if let Err(e) = registry.durable(gen).await {
                        tracing::warn!(session_id = %id, error = %e, "session {id} runs, but would not be restored after a power loss: its state is not saved");
                    }
                }
                Ok(out)
            }
            Ok((server, Err(e))) => {
                let mut records = registry.lock();
                records.remove_lazy(&id);
                // A listing taken while it existed must not adopt it.
                server.note_removed(&id);
                Err(e)
            }
            Err(e) => {
                registry.remove(&id);
                Err(e)
            }
        };
        match spawned {
            Ok(out) => {
                tracing::info!(session_id = %out.id, pid = out.pid, uid = out.uid, owner_uid = caller.uid, command = ?out.command, "created session {} ({}) for uid {}: {}", out.id, out.name.as_deref().unwrap_or("no name"), out.uid, shlex::try_join(out.command.iter().map(String::as_str)).unwrap_or_default());
                Ok(out)
            }
            Err(e) => {
                tracing::warn!(session_id = %id, error = %e, "creating session {id} failed; nothing left behind: {e}");
                Err(e)
            }
        }
    }

    /// `session.kill`: the whole process tree (or cgroup), then the tmux session.
    pub async fn kill(&self, caller: &Caller, id: &str, reason: &str) -> Result<()> {
        let record = self.inner.registry.find(caller, id)?;
        self.remove(&record, reason).await
    }

    /// Removes a session whatever its state (used by kill and cleanup).
    pub async fn remove(&self, record: &Record, reason: &str) -> Result<()> {
        let id = &record.session.id;
        let server = self.inner.servers.get(record.server_key());
        self.end_run(record, server.as_deref()).await?;
        let gen = {
            let mut records = self.inner.registry.lock();
            let (_, gen) = records.remove(id);
            // A listing taken before kill-session must not re-adopt it.
            if let Some(server) = &server {
                server.note_removed(id);
            }
            gen
        };
        tracing::info!(session_id = %id, reason, "removed session {id} ({reason})");
        // Acknowledged only once the removal is durable: a daemon crash
        // after the reply never brings the session back (as `lost`).
        self.inner.registry.durable(gen).await.map_err(|e| match e {
            Error::StateNotSaved(why) => Error::StateNotSaved(format!(
                "session {id} was killed, but its removal is not saved ({why}); until it is, a restart of the daemon shows it as lost"
            )),
            other => other,
        })
    }

    /// Ends a session's run: its processes (the whole tree, or its scope),
    /// then its tmux session. Nothing to do for a `lost` one.
    pub(super) async fn end_run(&self, record: &Record, server: Option<&Server>) -> Result<()> {
        let id = &record.session.id;
        let removed = if record.session.state != SessionState::Lost {
            // An exited pane's process was reaped by tmux: if its pid exists
            // again it belongs to someone else (pid reuse) and must not be
            // the root.
            let reused = |pid: &u32| {
                record.session.state == SessionState::Exited
                    && std::path::Path::new(&format!("/proc/{pid}")).exists()
            };
            let uid = record.server_uid();
            // The pane's process (the exec-wrapper, the subreaper of every
            // descendant) is what the user's server claims: only what runs
            // as that user is signalled.
            let root = record
                .pane_pid
                .or(record.session.pid)
                .filter(|pid| !reused(pid))
                .filter(|pid| procs::owned_by(*pid, uid));
            // The wrapper is spared the SIGTERM (it would pass it on to its
            // program a second time); it ends with its program.
            let wrapper = record.pane_pid.filter(|p| record.session.pid.is_some_and(|g| g != *p));
            // A running program under its exec-wrapper: removing the tmux
            // session hangs up its terminal, and the wrapper ends the program
            // and everything it started (SIGHUP, SIGTERM, SIGKILL after a
            // grace), as the owner, so nothing of anyone else's. Watched with
            // a pidfd: no scan of /proc, which costs most with most sessions.
            let watch = wrapper
                .filter(|_| record.session.state == SessionState::Running)
                .filter(|w| root == Some(*w))
                .and_then(|w| super::exits::open(w, uid).ok().flatten().map(|fd| (w, fd)));
            if let (Some(root), None) = (root, &watch) {
                procs::end_tree(root, wrapper, uid, procs::KILL_GRACE).await;
            }
            let removed = match &server {
                Some(server) => {
                    let target = record
                        .tmux_id
                        .clone()
                        .unwrap_or_else(|| format!("={}", record.session.tmux_session));
                    match server.tmux(Cmd::new("kill-session").opt("-t", target)).await {
                        // Already gone from tmux: fine, we are removing it anyway.
                        Ok(_) | Err(Error::Tmux(_)) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                None => Ok(()),
            };
            if let Some((w, fd)) = watch {
                let ended = removed.is_ok()
                    && tokio::time::timeout(WRAPPER_WAIT, fd.readable()).await.is_ok();
                if !ended {
                    // tmux did not close the pane, or the wrapper did not end
                    // its program in time: the tree goes from here.
                    tracing::warn!(session_id = %id, pid = w, "the exec-wrapper did not end the session's processes; killing them");
                    procs::end_tree(w, None, uid, std::time::Duration::ZERO).await;
                }
            }
            removed
        } else {
            Ok(())
        };
        // Also for a lost session: its program may have left a daemonised
        // child in its scope when the server died.
        if let Some(unit) = &record.scope {
            self.inner.spawner.stop_scope(id, unit).await;
        }
        removed
    }

    /// The record and its server, for a request that needs the pane.
    pub(crate) fn live_pane(
        &self,
        caller: &Caller,
        id: &str,
        need_running: bool,
    ) -> Result<(Record, Arc<Server>, String)> {
        let r = self.inner.registry.find(caller, id)?;
        match r.session.state {
            SessionState::Lost => {
                return Err(Error::InvalidState(format!(
                    "session {id} is lost (its tmux session is gone)"
                )))
            }
            SessionState::Exited if need_running => {
                return Err(Error::InvalidState(format!(
                    "session {id} has exited; it takes no input"
                )))
            }
            _ => {}
        }
        let server = self.inner.servers.get(r.server_key()).ok_or_else(|| {
            Error::TmuxUnavailable(format!("the tmux server of {} is not known", r.server_key()))
        })?;
        let pane = match r.pane.clone() {
            Some(pane) => pane,
            None if r.spawning => {
                return Err(Error::InvalidState(format!("session {id} has no pane yet")))
            }
            // A saved session learns its pane at its server's first refresh
            // (a daemon started while the server was stalled): until then,
            // the session's own current pane. `=`: the exact name.
            None => {
                server.client()?;
                format!("={}:", r.session.tmux_session)
            }
        };
        Ok((r, server, pane))
    }

    /// `session.send`: text (literal), then keys, then Enter.
    pub async fn send(&self, caller: &Caller, p: SessionSend) -> Result<()> {
        if let Some(t) = &p.text {
            validate::text(t)?;
        }
        validate::keys(&p.keys)?;
        let (_, server, pane) = self.live_pane(caller, &p.id, true)?;
        if let Some(t) = p.text.filter(|t| !t.is_empty()) {
            server
                .tmux(Cmd::new("send-keys").opt("-t", pane.clone()).flag("-l").arg("--").arg(t))
                .await?;
        }
        if !p.keys.is_empty() {
            // Key names only (validate::keys refuses a leading '-'), and
            // after `--` anyway: never a flag such as -t, -N or -X.
            server
                .tmux(Cmd::new("send-keys").opt("-t", pane.clone()).arg("--").args(p.keys))
                .await?;
        }
        if p.enter {
            server.tmux(Cmd::new("send-keys").opt("-t", pane).arg("--").arg("Enter")).await?;
        }
        self.inner.registry.update(&p.id, |r| {
            let now = SystemTime::now();
            r.last_input = Some(now);
            r.session.last_activity_at = Some(rfc3339(now));
        });
        Ok(())
    }

    /// `session.capture`: visible screen plus `lines` of scrollback, at most
    /// `daemon.max_capture_bytes` of it (the last lines); true when cut.
    pub async fn capture(
        &self,
        caller: &Caller,
        config: &Config,
        p: SessionCapture,
    ) -> Result<(String, bool)> {
        let history = config.tmux.history_limit;
        if p.lines > history {
            return Err(Error::InvalidParams(format!(
                "lines: {} is more than tmux.history_limit = {history}",
                p.lines
            )));
        }
        let (r, server, pane) = self.live_pane(caller, &p.id, false)?;
        let cols = r.session.cols.unwrap_or(DEFAULT_COLS);
        let rows = r.session.rows.unwrap_or(DEFAULT_ROWS);
        let spec = CaptureSpec {
            target: &pane,
            lines: p.lines,
            escapes: p.escapes,
            estimate: capture_estimate(p.lines, rows, cols, p.escapes),
        };
        let text = server.capture(&spec).await?;
        let max = usize::try_from(config.daemon.max_capture_bytes.0).unwrap_or(usize::MAX);
        Ok(keep_tail(text, max))
    }

    /// `session.resize`.
    pub async fn resize(&self, caller: &Caller, id: &str, cols: u16, rows: u16) -> Result<Session> {
        validate::size(Some(cols), Some(rows))?;
        let (r, server, pane) = self.live_pane(caller, id, false)?;
        let window = r
            .window
            .clone()
            .ok_or_else(|| Error::InvalidState(format!("session {id} has no window yet")))?;
        server
            .tmux(
                Cmd::new("resize-window")
                    .opt("-t", window)
                    .opt("-x", cols.to_string())
                    .opt("-y", rows.to_string()),
            )
            .await?;
        let out = server
            .tmux(
                Cmd::new("display-message")
                    .flag("-p")
                    .opt("-t", pane)
                    .arg("#{pane_width} #{pane_height}"),
            )
            .await?;
        self.inner
            .registry
            .update(id, |rec| {
                if let Some((w, h)) = out.first().and_then(|l| l.split_once(' ')) {
                    rec.session.cols = w.parse().ok();
                    rec.session.rows = h.parse().ok();
                }
            })
            .ok_or_else(|| Error::SessionNotFound(id.to_string()))?;
        // The size is tmux's too (read back on start): saved with the next
        // group, not waited for.
        self.get(caller, id)
    }

    /// `session.attach`: an argv the session's own uid can exec to attach a
    /// terminal to its server. Nobody else can use it (tmux refuses clients
    /// of other uids, except root), so anyone else gets an error saying so.
    pub fn attach(&self, caller: &Caller, id: &str) -> Result<Vec<String>> {
        let (r, server, _) = self.live_pane(caller, id, false)?;
        if caller.uid != 0 && caller.uid != r.session.uid {
            return Err(Error::PermissionDenied(format!(
                "session {id} runs as uid {} in that uid's own tmux server; only uid {} or root can attach to it",
                r.session.uid, r.session.uid
            )));
        }
        // Root attaches as the session's user: a root tmux client would run
        // the commands that user's server sends it (`detach-client -E`) as root.
        let mut argv = Vec::new();
        if caller.uid != r.session.uid {
            argv.extend(["runuser".to_string(), "-u".into(), r.session.user.clone(), "--".into()]);
        }
        argv.extend([
            server.paths.tmux_bin.display().to_string(),
            "-S".into(),
            server.paths.socket.display().to_string(),
            "attach-session".into(),
            "-t".into(),
            format!("={}", r.session.tmux_session),
        ]);
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_over_the_bound_keeps_its_last_whole_lines() {
        let text = "one\ntwo\nthree\n".to_string();
        assert_eq!(keep_tail(text.clone(), 100), (text.clone(), false));
        assert_eq!(keep_tail(text.clone(), text.len()), (text.clone(), false));
        assert_eq!(keep_tail(text.clone(), 10), ("two\nthree\n".to_string(), true));
        assert_eq!(keep_tail(text.clone(), 9), ("three\n".to_string(), true));
        assert_eq!(keep_tail(text.clone(), 6), ("three\n".to_string(), true));
        assert_eq!(keep_tail(text.clone(), 5), ("hree\n".to_string(), true), "one long line");
        let wide = "ééé\n".to_string();
        let (cut, truncated) = keep_tail(wide, 4);
        assert!(truncated && cut.len() <= 4 && cut.ends_with('\n'), "{cut:?}");
    }

    #[test]
    fn a_capture_is_estimated_from_the_pane_size() {
        assert_eq!(capture_estimate(0, 24, 80, false), 24 * 161);
        assert_eq!(capture_estimate(10_000, 24, 80, false), 10_024 * 161);
        assert!(capture_estimate(100, 24, 80, true) > capture_estimate(100, 24, 80, false));
    }
}
