//! The control socket server: accept loop with a connection cap and peer
//! checks ([`serve`]), per-connection framing and concurrency ([`conn`]),
//! the socket's lifecycle ([`socket`]) and peer credentials ([`peer`]).

pub mod conn;
pub mod peer;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::task::JoinSet;

pub use peer::Peer;
pub use socket::Listener;

use crate::daemon::Daemon;
use crate::protocol::envelope::{failure, RpcError};
use crate::protocol::ErrorKind;

/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How long a refusal reply may take to write before we give up on the peer.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Accepts connections until shutdown, then waits for the connections to
/// finish their in-flight requests (bounded by `daemon.shutdown_timeout`).
pub async fn serve(daemon: Arc<Daemon>, listener: Listener) -> std::io::Result<()> {
    let mut shutdown = daemon.shutdown.listener();
    let mut conns = JoinSet::new();
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => break,
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
        let config = daemon.config();
        if !peer.allowed(&config) {
            tracing::warn!(
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                "connection refused: permission denied"
            );
            daemon.metrics.connection_rejected();
            let err = RpcError::app(
                ErrorKind::PermissionDenied,
                format!("permission denied: uid {} may not use ccmanagerd (see daemon.allowed_uids / allowed_groups)", peer.uid),
            );
            conns.spawn(refuse(stream, err));
            continue;
        }
        let limit = config.daemon.max_connections;
        if active.load(std::sync::atomic::Ordering::SeqCst) >= limit {
            tracing::warn!(
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                limit,
                "connection refused: too many connections"
            );
            daemon.metrics.connection_rejected();
            let err = RpcError::app(
                ErrorKind::TooManyConnections,
                format!("too many connections (daemon.max_connections = {limit}); try again later"),
            );
            conns.spawn(refuse(stream, err));
            continue;
        }
        tracing::debug!(peer_uid = peer.uid, peer_pid = peer.pid, "connection accepted");
        let guard = ActiveGuard::new(active.clone());
        conns.spawn(conn::serve_connection(daemon.clone(), stream, peer, guard));
    }
    // Stop accepting (the listener is dropped, and unlinked if we bound it),
    // then let every connection finish what it has in flight.
    drop(listener);
    let grace = daemon.config().daemon.shutdown_timeout.0;
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

/// Counts a live connection for as long as it exists.
pub struct ActiveGuard(Arc<std::sync::atomic::AtomicUsize>);

impl ActiveGuard {
    fn new(counter: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ActiveGuard(counter)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
