//! The supervisor of one tmux server: reconcile its sessions with the
//! registry, keep them current (on notifications, and every health
//! interval), reconnect a lost control connection, stop the server when it
//! has been idle long enough, and mark its sessions `lost` when it dies.
//! One task per server; a server's trouble never touches another uid's
//! sessions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::exits::Exits;
use super::panes::PaneInfo;
use super::record::Record;
use super::registry::Registry;
use super::server::{Server, PANE_DIED_BUFFER};
use super::store::Stored;
use crate::config::{Config, ConfigHandle};
use crate::protocol::types::SESSION_PREFIX;
use crate::shutdown::ShutdownListener;
use crate::tmux::Notification;

/// How soon to look again at a pane that died before tmux had its status.
const EXIT_STATUS_RECHECK: Duration = Duration::from_millis(100);
/// A notification waits this long before its refresh, so a burst of them
/// is handled together (and a create or kill of the daemon's own has
/// updated the registry by then, so it needs no refresh).
const REFRESH_DEBOUNCE: Duration = Duration::from_millis(50);
/// Upper bound on the pause between attempts to reconnect.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// ... to a server that lives but does not answer: each probe already waits
/// up to its own timeout, and once the server resumes it should be back
/// within about a second.
const STALL_RETRY: Duration = Duration::from_millis(500);

/// What one application of a listing did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Sessions found in tmux that the registry did not know.
    pub adopted: usize,
    /// Sessions newly `lost`.
    pub lost: usize,
    /// Sessions found in tmux and left alone (their id belongs to another
    /// uid, or the uid's cap is full).
    pub refused: usize,
    /// Creates cut off by a daemon restart, completed from their intent.
    pub completed: usize,
}

/// Which sessions a listing covers: those it does not show are gone.
pub enum Scope<'a> {
    /// Every session of the server (`list-panes -a`).
    All,
    /// The sessions with these ids (targeted listings).
    Ids(&'a HashSet<String>),
    /// Only what it shows (a filtered listing): nothing is gone.
    Shown,
}

/// Brings the registry's sessions of `server` in line with `panes`, a
/// listing taken at `epoch` covering `scope`. A session created after the
/// listing was taken is not marked lost, and one removed since is not
/// adopted back. A `ccmanager_sess_*` session the registry does not know
/// is adopted as the server uid's while that uid is under `per_uid_cap`;
/// an id that belongs to another uid's session is never touched from here.
/// A create's intent found with its session is completed from the intent.
pub fn apply(
    registry: &Registry,
    server: &Server,
    panes: &[PaneInfo],
    metas: &HashMap<String, Stored>,
    epoch: u64,
    per_uid_cap: usize,
    scope: Scope<'_>,
) -> Applied {
    let now = SystemTime::now();
    let mut done = Applied::default();
    let mut present = HashSet::new();
    // In chunks, each under the lock for a short while: requests are served
    // between them (a change meanwhile is what the epoch is for).
    for chunk in panes.chunks(APPLY_CHUNK) {
        apply_chunk(
            registry,
            server,
            chunk,
            metas,
            epoch,
            per_uid_cap,
            now,
            &mut present,
            &mut done,
        );
    }
    let covered: Vec<String> = match scope {
        Scope::All => registry.lock().ids_where(|r| r.server_key() == server.key()),
        Scope::Ids(ids) => ids.iter().cloned().collect(),
        Scope::Shown => Vec::new(),
    };
    for chunk in covered.chunks(APPLY_CHUNK) {
        let mut records = registry.lock();
        for id in chunk {
            if present.contains(id) {
                continue;
            }
            let Some(rec) = records.get(id) else { continue };
            if rec.server_key() != server.key() || rec.spawning || rec.epoch > epoch {
                continue;
            }
            if rec.session.adopted {
                // Never the daemon's: it goes (kept as `lost`, a program could
                // fill the registry by planting and killing sessions).
                records.remove_lazy(id);
            } else if rec.pending {
                records.remove_lazy(id);
                tracing::warn!(session_id = %id, uid = server.uid,
                    "a create cut off by a daemon restart before its session existed: dropped");
            } else if records.modify(id, |r| r.mark_lost(now)) == Some(true) {
                tracing::warn!(session_id = %id, uid = server.uid, "session {id} is lost: its tmux session is gone");
                done.lost += 1;
            }
        }
    }
    done
}

/// Panes applied under one hold of the registry lock.
const APPLY_CHUNK: usize = 512;

