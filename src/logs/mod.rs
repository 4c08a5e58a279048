//! The per-session byte log: every byte a session prints, kept on disk
//! within a cap and readable by offset, written outside the daemon so that
//! output keeps being logged while the daemon restarts.
//!
//! - [`format`]: the directory layout, segment and index names, index records;
//! - [`reader`]: [`Log`], the daemon's (root's) bounded, link-proof reader;
//! - [`logger`]: the `__log` mode that writes it, a child of the tmux server
//!   fed by `pipe-pane` ([`args`]: its command line);
//! - [`setup`]: the daemon making, tapping and removing log directories;
//! - [`usage`]: the daemon's periodic pass: disk used, the total cap, orphans;
//!
//! A session's log lives in `<logs dir>/<id>/` ([`dir_of`]), owned by the
//! session's owner, mode 0700, inside the root-owned 0711 logs directory.

pub mod args;
pub mod format;
pub mod logger;
pub mod reader;
pub mod setup;
pub mod usage;

use std::path::PathBuf;

use crate::config::Config;

pub use reader::{Chunk, Extent, Log};

/// The log directory of session `id` (`id` is a validated session id,
/// `[a-z0-9]{1,32}`: one path component).
pub fn dir_of(config: &Config, id: &str) -> PathBuf {
    config.logs_dir().join(id)
}

#[cfg(test)]
mod logger_tests;
#[cfg(test)]
mod reader_tests;
