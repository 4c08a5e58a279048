//! The control socket server: accept loop with a connection cap and peer
//! checks ([`serve`]), per-connection framing and concurrency ([`conn`]),
//! per-connection notifications ([`outlet`]), the socket's lifecycle
//! ([`socket`]) and peer credentials ([`peer`]).

pub mod conn;
#[cfg(test)]
mod conn_tests;
pub mod outlet;
pub mod peer;
pub mod socket;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::task::JoinSet;

pub use outlet::{OpenError, Outlet, Sink, Slot};
pub use peer::Peer;
pub use socket::Listener;

use crate::protocol::envelope::{failure, RpcError};
use crate::protocol::{ErrorKind, Request};
use crate::shutdown::Shutdown;

/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How long a refusal reply may take to write before we give up on the peer.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The bounds of the server, read (from the config) at each accept and for
/// each message, so a reload applies them.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Longest message.
    pub max_message_bytes: usize,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections of one uid at once (root is exempt).
    pub max_connections_per_uid: usize,
    /// Slots only root and admins may take.
    pub reserved_admin_connections: usize,
    /// Most calls in flight on one connection (a batch of N takes N).
    pub max_inflight_per_connection: usize,
    /// Reply bytes waiting to be written beyond which a connection stops
    /// reading and completing calls.
    pub max_pending_reply_bytes: usize,
    /// A connection whose client takes no reply byte this long is closed.
    pub write_timeout: Duration,
    /// A connection silent this long (nothing in flight) is closed.
    pub idle_timeout: Duration,
    /// How long in-flight requests get on shutdown.
    pub shutdown_timeout: Duration,
}

/// Who a peer is to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// May not connect.
    Refused,
    /// Sees its own sessions.
    User,
    /// Root or an admin: sees every session, may use the reserved slots.
    Admin,
}

/// What the server needs from the layer above it; the server knows nothing
/// else of the daemon.
pub trait Handler: Send + Sync + 'static {
    /// The current bounds.
    fn bounds(&self) -> Bounds;
    /// Whether `peer` may connect, and as whom.
    fn access(&self, peer: &Peer) -> Access;
    /// Answers one request; `outlet` opens and finds the subscriptions of
    /// the request's connection.
    fn handle(
        &self,
        peer: &Peer,
        outlet: &Outlet,
        request: Request,
    ) -> impl Future<Output = Result<Box<RawValue>, RpcError>> + Send;
    /// A request was served (for metrics).
    fn served(&self, method: &'static str, ok: bool, took: Duration);
    /// A connection was refused (for metrics).
    fn refused(&self);
    /// A budget (named by its config key) held something back (for metrics).
    fn budget_hit(&self, budget: &'static str);
}

/// Live connections, in all and by uid.
#[derive(Default)]
struct Counts {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// Why a connection is refused, if it is.
fn admission(counts: &Counts, bounds: &Bounds, peer: &Peer, access: Access) -> Option<RpcError> {
    let too_many = |message: String| Some(RpcError::app(ErrorKind::TooManyConnections, message));
    if counts.total >= bounds.max_connections {
        return too_many(format!(
            "too many connections (daemon.max_connections = {}); try again later",
            bounds.max_connections
        ));
    }
    let open = bounds.max_connections.saturating_sub(bounds.reserved_admin_connections);
    if access != Access::Admin && counts.total >= open {
        return too_many(format!(
            "too many connections: the last daemon.reserved_admin_connections = {} of daemon.max_connections = {} are kept for root and admins; try again later",
            bounds.reserved_admin_connections, bounds.max_connections
        ));
    }
    let mine = counts.by_uid.get(&peer.uid).copied().unwrap_or(0);
    if peer.uid != 0 && mine >= bounds.max_connections_per_uid {
        return too_many(format!(
            "too many connections from uid {} (daemon.max_connections_per_uid = {}); close some first",
            peer.uid, bounds.max_connections_per_uid
        ));
    }
    None
}

/// Accepts connections until shutdown, then waits for the connections to
/// finish their in-flight requests (bounded by the shutdown timeout).
pub async fn serve<H: Handler>(
    handler: Arc<H>,
    listener: Listener,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let mut stop = shutdown.listener();
    let mut conns = JoinSet::new();
    let counts = Arc::new(Mutex::new(Counts::default()));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let peer = match Peer::of(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read peer credentials; closing");
                continue;
            }
        };
        let access = handler.access(&peer);
        if access == Access::Refused {
            tracing::warn!(
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                "connection refused: permission denied"
            );
            handler.refused();
            let err = RpcError::app(
                ErrorKind::PermissionDenied,
                format!("permission denied: uid {} may not use ccmanagerd (see daemon.allowed_uids / allowed_groups)", peer.uid),
            );
            conns.spawn(refuse(stream, err));
            continue;
        }
        let bounds = handler.bounds();
        let refusal =
            admission(&counts.lock().unwrap_or_else(|e| e.into_inner()), &bounds, &peer, access);
        if let Some(err) = refusal {
            tracing::warn!(
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                "connection refused: {}",
                err.message
            );
            handler.refused();
            conns.spawn(refuse(stream, err));
            continue;
        }
        tracing::debug!(peer_uid = peer.uid, peer_pid = peer.pid, "connection accepted");
        let guard = ActiveGuard::new(counts.clone(), peer.uid);
        conns.spawn(conn::serve_connection(
            handler.clone(),
            stream,
            peer,
            guard,
            shutdown.listener(),
        ));
    }
    // Stop accepting (the listener is dropped, and unlinked if we bound it),
    // then let every connection finish what it has in flight.
    drop(listener);
    let grace = handler.bounds().shutdown_timeout;
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = conns.len(), "shutdown timeout passed; dropping unfinished requests");
        conns.shutdown().await;
    }
    Ok(())
}

