//! The tmux server's lifecycle as the daemon sees it: start or adopt the
//! server, connect the one control-mode client, reconcile saved sessions
//! before READY, then watch: refresh on notifications and every health
//! interval, reconnect a dead control client, and replace a dead server
//! (marking its sessions `lost`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::mpsc;

use super::panes::{parse_line, PaneInfo, PANE_FORMAT};
use super::store::{Store, Stored};
use super::{rfc3339, Record, Sessions, META_OPTION};
use crate::config::{Config, LauncherKind};
use crate::protocol::types::{Session, SessionState, SESSION_PREFIX};
use crate::shutdown::ShutdownListener;
use crate::systemd::bus::{Bus, CollectMode, KillMode, Property};
use crate::tmux::{
    self, ClientConfig, Cmd, Launcher, Notification, ServerPaths, TmuxServerSettings,
};

/// The paste buffer the `pane-died` hook touches, so that a tmux which tells
/// control clients `%paste-buffer-changed` makes exits seen at once. tmux
/// 3.3a does not send that notification (checked by hand: the hook runs, the
/// buffer is set, no `%paste-buffer-changed`); there an exit is seen at the
/// next periodic refresh (`health.interval`).
const PANE_DIED_BUFFER: &str = "ccm_pane_died";
/// How long a pane may show dead without an exit status before the session
/// is reported `exited` with an unknown status.
const DEAD_STATUS_GRACE: Duration = Duration::from_secs(3);
/// How soon to look again at a pane that died before tmux had its status.
const EXIT_STATUS_RECHECK: Duration = Duration::from_millis(100);
/// A notification waits this long before its refresh, so a burst of them
/// (1000 creates, a cleanup run) costs a few refreshes, not one each: a
/// refresh lists every pane, so one per notification is quadratic.
const REFRESH_DEBOUNCE: Duration = Duration::from_millis(50);
/// Upper bound on the pause between attempts to bring tmux back.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// A refresh whose listing went stale (a create or remove ran meanwhile) is
/// retried this many times in all.
const REFRESH_ATTEMPTS: usize = 3;

/// How the server is started, from the config. A systemd unit needs `bus`;
/// it goes in the daemon's own slice.
pub async fn launcher(config: &Config, bus: Option<&Bus>) -> anyhow::Result<Launcher> {
    let systemd = match config.tmux.launcher {
        LauncherKind::Detached => false,
        LauncherKind::Systemd => true,
        LauncherKind::Auto => {
            crate::systemd::booted() && nix::unistd::geteuid().is_root() && bus.is_some()
        }
    };
    if !systemd {
        return Ok(Launcher::Detached);
    }
    let bus = bus.context("tmux.launcher = \"systemd\", but there is no connection to systemd")?;
    let user = &config.tmux.session_user;
    let user_exists = nix::unistd::User::from_name(user).ok().flatten().is_some();
    if !user_exists {
        tracing::warn!(user = %user, "tmux.session_user does not exist; the tmux server runs as root");
    }
    Ok(Launcher::SystemdUnit {
        unit: service_name(&config.tmux.unit),
        user: user_exists.then(|| user.clone()),
        slice: bus.own_slice().await,
        properties: vec![
            Property::Description("tmux server of ccmanagerd".into()),
            Property::MemoryMax(config.tmux.server_memory_max.0),
            Property::KillMode(KillMode::ControlGroup),
            // Unloaded once it ended, also failed, so the name is free for
            // the next start (what `systemd-run --collect` did).
            Property::CollectMode(CollectMode::InactiveOrFailed),
        ],
        bus: bus.clone(),
    })
}

/// `tmux.unit` as a full unit name: `ccmanagerd-tmux` is
/// `ccmanagerd-tmux.service` (as `systemd-run --unit=` read it).
fn service_name(unit: &str) -> String {
    if unit.ends_with(".service") {
        unit.to_string()
    } else {
        format!("{unit}.service")
    }
}

