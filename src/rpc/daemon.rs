//! `daemon.*` methods: ping, status, reload, metrics.

use super::Ctx;
use crate::error::{Error, Result};
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

/// `daemon.reload`: same as SIGHUP; root and admins only (a reload rereads
/// the file an operator wrote; nobody else should be able to make the
/// daemon apply a half-edited one).
pub async fn reload(ctx: &Ctx<'_>) -> Result<ReloadResult> {
    if !ctx.caller.admin {
        return Err(Error::PermissionDenied(
            "daemon.reload is for root and members of daemon.admin_group".into(),
        ));
    }
    tracing::info!(peer_uid = ctx.peer.uid, "uid {} asked for a config reload", ctx.peer.uid);
    let health = &ctx.service.health;
    ctx.service.reloader.reload(|| health.status_line()).await
}

/// `daemon.metrics`: Prometheus text. A non-admin gets every series except
/// those labelled with another uid.
pub async fn metrics(ctx: &Ctx<'_>) -> Result<MetricsResult> {
    let text = ctx.service.gauges.exposition();
    Ok(MetricsResult {
        text: if ctx.caller.admin { text } else { visible_to(&text, ctx.caller.uid) },
    })
}

/// The exposition without the samples of other uids (`uid="N"` labels).
pub fn visible_to(text: &str, uid: u32) -> String {
    let mine = format!("uid=\"{uid}\"");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let sample = !line.starts_with('#');
        if sample && line.contains("uid=\"") && !line.contains(&mine) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `debug.sleep` (test builds only): answers after `ms` milliseconds.
#[cfg(feature = "test-hooks")]
pub async fn debug_sleep(ms: u64) -> Slept {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Slept
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_user_sees_no_series_of_another_uid() {
        let text = "# HELP x pid\n# TYPE x gauge\nx{uid=\"1000\"} 5\nx{uid=\"10001\"} 6\ny 1\n";
        assert_eq!(
            super::visible_to(text, 1000),
            "# HELP x pid\n# TYPE x gauge\nx{uid=\"1000\"} 5\ny 1\n"
        );
    }
}
