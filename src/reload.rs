//! Where the config comes from (file, defaults, command-line overrides) and
//! reload: re-read it, apply what can change live, report what needs a
//! restart, keep the running config when the new one is invalid.

use std::path::PathBuf;

use crate::config::{Config, ConfigError, ConfigHandle, DEFAULT_CONFIG_PATH};
use crate::error::Error;
use crate::logging::LogHandle;
use crate::protocol::types::ReloadResult;

/// Config keys (dotted prefixes) that only take effect after a restart.
const RESTART_KEYS: &[&str] = &[
    "daemon.socket",
    "daemon.socket_mode",
    "daemon.socket_group",
    "daemon.state_dir",
    "tmux.socket_dir",
    "tmux.binary",
    "tmux.launcher",
    "tmux.unit_prefix",
    "tmux.server_memory_max",
    // Made (and its mode set) at start.
    "logs.dir",
    // Set on each server's control connection when it is made.
    "tmux.max_commands_in_flight",
    "tmux.max_capture_bytes_in_flight",
];

/// Where the config comes from and what the command line overrides.
#[derive(Clone, Default)]
pub struct Options {
    /// `--config`; `None`: the default path when it exists, else built-ins.
    pub config_path: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--tmux-dir`.
    pub tmux_dir: Option<PathBuf>,
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
        if let Some(dir) = &self.tmux_dir {
            config.tmux.socket_dir = Some(dir.clone());
        }
        Ok(config)
    }
}

/// Reloads the config on SIGHUP and `daemon.reload`.
pub struct Reloader {
    config: ConfigHandle,
    options: Options,
    /// Serialises reloads (SIGHUP and `daemon.reload` may race).
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader of `config`, from where `options` say.
    pub fn new(config: ConfigHandle, options: Options) -> Reloader {
        Reloader { config, options, lock: tokio::sync::Mutex::new(()) }
    }

    /// Re-reads the config, telling systemd RELOADING then READY (with
    /// `status()` as its STATUS). An invalid file keeps the old config and
    /// is an error (logged here, and returned for the RPC reply).
    pub async fn reload(&self, status: impl Fn() -> String) -> Result<ReloadResult, Error> {
        let _guard = self.lock.lock().await;
        crate::systemd::reloading();
        let result = self.reload_inner();
        crate::systemd::ready(&status());
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
        let old = self.config.get();
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
        self.config.set(new);
        for key in &needs_restart {
            tracing::warn!(key = %key, "config: {key} changed; it takes effect at the next restart");
        }
        tracing::info!(applied = ?applied, needs_restart = ?needs_restart,
            "config reloaded: applied {applied:?}, waiting for a restart {needs_restart:?}");
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