/// [`apply`] for some of the panes.
#[allow(clippy::too_many_arguments)]
fn apply_chunk(
    registry: &Registry,
    server: &Server,
    panes: &[PaneInfo],
    metas: &HashMap<String, Stored>,
    epoch: u64,
    per_uid_cap: usize,
    now: SystemTime,
    present: &mut HashSet<String>,
    done: &mut Applied,
) {
    let mut records = registry.lock();
    let mut live = records.uid_count(server.uid).live;
    for p in panes {
        let Some(id) = p.session_name.strip_prefix(SESSION_PREFIX) else { continue };
        if !crate::protocol::types::valid_id(id) {
            continue;
        }
        // A record newer than the listing (restarted since: a new tmux
        // session of the same name) must not get the old pane applied.
        let (spawning, ours) = match records.get(id) {
            Some(rec) => (rec.spawning || rec.epoch > epoch, rec.server_key() == server.key()),
            None => (false, false),
        };
        match records.get(id) {
            Some(_) if spawning => {
                present.insert(id.to_string());
            }
            Some(_) if ours => {
                present.insert(id.to_string());
                records.modify(id, |rec| {
                    rec.apply_pane(p, now);
                    if rec.pending {
                        rec.pending = false;
                        done.completed += 1;
                        tracing::warn!(session_id = %id, uid = server.uid,
                            "a create cut off by a daemon restart had started its session: completed from its saved intent");
                    }
                });
            }
            Some(_) => {
                if server.refuse(&p.session_name) {
                    tracing::warn!(session_id = %id, uid = server.uid, "a session in this server uses the id of a session of another server; ignored");
                }
                done.refused += 1;
            }
            None if server.removed_since(id, epoch) => {}
            None if live >= per_uid_cap => {
                if server.refuse(&p.session_name) {
                    tracing::warn!(session_id = %id, uid = server.uid, "not adopting a session: the uid's session cap is full");
                }
                done.refused += 1;
            }
            None => {
                let claimed = metas.get(&p.session_name);
                tracing::warn!(session_id = %id, uid = server.uid, claimed_metadata = claimed.is_some(),
                    "adopted a session the daemon did not create (it belongs to the server's uid)");
                let mut rec = Record::adopted(id, p, claimed, server.key(), &server.user);
                rec.apply_pane(p, now);
                rec.epoch = epoch;
                records.insert_lazy(rec);
                present.insert(id.to_string());
                live += 1;
                done.adopted += 1;
            }
        }
    }
}

/// Marks every session of `server` lost (the server is gone).
fn mark_all_lost(registry: &Registry, server: &Server) {
    registry.mark_lost_where("its tmux server is gone", |r| r.server_key() == server.key());
}

/// The `@ccm_meta` of every listed session the registry does not know
/// (and has not refused): one `list-sessions` when there are many, one
/// lookup each when there are a few.
async fn metas_of_unknown(
    registry: &Registry,
    server: &Server,
    panes: &[PaneInfo],
) -> HashMap<String, Stored> {
    let unknown: Vec<&str> = {
        let records = registry.lock();
        panes
            .iter()
            .map(|p| p.session_name.as_str())
            .filter(|name| {
                name.strip_prefix(SESSION_PREFIX)
                    .is_some_and(|id| !records.contains(id) && !server.refused(name))
            })
            .collect()
    };
    if unknown.len() > FEW {
        return server.metas().await.unwrap_or_default();
    }
    let mut metas = HashMap::new();
    for name in unknown {
        if let Ok(Some(meta)) = server.meta_of(name).await {
            metas.insert(name.to_string(), meta);
        }
    }
    metas
}

/// Up to this many unknown sessions get their metadata one by one.
const FEW: usize = 8;

/// A pane given a logger by adoption is not given another before this
/// (its logger may fail at once, e.g. on a log directory it cannot reach).
const TAP_RETRY: Duration = Duration::from_secs(60);

