//! One tmux server: the server of one session uid, running as that uid, with
//! its socket in `<socket_dir>/<uid>/` (a 0700 directory of that uid), and
//! the daemon's one control-mode connection to it. A program in a session
//! can reach its own server (it has the uid and `$TMUX`), so the kernel's
//! uid checks are what keeps users apart, not the daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use tokio::sync::mpsc;

use super::panes::{parse_line, PaneInfo, PANE_FORMAT};
use super::record::ServerKey;
use super::store::Stored;
use crate::error::{Error, Result};
use crate::limits::ByteSize;
use crate::protocol::types::SESSION_PREFIX;
use crate::systemd::bus::{Bus, CollectMode, KillMode, Property};
use crate::tmux::{
    self, ClientConfig, Cmd, ControlClient, Launcher, Notification, Output, RunAs, ServerInfo,
    ServerPaths, TmuxError,
};
use crate::users::Account;

/// The tmux user option that carries a copy of the metadata.
pub const META_OPTION: &str = "@ccm_meta";
/// The paste buffer the `pane-died` hook touches, so that a tmux which tells
/// control clients `%paste-buffer-changed` refreshes on an exit. That
/// notification came with tmux 3.4 (`control_notify_paste_buffer_changed`);
/// 3.3a has none (checked by hand: the hook runs, the buffer is set, nothing
/// is sent). Exits are seen at once on every version through the pidfd
/// watches ([`super::exits`]); the hook remains for sessions without one.
pub const PANE_DIED_BUFFER: &str = "ccm_pane_died";
/// The socket of a uid's first server, in its directory.
pub const SOCKET_NAME: &str = "tmux.sock";

/// Which server a socket name in a uid's directory is: `tmux.sock` the
/// first, `tmux.<N>.sock` the others.
pub fn shard_of_socket(name: &str) -> Option<u32> {
    if name == SOCKET_NAME {
        return Some(0);
    }
    let n: u32 = name.strip_prefix("tmux.")?.strip_suffix(".sock")?.parse().ok()?;
    (n > 0 && name == format!("tmux.{n}.sock")).then_some(n)
}

/// The servers' sockets in one uid's directory (`<socket_dir>/<uid>`), with
/// their shard numbers: what the daemon adopts, and what tests and the
/// benchmark clean up.
pub fn sockets_in(uid_dir: &Path) -> Vec<(u32, PathBuf)> {
    let entries = std::fs::read_dir(uid_dir).into_iter().flatten().flatten();
    entries.filter_map(|e| Some((shard_of_socket(e.file_name().to_str()?)?, e.path()))).collect()
}

/// `LimitNOFILE=` of a server's unit: tmux holds a descriptor per pane
/// (systemd's own default hard limit).
pub const SERVER_NOFILE: u64 = 524_288;
/// Mode of `<socket_dir>/<uid>`: only that uid (and root) may reach its server.
pub const SERVER_DIR_MODE: u32 = 0o700;
/// `PATH` of a server started by the daemon (and of its sessions, unless a
/// request sets one).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Variables of the daemon's environment a server may keep (locale only).
const INHERITED_ENV: [&str; 3] = ["LANG", "LC_ALL", "TZ"];

/// How servers are made; the same for every uid.
#[derive(Clone)]
pub struct ServerEnv {
    /// The logger `pipe-pane` runs (found at start).
    pub logger: crate::logs::args::Program,
    /// The tmux binary.
    pub tmux_bin: PathBuf,
    /// `<socket_dir>`: one subdirectory per uid.
    pub socket_dir: PathBuf,
    /// The generated config every server reads (root's, world-readable).
    pub config_file: PathBuf,
    /// Start servers as transient systemd units through this connection
    /// (else detached).
    pub systemd: Option<Bus>,
    /// `Slice=` of those units: the daemon's own.
    pub slice: Option<String>,
    /// `tmux.unit_prefix`.
    pub unit_prefix: String,
    /// `tmux.server_memory_max`.
    pub memory_max: ByteSize,
    /// `tmux.history_limit`.
    pub history_limit: u32,
    /// `tmux.max_commands_in_flight`.
    pub max_commands: usize,
    /// `tmux.max_capture_bytes_in_flight`.
    pub max_reply_bytes: usize,
    /// Counts the hits of those two budgets.
    pub budget_hook: tmux::BudgetHook,
}