/// Writes one error reply and closes.
async fn refuse(mut stream: UnixStream, err: RpcError) {
    let mut line = failure(&serde_json::Value::Null, &err);
    line.push('\n');
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        let _ = stream.write_all(line.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Counts a live connection (in all and for its uid) for as long as it exists.
pub struct ActiveGuard {
    counts: Arc<Mutex<Counts>>,
    uid: u32,
}

impl ActiveGuard {
    fn new(counts: Arc<Mutex<Counts>>, uid: u32) -> Self {
        {
            let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
            c.total += 1;
            *c.by_uid.entry(uid).or_default() += 1;
        }
        ActiveGuard { counts, uid }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(n) = c.by_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.by_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            max_message_bytes: 1,
            max_connections: 10,
            max_connections_per_uid: 3,
            reserved_admin_connections: 2,
            max_inflight_per_connection: 1,
            max_pending_reply_bytes: 1,
            write_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(1),
        }
    }

    fn peer(uid: u32) -> Peer {
        Peer { uid, gid: uid, pid: 1, groups: vec![] }
    }

    #[test]
    fn one_uid_cannot_take_every_slot_and_admins_keep_theirs() {
        let b = bounds();
        let mut c = Counts { total: 3, by_uid: HashMap::from([(1000, 3)]) };
        assert!(admission(&c, &b, &peer(1000), Access::User).is_some(), "per-uid cap");
        assert!(admission(&c, &b, &peer(1001), Access::User).is_none());
        assert!(admission(&c, &b, &peer(0), Access::Admin).is_none());
        c.total = 8;
        let e = admission(&c, &b, &peer(1001), Access::User).unwrap();
        assert!(e.message.contains("reserved_admin_connections"), "{}", e.message);
        assert!(admission(&c, &b, &peer(0), Access::Admin).is_none(), "root gets a reserved slot");
        c.total = 10;
        assert!(admission(&c, &b, &peer(0), Access::Admin).is_some(), "the hard cap holds");
    }
}
