//! What every command shares: the connection with the `--json` switch, the
//! failure type with its exit code, and the small formatters.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use ccmanagerd::client::{Client, ClientError, Stage};
use ccmanagerd::protocol::{Method, RpcError};

/// The connection to the daemon and how to show results.
pub struct Ctl {
    /// One connection for the whole command.
    pub client: Client,
    /// `--json`: print the daemon's result instead of a summary.
    pub json: bool,
    /// `--timeout`: the reply timeout (a command that reconnects gives up
    /// after it).
    pub timeout: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
}

impl Ctl {
    /// Calls method `M`. With `--json` the result is printed exactly as the
    /// daemon sent it and `None` comes back (there is nothing else to show);
    /// otherwise the typed result, for the command to summarise.
    pub fn call<M: Method>(&mut self, params: &M::Params) -> Result<Option<M::Result>, Failure> {
        if self.json {
            print_json(&self.client.request_as::<M, Value>(params)?);
            Ok(None)
        } else {
            Ok(Some(self.client.request::<M>(params)?))
        }
    }
}

/// A failure and the exit code it maps to: 1 for an error reply or bad
/// arguments, 2 when the daemon cannot be reached or does not answer.
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// Printed after `ccmanagerctl: ` on stderr.
    pub message: String,
    /// The daemon's error object, when the failure is an error reply (with
    /// `--json` it is printed on stdout too, so scripts can match `data.kind`).
    pub rpc: Option<RpcError>,
}

/// What to look at when the daemon does not answer.
const CHECK_SERVICE: &str = "check `systemctl status ccmanagerd` and `journalctl -u ccmanagerd`";

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let unreachable = |message: String| Failure { code: 2, message, rpc: None };
        match e {
            ClientError::Connect { path, source } => unreachable(format!(
                "cannot connect to ccmanagerd at {}: {source}\nhint: is the daemon running? {CHECK_SERVICE}, start it with `systemctl start ccmanagerd`, or point --socket / CCMANAGERD_SOCKET at it",
                path.display()
            )),
            ClientError::Timeout { stage: Stage::Connect, .. } => unreachable(format!(
                "{e}\nhint: the daemon is not accepting (starting, stuck, or failing to start behind its socket): {CHECK_SERVICE}"
            )),
            ClientError::Timeout { stage: Stage::Reply, .. } => unreachable(format!(
                "{e}\nhint: the daemon is busy, stuck, or not running behind its socket (a service that fails to start): {CHECK_SERVICE}; --timeout waits longer"
            )),
            ClientError::Closed { .. } => unreachable(format!(
                "{e}\nhint: the daemon stopped or failed to start: {CHECK_SERVICE}"
            )),
            ClientError::Rpc(e) => Failure { code: 1, message: e.message.clone(), rpc: Some(e) },
            other => Failure { code: 1, message: other.to_string(), rpc: None },
        }
    }
}

/// A mistake in what the user asked (exit code 1).
pub fn usage(message: impl Into<String>) -> Failure {
    Failure { code: 1, message: message.into(), rpc: None }
}

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// "3d4h" style age from an RFC 3339 time until now; `-` when there is none.
pub fn age(rfc3339: Option<&str>) -> String {
    let Some(t) = rfc3339.and_then(|s| humantime::parse_rfc3339(s).ok()) else { return "-".into() };
    let secs = SystemTime::now().duration_since(t).unwrap_or_default().as_secs();
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}