impl ServerEnv {
    /// The socket of a server: `<socket_dir>/<uid>/tmux.sock` for a uid's
    /// first, `tmux.<N>.sock` for the others.
    pub fn socket(&self, key: ServerKey) -> PathBuf {
        let dir = self.socket_dir.join(key.uid.to_string());
        match key.shard {
            0 => dir.join(SOCKET_NAME),
            n => dir.join(format!("tmux.{n}.sock")),
        }
    }

    /// The systemd unit of a server: `<prefix>-<uid>.service`, and
    /// `<prefix>-<uid>-<N>.service` for a uid's other servers.
    pub fn unit(&self, key: ServerKey) -> String {
        match key.shard {
            0 => format!("{}-{}.service", self.unit_prefix, key.uid),
            n => format!("{}-{}-{n}.service", self.unit_prefix, key.uid),
        }
    }

    fn launcher(&self, account: &Account, key: ServerKey) -> Launcher {
        if let Some(bus) = &self.systemd {
            return Launcher::SystemdUnit {
                unit: self.unit(key),
                user: Some(account.uid.to_string()),
                slice: self.slice.clone(),
                properties: vec![
                    Property::Description(match key.shard {
                        0 => format!("tmux server of ccmanagerd for {}", account.name),
                        n => format!("tmux server {n} of ccmanagerd for {}", account.name),
                    }),
                    Property::MemoryMax(self.memory_max.0),
                    Property::KillMode(KillMode::ControlGroup),
                    // One descriptor per pane: systemd's default soft limit
                    // (1024) would stop a uid near 1000 sessions.
                    Property::LimitNofile(SERVER_NOFILE),
                    Property::LimitNofileSoft(SERVER_NOFILE),
                    // Unloaded once it ended, also failed, so the name is
                    // free for the next start.
                    Property::CollectMode(CollectMode::InactiveOrFailed),
                ],
                bus: bus.clone(),
            };
        }
        Launcher::Detached(run_as(account))
    }
}

/// Who the tmux processes of `account`'s server (the server itself when
/// detached, and every client) run as: the account, when the daemon is root
/// and the account is not.
fn run_as(account: &Account) -> Option<RunAs> {
    let am_root = nix::unistd::geteuid().is_root();
    (am_root && !account.is_root()).then(|| RunAs {
        uid: account.uid,
        gid: account.gid,
        groups: account.groups.clone(),
        env: login_env(account),
    })
}

/// The environment a login of `account` would have, plus the locale.
fn login_env(account: &Account) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_string(), account.home.display().to_string()),
        ("USER".to_string(), account.name.clone()),
        ("LOGNAME".to_string(), account.name.clone()),
        ("SHELL".to_string(), account.shell.display().to_string()),
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
    ];
    for var in INHERITED_ENV {
        if let Ok(v) = std::env::var(var) {
            env.push((var.to_string(), v));
        }
    }
    env
}

