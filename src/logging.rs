//! Logging setup: journald when stderr is the journal or we run under
//! systemd, a human fmt layer on stderr otherwise — never both, and with
//! colours only when stderr is a terminal. The level filter can be swapped
//! at runtime (reload); `--log-level` is checked first ([`check_filter`]).

use std::io::IsTerminal;

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

/// The level words a filter directive may end in.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `--log-level` value: a level (`debug`) or a filter of
/// `target=level` directives (`info,ccmanagerd::rpc=debug`). EnvFilter
/// itself takes a bare word as a target (`verbose` would mean "everything
/// under a module named verbose", i.e. silence), so a directive must end in
/// a level word here.
pub fn check_filter(spec: &str) -> Result<(), String> {
    let bad = |d: &str| {
        format!(
            "{spec:?}: {d:?} is not a level ({}) or TARGET=LEVEL (e.g. info,ccmanagerd=debug)",
            LEVELS.join(", ")
        )
    };
    if spec.trim().is_empty() {
        return Err(bad(spec));
    }
    for directive in spec.split(',') {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l).trim();
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(bad(directive));
        }
    }
    EnvFilter::try_new(spec).map(drop).map_err(|e| format!("{spec:?}: {e}"))
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
                        .with_ansi(std::io::stderr().is_terminal())
                        .with_target(false),
                )
                .init();
        }
    }
    LogHandle { handle, pinned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_must_name_a_level() {
        for ok in ["info", "DEBUG", "warn,ccmanagerd=trace", "ccmanagerd::rpc=debug", "off"] {
            check_filter(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["verbose", "", "info,loud", "ccmanagerd=loud"] {
            let e = check_filter(bad).unwrap_err();
            assert!(e.contains("is not a level"), "{bad}: {e}");
        }
    }
}
