//! Everything the daemon needs to own one tmux server and talk to it:
//! the server's lifecycle ([`server`]), safe command lines ([`command`]),
//! captures that do not leak in tmux ([`capture`]),
//! the control-mode parser ([`control`]) and the one long-lived
//! control-mode connection ([`client`]).

pub mod capture;
pub mod client;
pub mod command;
pub mod control;
mod notification;
pub mod server;

pub use client::{connect, BudgetHook, ClientConfig, ControlClient, KEEPER_SESSION};
pub use command::{Cmd, CommandError};
pub use control::{Event, Notification, Output, Parser, Reply, ReplyKind};
pub use server::{
    check_version, ensure_running, launch, probe, write_config, Launcher, RunAs, ServerInfo,
    ServerPaths, TmuxServerSettings, Version,
};

/// Errors from talking to or managing tmux; callers match on the variant.
#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    /// tmux answered the command with `%error`; the message is tmux's own.
    #[error("tmux command failed: {0}")]
    Command(String),
    /// The control connection or the server is gone, or did not answer in time.
    #[error("tmux unavailable: {0}")]
    Unavailable(String),
    /// A command could not be rendered onto one control-mode line.
    #[error(transparent)]
    InvalidCommand(#[from] CommandError),
    /// The tmux binary is missing, unusable or too old.
    #[error("{0}")]
    Binary(String),
    /// The server could not be launched or did not come up.
    #[error("tmux server did not start: {0}")]
    Launch(String),
    /// An I/O operation (named in `context`) failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, e.g. "writing /run/ccmanagerd/tmux.conf".
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl TmuxError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TmuxError::Io { context: context.into(), source }
    }
}