/// Gives a pipe to the logger to every session pane without one (a session
/// adopted from tmux, one made by a daemon without logs, one whose logger
/// died or could not start): the logger starts `--adopted`, so its log
/// says that bytes before that point are missing. Only the session's own
/// pane, alive, of a session of this server that is not being created.
async fn tap_unpiped(registry: &Registry, server: &Server, panes: &[PaneInfo], config: &Config) {
    let wanted: Vec<(String, String)> = {
        let records = registry.lock();
        panes
            .iter()
            .filter(|p| !p.pipe && !p.dead)
            .filter_map(|p| {
                let id = p.session_name.strip_prefix(SESSION_PREFIX)?;
                let r = records.get(id)?;
                let ours = r.server_key() == server.key() && !r.spawning;
                (ours && r.pane.as_deref() == Some(p.pane.as_str()))
                    .then(|| (id.to_string(), p.pane.clone()))
            })
            .collect()
    };
    let live: Vec<&str> = panes.iter().map(|p| p.pane.as_str()).collect();
    for (id, pane) in wanted {
        if !server.may_tap(&pane, TAP_RETRY, &live) {
            continue;
        }
        let args = crate::logs::setup::log_args(config, &id, true);
        let tap = crate::logs::setup::prepare_session(&args.dir, server.uid, server.gid(), false)
            .map_err(|e| format!("{}: {e}", args.dir.display()))
            .and_then(|()| crate::logs::setup::pipe_pane(&server.logger, &pane, &args));
        let done = match tap {
            Ok(cmd) => server.tmux(cmd).await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => tracing::info!(session_id = %id, uid = server.uid, %pane,
                "logging the output of a pane that had no logger (its log has a gap here)"),
            Err(e) => tracing::warn!(session_id = %id, uid = server.uid, error = %e,
                "cannot log a session's output"),
        }
    }
}

/// Merges what the registry has with what tmux has, before READY.
pub async fn reconcile(
    registry: &Registry,
    server: &Server,
    config: &Config,
) -> crate::error::Result<()> {
    let per_uid_cap = config.limits.max_sessions_per_owner;
    let epoch = server.epoch();
    let panes = server.list_panes().await?;
    let metas = metas_of_unknown(registry, server, &panes).await;
    let done = apply(registry, server, &panes, &metas, epoch, per_uid_cap, Scope::All);
    tap_unpiped(registry, server, &panes, config).await;
    tracing::info!(
        uid = server.uid,
        panes = panes.len(),
        adopted = done.adopted,
        lost = done.lost,
        refused = done.refused,
        completed = done.completed,
        "sessions of a tmux server reconciled"
    );
    Ok(())
}

/// Whether a listed pane died and tmux has not reaped its program yet.
fn waits_for_status(registry: &Registry, server: &Server, panes: &[PaneInfo]) -> bool {
    let records = registry.lock();
    panes.iter().any(|p| {
        p.session_name
            .strip_prefix(SESSION_PREFIX)
            .and_then(|id| records.get(id))
            .is_some_and(|r| r.server_key() == server.key() && r.waits_for_status(p))
    })
}

/// One full refresh from tmux (every pane; the metadata only of sessions
/// the registry does not know). Returns whether a dead pane still waits
/// for its exit status.
pub async fn refresh(
    registry: &Registry,
    server: &Server,
    config: &Config,
) -> crate::error::Result<bool> {
    let per_uid_cap = config.limits.max_sessions_per_owner;
    let epoch = server.epoch();
    let started = std::time::Instant::now();
    let panes = server.list_panes().await?;
    let listed = started.elapsed();
    let metas = metas_of_unknown(registry, server, &panes).await;
    apply(registry, server, &panes, &metas, epoch, per_uid_cap, Scope::All);
    tap_unpiped(registry, server, &panes, config).await;
    tracing::debug!(
        uid = server.uid,
        shard = server.shard,
        panes = panes.len(),
        list_us = listed.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "full refresh"
    );
    Ok(waits_for_status(registry, server, &panes))
}

/// What notifications asked to look at, gathered over a debounce.
#[derive(Default)]
struct Todo {
    /// Windows that closed.
    closed: HashSet<String>,
    /// Windows that appeared.
    windows: HashSet<String>,
    /// A pane died (the pane-died hook's buffer).
    dead: bool,
    /// Something only a full listing tells.
    full: bool,
}

impl Todo {
    /// Notes what `n` asks to look at; false when it asks for nothing.
    fn note(&mut self, n: &Notification) -> bool {
        match n {
            Notification::WindowAdd { window } | Notification::UnlinkedWindowAdd { window } => {
                self.windows.insert(window.clone())
            }
            // Its session is looked up when the refresh runs.
            Notification::WindowClose { window } | Notification::UnlinkedWindowClose { window } => {
                self.closed.insert(window.clone())
            }
            Notification::SessionRenamed { .. } => {
                self.full = true;
                true
            }
            Notification::PasteBufferChanged { name } if name == PANE_DIED_BUFFER => {
                self.dead = true;
                true
            }
            _ => false,
        }
    }
}

