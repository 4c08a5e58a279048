//! Request dispatch: one exhaustive `match` over [`Request`], each arm a
//! one-line call into the method family's file.

pub mod daemon;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::protocol::Request;
use crate::server::Peer;

/// The caller of a request.
pub struct Ctx {
    /// Shared daemon state.
    pub daemon: Arc<Daemon>,
    /// Who asked.
    pub peer: Peer,
}

fn json<T: Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("encoding the result: {e}")))
}

/// Serves one request.
pub async fn dispatch(ctx: &Ctx, request: Request) -> Result<Value> {
    match request {
        Request::DaemonPing(_) => json(daemon::ping()),
        Request::DaemonStatus(_) => json(daemon::status(ctx).await?),
        Request::DaemonReload(_) => json(daemon::reload(ctx).await?),
        Request::DaemonMetrics(_) => json(daemon::metrics(ctx).await?),
        Request::HealthCheck(_) => Err(not_yet("health.check")),
        Request::SessionCreate(_) => Err(not_yet("session.create")),
        Request::SessionList(_) => Err(not_yet("session.list")),
        Request::SessionGet(_) => Err(not_yet("session.get")),
        Request::SessionKill(_) => Err(not_yet("session.kill")),
        Request::SessionSend(_) => Err(not_yet("session.send")),
        Request::SessionCapture(_) => Err(not_yet("session.capture")),
        Request::SessionResize(_) => Err(not_yet("session.resize")),
        Request::SessionAttach(_) => Err(not_yet("session.attach")),
        Request::CleanupRun(_) => Err(not_yet("cleanup.run")),
        #[cfg(feature = "test-hooks")]
        Request::DebugFail(_) => Err(Error::Internal("debug.fail was called".into())),
        #[cfg(feature = "test-hooks")]
        Request::DebugSleep(p) => json(daemon::debug_sleep(p.ms).await),
    }
}

fn not_yet(method: &str) -> Error {
    Error::TmuxUnavailable(format!("{method}: the tmux server is not available"))
}
