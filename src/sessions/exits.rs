//! Exits seen as they happen. tmux 3.3a tells a control client nothing when a
//! pane's program exits (the `pane-died` hook can set a paste buffer, but
//! `%paste-buffer-changed` reaches control clients only from tmux 3.4 on), so
//! the daemon watches each running session's pane process itself: a pidfd
//! (`pidfd_open`, which works for processes that are not the daemon's
//! children) polled by the runtime, one per running session. The pane's
//! process is the exec-wrapper, which exits only after tmux has read the
//! program's last output ([`crate::limits::reaper`]); when it has, this asks
//! tmux about that one pane, and again for a moment until tmux has reaped it
//! and shows the exit status, and applies it to the registry. Nothing else is
//! listed, so an exit costs the same at 10,000 sessions as at 10.
//!
//! Watches are armed when a create succeeds and, after a daemon restart, for
//! every running session of an adopted server ([`Exits::watch_server`]); a
//! session planted in a server later, or one whose pidfd cannot be had (the
//! descriptor limit, which the daemon raises to its hard limit at start), is
//! still seen by the periodic refresh. A watch ends with its process; one
//! whose session was removed meanwhile finds no record and does nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustix::process::{pidfd_open, Pid, PidfdFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::panes::{parse_line, PaneInfo, PANE_FORMAT};
use super::procs;
use super::record::{Record, ServerKey, DEAD_STATUS_GRACE};
use super::registry::Registry;
use super::server::Server;
use crate::protocol::types::SessionState;
use crate::tmux::Cmd;

/// How long after the pane's process ended to keep asking tmux for the exit
/// status: past [`DEAD_STATUS_GRACE`], so that a pane tmux shows dead but
/// never reaps is still marked exited from here.
const STATUS_WAIT: Duration = Duration::from_secs(DEAD_STATUS_GRACE.as_secs() + 1);
/// The first pause between two looks; it doubles up to [`MAX_PAUSE`]. tmux
/// usually reaps within a millisecond of the exit.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// See [`FIRST_PAUSE`].
const MAX_PAUSE: Duration = Duration::from_millis(100);
/// After this long without a status, tmux is sent a spare SIGCHLD
/// ([`Server::nudge_reaper`]).
const NUDGE_AFTER: Duration = Duration::from_millis(50);

/// The exit watches; see the module documentation.
pub struct Exits {
    registry: Arc<Registry>,
    /// Session id → the pane pid being watched.
    watched: Mutex<HashMap<String, u32>>,
    /// Whether a failed watch was logged (once: at the descriptor limit every
    /// create would fail the same way).
    warned: AtomicBool,
}

/// Whether `r`, a session of the server `key` (pane ids are per server: a
/// uid's other servers have panes of the same names), has a pane process to
/// watch.
fn watchable(r: &Record, key: ServerKey) -> bool {
    r.server_key() == key && !r.spawning && r.session.state == SessionState::Running
}

