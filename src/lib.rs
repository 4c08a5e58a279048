//! ccmanagerd: a systemd daemon that owns one tmux server and the terminal
//! sessions in it, and answers JSON-RPC 2.0 on a Unix socket.
//!
//! Map of the modules:
//! - [`config`]: TOML -> typed config, validation with file:line errors.
//! - [`protocol`]: the JSON-RPC envelope and typed requests/results, shared with the CLI.
//! - [`server`]: the control socket (bind or activation), framing, peer credentials.
//! - [`rpc`]: dispatch and one file per method family.
//! - [`daemon`]: shared state, `run`, reload.
//! - [`tmux`]: the tmux server's lifecycle and the one control-mode connection.
//! - [`sessions`]: the session registry, reconcile, refresh, the state file.
//! - [`limits`]: rlimit and cgroup caps, the exec-wrapper.
//! - [`cleanup`]: the periodic reaper behind `cleanup.run`.
//! - [`health`], [`metrics`], [`gauges`]: checks, watchdog, Prometheus text.
//! - [`systemd`], [`logging`], [`shutdown`]: the service-manager plumbing.
//! - [`client`]: a small blocking JSON-RPC client (CLI and tests).

pub mod cleanup;
pub mod client;
pub mod config;
pub mod daemon;
pub mod error;
pub mod gauges;
pub mod health;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod rpc;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod systemd;
pub mod tmux;
