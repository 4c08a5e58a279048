//! ccmanagerd: a systemd daemon that owns the tmux servers (one per session
//! uid, running as that uid) and the terminal sessions in them, and answers
//! JSON-RPC 2.0 on a Unix socket.
//!
//! Dependencies run one way, bottom to top; nothing imports upward:
//! - bottom: [`config`], [`users`], [`dirs`], [`protocol`] (the envelope and
//!   typed requests/results, shared with the CLI), [`tmux`] (one server's
//!   lifecycle, the control-mode client and parser), [`limits`] (rlimits,
//!   cgroups, the exec-wrapper), [`systemd`], [`logging`], [`shutdown`],
//!   [`error`], [`metrics`];
//! - [`sessions`]: the registry, one supervisor per tmux server, spawning;
//! - services given only the handles they need: [`cleanup`], [`health`],
//!   [`gauges`], [`reload`];
//! - [`streams`]: live output from the logs, raw input into panes;
//! - [`rpc`]: dispatch and one file per method family, on those handles;
//! - [`server`]: the control socket, framing, budgets, peer credentials; it
//!   depends on a [`server::Handler`] trait only;
//! - [`app`]: the one place that wires them together.
//!
//! [`client`] is a small blocking JSON-RPC client (CLI and tests).

pub mod app;
pub mod cleanup;
pub mod client;
pub mod config;
pub mod dirs;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gauges;
pub mod health;
pub mod limits;
pub mod logging;
pub mod logs;
pub mod metrics;
pub mod proctree;
pub mod protocol;
pub mod reload;
pub mod rpc;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod streams;
pub mod systemd;
pub mod tmux;
pub mod users;
