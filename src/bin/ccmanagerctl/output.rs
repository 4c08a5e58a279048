//! What every command shares: the connection with the `--json` switch, the
//! failure type with its exit code, stdout that ends quietly when its
//! reader goes away, and the small formatters.

use std::io::{ErrorKind, Write};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use ccmanagerd::client::{Client, ClientError, Stage};
use ccmanagerd::protocol::{Method, RpcError};

/// Exit code: the daemon answered with an error, or the command failed
/// here for another reason (a reply that is not JSON-RPC, a terminal that
/// went away).
pub const ERROR: u8 = 1;
/// Exit code: the command line is wrong (clap's own code for its errors,
/// used for ours too: a bad size, nothing to send, an ambiguous session).
pub const USAGE: u8 = 2;
/// Exit code: no daemon could be reached (no socket, refused, permission
/// denied, or the connection closed without a reply). sysexits.h
/// `EX_UNAVAILABLE`.
pub const UNAVAILABLE: u8 = 69;
/// Exit code: no connection within `--connect-timeout`, or no reply within
/// `--timeout`. sysexits.h `EX_TEMPFAIL`: trying again later may work.
pub const TIMEOUT: u8 = 75;

/// Writes to stdout; exits 0 on a closed pipe (Rust ignores SIGPIPE, so
/// `println!` would panic there), 1 on any other write error.
pub fn write_out(args: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        stdout_failed(e);
    }
}

/// What a failed write to stdout does: nothing more to say to a reader
/// that left; an error otherwise.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(std::io::stderr(), "ccmanagerctl: writing to stdout: {e}");
    std::process::exit(ERROR.into());
}

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

/// A failure and the exit code it maps to ([`ERROR`], [`USAGE`],
/// [`UNAVAILABLE`], [`TIMEOUT`], or attach's own).
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// Printed after `ccmanagerctl: ` on stderr.
    pub message: String,
    /// The daemon's error object, when the failure is an error reply (with
    /// `--json` it is printed on stdout too, so scripts can match `data.kind`).
    pub rpc: Option<RpcError>,
}

impl Failure {
    /// The `--json` form: the daemon's error object as it came, or one of
    /// the same shape for a failure of ours (code -32000 like the daemon's
    /// own errors, `data.kind` naming what failed, `data.exit` the code).
    pub fn to_json(&self) -> Value {
        if let Some(e) = &self.rpc {
            return json!({ "error": e });
        }
        let kind = match self.code {
            USAGE => "usage",
            UNAVAILABLE => "unavailable",
            TIMEOUT => "timeout",
            crate::attach::EXITED => "session_exited",
            c if c > 128 => "signal",
            _ => "failed",
        };
        json!({ "error": {
            "code": -32000,
            "message": self.message,
            "data": { "kind": kind, "exit": self.code },
        }})
    }
}

/// What to look at when the daemon does not answer.
const CHECK_SERVICE: &str = "check `systemctl status ccmanagerd` and `journalctl -u ccmanagerd`";

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let unreachable = |code, message: String| Failure { code, message, rpc: None };
        match e {
            ClientError::Connect { path, source } => unreachable(UNAVAILABLE, format!(
                "cannot connect to ccmanagerd at {}: {source}\nhint: is the daemon running? {CHECK_SERVICE}, start it with `systemctl start ccmanagerd`, or point --socket / CCMANAGERD_SOCKET at it",
                path.display()
            )),
            ClientError::NotFound { ref tried } => unreachable(if tried.iter().all(|t| t.timed_out) { TIMEOUT } else { UNAVAILABLE }, format!(
                "{e}\nhint: is the daemon running? {CHECK_SERVICE}, start it with `systemctl start ccmanagerd` (or run `ccmanagerd` as yourself), or point --socket / CCMANAGERD_SOCKET at it"
            )),
            ClientError::Timeout { stage: Stage::Connect, .. } => unreachable(TIMEOUT, format!(
                "{e}\nhint: the daemon is not accepting (starting, stuck, or failing to start behind its socket): {CHECK_SERVICE}"
            )),
            ClientError::Timeout { stage: Stage::Reply, .. } => unreachable(TIMEOUT, format!(
                "{e}\nhint: the daemon is busy, stuck, or not running behind its socket (a service that fails to start): {CHECK_SERVICE}; --timeout waits longer"
            )),
            ClientError::Closed { .. } => unreachable(UNAVAILABLE, format!(
                "{e}\nhint: the daemon stopped or failed to start: {CHECK_SERVICE}"
            )),
            ClientError::Rpc(e) => Failure { code: ERROR, message: e.message.clone(), rpc: Some(e) },
            other => Failure { code: ERROR, message: other.to_string(), rpc: None },
        }
    }
}

/// A mistake in what the user asked (exit code [`USAGE`]).
pub fn usage(message: impl Into<String>) -> Failure {
    Failure { code: USAGE, message: message.into(), rpc: None }
}

/// A failure here that is not the user's mistake (exit code [`ERROR`]).
pub fn failed(message: impl Into<String>) -> Failure {
    Failure { code: ERROR, message: message.into(), rpc: None }
}

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) {
    outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
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

/// Rows of cells printed with each column as wide as its widest cell (the
/// last column is not padded).
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        outln!("{}", line.trim_end());
    }
}

/// A clap value parser for a whole number in `lo..=hi` whose error says
/// "out of range" with the range (clap's own says "number too large to
/// fit in target type").
pub fn ranged<T: TryFrom<i128> + Clone + Send + Sync + 'static>(
    lo: i128,
    hi: i128,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let n: i128 = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number"))?;
        let out_of_range = || format!("{n} is out of range ({lo} to {hi})");
        if !(lo..=hi).contains(&n) {
            return Err(out_of_range());
        }
        T::try_from(n).map_err(|_| out_of_range())
    }
}
