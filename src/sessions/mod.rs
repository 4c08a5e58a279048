//! Sessions: every `ccmanager_sess_<id>` session in every owner's tmux
//! server, their metadata and state, kept current from tmux and persisted in
//! the state file.
//!
//! - [`record`]: one session and its pure state transitions;
//! - [`registry`]: all sessions, who may see them, the caps;
//! - [`server`], [`servers`], [`supervisor`]: one tmux server per session
//!   uid, started on demand, adopted on start, watched by its own task;
//! - [`spawn`]: starting a program in its owner's server;
//! - [`exits`]: each running session's process watched, its exit applied at once;
//! - [`ops`]: the operations behind `session.*`, on the [`Sessions`] handle;
//! - [`store`], [`persist`]: the state on disk (snapshot and journal) and
//!   the task that makes each change durable before it is acknowledged;
//! - [`panes`], [`procs`], [`pty`], [`validate`]: tmux's pane listing, the
//!   process tree, the host's pseudo-terminals, request validation.

pub mod exits;
pub mod ops;
pub mod panes;
pub mod persist;
pub mod procs;
pub mod pty;
pub mod record;
pub mod registry;
pub mod restart;
pub mod revive;
pub mod server;
pub mod servers;
pub mod spawn;
pub mod store;
pub mod supervisor;
pub mod validate;

use std::sync::Arc;

use anyhow::Context;

pub use ops::{Mode, Sessions};
pub use record::{parse_time, rfc3339, Record};
pub use registry::Caller;

use crate::config::{ConfigHandle, LauncherKind};
use crate::shutdown::{Shutdown, ShutdownListener};
use crate::systemd::Bus;
use crate::users::Account;
use registry::Registry;
use server::ServerEnv;
use servers::Servers;
use spawn::Spawner;
use store::Store;

/// Default pane size when a request names none.
pub const DEFAULT_COLS: u16 = 80;
/// See [`DEFAULT_COLS`].
pub const DEFAULT_ROWS: u16 = 24;

/// The daemon's one connection to systemd, when systemd is PID 1; `None`
/// (and a warning) when it cannot be reached.
async fn connect_systemd() -> Option<Bus> {
    if !crate::systemd::booted() {
        return None;
    }
    match Bus::connect().await {
        Ok(bus) => Some(bus),
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach systemd: no per-session scopes, no server units");
            None
        }
    }
}

/// The connection servers are started through as transient units, if they
/// are (else they are detached).
fn systemd_launcher(kind: LauncherKind, bus: Option<&Bus>) -> anyhow::Result<Option<Bus>> {
    let root = nix::unistd::geteuid().is_root();
    match (kind, bus) {
        (LauncherKind::Detached, _) => Ok(None),
        (LauncherKind::Systemd, Some(bus)) => Ok(Some(bus.clone())),
        (LauncherKind::Systemd, None) => {
            anyhow::bail!("tmux.launcher = \"systemd\", but there is no connection to systemd")
        }
        (LauncherKind::Auto, bus) => Ok(bus.filter(|_| root).cloned()),
    }
}

