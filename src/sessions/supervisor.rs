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

use super::panes::PaneInfo;
use super::record::Record;
use super::registry::Registry;
use super::server::{Server, PANE_DIED_BUFFER};
use super::store::Stored;
use crate::config::ConfigHandle;
use crate::protocol::types::{SessionState, SESSION_PREFIX};
use crate::shutdown::ShutdownListener;
use crate::tmux::Notification;

/// How soon to look again at a pane that died before tmux had its status.
const EXIT_STATUS_RECHECK: Duration = Duration::from_millis(100);
/// A notification waits this long before its refresh, so a burst of them
/// (1000 creates, a cleanup run) costs a few refreshes, not one each: a
/// refresh lists every pane, so one per notification is quadratic.
const REFRESH_DEBOUNCE: Duration = Duration::from_millis(50);
/// Upper bound on the pause between attempts to reconnect.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// ... to a server that lives but does not answer: each probe already waits
/// up to its own timeout, and once the server resumes it should be back
/// within about a second.
const STALL_RETRY: Duration = Duration::from_millis(500);
/// A refresh whose listing went stale (a create or remove ran meanwhile) is
/// retried this many times in all.
const REFRESH_ATTEMPTS: usize = 3;

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
}

/// Brings the registry's sessions of `server` in line with `panes`, or
/// returns `None` when a create or remove happened since `epoch` (the
/// listing is stale and nothing was applied). A `ccmanager_sess_*` session
/// the registry does not know is adopted as the server uid's, while that
/// uid is under `per_uid_cap`; an id that belongs to another uid's session
/// is never touched from here.
pub fn apply(
    registry: &Registry,
    server: &Server,
    panes: &[PaneInfo],
    metas: &HashMap<String, Stored>,
    epoch: Option<u64>,
    per_uid_cap: usize,
) -> Option<Applied> {
    let now = SystemTime::now();
    let mut records = registry.lock();
    if epoch.is_some_and(|e| e != server.epoch()) {
        return None;
    }
    let mut done = Applied::default();
    let mut present = HashSet::new();
    let mut live = records
        .values()
        .filter(|r| r.server_uid() == server.uid && r.session.state != SessionState::Lost)
        .count();
    for p in panes {
        let Some(id) = p.session_name.strip_prefix(SESSION_PREFIX) else { continue };
        if !crate::protocol::types::valid_id(id) {
            continue;
        }
        match records.get_mut(id) {
            Some(rec) if rec.spawning => {
                present.insert(id.to_string());
            }
            Some(rec) if rec.server_uid() == server.uid => {
                present.insert(id.to_string());
                rec.apply_pane(p, now);
            }
            Some(_) => {
                if server.refuse(&p.session_name) {
                    tracing::warn!(session_id = %id, uid = server.uid, "a session in this server uses the id of another user's session; ignored");
                }
                done.refused += 1;
            }
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
                let mut rec = Record::adopted(id, p, claimed, server.uid, &server.user);
                rec.apply_pane(p, now);
                records.insert(id.to_string(), rec);
                present.insert(id.to_string());
                live += 1;
                done.adopted += 1;
            }
        }
    }
    // An adopted session that vanished was never the daemon's: it goes
    // (kept as `lost`, a program could fill the registry by planting and
    // killing sessions); the daemon's own become `lost`.
    records.retain(|id, rec| {
        let gone = rec.server_uid() == server.uid && !rec.spawning && !present.contains(id);
        !(gone && rec.session.adopted)
    });
    for (id, rec) in records.iter_mut() {
        if rec.server_uid() == server.uid
            && !rec.spawning
            && !present.contains(id)
            && rec.mark_lost(now)
        {
            tracing::warn!(session_id = %id, uid = server.uid, "session is lost: its tmux session is gone");
            done.lost += 1;
        }
    }
    Some(done)
}

/// Marks every session of `server` lost (the server is gone).
fn mark_all_lost(registry: &Registry, server: &Server) {
    registry.mark_lost_where("its tmux server is gone", |r| r.server_uid() == server.uid);
}

