//! Every tmux server the daemon owns, by uid and shard: a uid's first
//! server is started with its first session, the next when the servers it
//! has hold `tmux.sessions_per_server` sessions each; all are adopted
//! (discovered on disk, reconciled) before READY, each with its own
//! supervisor task.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::exits::Exits;
use super::record::ServerKey;
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
    map: Mutex<BTreeMap<ServerKey, Arc<Server>>>,
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

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<ServerKey, Arc<Server>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit watches.
    pub fn exits(&self) -> &Arc<Exits> {
        &self.exits
    }

    /// The server `key`, if the daemon knows it.
    pub fn get(&self, key: ServerKey) -> Option<Arc<Server>> {
        self.map().get(&key).cloned()
    }

    /// Every server the daemon knows, by uid.
    pub fn all(&self) -> Vec<Arc<Server>> {
        self.map().values().cloned().collect()
    }

    fn entry(&self, account: &Account, shard: u32) -> Arc<Server> {
        self.map()
            .entry(ServerKey { uid: account.uid, shard })
            .or_insert_with(|| Arc::new(Server::new(&self.env, account, shard)))
            .clone()
    }

    /// The connected server `shard` of `account`, started if it does not run.
    pub async fn get_or_start(&self, account: &Account, shard: u32) -> Result<Arc<Server>> {
        let server = self.entry(account, shard);
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
                "the tmux server of {} does not answer ({}); not starting another one",
                server.key(),
                server.stall()
            )),
            Ok(None) => Err(format!("the tmux server of {} did not start", server.key())),
            Err(e) => Err(format!("cannot start the tmux server of {}: {e:#}", server.key())),
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

    /// Finds every server to adopt (those of saved sessions, and the
    /// sockets in the per-uid directories under `<socket_dir>`), connects
    /// to those that answer and reconciles their sessions; the saved
    /// sessions of a server that does not answer are `lost`. `only` limits
    /// the uids (a daemon that is not root owns only its own). Runs before
    /// READY, every server at once.
    pub async fn adopt_all(&self, only: Option<u32>) -> anyhow::Result<()> {
        let mut keys: std::collections::BTreeSet<ServerKey> =
            self.registry.lock().values().map(|r| r.server_key()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.env.socket_dir) {
            for entry in entries.flatten() {
                let Some(uid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                match std::fs::symlink_metadata(entry.path()) {
                    Ok(m) if m.is_dir() && m.uid() == uid => {
                        keys.insert(ServerKey { uid, shard: 0 });
                        for (shard, _) in super::server::sockets_in(&entry.path()) {
                            keys.insert(ServerKey { uid, shard });
                        }
                    }
                    _ => {
                        tracing::warn!(path = %entry.path().display(), "ignoring a server directory not owned by its uid")
                    }
                }
            }
        }
        keys.retain(|k| only.is_none_or(|o| o == k.uid));
        let adoptions = keys.into_iter().map(|key| self.adopt(key));
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

    async fn adopt(&self, key: ServerKey) -> anyhow::Result<()> {
        let uid = key.uid;
        let account = match Account::by_uid(uid) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(uid, error = %e, "the sessions of a uid without an account are lost");
                self.mark_lost(key);
                return Ok(());
            }
        };
        let server = self.entry(&account, key.shard);
        let _guard = server.lifecycle.lock().await;
        let history = self.config.get().tmux.history_limit;
        match server.bring_up(history, false).await? {
            Some(rx) => {
                supervisor::reconcile(&self.registry, &server, &self.config.get()).await?;
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
                    shard = key.shard,
                    "no tmux server answers on this socket; its saved sessions are lost"
                );
                self.mark_lost(key);
            }
        }
        Ok(())
    }

    fn mark_lost(&self, key: ServerKey) {
        self.registry.mark_lost_where("its tmux server is gone", |r| r.server_key() == key);
    }

    /// `daemon.status`'s view of the servers: those running, and those that
    /// still hold sessions.
    pub fn status(&self) -> Vec<ServerStatus> {
        let by_key: BTreeMap<ServerKey, usize> = self.registry.lock().live_by_server().collect();
        self.all()
            .into_iter()
            .filter(|s| s.is_up() || by_key.contains_key(&s.key()) || s.start_error().is_some())
            .map(|s| ServerStatus {
                uid: s.uid,
                user: s.user.clone(),
                pid: s.info().map(|i| i.pid),
                socket: s.paths.socket.clone(),
                alive: s.is_up(),
                sessions: by_key.get(&s.key()).copied().unwrap_or(0),
                unit: s.unit.clone(),
                version: s.info().map(|i| i.version),
                error: s.start_error(),
            })
            .collect()
    }
}
