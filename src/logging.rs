//! Logging setup: journald when stderr is the journal or we run under
//! systemd, a human fmt layer on stderr otherwise — never both. The level
//! filter can be swapped at runtime (reload).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Swaps the active level filter (used by reload).
#[derive(Clone)]
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, Registry>,
    /// RUST_LOG or --log-level pin the level: reload then leaves it alone.
    pinned: bool,
}

impl LogHandle {
    /// Applies a new level from the config; returns false when the level is
    /// pinned by RUST_LOG / --log-level or could not be applied.
    pub fn set_level(&self, level: &str) -> bool {
        if self.pinned {
            return false;
        }
        match EnvFilter::try_new(level) {
            Ok(filter) => self.handle.reload(filter).is_ok(),
            Err(_) => false,
        }
    }
}

/// Installs the global subscriber. `cli_level` (from --log-level) wins over
/// RUST_LOG, which wins over `config_level`.
pub fn init(config_level: &str, cli_level: Option<&str>) -> LogHandle {
    let env = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let pinned = cli_level.is_some() || env.is_some();
    let spec = cli_level.map(str::to_owned).or(env).unwrap_or_else(|| config_level.to_owned());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let journald =
        if crate::systemd::under_systemd() { tracing_journald::layer().ok() } else { None };
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => {
            // Every event's fields (session_id, method, peer_uid, ...) become
            // journal fields in upper case, so `journalctl SESSION_ID=...` works.
            registry
                .with(layer.with_syslog_identifier("ccmanagerd".into()).with_field_prefix(None))
                .init();
        }
        None => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_target(false),
                )
                .init();
        }
    }
    LogHandle { handle, pinned }
}