/// Merges what the registry has with what tmux has, before READY.
pub async fn reconcile(
    registry: &Registry,
    server: &Server,
    per_uid_cap: usize,
) -> crate::error::Result<()> {
    let panes = server.list_panes().await?;
    let metas = server.metas().await.unwrap_or_default();
    let done = apply(registry, server, &panes, &metas, None, per_uid_cap).unwrap_or_default();
    tracing::info!(
        uid = server.uid,
        panes = panes.len(),
        adopted = done.adopted,
        lost = done.lost,
        refused = done.refused,
        "sessions of a tmux server reconciled"
    );
    registry.persist();
    Ok(())
}

/// One refresh from tmux (fetching metadata only for sessions the registry
/// does not know). Returns whether a dead pane still waits for its exit
/// status.
pub async fn refresh(
    registry: &Registry,
    server: &Server,
    per_uid_cap: usize,
) -> crate::error::Result<bool> {
    for _ in 0..REFRESH_ATTEMPTS {
        let epoch = server.epoch();
        let panes = server.list_panes().await?;
        let unknown = {
            let records = registry.lock();
            panes.iter().any(|p| {
                p.session_name
                    .strip_prefix(SESSION_PREFIX)
                    .is_some_and(|id| !records.contains_key(id) && !server.refused(&p.session_name))
            })
        };
        let metas = if unknown { server.metas().await.unwrap_or_default() } else { HashMap::new() };
        let before = registry.snapshot();
        let applied = apply(registry, server, &panes, &metas, Some(epoch), per_uid_cap);
        if registry.snapshot() != before {
            registry.persist();
        }
        if applied.is_some() {
            let records = registry.lock();
            let waiting = panes.iter().any(|p| {
                p.session_name
                    .strip_prefix(SESSION_PREFIX)
                    .and_then(|id| records.get(id))
                    .is_some_and(|r| r.server_uid() == server.uid && r.waits_for_status(p))
            });
            return Ok(waiting);
        }
    }
    tracing::debug!(
        uid = server.uid,
        "sessions kept changing during refresh; the next one will catch up"
    );
    Ok(true)
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
            Some(new_rx) => rx = Some(new_rx),
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
    let mut next = tokio::time::Instant::now() + interval();
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        let Ok(client) = server.client() else { return Ended::Closed };
        let due = tokio::select! {
            _ = shutdown.wait() => return Ended::Shutdown,
            _ = client.closed() => return Ended::Closed,
            _ = tokio::time::sleep_until(next) => true,
            n = rx.recv() => match n {
                Some(n) if triggers_refresh(&n) => {
                    tokio::select! {
                        _ = shutdown.wait() => return Ended::Shutdown,
                        _ = tokio::time::sleep(REFRESH_DEBOUNCE) => {}
                    }
                    // The refresh below covers everything queued meanwhile.
                    while rx.try_recv().is_ok() {}
                    true
                }
                Some(_) => continue,
                None => return Ended::Closed,
            },
        };
        if !due {
            continue;
        }
        let cfg = config.get();
        next = tokio::time::Instant::now() + cfg.health.interval.0;
        match refresh(registry, server, cfg.limits.max_sessions_per_owner).await {
            Ok(true) => {
                server.nudge_reaper();
                next = next.min(tokio::time::Instant::now() + EXIT_STATUS_RECHECK);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(uid = server.uid, error = %e, "refreshing sessions from tmux failed")
            }
        }
        if registry.count_in(server.uid) > 0 {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
        let Some(limit) = cfg.tmux.server_idle_stop.0 else { continue };
        if since.elapsed() >= limit {
            let _guard = server.lifecycle.lock().await;
            // A create reserves its record before it needs the server.
            if registry.count_in(server.uid) == 0 {
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
                if let Err(e) = refresh(registry, server, cfg.limits.max_sessions_per_owner).await {
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
