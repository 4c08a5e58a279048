//! Every tmux server the daemon owns, by uid: started on the first session
//! of a uid, adopted (discovered on disk, reconciled) before READY, each
//! with its own supervisor task.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::exits::Exits;
use super::registry::Registry;
use super::server::{Server, ServerEnv};
use super::supervisor;
use crate::config::ConfigHandle;
use crate::error::{Error, Result};
use crate::protocol::types::ServerStatus;
use crate::shutdown::Shutdown;
use crate::users::Account;

/// Mode of `<socket_dir>` when the daemon is root: others may traverse it to
/// reach their own directory, not list it.
const SOCKET_DIR_MODE_ROOT: u32 = 0o711;
/// ... and when it is not (every server is the daemon's own).
const SOCKET_DIR_MODE_USER: u32 = 0o700;
/// Mode of the generated tmux config: every server's uid must read it.
const CONFIG_FILE_MODE: u32 = 0o644;

/// See the module documentation.
pub struct Servers {
    env: ServerEnv,
    map: Mutex<BTreeMap<u32, Arc<Server>>>,
    registry: Arc<Registry>,
    exits: Arc<Exits>,
    config: ConfigHandle,
    shutdown: Shutdown,
}

impl Servers {
    /// Prepares `<socket_dir>` and the shared tmux config; starts nothing.
    pub fn new(
        env: ServerEnv,
        registry: Arc<Registry>,
        exits: Arc<Exits>,
        config: ConfigHandle,
        shutdown: Shutdown,
    ) -> anyhow::Result<Servers> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let root = nix::unistd::geteuid().is_root();
        let mode = if root { SOCKET_DIR_MODE_ROOT } else { SOCKET_DIR_MODE_USER };
        let dir = &env.socket_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .with_context(|| format!("creating the tmux directory {}", dir.display()))?;
        crate::dirs::check_trusted(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
        let settings = crate::tmux::TmuxServerSettings {
            history_limit: env.history_limit,
            ..Default::default()
        };
        crate::tmux::write_config(&env.config_file, &settings)?;
        std::fs::set_permissions(
            &env.config_file,
            std::fs::Permissions::from_mode(CONFIG_FILE_MODE),
        )?;
        Ok(Servers { env, map: Mutex::new(BTreeMap::new()), registry, exits, config, shutdown })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<Server>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit watches.
    pub fn exits(&self) -> &Arc<Exits> {
        &self.exits
    }

    /// The server of `uid`, if the daemon knows one.
    pub fn get(&self, uid: u32) -> Option<Arc<Server>> {
        self.map().get(&uid).cloned()
    }

    /// Every server the daemon knows, by uid.
    pub fn all(&self) -> Vec<Arc<Server>> {
        self.map().values().cloned().collect()
    }

    fn entry(&self, account: &Account) -> Arc<Server> {
        self.map()
            .entry(account.uid)
            .or_insert_with(|| Arc::new(Server::new(&self.env, account)))
            .clone()
    }

    /// The connected server of `account`, started if it does not run.
    pub async fn get_or_start(&self, account: &Account) -> Result<Arc<Server>> {
        let server = self.entry(account);
        if server.is_up() {
            return Ok(server);
        }
        let entry = server.clone();
        let _guard = entry.lifecycle.lock().await;
        if server.is_up() {
            return Ok(server);
        }
        let history = self.config.get().tmux.history_limit;
        // A server that lives but does not answer (stopped, stalled) keeps
        // its socket and its sessions: never a second server beside it.
        let lives = server.lives();
        let started = match server.bring_up(history, !lives).await {
            Ok(Some(rx)) => Ok(rx),
            Ok(None) if lives => Err(format!(
                "the tmux server of uid {} does not answer ({}); not starting another one",
                account.uid,
                server.stall()
            )),
            Ok(None) => Err(format!("the tmux server of uid {} did not start", account.uid)),
            Err(e) => Err(format!("cannot start the tmux server of uid {}: {e:#}", account.uid)),
        };
        match started {
            Ok(rx) => {
                server.set_start_error(None);
                self.supervise(server.clone(), Some(rx));
                Ok(server)
            }
            Err(message) if lives => Err(Error::TmuxUnavailable(message)),
            Err(message) => {
                tracing::error!(uid = account.uid, error = %message, "cannot start the tmux server");
                server.set_start_error(Some(message.clone()));
                Err(Error::TmuxUnavailable(message))
            }
        }
    }

    fn supervise(
        &self,
        server: Arc<Server>,
        rx: Option<tokio::sync::mpsc::Receiver<crate::tmux::Notification>>,
    ) {
        tokio::spawn(supervisor::run(
            server,
            self.registry.clone(),
            self.exits.clone(),
            rx,
            self.config.clone(),
            self.shutdown.listener(),
        ));
    }

    /// Finds every server to adopt (the uids of saved sessions, and the
    /// per-uid directories under `<socket_dir>`), connects to those that
    /// answer and reconciles their sessions; the saved sessions of a server
    /// that does not answer are `lost`. `only` limits the uids (a daemon
    /// that is not root owns only its own). Runs before READY.
    pub async fn adopt_all(&self, only: Option<u32>) -> anyhow::Result<()> {
        let mut uids: std::collections::BTreeSet<u32> =
            self.registry.lock().values().map(|r| r.server_uid()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.env.socket_dir) {
            for entry in entries.flatten() {
                let Some(uid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                match std::fs::symlink_metadata(entry.path()) {
                    Ok(m) if m.is_dir() && m.uid() == uid => {
                        uids.insert(uid);
                    }
                    _ => {
                        tracing::warn!(path = %entry.path().display(), "ignoring a server directory not owned by its uid")
                    }
                }
            }
        }
        uids.retain(|uid| only.is_none_or(|o| o == *uid));
        let adoptions = uids.into_iter().map(|uid| self.adopt(uid));
        for result in futures::future::join_all(adoptions).await {
            result?;
        }
        // Saved sessions of uids this daemon may not own (a root daemon's
        // state read by a user daemon) are lost to it.
        if let Some(me) = only {
            let why = "this daemon is not root and runs only its own uid's server";
            self.registry.mark_lost_where(why, |r| r.server_uid() != me);
        }
        Ok(())
    }

    async fn adopt(&self, uid: u32) -> anyhow::Result<()> {
        let account = match Account::by_uid(uid) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(uid, error = %e, "the sessions of a uid without an account are lost");
                self.mark_lost_uid(uid);
                return Ok(());
            }
        };
        let server = self.entry(&account);
        let _guard = server.lifecycle.lock().await;
        let history = self.config.get().tmux.history_limit;
        match server.bring_up(history, false).await? {
            Some(rx) => {
                let cap = self.config.get().limits.max_sessions_per_owner;
                supervisor::reconcile(&self.registry, &server, cap).await?;
                self.exits.watch_server(&server).await;
                self.supervise(server.clone(), Some(rx));
            }
            // Stopped or stalled: its sessions stay what they were saved as
            // until it answers (its supervisor keeps trying, and arms the
            // exit watches when it reconciles).
            None if server.lives() => {
                tracing::warn!(
                    uid,
                    "the tmux server of this uid holds its socket but does not answer; its saved sessions are kept while the daemon retries"
                );
                self.supervise(server.clone(), None);
            }
            None => {
                tracing::info!(
                    uid,
                    "no tmux server answers for this uid; its saved sessions are lost"
                );
                self.mark_lost_uid(uid);
            }
        }
        Ok(())
    }

    fn mark_lost_uid(&self, uid: u32) {
        self.registry.mark_lost_where("its tmux server is gone", |r| r.server_uid() == uid);
    }

    /// `daemon.status`'s view of the servers: those running, and those that
    /// still hold sessions.
    pub fn status(&self) -> Vec<ServerStatus> {
        let by_uid: BTreeMap<u32, usize> = self.registry.lock().live_by_uid().collect();
        self.all()
            .into_iter()
            .filter(|s| s.is_up() || by_uid.contains_key(&s.uid) || s.start_error().is_some())
            .map(|s| ServerStatus {
                uid: s.uid,
                user: s.user.clone(),
                pid: s.info().map(|i| i.pid),
                socket: s.paths.socket.clone(),
                alive: s.is_up(),
                sessions: by_uid.get(&s.uid).copied().unwrap_or(0),
                unit: s.unit.clone(),
                version: s.info().map(|i| i.version),
                error: s.start_error(),
            })
            .collect()
    }
}