/// The daemon's one connection to systemd, when systemd is PID 1; `None`
/// (and a warning) when it cannot be reached.
async fn connect_systemd() -> Option<Bus> {
    if !crate::systemd::booted() {
        return None;
    }
    match Bus::connect().await {
        Ok(bus) => Some(bus),
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach systemd: no per-session scopes, no tmux unit");
            None
        }
    }
}

/// Checks tmux, starts or adopts the server, connects, and reconciles the
/// saved sessions. Returns the registry and the notification stream.
pub async fn start(
    config: &Config,
    store: Arc<Store>,
) -> anyhow::Result<(Arc<Sessions>, mpsc::Receiver<Notification>)> {
    let bin = config.tmux.binary.clone();
    let version = tmux::check_version(&bin).await?;
    let socket = config.tmux_socket_path();
    let dir = socket.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    let paths =
        ServerPaths { tmux_bin: bin, socket: socket.clone(), config: dir.join("tmux.conf") };
    let bus = connect_systemd().await;
    let available = crate::limits::cgroup::available().and_then(|()| match bus {
        Some(_) => Ok(()),
        None => Err("no connection to systemd".to_string()),
    });
    let cgroups = match available {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(reason = %why, "per-session cgroup caps are not available; rlimits still apply");
            false
        }
    };
    let exe =
        std::env::current_exe().context("locating the daemon's own binary (the exec-wrapper)")?;
    let sessions = Arc::new(Sessions::new(paths, store.clone(), exe, cgroups, bus));
    let rx = sessions.bring_up(config).await?;
    tracing::info!(version = %version.raw, socket = %socket.display(), "tmux ready");
    sessions.reconcile(store.load()).await?;
    Ok((sessions, rx))
}