/// Checks tmux, loads the state file, adopts every server that runs and
/// reconciles its sessions (before READY). Returns the handle.
/// `budget_hook` counts the hits of the tmux work budgets.
pub async fn start(
    config: &ConfigHandle,
    shutdown: &Shutdown,
    budget_hook: crate::tmux::BudgetHook,
) -> anyhow::Result<Sessions> {
    let cfg = config.get();
    let bin = cfg.tmux.binary.clone();
    let version = crate::tmux::check_version(&bin).await?;
    let state_dir = cfg.state_dir();
    let mut store = Store::open(&state_dir)
        .with_context(|| format!("opening the state directory {}", state_dir.display()))?;
    let saved = store.load();
    match crate::logs::setup::prepare_root(&cfg) {
        Ok(dir) => tracing::debug!(dir = %dir.display(), "session logs directory ready"),
        Err(e) => tracing::warn!(dir = %cfg.logs_dir().display(), error = %e,
            "cannot prepare the session logs directory: sessions run without their output logs"),
    }
    let registry = Arc::new(Registry::new(Arc::new(persist::Persist::new(store))));
    let boot = revive::Boot::check(&state_dir);
    {
        let mut loaded: Vec<Record> = saved.into_iter().map(Record::from_stored).collect();
        if boot.rebooted {
            // On the state as saved: adoption is about to find their servers gone.
            let n = revive::mark_boot_restores(loaded.iter_mut());
            tracing::info!(
                sessions = n,
                "the host rebooted since the last start: restoring {n} sessions after READY"
            );
        }
        let mut records = registry.lock();
        for r in loaded {
            records.insert_loaded(r);
        }
    }
    raise_nofile();
    let mode = if nix::unistd::geteuid().is_root() {
        Mode::MultiUser
    } else {
        Mode::SingleUser(Account::current().context("looking up the daemon's own account")?)
    };
    let bus = connect_systemd().await;
    let available = crate::limits::cgroup::available().and_then(|()| match &bus {
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
    let socket_dir = cfg.tmux_socket_dir();
    let unit_bus = systemd_launcher(cfg.tmux.launcher, bus.as_ref())?;
    let slice = match &unit_bus {
        Some(bus) => bus.own_slice().await,
        None => None,
    };
    let exe =
        std::env::current_exe().context("locating the daemon's own binary (the exec-wrapper)")?;
    let logger = crate::logs::args::Program::beside(&exe);
    tracing::debug!(logger = %logger.path.display(), "session output logger");
    let env = ServerEnv {
        logger: logger.clone(),
        tmux_bin: bin,
        config_file: socket_dir.join("tmux.conf"),
        socket_dir: socket_dir.clone(),
        systemd: unit_bus,
        slice,
        unit_prefix: cfg.tmux.unit_prefix.clone(),
        memory_max: cfg.tmux.server_memory_max,
        history_limit: cfg.tmux.history_limit,
        max_commands: cfg.tmux.max_commands_in_flight,
        max_reply_bytes: usize::try_from(cfg.tmux.max_capture_bytes_in_flight.0)
            .unwrap_or(usize::MAX),
        budget_hook,
    };
    // One pidfd per running session (src/sessions/exits.rs).
    match crate::limits::nofile::raise() {
        Ok((old, new)) if old != new => {
            tracing::info!(
                from = old,
                to = new,
                "raised the open-file limit (one descriptor per running session)"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let exits = exits::Exits::new(registry.clone());
    let servers =
        Arc::new(Servers::new(env, registry.clone(), exits, config.clone(), shutdown.clone())?);
    let only = match &mode {
        Mode::SingleUser(me) => Some(me.uid),
        Mode::MultiUser => None,
    };
    servers.adopt_all(only).await?;
    let mut spawner = Spawner::new(exe, socket_dir.join("spawn"), bus.filter(|_| cgroups))?;
    spawner.logger = logger;
    let sessions = Sessions::new(registry.clone(), servers, spawner, mode, boot);
    if sessions.root_fallback(&cfg) {
        tracing::warn!(user = %cfg.tmux.session_user, "tmux.session_user does not exist: root's sessions run as root (a development machine?)");
    }
    let c = registry.counts();
    tracing::info!(version = %version.raw, socket_dir = %socket_dir.display(), total = c.total,
        running = c.running, exited = c.exited, lost = c.lost, "sessions reconciled");
    Ok(sessions)
}

/// Raises the soft limit on open files to the hard one: a tmux server
/// started detached inherits it and holds one descriptor per pane (10,000
/// sessions need more than the usual 1024). A session's program gets its
/// own `nofile` limit from the exec-wrapper.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open files limit");
            }
        }
    }
}

/// Makes every change durable (the journal, in groups), until shutdown
/// (then writes a final snapshot): see [`persist`].
pub async fn persist_loop(registry: Arc<Registry>, shutdown: ShutdownListener) {
    persist::run(registry, shutdown).await
}