/// The refresh that `todo` needs, touching only the sessions concerned: a
/// window that appeared is listed unless it is a known session's (a create
/// of ours), a window that closed has its session listed unless the daemon
/// removed it (a kill of ours). Our own creates and kills thus cost no
/// tmux round trip at all; others cost one per session, whatever the
/// number of sessions.
async fn refresh_some(
    registry: &Registry,
    server: &Server,
    config: &Config,
    todo: Todo,
) -> crate::error::Result<bool> {
    if todo.full {
        return refresh(registry, server, config).await;
    }
    let per_uid_cap = config.limits.max_sessions_per_owner;
    let epoch = server.epoch();
    let (windows, ids): (Vec<String>, HashSet<String>) = {
        let records = registry.lock();
        let windows = todo
            .windows
            .into_iter()
            .filter(|w| records.by_window(server.key(), w).is_none())
            .collect();
        let ids = todo
            .closed
            .iter()
            .filter_map(|w| records.by_window(server.key(), w))
            .filter(|r| !r.spawning)
            .map(|r| r.session.id.clone())
            .collect();
        (windows, ids)
    };
    if ids.is_empty() && windows.is_empty() && !todo.dead {
        // Our own creates and kills: the registry knows already.
        return Ok(false);
    }
    tracing::debug!(
        uid = server.uid,
        shard = server.shard,
        sessions = ids.len(),
        windows = windows.len(),
        dead = todo.dead,
        "targeted refresh"
    );
    let mut panes = Vec::new();
    for id in &ids {
        let name = format!("{SESSION_PREFIX}{id}");
        panes.extend(server.session_panes(&name).await?.unwrap_or_default());
    }
    // A window or a dead pane says something only about its own pane: a
    // known session is described by its first pane (what a full listing
    // and a session listing give first), so a window its program opened,
    // or the death of a pane other than the session's, leaves it alone.
    let mut other = Vec::new();
    for w in &windows {
        other.extend(server.window_panes(w).await?.unwrap_or_default());
    }
    if todo.dead {
        other.extend(server.dead_panes().await?);
    }
    {
        let records = registry.lock();
        other.retain(|p| {
            match p.session_name.strip_prefix(SESSION_PREFIX).and_then(|id| records.get(id)) {
                None => true,
                Some(r) => r.pane.as_deref() == Some(p.pane.as_str()),
            }
        });
    }
    panes.extend(other);
    if panes.is_empty() && ids.is_empty() {
        return Ok(false);
    }
    let metas = metas_of_unknown(registry, server, &panes).await;
    apply(registry, server, &panes, &metas, epoch, per_uid_cap, Scope::Ids(&ids));
    Ok(waits_for_status(registry, server, &panes))
}

/// `interval` give or take a quarter, at random: the full refreshes of a
/// uid's many servers (started together) must not all run at once, each
/// time, stalling every request for a moment.
fn jittered(interval: Duration) -> Duration {
    let mut b = [0u8; 1];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    interval.mul_f64(0.75 + f64::from(b[0]) / 510.0)
}

/// What ended a supervisor's watch.
enum Ended {
    Shutdown,
    /// The control connection closed (the server may or may not live).
    Closed,
    /// Idle long enough: the server was stopped.
    Stopped,
}

/// Keeps `server`'s sessions current until shutdown, the server's death, or
/// an idle stop. Without `rx` (a server that did not answer at start) it
/// begins by reconnecting.
pub async fn run(
    server: Arc<Server>,
    registry: Arc<Registry>,
    exits: Arc<Exits>,
    mut rx: Option<mpsc::Receiver<Notification>>,
    config: ConfigHandle,
    mut shutdown: ShutdownListener,
) {
    loop {
        if let Some(rx) = rx.as_mut() {
            match watch(&server, &registry, rx, &config, &mut shutdown).await {
                Ended::Shutdown | Ended::Stopped => return,
                Ended::Closed => {}
            }
        }
        match reconnect(&server, &registry, &config, &mut shutdown).await {
            Some(new_rx) => {
                // Sessions adopted while the server did not answer, or whose
                // pane process changed meanwhile, get their exit watches.
                exits.watch_server(&server).await;
                rx = Some(new_rx);
            }
            None => return,
        }
    }
}

