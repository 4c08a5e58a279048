//! Finding the daemon without `--socket`: the system socket
//! (`/run/ccmanagerd/ccmanagerd.sock`, the socket unit's) when a connect
//! to it works, else the per-user one (a daemon the user runs as
//! themselves: `$XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock`). "Works" is
//! the connect only: a daemon that then refuses this uid says so in its
//! error reply, which is more use than a silent fall-through to another
//! daemon. When none connects, the error lists every path and why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Client, ClientError, Stage};

/// The socket of the packaged service (`systemd/ccmanagerd.socket`).
pub const SYSTEM_SOCKET: &str = "/run/ccmanagerd/ccmanagerd.sock";

/// Where to look, in order: the system socket, then this user's (the same
/// path for root, listed once).
pub fn default_sockets() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(SYSTEM_SOCKET)];
    let user = crate::config::user_runtime_base().join("ccmanagerd.sock");
    if !paths.contains(&user) {
        paths.push(user);
    }
    paths
}

impl Client {
    /// Connects to the first of `paths` that accepts a connection within
    /// `connect_timeout`; `reply_timeout` bounds each request. When none
    /// does: [`ClientError::NotFound`] with each path and its error (a
    /// single path's own error when there is only one).
    pub fn connect_first(
        paths: &[PathBuf],
        connect_timeout: Option<Duration>,
        reply_timeout: Option<Duration>,
    ) -> Result<Client, ClientError> {
        let mut tried = Vec::new();
        for path in paths {
            match Client::connect_within(path, connect_timeout, reply_timeout) {
                Ok(client) => return Ok(client),
                Err(e) if paths.len() == 1 => return Err(e),
                Err(e) => tried.push(Tried::from_error(path, e)),
            }
        }
        Err(ClientError::NotFound { tried })
    }
}

/// One socket that did not work, for [`ClientError::NotFound`].
#[derive(Debug)]
pub struct Tried {
    /// The socket path.
    pub path: PathBuf,
    /// Why: the OS error, or the timeout.
    pub reason: String,
    /// Whether it was a timeout (a socket there, nobody accepting).
    pub timed_out: bool,
}

impl Tried {
    fn from_error(path: &Path, e: ClientError) -> Tried {
        let (reason, timed_out) = match e {
            ClientError::Connect { source, .. } => (source.to_string(), false),
            ClientError::Timeout { stage: Stage::Connect, after, .. } => {
                (format!("nobody accepted within {}", humantime::format_duration(after)), true)
            }
            other => (other.to_string(), false),
        };
        Tried { path: path.to_owned(), reason, timed_out }
    }
}

/// `tried A (reason); B (reason)`, for the error message.
pub(super) fn list(tried: &[Tried]) -> String {
    let each: Vec<String> =
        tried.iter().map(|t| format!("{} ({})", t.path.display(), t.reason)).collect();
    each.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn the_first_socket_that_accepts_wins_and_failures_are_all_listed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let live = dir.path().join("live.sock");
        let _listener = UnixListener::bind(&live).unwrap();
        let t = Some(Duration::from_secs(2));
        let c = Client::connect_first(&[missing.clone(), live.clone()], t, t).unwrap();
        assert_eq!(c.path(), live);
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let Err(e) = Client::connect_first(&[missing.clone(), stale.clone()], t, t) else {
            panic!("connected to nothing")
        };
        let text = e.to_string();
        assert!(text.contains(&format!("{} (No such file", missing.display())), "{text}");
        assert!(text.contains(&format!("{} (Connection refused", stale.display())), "{text}");
        // One path: its own error, as before discovery existed.
        let Err(e) = Client::connect_first(std::slice::from_ref(&missing), t, t) else { panic!() };
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    }

    #[test]
    fn the_system_socket_comes_first() {
        let paths = default_sockets();
        assert_eq!(paths[0], Path::new(SYSTEM_SOCKET));
        assert!(paths.iter().skip(1).all(|p| p.ends_with("ccmanagerd/ccmanagerd.sock")
            || p.file_name() == Some("ccmanagerd.sock".as_ref())));
    }
}
