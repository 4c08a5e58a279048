//! Request dispatch: one exhaustive `match` over [`Request`], each arm a
//! one-line call into the method family's file.

pub mod cleanup;
pub mod daemon;
pub mod health;
pub mod sessions;

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

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

/// A result serialised once, straight from the method's own type: no
/// `serde_json::Value` tree in between (for `session.list` of 1000 sessions
/// those trees cost more than everything else together).
pub type Encoded = Box<RawValue>;

/// Serialises a method's result.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Encoded> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| Error::Internal(format!("encoding the result: {e}")))
}

/// Serves one request.
pub async fn dispatch(ctx: &Ctx, request: Request) -> Result<Encoded> {
    match request {
        Request::DaemonPing(_) => json(&daemon::ping()),
        Request::DaemonStatus(_) => json(&daemon::status(ctx).await?),
        Request::DaemonReload(_) => json(&daemon::reload(ctx).await?),
        Request::DaemonMetrics(_) => json(&daemon::metrics(ctx).await?),
        Request::HealthCheck(_) => json(&health::check(ctx).await),
        Request::SessionCreate(p) => json(&sessions::create(ctx, p).await?),
        Request::SessionList(p) => sessions::list(ctx, p),
        Request::SessionGet(p) => json(&sessions::get(ctx, p)?),
        Request::SessionKill(p) => json(&sessions::kill(ctx, p).await?),
        Request::SessionSend(p) => json(&sessions::send(ctx, p).await?),
        Request::SessionCapture(p) => json(&sessions::capture(ctx, p).await?),
        Request::SessionResize(p) => json(&sessions::resize(ctx, p).await?),
        Request::SessionAttach(p) => json(&sessions::attach(ctx, p)?),
        Request::CleanupRun(p) => json(&cleanup::run(ctx, p).await),
        #[cfg(feature = "test-hooks")]
        Request::DebugFail(_) => Err(Error::Internal("debug.fail was called".into())),
        #[cfg(feature = "test-hooks")]
        Request::DebugSleep(p) => json(&daemon::debug_sleep(p.ms).await),
    }
}