fn unix_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Sessions {
    /// Starts or adopts the server and connects the control client.
    async fn bring_up(&self, config: &Config) -> anyhow::Result<mpsc::Receiver<Notification>> {
        let settings =
            TmuxServerSettings { history_limit: config.tmux.history_limit, ..Default::default() };
        if let Some(dir) = self.paths.config.parent() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
        }
        tmux::write_config(&self.paths.config, &settings)?;
        let launcher = launcher(config, self.bus.as_ref()).await?;
        if let Launcher::SystemdUnit { user: Some(user), .. } = &launcher {
            hand_to_server_user(user, &self.paths.config);
        }
        let (info, launched) = tmux::ensure_running(&launcher, &self.paths).await?;
        if launched {
            tracing::info!(pid = info.pid, "started a new tmux server");
        } else {
            tracing::info!(pid = info.pid, "adopted the running tmux server");
        }
        let (client, rx) =
            tmux::connect(&ClientConfig::new(&self.paths.tmux_bin, &self.paths.socket)).await?;
        let hook = Cmd::new("set-buffer").opt("-b", PANE_DIED_BUFFER).arg("1").render()?;
        let setup = [
            Cmd::new("set-hook").flag("-g").arg("pane-died").arg(hook),
            Cmd::new("set-option")
                .flag("-g")
                .arg("history-limit")
                .arg(config.tmux.history_limit.to_string()),
        ];
        for cmd in setup {
            client.run(&cmd).await?;
        }
        // tmux >= 3.3 prints "Pane is dead" into an exited pane, scrolling its
        // last output off the visible screen; keep the output readable.
        // Older versions lack the option, which is fine.
        let _ = client
            .run(&Cmd::new("set-option").flag("-g").arg("remain-on-exit-format").arg(""))
            .await;
        self.set_server(Some(info));
        self.set_client(Some(Arc::new(client)));
        Ok(rx)
    }

    async fn list_panes(&self) -> crate::error::Result<Vec<PaneInfo>> {
        let lines = self.tmux(Cmd::new("list-panes").flag("-a").opt("-F", PANE_FORMAT)).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(lines
            .lines()
            .filter_map(parse_line)
            .filter(|p| p.session_name.starts_with(SESSION_PREFIX))
            .filter(|p| seen.insert(p.session_name.clone()))
            .collect())
    }

    /// Merges saved metadata with what tmux has, before READY.
    pub async fn reconcile(&self, saved: Vec<Stored>) -> crate::error::Result<()> {
        {
            let mut records = self.records();
            for s in saved {
                let id = s.session.id.clone();
                records.insert(
                    id,
                    Record {
                        session: s.session,
                        tmux_id: None,
                        window: None,
                        pane: None,
                        scope: s.scope,
                        last_input: None,
                        dead_seen: None,
                    },
                );
            }
        }
        let panes = self.list_panes().await?;
        let metas = self.metas().await.unwrap_or_default();
        let (adopted, lost) = self.apply(&panes, &metas, None).unwrap_or_default();
        let c = self.counts();
        tracing::info!(
            total = c.total,
            running = c.running,
            exited = c.exited,
            lost = c.lost,
            adopted_without_state = adopted,
            newly_lost = lost,
            "sessions reconciled"
        );
        self.persist();
        Ok(())
    }

    /// `@ccm_meta` of every session, by session name.
    async fn metas(&self) -> crate::error::Result<HashMap<String, Stored>> {
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

    /// Brings the registry in line with `panes`; returns (adopted, lost)
    /// counts, or `None` when a create or remove happened since `epoch`
    /// (the listing is stale and nothing was applied).
    fn apply(
        &self,
        panes: &[PaneInfo],
        metas: &HashMap<String, Stored>,
        epoch: Option<u64>,
    ) -> Option<(usize, usize)> {
        let now = SystemTime::now();
        let mut records = self.records();
        if epoch.is_some_and(|e| e != self.epoch()) {
            return None;
        }
        let mut adopted = 0;
        let mut present = std::collections::HashSet::new();
        for p in panes {
            let Some(id) = p.session_name.strip_prefix(SESSION_PREFIX) else { continue };
            if !crate::protocol::types::valid_id(id) {
                continue;
            }
            present.insert(id.to_string());
            let rec = records.entry(id.to_string()).or_insert_with(|| {
                adopted += 1;
                let (session, scope) = match metas.get(&p.session_name) {
                    Some(m) => {
                        tracing::info!(session_id = %id, "adopted a session from its tmux metadata");
                        (m.session.clone(), m.scope.clone())
                    }
                    None => {
                        tracing::warn!(session_id = %id, "adopted a session with no metadata (command and owner unknown; owner set to root)");
                        (bare_session(id, p), None)
                    }
                };
                Record { session, tmux_id: None, window: None, pane: None, scope, last_input: None, dead_seen: None, }
            });
            update_from_pane(rec, p, now);
        }
        let mut lost = 0;
        for (id, rec) in records.iter_mut() {
            if !present.contains(id) && rec.session.state != SessionState::Lost {
                tracing::warn!(session_id = %id, "session is lost: its tmux session is gone");
                rec.session.state = SessionState::Lost;
                rec.session.ended_at = Some(rfc3339(now));
                rec.session.pid = None;
                rec.pane = None;
                lost += 1;
            }
        }
        Some((adopted, lost))
    }

    /// One refresh from tmux; adopts sessions it did not know (fetching
    /// their metadata only then). Returns whether a dead pane still waits for
    /// its exit status.
    pub async fn refresh(&self) -> crate::error::Result<bool> {
        for _ in 0..REFRESH_ATTEMPTS {
            let epoch = self.epoch();
            let panes = self.list_panes().await?;
            let unknown = {
                let records = self.records();
                panes.iter().any(|p| {
                    p.session_name
                        .strip_prefix(SESSION_PREFIX)
                        .is_some_and(|id| !records.contains_key(id))
                })
            };
            let metas =
                if unknown { self.metas().await.unwrap_or_default() } else { HashMap::new() };
            let before = self.snapshot();
            let applied = self.apply(&panes, &metas, Some(epoch)).is_some();
            if self.snapshot() != before {
                self.persist();
            }
            if applied {
                let records = self.records();
                let waiting =
                    panes.iter().filter(|p| p.dead && p.exit_status().is_none()).any(|p| {
                        p.session_name
                            .strip_prefix(SESSION_PREFIX)
                            .and_then(|id| records.get(id))
                            .is_some_and(|r| r.session.state != SessionState::Exited)
                    });
                return Ok(waiting);
            }
        }
        tracing::debug!("sessions kept changing during refresh; the next one will catch up");
        Ok(true)
    }

    /// Marks every session lost (the server they lived in is gone).
    fn mark_all_lost(&self) {
        let now = rfc3339(SystemTime::now());
        for rec in self.records().values_mut().filter(|r| r.session.state != SessionState::Lost) {
            rec.session.state = SessionState::Lost;
            rec.session.ended_at = Some(now.clone());
            rec.session.pid = None;
            rec.pane = None;
            tracing::error!(session_id = %rec.session.id, "session lost with the tmux server");
        }
        self.persist();
    }

    /// After the control client died: reconnect, or replace a dead server.
    async fn recover(&self, config: &Config) -> anyhow::Result<mpsc::Receiver<Notification>> {
        self.set_client(None);
        let old = self.server();
        let now = tmux::probe(&self.paths.tmux_bin, &self.paths.socket).await;
        match (&old, &now) {
            (Some(o), Some(n)) if o.pid == n.pid => {
                tracing::warn!(
                    pid = n.pid,
                    "tmux control connection lost; reconnecting to the same server"
                );
            }
            _ => {
                tracing::error!(
                    old_pid = old.as_ref().map(|o| o.pid),
                    "the tmux server died; starting a new one"
                );
                self.set_server(None);
                self.mark_all_lost();
            }
        }
        let rx = self.bring_up(config).await?;
        self.refresh().await?;
        Ok(rx)
    }
}

