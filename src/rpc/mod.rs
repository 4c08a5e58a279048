//! Request dispatch: one exhaustive `match` over [`Request`], each arm a
//! one-line call into the method family's file, checked against the method
//! table: `reply` takes only the result type the table declares.

pub mod cleanup;
pub mod daemon;
pub mod health;
pub mod sessions;

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::protocol::{method, Method, Request};
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

/// Serialises the result of method `M`: an arm whose result is not the type
/// the method table declares for it does not compile.
fn reply<M: Method>(result: Result<M::Result>) -> Result<Encoded> {
    json(&result?)
}

/// Serves one request.
pub async fn dispatch(ctx: &Ctx, request: Request) -> Result<Encoded> {
    use method as m;
    match request {
        Request::DaemonPing(_) => reply::<m::DaemonPing>(Ok(daemon::ping())),
        Request::DaemonStatus(_) => reply::<m::DaemonStatus>(daemon::status(ctx).await),
        Request::DaemonReload(_) => reply::<m::DaemonReload>(daemon::reload(ctx).await),
        Request::DaemonMetrics(_) => reply::<m::DaemonMetrics>(daemon::metrics(ctx).await),
        Request::HealthCheck(_) => reply::<m::HealthCheck>(Ok(health::check(ctx).await)),
        Request::SessionCreate(p) => reply::<m::SessionCreate>(sessions::create(ctx, p).await),
        // Encoded by the registry as a `ProjectedList`, which writes the
        // same JSON as the declared `ListResult` (protocol::results tests).
        Request::SessionList(p) => sessions::list(ctx, p),
        Request::SessionGet(p) => reply::<m::SessionGet>(sessions::get(ctx, p)),
        Request::SessionKill(p) => reply::<m::SessionKill>(sessions::kill(ctx, p).await),
        Request::SessionSend(p) => reply::<m::SessionSend>(sessions::send(ctx, p).await),
        Request::SessionCapture(p) => reply::<m::SessionCapture>(sessions::capture(ctx, p).await),
        Request::SessionResize(p) => reply::<m::SessionResize>(sessions::resize(ctx, p).await),
        Request::SessionAttach(p) => reply::<m::SessionAttach>(sessions::attach(ctx, p)),
        Request::CleanupRun(p) => reply::<m::CleanupRun>(Ok(cleanup::run(ctx, p).await)),
        #[cfg(feature = "test-hooks")]
        Request::DebugFail(_) => {
            reply::<m::DebugFail>(Err(Error::Internal("debug.fail was called".into())))
        }
        #[cfg(feature = "test-hooks")]
        Request::DebugSleep(p) => reply::<m::DebugSleep>(Ok(daemon::debug_sleep(p.ms).await)),
    }
}
