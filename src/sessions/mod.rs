//! The session registry: every `ccmanager_sess_<id>` session, its metadata
//! and state, kept current from tmux and persisted in the state file. The
//! operations behind the `session.*` methods live here; the tmux server's
//! lifecycle and the refresh loop live in [`supervise`].

pub mod panes;
pub mod procs;
pub mod store;
pub mod supervise;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::protocol::methods::{SessionCapture, SessionCreate, SessionSend};
use crate::protocol::types::{
    Projected, Session, SessionCounts, SessionField, SessionState, SESSION_PREFIX,
};
use crate::server::Peer;
use crate::tmux::{Cmd, ControlClient, Output, ServerInfo, ServerPaths, TmuxError};
use store::{Store, Stored};

/// Default pane size when a request names none.
pub const DEFAULT_COLS: u16 = 80;
/// See [`DEFAULT_COLS`].
pub const DEFAULT_ROWS: u16 = 24;
/// Length of generated ids.
const ID_LEN: usize = 8;
/// The tmux user option that carries a copy of the metadata.
pub const META_OPTION: &str = "@ccm_meta";

/// A session as the daemon tracks it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The wire view.
    pub session: Session,
    /// tmux ids (`$N`, `@N`, `%N`), known while the session exists in tmux.
    pub tmux_id: Option<String>,
    /// See `tmux_id`.
    pub window: Option<String>,
    /// See `tmux_id`.
    pub pane: Option<String>,
    /// systemd scope holding the session's processes, if any.
    pub scope: Option<String>,
    /// Last input sent through the daemon.
    pub last_input: Option<SystemTime>,
    /// When tmux first showed the pane dead without an exit status yet.
    pub dead_seen: Option<SystemTime>,
}

impl Record {
    fn stored(&self) -> Stored {
        Stored { session: self.session.clone(), scope: self.scope.clone() }
    }
}

/// The registry and the handle on tmux.
pub struct Sessions {
    records: Mutex<BTreeMap<String, Record>>,
    client: RwLock<Option<Arc<ControlClient>>>,
    server: Mutex<Option<ServerInfo>>,
    /// Where the server's socket, binary and config are.
    pub paths: ServerPaths,
    store: Arc<Store>,
    /// The binary used as the exec-wrapper of every session.
    wrapper: PathBuf,
    /// Whether per-session cgroup scopes can be used.
    pub cgroups: bool,
    /// The connection to systemd (scopes, the tmux unit), when it runs.
    pub bus: Option<crate::systemd::Bus>,
    /// Bumped (under the records lock) whenever create or remove adds or
    /// drops a record, so a refresh whose tmux listing predates the change
    /// does not apply it (it would re-adopt a session just removed).
    epoch: std::sync::atomic::AtomicU64,
}

/// RFC 3339 UTC, seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses what [`rfc3339`] wrote.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

fn new_id(taken: &BTreeMap<String, Record>) -> String {
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
        if !taken.contains_key(&id) {
            return id;
        }
    }
}

fn tmux_err(e: TmuxError) -> Error {
    match e {
        TmuxError::Unavailable(m) => Error::TmuxUnavailable(m),
        TmuxError::Command(m) => Error::Tmux(m),
        other => Error::Internal(other.to_string()),
    }
}