/// The tmux server runs as `user` but the daemon (root, UMask=0027) writes
/// its config and may have created its socket directory: make the config
/// readable (else tmux runs without exit-empty off / remain-on-exit on) and
/// the directory the user's (else tmux cannot create its socket).
fn hand_to_server_user(user: &str, config: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(Some(u)) = nix::unistd::User::from_name(user) else { return };
    if let Err(e) = std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o644)) {
        tracing::warn!(path = %config.display(), error = %e, "cannot make the tmux config readable");
    }
    let Some(dir) = config.parent() else { return };
    // Only a directory the daemon created (root, 0700): never chown e.g. /run.
    if std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o777 == 0o700) {
        if let Err(e) = nix::unistd::chown(dir, Some(u.uid), Some(u.gid)) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot give the tmux socket directory to the session user");
        }
    }
}

fn bare_session(id: &str, p: &PaneInfo) -> Session {
    let created = p.created.map(unix_time).unwrap_or_else(SystemTime::now);
    Session {
        id: id.to_string(),
        name: None,
        tmux_session: p.session_name.clone(),
        command: Vec::new(),
        cwd: None,
        state: SessionState::Running,
        exit_status: None,
        pid: p.pid,
        created_at: rfc3339(created),
        last_activity_at: None,
        ended_at: None,
        owner_uid: 0,
        limits: Default::default(),
        keep: false,
        cols: p.width,
        rows: p.height,
        env: Default::default(),
    }
}

fn update_from_pane(rec: &mut Record, p: &PaneInfo, now: SystemTime) {
    rec.tmux_id = Some(p.session_id.clone());
    rec.window = Some(p.window.clone());
    rec.pane = Some(p.pane.clone());
    let s = &mut rec.session;
    s.pid = p.pid;
    s.cols = p.width.or(s.cols);
    s.rows = p.height.or(s.rows);
    let activity = p.activity.map(unix_time).into_iter().chain(rec.last_input).max();
    if let Some(a) = activity {
        s.last_activity_at = Some(rfc3339(a));
    }
    // Exited once tmux has the exit status (so `exited` carries it), or once
    // the pane has shown dead without one for DEAD_STATUS_GRACE: tmux 3.3
    // can take a while to reap, and a session must not stay `running` forever.
    let status = p.exit_status();
    let dead_long = p.dead
        && rec.dead_seen.get_or_insert(now).elapsed().unwrap_or_default() >= DEAD_STATUS_GRACE;
    if !p.dead {
        rec.dead_seen = None;
    }
    let s = &mut rec.session;
    if p.dead && (status.is_some() || dead_long) {
        // tmux marks the pane dead when its pty closes and fills in the
        // status once it has reaped the process: take the status whenever
        // it appears.
        if s.exit_status.is_none() && status.is_some() {
            s.exit_status = status;
            tracing::info!(session_id = %s.id, exit_status = s.exit_status, "session program exited");
        }
        s.ended_at.get_or_insert_with(|| rfc3339(now));
        s.state = SessionState::Exited;
    } else {
        s.state = SessionState::Running;
        s.exit_status = None;
        s.ended_at = None;
    }
}