async fn watch(
    server: &Server,
    registry: &Registry,
    rx: &mut mpsc::Receiver<Notification>,
    config: &ConfigHandle,
    shutdown: &mut ShutdownListener,
) -> Ended {
    let interval = || config.get().health.interval.0;
    let mut next = tokio::time::Instant::now() + jittered(interval());
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        let Ok(client) = server.client() else { return Ended::Closed };
        let mut todo = Todo::default();
        tokio::select! {
            _ = shutdown.wait() => return Ended::Shutdown,
            _ = client.closed() => return Ended::Closed,
            _ = tokio::time::sleep_until(next) => todo.full = true,
            n = rx.recv() => match n {
                Some(n) if todo.note(&n) => {
                    tokio::select! {
                        _ = shutdown.wait() => return Ended::Shutdown,
                        _ = tokio::time::sleep(REFRESH_DEBOUNCE) => {}
                    }
                    // The refresh below covers everything queued meanwhile.
                    while let Ok(n) = rx.try_recv() {
                        todo.note(&n);
                    }
                }
                Some(_) => continue,
                None => return Ended::Closed,
            },
        };
        let cfg = config.get();
        if todo.full {
            next = tokio::time::Instant::now() + jittered(cfg.health.interval.0);
        }
        match refresh_some(registry, server, &cfg, todo).await {
            Ok(true) => {
                server.nudge_reaper();
                next = next.min(tokio::time::Instant::now() + EXIT_STATUS_RECHECK);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(uid = server.uid, error = %e, "refreshing sessions from tmux failed")
            }
        }
        if registry.count_in(server.key()) > 0 {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
        let Some(limit) = cfg.tmux.server_idle_stop.0 else { continue };
        if since.elapsed() >= limit {
            let _guard = server.lifecycle.lock().await;
            // A create reserves its record before it needs the server.
            if registry.count_in(server.key()) == 0 {
                server.stop().await;
                return Ended::Stopped;
            }
        }
    }
}

/// After the control connection closed: reconnect to the same server (or
/// adopt one that replaced it on the socket), or, when none answers, mark
/// the server's sessions lost and end. A later create starts a new server.
async fn reconnect(
    server: &Server,
    registry: &Registry,
    config: &ConfigHandle,
    shutdown: &mut ShutdownListener,
) -> Option<mpsc::Receiver<Notification>> {
    let mut pause = Duration::from_millis(200);
    loop {
        let guard = server.lifecycle.lock().await;
        if server.is_up() {
            // A create brought it up meanwhile (and runs its own supervisor).
            return None;
        }
        let old = server.info();
        server.disconnect();
        let now = server.probe().await;
        match (&old, &now) {
            (Some(o), Some(n)) if o.pid == n.pid => {
                tracing::warn!(
                    uid = server.uid,
                    pid = n.pid,
                    "tmux control connection lost; reconnecting to the same server"
                );
            }
            // Not known before (it did not answer at start): the sessions
            // the state file gave it are checked by the refresh below.
            (None, Some(n)) => {
                tracing::warn!(uid = server.uid, pid = n.pid, "the tmux server answers again");
            }
            (Some(_), Some(n)) => {
                tracing::warn!(
                    uid = server.uid,
                    pid = n.pid,
                    "another tmux server answers on the socket; adopting it"
                );
                mark_all_lost(registry, server);
            }
            // A server whose process lives is stalled or refusing us, not
            // dead: its sessions stay what they are while we retry.
            (_, None) if server.lives() => {
                drop(guard);
                tracing::warn!(
                    uid = server.uid,
                    pid = old.as_ref().map(|o| o.pid),
                    "the tmux server does not answer; retrying"
                );
                if !backoff(&mut pause, shutdown).await {
                    return None;
                }
                pause = pause.min(STALL_RETRY);
                continue;
            }
            (_, None) => {
                tracing::error!(
                    uid = server.uid,
                    old_pid = old.as_ref().map(|o| o.pid),
                    "the tmux server died"
                );
                server.forget();
                mark_all_lost(registry, server);
                return None;
            }
        }
        let cfg = config.get();
        match server.bring_up(cfg.tmux.history_limit, false).await {
            Ok(Some(rx)) => {
                drop(guard);
                if let Err(e) = refresh(registry, server, &cfg).await {
                    tracing::warn!(uid = server.uid, error = %e, "refresh after reconnecting failed");
                }
                return Some(rx);
            }
            Ok(None) => continue,
            Err(e) => {
                drop(guard);
                tracing::error!(uid = server.uid, error = %format!("{e:#}"), "reconnecting to the tmux server failed; retrying");
                if !backoff(&mut pause, shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// Waits `pause` and doubles it (up to [`MAX_RETRY`]); false on shutdown.
async fn backoff(pause: &mut Duration, shutdown: &mut ShutdownListener) -> bool {
    tokio::select! {
        _ = shutdown.wait() => return false,
        _ = tokio::time::sleep(*pause) => {}
    }
    *pause = (*pause * 2).min(MAX_RETRY);
    true
}
