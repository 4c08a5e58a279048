//! The daemon's shared state ([`Daemon`]) and its top-level `run`: bind or
//! adopt the socket, report READY, serve until shutdown, report STOPPING.
//! Also reload: re-read the config, apply what can change live, and report
//! what needs a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;

use crate::cleanup::Reaper;
use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use crate::error::Error;
use crate::logging::LogHandle;
use crate::metrics::Metrics;
use crate::protocol::types::ReloadResult;
use crate::server::Listener;
use crate::sessions::store::Store;
use crate::sessions::{supervise, Sessions};
use crate::shutdown::Shutdown;

/// Config keys (dotted prefixes) that only take effect after a restart.
const RESTART_KEYS: &[&str] = &[
    "daemon.socket",
    "daemon.socket_mode",
    "daemon.socket_group",
    "daemon.state_dir",
    "tmux.socket",
    "tmux.binary",
    "tmux.launcher",
    "tmux.unit",
    "tmux.session_user",
    "tmux.server_memory_max",
];

/// Where the config comes from and what the command line overrides.
#[derive(Clone, Default)]
pub struct Options {
    /// `--config`; `None`: the default path when it exists, else built-ins.
    pub config_path: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--tmux-socket`.
    pub tmux_socket: Option<PathBuf>,
    /// Swaps the log level on reload.
    pub log: Option<LogHandle>,
}

impl Options {
    /// The file that will be read, if any.
    pub fn effective_config_path(&self) -> Option<PathBuf> {
        self.config_path.clone().or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_PATH);
            default.exists().then_some(default)
        })
    }

    /// Reads the config (or the defaults) and applies the command-line overrides.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match self.effective_config_path() {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };
        if let Some(socket) = &self.socket {
            config.daemon.socket = Some(socket.clone());
        }
        if let Some(socket) = &self.tmux_socket {
            config.tmux.socket = Some(socket.clone());
        }
        Ok(config)
    }
}

/// State shared by every request handler.
pub struct Daemon {
    config: RwLock<Arc<Config>>,
    /// Where the config came from.
    pub options: Options,
    /// Start time, for uptime.
    pub started: Instant,
    /// The control socket path clients use.
    pub socket_path: PathBuf,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Triggers and observes shutdown.
    pub shutdown: Shutdown,
    /// Serialises reloads (SIGHUP and `daemon.reload` may race).
    reload_lock: tokio::sync::Mutex<()>,
    /// The session registry and the handle on tmux.
    pub sessions: Arc<Sessions>,
    /// The cleanup pass and its memory between runs.
    pub reaper: Reaper,
}

impl Daemon {
    /// New state around a loaded config.
    pub fn new(
        config: Config,
        options: Options,
        socket_path: PathBuf,
        shutdown: Shutdown,
        sessions: Arc<Sessions>,
    ) -> Daemon {
        Daemon {
            config: RwLock::new(Arc::new(config)),
            options,
            started: Instant::now(),
            socket_path,
            metrics: Metrics::default(),
            shutdown,
            reload_lock: tokio::sync::Mutex::new(()),
            sessions,
            reaper: Reaper::default(),
        }
    }

    /// The current config (cheap: an Arc clone).
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A one-line human status for `STATUS=` and logs.
    pub fn status_line(&self) -> String {
        let c = self.sessions.counts();
        let tmux = if self.sessions.client().is_ok() { "tmux ok" } else { "tmux down" };
        format!("{} sessions ({} running), {tmux}", c.total, c.running)
    }

    /// Re-reads the config. An invalid file keeps the old config and is an
    /// error (logged here, and returned for the RPC reply).
    pub async fn reload(&self) -> Result<ReloadResult, Error> {
        let _guard = self.reload_lock.lock().await;
        crate::systemd::reloading();
        let result = self.reload_inner();
        crate::systemd::ready(&self.status_line());
        result
    }

    fn reload_inner(&self) -> Result<ReloadResult, Error> {
        let new = match self.options.load_config() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reload rejected: invalid config; keeping the running config");
                return Err(Error::InvalidConfig(format!(
                    "reload rejected, keeping the running config: {e}"
                )));
            }
        };
        let old = self.config();
        let changed = changed_keys(&old, &new);
        let (needs_restart, applied): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|k| RESTART_KEYS.iter().any(|r| k == r || k.starts_with(&format!("{r}."))));
        if old.daemon.log_level != new.daemon.log_level {
            if let Some(log) = &self.options.log {
                if !log.set_level(new.daemon.log_level.as_str()) {
                    tracing::warn!("log level is pinned by RUST_LOG or --log-level; daemon.log_level not applied");
                }
            }
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        for key in &needs_restart {
            tracing::warn!(key = %key, "config change needs a restart to take effect");
        }
        tracing::info!(applied = ?applied, needs_restart = ?needs_restart, "config reloaded");
        Ok(ReloadResult { reloaded: true, applied, needs_restart })
    }
}

/// Dotted keys whose values differ between two configs.
fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", &serde_json::to_value(old).unwrap_or_default(), &mut a);
    flatten("", &serde_json::to_value(new).unwrap_or_default(), &mut b);
    let mut keys: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.iter().find(|(ka, _)| ka == k).map(|(_, va)| va) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(a.iter().filter(|(k, _)| !b.iter().any(|(kb, _)| kb == k)).map(|(k, _)| k.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Starts tmux and reconciles the sessions (before READY), then serves on
/// `listener` until shutdown; returns after in-flight requests finished (or
/// the shutdown timeout passed) and the state file is written.
pub async fn start_and_run(
    config: Config,
    options: Options,
    listener: Listener,
) -> anyhow::Result<()> {
    let store = Store::open(&config.state_dir())
        .with_context(|| format!("opening the state directory {}", config.state_dir().display()))?;
    let (sessions, notifications) = supervise::start(&config, store.clone()).await?;
    let shutdown = Shutdown::new();
    let daemon = Arc::new(Daemon::new(
        config,
        options,
        listener.path.clone(),
        shutdown.clone(),
        sessions.clone(),
    ));
    let watcher = {
        let d = daemon.clone();
        tokio::spawn(supervise::run(
            sessions.clone(),
            notifications,
            move || d.config(),
            shutdown.listener(),
        ))
    };
    let persister = tokio::spawn(supervise::persist_loop(sessions, store, shutdown.listener()));
    let reaper = tokio::spawn(crate::cleanup::reaper_loop(daemon.clone()));
    let result = run(daemon, listener).await;
    watcher.abort();
    reaper.abort();
    let _ = persister.await;
    result
}

/// Serves on `listener` until `shutdown` triggers; returns after in-flight
/// requests finished (or the shutdown timeout passed).
pub async fn run(daemon: Arc<Daemon>, listener: Listener) -> anyhow::Result<()> {
    let signals = {
        let shutdown = daemon.shutdown.clone();
        let d = daemon.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::spawn(crate::shutdown::watch_signals(shutdown, move || {
            let d = d.clone();
            handle.spawn(async move {
                let _ = d.reload().await;
            });
        }))
    };
    let watchdog = tokio::spawn(crate::health::feed_watchdog(daemon.clone()));
    let monitor = tokio::spawn(crate::health::monitor(daemon.clone()));
    tracing::info!(socket = %listener.path.display(), activated = listener.activated, pid = std::process::id(), "ccmanagerd ready");
    crate::systemd::ready(&daemon.status_line());
    let result =
        crate::server::serve(daemon.clone(), listener).await.context("serving the control socket");
    crate::systemd::stopping();
    watchdog.abort();
    monitor.abort();
    signals.abort();
    tracing::info!("ccmanagerd stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_lists_dotted_paths() {
        let a = Config::default();
        let mut b = Config::default();
        b.limits.max_sessions = 3;
        b.daemon.socket = Some("/x.sock".into());
        assert_eq!(changed_keys(&a, &b), vec!["daemon.socket", "limits.max_sessions"]);
        assert!(changed_keys(&a, &a).is_empty());
    }
}