/// tmux (seen with 3.3a) can miss the SIGCHLD of a pane whose pty closed
/// before the program was reaped (an OOM-killed program in its scope, on a
/// busy host): the pane stays dead without a status, the program a zombie,
/// and the session `running` forever. A spare SIGCHLD makes tmux run its
/// `waitpid` loop again; it is harmless when nothing is waiting.
fn nudge_reaper(server_pid: Option<u32>) {
    let Some(pid) = server_pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) else {
        return;
    };
    let _ =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGCHLD);
}

/// Whether `n` may mean a session appeared, vanished or exited.
fn triggers_refresh(n: &Notification) -> bool {
    match n {
        Notification::SessionsChanged
        | Notification::WindowClose { .. }
        | Notification::UnlinkedWindowClose { .. } => true,
        Notification::PasteBufferChanged { name } => name == PANE_DIED_BUFFER,
        _ => false,
    }
}

/// Keeps the registry current until shutdown.
pub async fn run(
    sessions: Arc<Sessions>,
    mut rx: mpsc::Receiver<Notification>,
    config: impl Fn() -> Arc<Config>,
    mut shutdown: ShutdownListener,
) {
    // The periodic refresh runs on its own deadline, so a stream of
    // unrelated notifications can never starve it.
    let mut next = tokio::time::Instant::now() + config().health.interval.0;
    loop {
        let client = sessions.client().ok();
        let closed = async {
            match &client {
                Some(c) => c.closed().await,
                None => std::future::pending().await,
            }
        };
        let refresh = tokio::select! {
            _ = shutdown.wait() => return,
            _ = closed => false,
            _ = tokio::time::sleep_until(next) => true,
            n = rx.recv() => match n {
                Some(n) if triggers_refresh(&n) => {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(REFRESH_DEBOUNCE) => {}
                    }
                    // The refresh below covers everything queued meanwhile.
                    while rx.try_recv().is_ok() {}
                    true
                }
                Some(_) => continue,
                None => false,
            },
        };
        if refresh && sessions.client().is_ok() {
            next = tokio::time::Instant::now() + config().health.interval.0;
            match sessions.refresh().await {
                // tmux saw a pane die but has not reaped it yet: look again soon.
                Ok(true) => {
                    nudge_reaper(sessions.server().map(|s| s.pid));
                    next = next.min(tokio::time::Instant::now() + EXIT_STATUS_RECHECK);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "refreshing sessions from tmux failed"),
            }
            continue;
        }
        // The control connection is gone: bring tmux back, retrying.
        let mut pause = Duration::from_millis(200);
        loop {
            match sessions.recover(&config()).await {
                Ok(new_rx) => {
                    rx = new_rx;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "tmux recovery failed; retrying");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2)
                        .min(MAX_RETRY)
                        .min(config().health.interval.0.max(Duration::from_millis(200)));
                }
            }
        }
    }
}

/// Writes the state file whenever the registry changed, until shutdown
/// (then once more).
pub async fn persist_loop(
    sessions: Arc<Sessions>,
    store: Arc<Store>,
    mut shutdown: ShutdownListener,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = store.wait_dirty() => {}
        }
        save(&sessions, &store).await;
    }
    save(&sessions, &store).await;
}

/// Serialising 1000 sessions and the fsync take milliseconds: they run on
/// the blocking pool, not on a runtime worker serving requests.
async fn save(sessions: &Sessions, store: &Arc<Store>) {
    let snapshot = sessions.snapshot();
    let writer = store.clone();
    let result = tokio::task::spawn_blocking(move || writer.save(snapshot))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(e) = result {
        tracing::error!(path = %store.path().display(), error = %e, "cannot write the state file");
    }
}