/// One uid's server; see the module documentation.
pub struct Server {
    /// The uid it runs as.
    pub uid: u32,
    /// Which of the uid's servers it is.
    pub shard: u32,
    /// Login name of `uid`.
    pub user: String,
    /// Where its socket, binary and config are.
    pub paths: ServerPaths,
    /// Its systemd unit, when it runs in one.
    pub unit: Option<String>,
    /// The logger `pipe-pane` runs.
    pub logger: crate::logs::args::Program,
    gid: u32,
    launcher: Launcher,
    /// `max_commands`, `max_reply_bytes` and `budget_hook` of [`ServerEnv`].
    budgets: (usize, usize, tmux::BudgetHook),
    client: RwLock<Option<Arc<ControlClient>>>,
    info: Mutex<Option<ServerInfo>>,
    /// Bumped whenever a create or remove adds or drops a session of this
    /// server, so a refresh whose listing predates the change does not apply
    /// it (it would re-adopt a session just removed).
    epoch: AtomicU64,
    /// Serialises starting, connecting and stopping.
    pub(super) lifecycle: tokio::sync::Mutex<()>,
    /// Why the last start failed, until one succeeds (health shows it).
    start_error: Mutex<Option<String>>,
    /// `ccmanager_sess_*` names in this server the daemon will not adopt
    /// (over the cap, or another uid's id): warned about once, and their
    /// metadata not fetched again. Bounded by [`MAX_REFUSED`].
    refused: Mutex<std::collections::HashSet<String>>,
    /// Sessions the daemon removed lately, with the epoch of each removal:
    /// a listing taken before it may still show the session, which must
    /// not be adopted back. Kept [`TOMBSTONE_TTL`], at most [`MAX_TOMBSTONES`].
    removed: Mutex<std::collections::VecDeque<(std::time::Instant, u64, String)>>,
    /// When each pane was last given a logger by adoption (a logger that
    /// cannot start must not be started again at every refresh).
    taps: Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a removal is remembered (longer than any listing can take).
const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Most removals remembered per server.
const MAX_TOMBSTONES: usize = 65_536;

/// Most refused names remembered per server (a program can plant any
/// number; past this, they are still refused, just not remembered).
const MAX_REFUSED: usize = 1024;

/// A target tmux cannot find (`can't find session: ...`) is `None`.
fn missing_is_none<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Tmux(m)) if m.contains("can't find") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The state letter of `/proc/PID/stat` (R, S, T, Z...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

pub(crate) fn tmux_err(e: TmuxError) -> Error {
    match e {
        TmuxError::Unavailable(m) => Error::TmuxUnavailable(m),
        TmuxError::Command(m) => Error::Tmux(m),
        other => Error::Internal(other.to_string()),
    }
}

impl Server {
    /// The (not yet connected) server `shard` of `account`.
    pub fn new(env: &ServerEnv, account: &Account, shard: u32) -> Server {
        let key = ServerKey { uid: account.uid, shard };
        Server {
            uid: account.uid,
            shard,
            user: account.name.clone(),
            paths: ServerPaths {
                tmux_bin: env.tmux_bin.clone(),
                socket: env.socket(key),
                config: env.config_file.clone(),
                client_as: run_as(account),
            },
            unit: env.systemd.as_ref().map(|_| env.unit(key)),
            logger: env.logger.clone(),
            gid: account.gid,
            launcher: env.launcher(account, key),
            budgets: (env.max_commands, env.max_reply_bytes, env.budget_hook.clone()),
            client: RwLock::new(None),
            info: Mutex::new(None),
            epoch: AtomicU64::new(0),
            lifecycle: tokio::sync::Mutex::new(()),
            start_error: Mutex::new(None),
            refused: Mutex::new(Default::default()),
            removed: Mutex::new(Default::default()),
            taps: Mutex::new(Default::default()),
        }
    }

    /// Whether pane `pane` may be given a logger now: not if it was given
    /// one less than `every` ago. Panes of gone sessions are forgotten.
    pub fn may_tap(&self, pane: &str, every: std::time::Duration, live: &[&str]) -> bool {
        let now = std::time::Instant::now();
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        taps.retain(|p, _| live.contains(&p.as_str()));
        match taps.get(pane) {
            Some(at) if now.duration_since(*at) < every => false,
            _ => {
                taps.insert(pane.to_string(), now);
                true
            }
        }
    }

    /// The primary group of its uid.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Which server this is.
    pub fn key(&self) -> ServerKey {
        ServerKey { uid: self.uid, shard: self.shard }
    }

    /// Records that `name` is not adopted; true the first time (warn then).
    pub fn refuse(&self, name: &str) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.len() < MAX_REFUSED && refused.insert(name.to_string())
    }

    /// Whether `name` was refused before.
    pub fn refused(&self, name: &str) -> bool {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).contains(name)
    }

    /// Why the last attempt to start the server failed, if it did.
    pub fn start_error(&self) -> Option<String> {
        self.start_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_start_error(&self, error: Option<String>) {
        *self.start_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// The live control connection, or `tmux_unavailable`.
    pub fn client(&self) -> Result<Arc<ControlClient>> {
        match &*self.client.read().unwrap_or_else(|e| e.into_inner()) {
            Some(c) if c.is_alive() => Ok(c.clone()),
            _ => Err(Error::TmuxUnavailable(format!(
                "the tmux server of {} is not connected; retrying",
                self.key()
            ))),
        }
    }

    /// Whether the control connection is up.
    pub fn is_up(&self) -> bool {
        self.client().is_ok()
    }

    /// Whether the server, connected or not, still lives though it may not
    /// answer (stopped, stalled, or busy): its known pid runs as its uid and
    /// is no zombie, or something listens on its socket. Such a server is
    /// never declared dead, and never gets a second server on its socket.
    pub fn lives(&self) -> bool {
        let pid = self.info().map(|i| i.pid);
        let pid_lives = pid.is_some_and(|p| {
            super::procs::owned_by(p, self.uid) && !matches!(process_state(p), Some('Z' | 'X'))
        });
        pid_lives || tmux::server::listening(&self.paths.socket)
    }

    /// How a server that does not answer is doing, for health: "stopped"
    /// when its process is (SIGSTOP), else "not answering".
    pub fn stall(&self) -> String {
        match self.info().map(|i| (i.pid, process_state(i.pid))) {
            Some((pid, Some('T' | 't'))) => format!("pid {pid} is stopped"),
            Some((pid, _)) => format!("pid {pid} does not answer"),
            None => "its socket is held, its pid not known yet".to_string(),
        }
    }

    /// Forgets the control connection (dropping the last handle kills it).
    pub fn disconnect(&self) {
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The server process, if known.
    pub fn info(&self) -> Option<ServerInfo> {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_info(&self, info: Option<ServerInfo>) {
        *self.info.lock().unwrap_or_else(|e| e.into_inner()) = info;
    }

    /// See the `epoch` field.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// See the `epoch` field; call with the registry lock held. Returns
    /// the new epoch.
    pub fn bump_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The daemon removed session `id` (call with the registry lock held):
    /// a listing from before now must not adopt it back.
    pub fn note_removed(&self, id: &str) {
        let epoch = self.bump_epoch();
        let now = std::time::Instant::now();
        let mut removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
        while removed.front().is_some_and(|(t, _, _)| now.duration_since(*t) > TOMBSTONE_TTL)
            || removed.len() >= MAX_TOMBSTONES
        {
            removed.pop_front();
        }
        removed.push_back((now, epoch, id.to_string()));
    }

    /// Whether the daemon removed `id` after `epoch`.
    pub fn removed_since(&self, id: &str, epoch: u64) -> bool {
        let removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
        removed.iter().rev().take_while(|(_, e, _)| *e > epoch).any(|(_, _, i)| i == id)
    }

    /// Runs one tmux command over the control connection.
    pub async fn tmux(&self, cmd: Cmd) -> Result<Output> {
        self.client()?.run(&cmd).await.map_err(tmux_err)
    }

    /// A pane's text (see [`tmux::capture`]).
    pub async fn capture(&self, spec: &tmux::capture::CaptureSpec<'_>) -> Result<String> {
        let version = self.info().map(|i| i.version);
        let client = self.client()?;
        tmux::capture::capture(&client, version.as_deref(), spec).await.map_err(tmux_err)
    }

    /// Whether a server answers on the socket now.
    pub async fn probe(&self) -> Option<ServerInfo> {
        tmux::server::probe_as(
            &self.paths.tmux_bin,
            &self.paths.socket,
            self.paths.client_as.as_ref(),
        )
        .await
    }

    /// Connects to the server, starting it first when `launch` (else `None`
    /// when none answers). Call with `lifecycle` held.
    pub(super) async fn bring_up(
        &self,
        history_limit: u32,
        launch: bool,
    ) -> anyhow::Result<Option<mpsc::Receiver<Notification>>> {
        let dir = self.paths.socket.parent().context("the server socket has no directory")?;
        crate::dirs::ensure_owned(dir, self.uid, self.gid, SERVER_DIR_MODE)
            .with_context(|| format!("preparing the server directory of uid {}", self.uid))?;
        let info = if launch {
            let (info, launched) = tmux::ensure_running(&self.launcher, &self.paths).await?;
            if launched {
                tracing::info!(uid = self.uid, shard = self.shard, pid = info.pid, socket = %self.paths.socket.display(), "started a tmux server for uid {} (pid {})", self.uid, info.pid);
            } else {
                tracing::info!(
                    uid = self.uid,
                    shard = self.shard,
                    pid = info.pid,
                    "adopted a running tmux server"
                );
            }
            Some(info)
        } else {
            None
        };
        let mut client_config = ClientConfig::new(&self.paths.tmux_bin, &self.paths.socket);
        client_config.run_as = self.paths.client_as.clone();
        (client_config.max_commands, client_config.max_reply_bytes) =
            (self.budgets.0, self.budgets.1);
        client_config.budget_hook = self.budgets.2.clone();
        // Adopting, the control client is the probe (it never starts a
        // server: `-N`): one tmux process per server instead of two, which is
        // what a restart with many servers waits for.
        // Bounded like the probe it replaces: a stopped server would hold the
        // control client's first command for the whole request timeout, and
        // the daemon's start (READY) with it.
        let connected = if info.is_none() {
            tokio::time::timeout(tmux::server::PROBE_TIMEOUT, tmux::connect(&client_config))
                .await
                .map_err(|_| None)
                .and_then(|r| r.map_err(Some))
        } else {
            tmux::connect(&client_config).await.map_err(Some)
        };
        let (client, rx) = match connected {
            Ok(c) => c,
            // Adopting a server that holds its socket but does not answer:
            // not running as far as the caller is concerned, which keeps it
            // (never a second server) while its supervisor retries.
            Err(_) if info.is_none() && self.lives() => return Ok(None),
            Err(e) if info.is_none() => {
                return match self.probe().await {
                    None => Ok(None),
                    Some(_) => Err(e.map_or_else(
                        || {
                            anyhow::anyhow!(
                                "the control client did not attach within {:?}",
                                tmux::server::PROBE_TIMEOUT
                            )
                        },
                        anyhow::Error::from,
                    )),
                };
            }
            Err(e) => {
                return Err(
                    e.map_or_else(|| anyhow::anyhow!("connect timed out"), anyhow::Error::from)
                )
            }
        };
        let hook = Cmd::new("set-buffer").opt("-b", PANE_DIED_BUFFER).arg("1").render()?;
        let setup = [
            Cmd::new("set-hook").flag("-g").arg("pane-died").arg(hook),
            Cmd::new("set-option").flag("-g").arg("history-limit").arg(history_limit.to_string()),
        ];
        // tmux >= 3.3 prints "Pane is dead" into an exited pane, scrolling its
        // last output off the visible screen; keep the output readable.
        // Older versions lack the option, which is fine. All pipelined.
        let format = Cmd::new("set-option").flag("-g").arg("remain-on-exit-format").arg("");
        let whoami = Cmd::new("display-message").flag("-p").arg("#{pid} #{version}");
        let (setup, format, whoami) = futures::join!(
            futures::future::try_join_all(setup.iter().map(|c| client.run(c))),
            client.run(&format),
            client.run(&whoami),
        );
        setup?;
        let _ = format;
        let info = match info {
            Some(info) => info,
            None => {
                let out = whoami?;
                let line = out.first().unwrap_or_default();
                let parsed = line.split_once(' ').and_then(|(pid, version)| {
                    Some(tmux::ServerInfo { pid: pid.parse().ok()?, version: version.to_owned() })
                });
                let info = parsed.with_context(|| format!("unexpected server info {line:?}"))?;
                tracing::info!(
                    uid = self.uid,
                    shard = self.shard,
                    pid = info.pid,
                    "adopted a running tmux server"
                );
                info
            }
        };
        self.set_info(Some(info));
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(client));
        Ok(Some(rx))
    }

    /// The server went away: forget it.
    pub(super) fn forget(&self) {
        self.disconnect();
        self.set_info(None);
    }

    /// Every pane of a `ccmanager_sess_*` session (the first pane of each).
    pub async fn list_panes(&self) -> Result<Vec<PaneInfo>> {
        self.panes(Cmd::new("list-panes").flag("-a")).await
    }

    /// The panes of the session named `name` (ours: `ccmanager_sess_<id>`);
    /// `None` when tmux has no such session.
    pub async fn session_panes(&self, name: &str) -> Result<Option<Vec<PaneInfo>>> {
        let cmd = Cmd::new("list-panes").flag("-s").opt("-t", format!("={name}"));
        missing_is_none(self.panes(cmd).await)
    }

    /// The panes of window `window` (`@N`); `None` when it is gone.
    pub async fn window_panes(&self, window: &str) -> Result<Option<Vec<PaneInfo>>> {
        missing_is_none(self.panes(Cmd::new("list-panes").opt("-t", window)).await)
    }

    /// The dead panes only (tmux filters; the reply stays small).
    pub async fn dead_panes(&self) -> Result<Vec<PaneInfo>> {
        self.panes(Cmd::new("list-panes").flag("-a").opt("-f", "#{pane_dead}")).await
    }

    async fn panes(&self, cmd: Cmd) -> Result<Vec<PaneInfo>> {
        let lines = self.tmux(cmd.opt("-F", PANE_FORMAT)).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(lines
            .lines()
            .filter_map(parse_line)
            .filter(|p| p.session_name.starts_with(SESSION_PREFIX))
            .filter(|p| seen.insert(p.session_name.clone()))
            .collect())
    }

    /// `@ccm_meta` of the session named `name`, if it has one that parses.
    pub async fn meta_of(&self, name: &str) -> Result<Option<Stored>> {
        let cmd = Cmd::new("display-message")
            .flag("-p")
            .opt("-t", format!("={name}:"))
            .arg(format!("#{{{META_OPTION}}}"));
        let out = missing_is_none(self.tmux(cmd).await)?;
        Ok(out.and_then(|o| serde_json::from_str(o.first().unwrap_or_default()).ok()))
    }

    /// `@ccm_meta` of every session, by session name.
    pub async fn metas(&self) -> Result<HashMap<String, Stored>> {
        let lines = self
            .tmux(
                Cmd::new("list-sessions")
                    .opt("-F", format!("#{{session_name}} #{{{META_OPTION}}}")),
            )
            .await?;
        Ok(lines
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, _)| name.starts_with(SESSION_PREFIX))
            .filter_map(|(name, meta)| Some((name.to_string(), serde_json::from_str(meta).ok()?)))
            .collect())
    }

    /// Stops the server: the control client first (a tmux 3.3a server whose
    /// control client stopped reading never finishes `kill-server`), then
    /// the server itself. Call with `lifecycle` held.
    pub(super) async fn stop(&self) {
        let pid = self.info().map(|i| i.pid);
        self.forget();
        let mut cmd = tmux::server::tmux_command(&self.paths.tmux_bin);
        if let Some(run_as) = &self.paths.client_as {
            run_as.apply(&mut cmd);
        }
        cmd.arg("-N").arg("-S").arg(&self.paths.socket).arg("kill-server");
        let killed = tokio::time::timeout(tmux::server::PROBE_TIMEOUT, cmd.output()).await;
        if !matches!(killed, Ok(Ok(ref o)) if o.status.success()) {
            let pid = pid.filter(|p| super::procs::owned_by(*p, self.uid));
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        tracing::info!(uid = self.uid, shard = self.shard, "stopped an idle tmux server");
    }

    /// tmux (seen with 3.3a) can miss the SIGCHLD of a pane whose pty closed
    /// before the program was reaped (an OOM-killed program in its scope, on
    /// a busy host): the pane stays dead without a status, the program a
    /// zombie. A spare SIGCHLD makes tmux run its `waitpid` loop again; it is
    /// harmless when nothing is waiting.
    pub fn nudge_reaper(&self) {
        let pid = self.info().map(|i| i.pid).filter(|p| super::procs::owned_by(*p, self.uid));
        let pid = pid.and_then(|p| i32::try_from(p).ok());
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCHLD,
            );
        }
    }
}
