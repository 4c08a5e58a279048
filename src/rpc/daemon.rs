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
pub async fn status(ctx: &Ctx<'_>) -> Result<Status> {
    let s = ctx.service;
    let servers = s.sessions.servers();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: s.started.elapsed().as_secs(),
        tmux: TmuxStatus {
            alive: servers.iter().all(|v| !v.is_down()),
            version: servers.iter().find_map(|v| v.version.clone()),
            servers: servers
                .into_iter()
                .filter(|v| ctx.caller.admin || v.uid == ctx.caller.uid)
                .collect(),
        },
        sessions: s.sessions.counts(),
        health: s.health.evaluate_cheap().status,
        socket: Some(s.socket_path.clone()),
    })
}

/// `daemon.reload`: same as SIGHUP.
pub async fn reload(ctx: &Ctx<'_>) -> Result<ReloadResult> {
    tracing::info!(peer_uid = ctx.peer.uid, "reload requested over RPC");
    let health = &ctx.service.health;
    ctx.service.reloader.reload(|| health.status_line()).await
}

/// `daemon.metrics`: Prometheus text.
pub async fn metrics(ctx: &Ctx<'_>) -> Result<MetricsResult> {
    Ok(MetricsResult { text: ctx.service.gauges.exposition() })
}

/// `debug.sleep` (test builds only): answers after `ms` milliseconds.
#[cfg(feature = "test-hooks")]
pub async fn debug_sleep(ms: u64) -> Slept {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Slept
}
