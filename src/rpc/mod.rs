//! Request dispatch: one exhaustive `match` over [`Request`], each arm a
//! one-line call into the method family's file, which gets only the handles
//! it needs through [`Ctx`], checked against the method table: `reply` takes
//! only the result type the table declares. [`Service`] is what the server
//! calls (it implements [`Handler`]).

pub mod cleanup;
pub mod daemon;
pub mod health;
pub mod sessions;
pub mod streams;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::cleanup::Reaper;
use crate::config::{Config, ConfigHandle};
use crate::error::{Error, Result};
use crate::gauges::Gauges;
use crate::health::Checker;
use crate::metrics::Metrics;
use crate::protocol::envelope::RpcError;
use crate::protocol::{method, Method, Request};
use crate::reload::Reloader;
use crate::server::{Access, Bounds, Handler, Outlet, Peer};
use crate::sessions::{Caller, Sessions};

/// The handles the methods use; built once by the app.
pub struct Service {
    /// The running config.
    pub config: ConfigHandle,
    /// The sessions and their servers.
    pub sessions: Sessions,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The cleanup pass.
    pub reaper: Arc<Reaper>,
    /// Reloads the config.
    pub reloader: Arc<Reloader>,
    /// Health checks.
    pub health: Checker,
    /// The metrics exposition.
    pub gauges: Gauges,
    /// Start time, for uptime.
    pub started: Instant,
    /// The control socket clients use.
    pub socket_path: PathBuf,
    /// Live output and raw input.
    pub streams: crate::streams::Streams,
}

/// One request's view: the service, who asks, and the config of the moment.
pub struct Ctx<'a> {
    /// The handles.
    pub service: &'a Service,
    /// The peer's credentials.
    pub peer: &'a Peer,
    /// The subscriptions of the peer's connection.
    pub outlet: &'a Outlet,
    /// The peer as the sessions see it.
    pub caller: Caller,
    /// The config, read once for the request.
    pub config: Arc<Config>,
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
pub async fn dispatch(ctx: &Ctx<'_>, request: Request) -> Result<Encoded> {
    use method as m;
    match request {
        Request::RpcDiscover(_) => reply::<m::RpcDiscover>(Ok(discover())),
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
        Request::SessionWrite(p) => reply::<m::SessionWrite>(streams::write(ctx, p).await),
        Request::SessionRead(p) => reply::<m::SessionRead>(streams::read(ctx, p).await),
        Request::SessionSubscribe(p) => {
            reply::<m::SessionSubscribe>(streams::subscribe(ctx, p).await)
        }
        Request::SessionAck(p) => reply::<m::SessionAck>(streams::ack(ctx, p)),
        Request::SessionUnsubscribe(p) => {
            reply::<m::SessionUnsubscribe>(streams::unsubscribe(ctx, p))
        }
        Request::SessionRestart(p) => reply::<m::SessionRestart>(sessions::restart(ctx, p).await),
        Request::CleanupRun(p) => reply::<m::CleanupRun>(Ok(cleanup::run(ctx, p).await)),
        #[cfg(feature = "test-hooks")]
        Request::DebugFail(_) => {
            reply::<m::DebugFail>(Err(Error::Internal("debug.fail was called".into())))
        }
        #[cfg(feature = "test-hooks")]
        Request::DebugSleep(p) => reply::<m::DebugSleep>(Ok(daemon::debug_sleep(p.ms).await)),
    }
}

/// `rpc.discover`: the OpenRPC document of this build (generated once).
fn discover() -> crate::protocol::openrpc::OpenRpcDocument {
    crate::protocol::openrpc::document().clone()
}

impl Handler for Service {
    fn bounds(&self) -> Bounds {
        let d = &self.config.get().daemon;
        Bounds {
            max_message_bytes: d.max_message_bytes,
            max_connections: d.max_connections,
            max_connections_per_uid: d.max_connections_per_uid,
            reserved_admin_connections: d.reserved_admin_connections,
            max_inflight_per_connection: d.max_inflight_per_connection,
            max_pending_reply_bytes: usize::try_from(d.max_pending_reply_bytes.0)
                .unwrap_or(usize::MAX),
            write_timeout: d.write_timeout.0,
            idle_timeout: d.idle_timeout.0,
            shutdown_timeout: d.shutdown_timeout.0,
        }
    }

    fn access(&self, peer: &Peer) -> Access {
        let config = self.config.get();
        if !peer.allowed(&config) {
            Access::Refused
        } else if peer.is_admin(&config) {
            Access::Admin
        } else {
            Access::User
        }
    }

    async fn handle(
        &self,
        peer: &Peer,
        outlet: &Outlet,
        request: Request,
    ) -> Result<Encoded, RpcError> {
        let config = self.config.get();
        let caller = Caller { uid: peer.uid, admin: peer.is_admin(&config) };
        let ctx = Ctx { service: self, peer, outlet, caller, config };
        dispatch(&ctx, request).await.map_err(RpcError::from)
    }

    fn served(&self, method: &'static str, ok: bool, took: Duration) {
        self.metrics.request(method, ok, took);
    }

    fn refused(&self) {
        self.metrics.connection_rejected();
    }

    fn budget_hit(&self, budget: &'static str) {
        self.metrics.budget_hit(budget);
    }
}