impl Sessions {
    /// A registry that is not yet connected; [`supervise::start`] connects it.
    pub fn new(
        paths: ServerPaths,
        store: Arc<Store>,
        wrapper: PathBuf,
        cgroups: bool,
        bus: Option<crate::systemd::Bus>,
    ) -> Sessions {
        Sessions {
            bus,
            records: Mutex::new(BTreeMap::new()),
            client: RwLock::new(None),
            server: Mutex::new(None),
            paths,
            store,
            wrapper,
            cgroups,
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See the `epoch` field; call with the records lock held.
    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The current epoch (see the `epoch` field).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The live control connection, or `tmux_unavailable`.
    pub fn client(&self) -> Result<Arc<ControlClient>> {
        match &*self.client.read().unwrap_or_else(|e| e.into_inner()) {
            Some(c) if c.is_alive() => Ok(c.clone()),
            _ => {
                Err(Error::TmuxUnavailable("the tmux control connection is down; retrying".into()))
            }
        }
    }

    fn set_client(&self, client: Option<Arc<ControlClient>>) {
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
    }

    /// The current server, if known.
    pub fn server(&self) -> Option<ServerInfo> {
        self.server.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_server(&self, info: Option<ServerInfo>) {
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = info;
    }

    /// Runs one tmux command over the control connection.
    pub async fn tmux(&self, cmd: Cmd) -> Result<Output> {
        self.client()?.run(&cmd).await.map_err(tmux_err)
    }

    /// Saves the registry soon (coalesced).
    fn persist(&self) {
        self.store.mark_dirty();
    }

    /// Everything to save, now.
    pub fn snapshot(&self) -> Vec<Stored> {
        self.records().values().map(Record::stored).collect()
    }

    /// Counts by state.
    pub fn counts(&self) -> SessionCounts {
        let records = self.records();
        let mut c = SessionCounts { total: records.len(), ..Default::default() };
        for r in records.values() {
            match r.session.state {
                SessionState::Running => c.running += 1,
                SessionState::Exited => c.exited += 1,
                SessionState::Lost => c.lost += 1,
            }
        }
        c
    }

    /// A copy of every record (for cleanup and metrics).
    pub fn all_records(&self) -> Vec<Record> {
        self.records().values().cloned().collect()
    }

    fn visible(peer: &Peer, config: &Config, r: &Record) -> bool {
        peer.is_admin(config) || r.session.owner_uid == peer.uid
    }

    /// The record `id` if it exists and `peer` may see it.
    fn find(&self, peer: &Peer, config: &Config, id: &str) -> Result<Record> {
        validate::id(id)?;
        self.records()
            .get(id)
            .filter(|r| Self::visible(peer, config, r))
            .cloned()
            .ok_or_else(|| Error::SessionNotFound(id.to_string()))
    }

    /// Runs `f` on the sessions `peer` may see (all, or those in `state`),
    /// oldest first, under the registry lock: no copies are made.
    fn with_listed<R>(
        &self,
        peer: &Peer,
        config: &Config,
        state: Option<SessionState>,
        f: impl FnOnce(&[&Session]) -> R,
    ) -> R {
        let records = self.records();
        let mut listed: Vec<&Session> = records
            .values()
            .filter(|r| Self::visible(peer, config, r))
            .filter(|r| state.is_none_or(|s| r.session.state == s))
            .map(|r| &r.session)
            .collect();
        listed.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        f(&listed)
    }

    /// `session.list`, as values.
    pub fn list(&self, peer: &Peer, config: &Config, state: Option<SessionState>) -> Vec<Session> {
        self.with_listed(peer, config, state, |listed| {
            listed.iter().map(|s| (*s).clone()).collect()
        })
    }

    /// `session.list`, serialised straight from the registry (the result
    /// `{"sessions": [...]}`, each session with only `fields`): 1000 whole
    /// sessions are about 400 kB of JSON, and cloning them first would cost
    /// more than writing them.
    pub fn list_encoded(
        &self,
        peer: &Peer,
        config: &Config,
        state: Option<SessionState>,
        fields: &[SessionField],
    ) -> Result<crate::rpc::Encoded> {
        #[derive(serde::Serialize)]
        struct Listed<'a> {
            sessions: Vec<Projected<'a>>,
        }
        self.with_listed(peer, config, state, |listed| {
            let sessions = listed.iter().map(|session| Projected { session, fields }).collect();
            crate::rpc::json(&Listed { sessions })
        })
    }

    /// `session.get`.
    pub fn get(&self, peer: &Peer, config: &Config, id: &str) -> Result<Session> {
        Ok(self.find(peer, config, id)?.session)
    }

    /// `session.create`.
    pub async fn create(
        &self,
        peer: &Peer,
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
        let limits = p.limits.or(&config.limits.default);
        if let Err(e) = p.limits.check_ceiling(&config.limits.ceiling) {
            on_reject(e.field);
            return Err(Error::LimitReached(e.to_string()));
        }
        let client = self.client()?;
        let now = SystemTime::now();
        let (cols, rows) = (p.cols.unwrap_or(DEFAULT_COLS), p.rows.unwrap_or(DEFAULT_ROWS));
        // Reserve the id and check the caps under one lock, so concurrent
        // creates cannot overshoot them.
        let session = {
            let mut records = self.records();
            let live = |r: &&Record| r.session.state != SessionState::Lost;
            let total = records.values().filter(live).count();
            if total >= config.limits.max_sessions {
                on_reject("max_sessions");
                return Err(Error::LimitReached(format!(
                    "limit reached: limits.max_sessions = {} sessions exist",
                    config.limits.max_sessions
                )));
            }
            let mine =
                records.values().filter(live).filter(|r| r.session.owner_uid == peer.uid).count();
            if mine >= config.limits.max_sessions_per_owner {
                on_reject("max_sessions_per_owner");
                return Err(Error::LimitReached(format!(
                    "limit reached: limits.max_sessions_per_owner = {} sessions for uid {}",
                    config.limits.max_sessions_per_owner, peer.uid
                )));
            }
            let id = new_id(&records);
            let session = Session {
                tmux_session: format!("{SESSION_PREFIX}{id}"),
                id: id.clone(),
                name: p.name.clone(),
                command: p.command.clone(),
                cwd: p.cwd.clone(),
                state: SessionState::Running,
                exit_status: None,
                pid: None,
                created_at: rfc3339(now),
                last_activity_at: Some(rfc3339(now)),
                ended_at: None,
                owner_uid: peer.uid,
                limits: limits.clone(),
                keep: p.keep,
                cols: Some(cols),
                rows: Some(rows),
                env: p.env.clone(),
            };
            let record = Record {
                session: session.clone(),
                tmux_id: None,
                window: None,
                pane: None,
                scope: None,
                last_input: None,
                dead_seen: None,
            };
            records.insert(id, record);
            self.bump_epoch();
            session
        };
        match self.spawn_in_tmux(&client, &session, &limits).await {
            Ok(record) => {
                let out = record.session.clone();
                {
                    let mut records = self.records();
                    records.insert(session.id.clone(), record);
                    self.bump_epoch();
                }
                self.persist();
                tracing::info!(session_id = %out.id, pid = out.pid, owner_uid = peer.uid, command = ?out.command, "session created");
                Ok(out)
            }
            Err(e) => {
                {
                    let mut records = self.records();
                    records.remove(&session.id);
                    self.bump_epoch();
                }
                tracing::warn!(session_id = %session.id, error = %e, "session create failed; nothing left behind");
                Err(e)
            }
        }
    }

    /// The wrapper argv that applies rlimits (and waits for its scope) before
    /// exec'ing the session's argv. Always several arguments, so tmux execs
    /// it directly, never through a shell.
    fn wrapper_argv(&self, session: &Session, limits: &Limits, scope: Option<&str>) -> Vec<String> {
        let mut argv =
            vec![self.wrapper.display().to_string(), crate::limits::wrapper::MODE.to_string()];
        for (name, value) in crate::limits::wrapper::rlimit_args(limits) {
            argv.push("--rlimit".into());
            argv.push(format!("{name}={value}"));
        }
        if let Some(unit) = scope {
            argv.push("--wait-scope".into());
            argv.push(unit.to_string());
        }
        argv.push("--".into());
        argv.extend(session.command.iter().cloned());
        argv
    }

    async fn spawn_in_tmux(
        &self,
        client: &ControlClient,
        session: &Session,
        limits: &Limits,
    ) -> Result<Record> {
        let scope_unit = (self.cgroups && self.bus.is_some() && limits.has_cgroup_caps())
            .then(|| crate::limits::cgroup::scope_name(&session.id));
        let mut cmd = Cmd::new("new-session")
            .flag("-d")
            .opt("-s", session.tmux_session.clone())
            .opt("-x", session.cols.unwrap_or(DEFAULT_COLS).to_string())
            .opt("-y", session.rows.unwrap_or(DEFAULT_ROWS).to_string())
            .flag("-P")
            .opt("-F", "#{session_id} #{window_id} #{pane_id} #{pane_pid}");
        if let Some(cwd) = &session.cwd {
            cmd = cmd.opt("-c", cwd.display().to_string());
        }
        for (k, v) in &session.env {
            cmd = cmd.opt("-e", format!("{k}={v}"));
        }
        cmd = cmd.args(self.wrapper_argv(session, limits, scope_unit.as_deref()));
        // The metadata copy is set only once new-session has answered. Sent
        // in the same round trip (pipelined), it made tmux lose the first
        // output of a program that exits at once (5 runs in 15 of
        // `shell_metacharacters_reach_the_program_literally`: a blank pane).
        let created = client.run(&cmd).await;
        let out = created.map_err(tmux_err)?;
        let line = out.first().unwrap_or_default();
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 4 {
            return Err(Error::Internal(format!("unexpected new-session output {line:?}")));
        }
        let pid: Option<u32> = f[3].parse().ok();
        let mut record = Record {
            session: session.clone(),
            tmux_id: Some(f[0].to_string()),
            window: Some(f[1].to_string()),
            pane: Some(f[2].to_string()),
            scope: None,
            last_input: None,
            dead_seen: None,
        };
        record.session.pid = pid;
        let meta =
            serde_json::to_string(&record.stored()).map_err(|e| Error::Internal(e.to_string()))?;
        let set_meta = Cmd::new("set-option").opt("-t", f[0]).arg(META_OPTION).arg(meta);
        let placed = async {
            client.run(&set_meta).await.map_err(tmux_err)?;
            if let (Some(unit), Some(pid), Some(bus)) = (&scope_unit, pid, &self.bus) {
                crate::limits::cgroup::place(bus, unit, pid, limits)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                record.scope = Some(unit.clone());
            }
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = placed {
            // Nothing half-made stays: the session goes, with its processes.
            let _ = client.run(&Cmd::new("kill-session").opt("-t", f[0])).await;
            return Err(e);
        }
        Ok(record)
    }

    /// `session.kill`: the whole process tree (or cgroup), then the tmux session.
    pub async fn kill(&self, peer: &Peer, config: &Config, id: &str, reason: &str) -> Result<()> {
        let record = self.find(peer, config, id)?;
        self.remove(&record, reason).await
    }

    /// Removes a session whatever its state (used by kill and cleanup).
    pub async fn remove(&self, record: &Record, reason: &str) -> Result<()> {
        let id = &record.session.id;
        if record.session.state != SessionState::Lost {
            if let (Some(unit), Some(bus)) = (&record.scope, &self.bus) {
                if let Err(e) = crate::limits::cgroup::stop(bus, unit).await {
                    tracing::warn!(session_id = %id, unit, error = %e, "stopping the session scope failed");
                }
            }
            // An exited pane's pid was reaped by tmux: if it exists again it
            // belongs to someone else (pid reuse) and must not be the root.
            let reused = |pid: &u32| {
                record.session.state == SessionState::Exited
                    && std::path::Path::new(&format!("/proc/{pid}")).exists()
            };
            let root = record.session.pid.filter(|pid| !reused(pid));
            // Reading every /proc/PID/stat takes a millisecond or more on a
            // busy host: not on a runtime worker.
            let tree = match root {
                Some(pid) => tokio::task::spawn_blocking(move || procs::tree(&procs::all(), pid))
                    .await
                    .unwrap_or_default(),
                None => Default::default(),
            };
            procs::kill_all(&tree);
            let target = record
                .tmux_id
                .clone()
                .unwrap_or_else(|| format!("={}", record.session.tmux_session));
            match self.tmux(Cmd::new("kill-session").opt("-t", target)).await {
                Ok(_) => {}
                // Already gone from tmux: fine, we are removing it anyway.
                Err(Error::Tmux(_)) => {}
                Err(e) => return Err(e),
            }
            // Processes that forked between the scan and the kill.
            procs::kill_all(
                &tree
                    .iter()
                    .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
                    .copied()
                    .collect(),
            );
        }
        {
            let mut records = self.records();
            records.remove(id);
            self.bump_epoch();
        }
        self.persist();
        tracing::info!(session_id = %id, reason, "session removed");
        Ok(())
    }

    fn live_pane(
        &self,
        peer: &Peer,
        config: &Config,
        id: &str,
        need_running: bool,
    ) -> Result<Record> {
        let r = self.find(peer, config, id)?;
        match r.session.state {
            SessionState::Lost => {
                Err(Error::InvalidState(format!("session {id} is lost (its tmux session is gone)")))
            }
            SessionState::Exited if need_running => {
                Err(Error::InvalidState(format!("session {id} has exited; it takes no input")))
            }
            _ if r.pane.is_none() => {
                Err(Error::InvalidState(format!("session {id} has no pane yet")))
            }
            _ => Ok(r),
        }
    }

    /// `session.send`: text (literal), then keys, then Enter.
    pub async fn send(&self, peer: &Peer, config: &Config, p: SessionSend) -> Result<()> {
        if let Some(t) = &p.text {
            validate::text(t)?;
        }
        validate::keys(&p.keys)?;
        let r = self.live_pane(peer, config, &p.id, true)?;
        let pane = r.pane.clone().unwrap_or_default();
        if let Some(t) = p.text.filter(|t| !t.is_empty()) {
            self.tmux(Cmd::new("send-keys").opt("-t", pane.clone()).flag("-l").arg("--").arg(t))
                .await?;
        }
        if !p.keys.is_empty() {
            self.tmux(Cmd::new("send-keys").opt("-t", pane.clone()).args(p.keys)).await?;
        }
        if p.enter {
            self.tmux(Cmd::new("send-keys").opt("-t", pane).arg("Enter")).await?;
        }
        if let Some(r) = self.records().get_mut(&p.id) {
            let now = SystemTime::now();
            r.last_input = Some(now);
            r.session.last_activity_at = Some(rfc3339(now));
        }
        Ok(())
    }

    /// `session.capture`: visible screen plus `lines` of scrollback.
    pub async fn capture(&self, peer: &Peer, config: &Config, p: SessionCapture) -> Result<String> {
        let history = config.tmux.history_limit;
        if p.lines > history {
            return Err(Error::InvalidParams(format!(
                "lines: {} is more than tmux.history_limit = {history}",
                p.lines
            )));
        }
        let r = self.live_pane(peer, config, &p.id, false)?;
        let mut cmd = Cmd::new("capture-pane").flag("-p").opt("-t", r.pane.unwrap_or_default());
        if p.escapes {
            cmd = cmd.flag("-e");
        }
        if p.lines > 0 {
            cmd = cmd.opt("-S", format!("-{}", p.lines));
        }
        Ok(self.tmux(cmd).await?.into_text())
    }

    /// `session.resize`.
    pub async fn resize(
        &self,
        peer: &Peer,
        config: &Config,
        id: &str,
        cols: u16,
        rows: u16,
    ) -> Result<Session> {
        validate::size(Some(cols), Some(rows))?;
        let r = self.live_pane(peer, config, id, false)?;
        let window = r.window.clone().unwrap_or_default();
        self.tmux(
            Cmd::new("resize-window")
                .opt("-t", window)
                .opt("-x", cols.to_string())
                .opt("-y", rows.to_string()),
        )
        .await?;
        let out = self
            .tmux(
                Cmd::new("display-message")
                    .flag("-p")
                    .opt("-t", r.pane.unwrap_or_default())
                    .arg("#{pane_width} #{pane_height}"),
            )
            .await?;
        let mut records = self.records();
        let rec = records.get_mut(id).ok_or_else(|| Error::SessionNotFound(id.to_string()))?;
        if let Some((w, h)) = out.first().and_then(|l| l.split_once(' ')) {
            rec.session.cols = w.parse().ok();
            rec.session.rows = h.parse().ok();
        }
        drop(records);
        self.persist();
        self.get(peer, config, id)
    }

    /// `session.attach`: an argv a client can exec to attach a terminal.
    pub fn attach(&self, peer: &Peer, config: &Config, id: &str) -> Result<Vec<String>> {
        let r = self.live_pane(peer, config, id, false)?;
        Ok(vec![
            self.paths.tmux_bin.display().to_string(),
            "-S".into(),
            self.paths.socket.display().to_string(),
            "attach-session".into(),
            "-t".into(),
            format!("={}", r.session.tmux_session),
        ])
    }
}
