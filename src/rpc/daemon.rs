//! `daemon.*` methods: ping, status, reload, metrics.

use super::Ctx;
use crate::error::Result;
#[cfg(feature = "test-hooks")]
use crate::protocol::results::Slept;
use crate::protocol::results::{MetricsResult, Pong};
use crate::protocol::types::{ReloadResult, Status, TmuxStatus};

/// `daemon.ping` -> `"pong"`.
pub fn ping() -> Pong {
    Pong
}

/// `daemon.status`.
pub async fn status(ctx: &Ctx) -> Result<Status> {
    let d = &ctx.daemon;
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: d.started.elapsed().as_secs(),
        tmux: tmux_status(ctx),
        sessions: d.sessions.counts(),
        health: crate::health::evaluate_cheap(d).status,
        socket: Some(d.socket_path.clone()),
    })
}

fn tmux_status(ctx: &Ctx) -> TmuxStatus {
    let s = &ctx.daemon.sessions;
    let server = s.server();
    TmuxStatus {
        pid: server.as_ref().map(|i| i.pid),
        socket: Some(s.paths.socket.clone()),
        alive: s.client().is_ok(),
        version: server.map(|i| i.version),
    }
}

/// `daemon.reload`: same as SIGHUP.
pub async fn reload(ctx: &Ctx) -> Result<ReloadResult> {
    tracing::info!(peer_uid = ctx.peer.uid, "reload requested over RPC");
    ctx.daemon.reload().await
}

/// `daemon.metrics`: Prometheus text.
pub async fn metrics(ctx: &Ctx) -> Result<MetricsResult> {
    Ok(MetricsResult { text: crate::gauges::exposition(&ctx.daemon) })
}

/// `debug.sleep` (test builds only): answers after `ms` milliseconds.
#[cfg(feature = "test-hooks")]
pub async fn debug_sleep(ms: u64) -> Slept {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Slept
}