impl Exits {
    /// No watches yet.
    pub fn new(registry: Arc<Registry>) -> Arc<Exits> {
        Arc::new(Exits { registry, watched: Mutex::default(), warned: AtomicBool::new(false) })
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches the pane process of session `id` in `server` (after a create).
    pub fn watch(self: &Arc<Self>, server: &Arc<Server>, id: &str) {
        let pane_pid = {
            let records = self.registry.lock();
            records.get(id).filter(|r| watchable(r, server.key())).and_then(|r| r.pane_pid)
        };
        if let Some(pane_pid) = pane_pid {
            self.arm(server.clone(), id.to_string(), pane_pid);
        }
    }

    /// Watches every running session of `server` (after it was adopted), and
    /// finds the program under each exec-wrapper whose program pid is not
    /// known: a session known only from tmux, or a saved pid that now names
    /// a process that is not the wrapper's child (another tmux server took
    /// the name).
    pub async fn watch_server(self: &Arc<Self>, server: &Arc<Server>) {
        let uid = server.uid;
        let panes: Vec<(String, u32, Option<u32>)> = {
            let records = self.registry.lock();
            let listed = records.values().filter(|r| watchable(r, server.key()));
            listed
                .filter_map(|r| Some((r.session.id.clone(), r.pane_pid?, r.session.pid)))
                .collect()
        };
        let check = panes.clone();
        let found = tokio::task::spawn_blocking(move || {
            let unknown: Vec<(String, u32)> = check
                .into_iter()
                .filter(|(_, pane, pid)| match pid {
                    None => true,
                    Some(p) if p == pane => true,
                    // Gone: the program ended (its exit is on its way); keep it.
                    Some(p) => procs::stat(*p).is_some_and(|s| s.ppid != *pane),
                })
                .map(|(id, pane, _)| (id, pane))
                .collect();
            if unknown.is_empty() {
                return Vec::new();
            }
            let all = procs::all();
            let found = unknown.into_iter().filter_map(|(id, pane)| {
                procs::program_under(&all, pane, uid).map(|p| (id, pane, p))
            });
            found.collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        // Each update is saved by the registry (a changed record wakes the
        // persister).
        for (id, pane, program) in found {
            self.registry.update(&id, |r| {
                if r.pane_pid == Some(pane) {
                    r.session.pid = Some(program);
                }
            });
        }
        for (id, pane, _) in panes {
            self.arm(server.clone(), id, pane);
        }
    }

    fn forget(&self, id: &str, pane_pid: u32) {
        let mut watched = self.watched();
        if watched.get(id) == Some(&pane_pid) {
            watched.remove(id);
        }
    }

    fn arm(self: &Arc<Self>, server: Arc<Server>, id: String, pane_pid: u32) {
        {
            let mut watched = self.watched();
            if watched.get(&id) == Some(&pane_pid) {
                return;
            }
            watched.insert(id.clone(), pane_pid);
        }
        let fd = match open(pane_pid, server.uid) {
            Ok(fd) => fd,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(session_id = %id, pid = pane_pid, error = %e,
                        "cannot watch a session's process; its exit is seen at the next refresh (logged once)");
                }
                self.forget(&id, pane_pid);
                return;
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Some(fd) = fd {
                let _ = fd.readable().await;
            }
            this.forget(&id, pane_pid);
            this.exited(&server, &id, pane_pid).await;
        });
    }

    /// The pane's process ended: asks tmux about the pane until it shows the
    /// exit status (or [`STATUS_WAIT`]), applying what it says.
    async fn exited(&self, server: &Server, id: &str, pane_pid: u32) {
        let start = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut nudged = false;
        loop {
            let pane = {
                let records = self.registry.lock();
                let same = |r: &&Record| r.pane_pid == Some(pane_pid) && watchable(r, server.key());
                match records.get(id).filter(same).and_then(|r| r.pane.clone()) {
                    Some(pane) => pane,
                    None => return, // removed, exited or lost meanwhile
                }
            };
            let cmd =
                Cmd::new("display-message").flag("-p").opt("-t", pane.clone()).arg(PANE_FORMAT);
            // An error: the pane is gone (the supervisor's refresh, which
            // `%sessions-changed` triggers, takes it from here), or tmux is
            // unavailable (the supervisor reconnects and refreshes).
            let Ok(out) = server.tmux(cmd).await else { return };
            if let Some(p) = out.first().and_then(parse_line).filter(|p| p.pane == pane) {
                if self.apply(id, server.key(), &p) {
                    return;
                }
            }
            if start.elapsed() >= STATUS_WAIT {
                return;
            }
            if !nudged && start.elapsed() >= NUDGE_AFTER {
                server.nudge_reaper();
                nudged = true;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Applies one pane listing to session `id`; whether the session is now
    /// exited (or no longer this pane's).
    fn apply(&self, id: &str, key: ServerKey, p: &PaneInfo) -> bool {
        let now = SystemTime::now();
        let applied = self.registry.update(id, |r| {
            if r.pane.as_deref() != Some(p.pane.as_str()) || !watchable(r, key) {
                return None;
            }
            r.apply_pane(p, now);
            Some(r.session.state == SessionState::Exited)
        });
        // Saved by the registry, like every change of a record.
        applied.flatten().unwrap_or(true)
    }
}

/// A pidfd of `pid` registered with the runtime, if `pid` runs as `uid`;
/// `None` when it has ended already (look at once).
pub(super) fn open(pid: u32, uid: u32) -> std::io::Result<Option<AsyncFd<std::os::fd::OwnedFd>>> {
    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Err(std::io::Error::other(format!("pid {pid} is out of range")));
    };
    let fd = match pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Checked after the open: the descriptor now names this process, whatever
    // happens to the number. The pid is the server's claim; another user's
    // process is not watched (nor ever signalled).
    if !procs::owned_by(pid, uid) {
        return match procs::stat(pid) {
            None => Ok(None),
            Some(_) => Err(std::io::Error::other(format!("pid {pid} does not run as uid {uid}"))),
        };
    }
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same
    // descriptor) until the AsyncFd is dropped.
    Ok(Some(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?))
}
