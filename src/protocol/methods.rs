//! The method table: for every method its wire name, its params type and its
//! result type (the `lsp_types` pattern). From the one table below the macro
//! generates
//! - [`Request`], one variant per method, which the daemon parses and
//!   dispatches on (one exhaustive `match`, no `_` arm);
//! - one zero-sized marker type per method in [`method`], implementing
//!   [`Method`], so the CLI and the tests call typed:
//!   `client.request::<method::SessionGet>(&SessionId { id })` returns a
//!   [`Session`](super::types::Session).
//!
//! Params are structs named after the method (or shared, like [`SessionId`]);
//! results live in [`types`](super::types) (the shared objects) and
//! [`results`](super::results) (one per method).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope::{RpcError, METHOD_NOT_FOUND};
#[cfg(feature = "test-hooks")]
use super::results::Slept;
use super::results::{
    AttachResult, CaptureResult, KillResult, ListResult, MetricsResult, Pong, SendResult,
};
use super::types::{
    CleanupReport, Health, ReloadResult, Session, SessionField, SessionState, Status,
};
use crate::limits::Limits;

/// Methods that take no params (absent, null, `{}` or `[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `session.create`: `{"command": ["claude"], "name": "x", "cwd": "/srv", "env": {"K": "V"}, "cols": 120, "rows": 40, "limits": {"nofile": 1024}, "keep": false}`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCreate {
    /// The argv; never passed through a shell.
    pub command: Vec<String>,
    /// Optional label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absolute, existing working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Extra environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Pane width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    /// Pane height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    /// Per-session limits (merged with the configured defaults).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: Limits,
    /// Exempt from cleanup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `session.list`: `{"state": "running", "fields": ["id", "state"]}` (both
/// optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionList {
    /// Only sessions in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SessionState>,
    /// Only these fields of each session (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<SessionField>>,
}

/// `{"id": "a1b2c3"}`: the params of `session.get`, `session.kill` and
/// `session.attach`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionId {
    /// The session id.
    pub id: String,
}

/// `session.send`: `{"id": "a1", "text": "ls", "keys": ["C-c"], "enter": true}`
/// (text first, then keys, then Enter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSend {
    /// The session id.
    pub id: String,
    /// Literal text (no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// tmux key names such as `C-c`, `Up`, `Enter`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Press Enter at the end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enter: bool,
}

/// `session.capture`: `{"id": "a1", "lines": 100, "escapes": false}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCapture {
    /// The session id.
    pub id: String,
    /// Scrollback lines above the visible screen.
    #[serde(default)]
    pub lines: u32,
    /// Keep colour and attribute escape sequences.
    #[serde(default)]
    pub escapes: bool,
}

/// `session.resize`: `{"id": "a1", "cols": 120, "rows": 40}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionResize {
    /// The session id.
    pub id: String,
    /// New width.
    pub cols: u16,
    /// New height.
    pub rows: u16,
}

/// `cleanup.run`: `{"dry_run": true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupRun {
    /// Report what would go, remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `debug.sleep` (test builds only): `{"ms": 500}`.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugSleep {
    /// How long to sleep before answering `"slept"`.
    pub ms: u64,
}

/// A method: its wire name, the type of its params and of its result. One
/// zero-sized implementor per method lives in [`method`], generated from the
/// table below.
pub trait Method {
    /// The method name on the wire, e.g. `"session.get"`.
    const NAME: &'static str;
    /// What the `params` member decodes into.
    type Params: Serialize + DeserializeOwned;
    /// What the `result` member of a success reply decodes into.
    type Result: Serialize + DeserializeOwned;
}

macro_rules! methods {
    ($( $(#[$attr:meta])* $name:literal => $variant:ident($params:ty) -> $result:ty, )*) => {
        /// A parsed request: one variant per method.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[$attr])* #[doc = concat!("`", $name, "`")] $variant($params), )*
        }

        /// One zero-sized type per method, for typed calls:
        /// `client.request::<method::SessionGet>(&params)`.
        pub mod method {
            $(
                $(#[$attr])*
                #[doc = concat!("`", $name, "`: params `", stringify!($params),
                    "`, result `", stringify!($result), "`.")]
                #[derive(Debug, Clone, Copy, PartialEq, Eq)]
                pub struct $variant;
            )*
        }

        $(
            $(#[$attr])*
            impl Method for method::$variant {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
        )*

        impl Request {
            /// Parses `method` and its `params` into a typed request.
            pub fn parse(method: &str, params: Option<Value>) -> Result<Request, RpcError> {
                match method {
                    $( $(#[$attr])* $name => Ok(Request::$variant(decode_params(params)?)), )*
                    _ => Err(RpcError::new(METHOD_NOT_FOUND, format!("method not found: {method:?}"))),
                }
            }

            /// The method name on the wire.
            pub fn method(&self) -> &'static str {
                match self {
                    $( $(#[$attr])* Request::$variant(_) => $name, )*
                }
            }

            /// The params as JSON (for clients).
            pub fn params(&self) -> Value {
                match self {
                    $( $(#[$attr])* Request::$variant(p) => serde_json::to_value(p).unwrap_or(Value::Null), )*
                }
            }

            /// Every method name this build answers.
            pub fn names() -> Vec<&'static str> {
                vec![$( $(#[$attr])* $name, )*]
            }
        }
    };
}

// The table. Adding a method: a line here, its params and result types (with a
// JSON example each), an arm in `rpc::dispatch` (the compiler asks for it), and
// an example in the round-trip test below.
methods! {
    "daemon.ping" => DaemonPing(NoParams) -> Pong,
    "daemon.status" => DaemonStatus(NoParams) -> Status,
    "daemon.reload" => DaemonReload(NoParams) -> ReloadResult,
    "daemon.metrics" => DaemonMetrics(NoParams) -> MetricsResult,
    "health.check" => HealthCheck(NoParams) -> Health,
    "session.create" => SessionCreate(SessionCreate) -> Session,
    "session.list" => SessionList(SessionList) -> ListResult,
    "session.get" => SessionGet(SessionId) -> Session,
    "session.kill" => SessionKill(SessionId) -> KillResult,
    "session.send" => SessionSend(SessionSend) -> SendResult,
    "session.capture" => SessionCapture(SessionCapture) -> CaptureResult,
    "session.resize" => SessionResize(SessionResize) -> Session,
    "session.attach" => SessionAttach(SessionId) -> AttachResult,
    "cleanup.run" => CleanupRun(CleanupRun) -> CleanupReport,
    // Always an error reply; `()` (null) is never sent.
    #[cfg(feature = "test-hooks")]
    "debug.fail" => DebugFail(NoParams) -> (),
    #[cfg(feature = "test-hooks")]
    "debug.sleep" => DebugSleep(DebugSleep) -> Slept,
}

/// Decodes named params (absent, null and `[]` are `{}`); an error message
/// names the bad field, e.g. `invalid params: limits.nofile: ...`.
pub fn decode_params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
    let value = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Array(a)) if a.is_empty() => Value::Object(Default::default()),
        Some(Value::Array(_)) => {
            return Err(RpcError::invalid_params(
                "invalid params: this method takes named params (a JSON object), not an array",
            ))
        }
        Some(v) => v,
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            RpcError::invalid_params(format!("invalid params: {inner}"))
        } else {
            RpcError::invalid_params(format!("invalid params: {path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::envelope::INVALID_PARAMS;
    use serde_json::json;

    /// Checks one method through its own types: the params example parses
    /// to the request of that name and back; the result example (a real reply)
    /// decodes into `M::Result` and encodes to the same JSON.
    fn round_trip<M: Method>(seen: &mut Vec<&'static str>, params: Value, result: Value) {
        let name = M::NAME;
        let typed: M::Params = decode_params(Some(params.clone()))
            .unwrap_or_else(|e| panic!("{name} params: {}", e.message));
        let req = Request::parse(name, Some(params)).unwrap();
        assert_eq!(req.method(), name);
        assert_eq!(req.params(), serde_json::to_value(&typed).unwrap(), "{name}");
        let decoded: M::Result =
            serde_json::from_value(result.clone()).unwrap_or_else(|e| panic!("{name} result: {e}"));
        assert_eq!(serde_json::to_value(&decoded).unwrap(), result, "{name}");
        seen.push(name);
    }

    /// Adding a method to the table without an example here fails the last
    /// assertion.
    #[test]
    fn every_method_round_trips_a_real_example() {
        let session = json!({
            "id": "a1b2c3", "name": "my-label", "tmux_session": "ccmanager_sess_a1b2c3",
            "command": ["claude"], "cwd": "/srv/work", "state": "running",
            "exit_status": null, "pid": 4242, "created_at": "2026-11-20T10:00:00Z",
            "last_activity_at": "2026-11-20T10:05:00Z", "ended_at": null, "owner_uid": 1000,
            "limits": {"nofile": 4096, "nproc": 512, "memory_max": "2G", "tasks_max": 512,
                       "cpu_quota": "200%"},
            "keep": false, "cols": 120, "rows": 40, "env": {"TERM_PROGRAM": "x"}
        });
        let seen = &mut Vec::new();
        round_trip::<method::DaemonPing>(seen, json!({}), json!("pong"));
        round_trip::<method::DaemonStatus>(
            seen,
            json!(null),
            json!({"version": "0.1.0", "pid": 812, "uptime_s": 3600,
                   "tmux": {"pid": 813, "socket": "/run/ccmanagerd-tmux/tmux.sock",
                            "alive": true, "version": "3.3a"},
                   "sessions": {"total": 3, "running": 2, "exited": 1, "lost": 0},
                   "health": "ok", "socket": "/run/ccmanagerd/ccmanagerd.sock"}),
        );
        round_trip::<method::DaemonReload>(
            seen,
            json!({}),
            json!({"reloaded": true, "applied": ["cleanup.max_age"],
                   "needs_restart": ["tmux.socket_dir"]}),
        );
        round_trip::<method::DaemonMetrics>(
            seen,
            json!({}),
            json!({"text": "# TYPE ccmanagerd_sessions gauge\nccmanagerd_sessions{state=\"running\"} 2\n"}),
        );
        round_trip::<method::HealthCheck>(
            seen,
            json!({}),
            json!({"status": "degraded", "checks": [
                {"name": "tmux_server", "ok": true, "detail": "answers", "status": "ok",
                 "latency_ms": 0.4},
                {"name": "cgroups", "ok": false, "detail": "no systemd", "status": "degraded",
                 "available": false}]}),
        );
        round_trip::<method::SessionCreate>(
            seen,
            json!({"command": ["claude"], "name": "my-label", "cwd": "/srv/work",
                   "env": {"TERM_PROGRAM": "x"}, "cols": 120, "rows": 40,
                   "limits": {"nofile": 4096, "memory_max": "2G"}, "keep": true}),
            session.clone(),
        );
        round_trip::<method::SessionList>(
            seen,
            json!({"state": "running"}),
            json!({"sessions": [session.clone()]}),
        );
        round_trip::<method::SessionGet>(seen, json!({"id": "a1b2c3"}), session.clone());
        round_trip::<method::SessionKill>(
            seen,
            json!({"id": "a1b2c3"}),
            json!({"id": "a1b2c3", "killed": true}),
        );
        round_trip::<method::SessionSend>(
            seen,
            json!({"id": "a1b2c3", "text": "ls", "keys": ["C-c"], "enter": true}),
            json!({"id": "a1b2c3"}),
        );
        round_trip::<method::SessionCapture>(
            seen,
            json!({"id": "a1b2c3", "lines": 100, "escapes": false}),
            json!({"id": "a1b2c3", "text": "$ ls\nREADME.md\n$ \n"}),
        );
        round_trip::<method::SessionResize>(
            seen,
            json!({"id": "a1b2c3", "cols": 120, "rows": 40}),
            session.clone(),
        );
        round_trip::<method::SessionAttach>(
            seen,
            json!({"id": "a1b2c3"}),
            json!({"argv": ["/usr/bin/tmux", "-S", "/run/ccmanagerd-tmux/tmux.sock",
                            "attach-session", "-t", "=ccmanager_sess_a1b2c3"]}),
        );
        round_trip::<method::CleanupRun>(
            seen,
            json!({"dry_run": true}),
            json!({"removed": [{"id": "a1b2c3", "reason": "max_age"}], "dry_run": true}),
        );
        #[cfg(feature = "test-hooks")]
        {
            round_trip::<method::DebugFail>(seen, json!({}), json!(null));
            round_trip::<method::DebugSleep>(seen, json!({"ms": 5}), json!("slept"));
        }
        let mut names = Request::names();
        names.sort_unstable();
        seen.sort_unstable();
        assert_eq!(*seen, names, "Request::names() and the Method::NAMEs differ");
    }

    /// Results that are not the declared shape are refused, so a client
    /// notices a daemon that answers something else.
    #[test]
    fn results_pin_their_shape() {
        use serde_json::from_value;
        assert!(from_value::<KillResult>(json!({"id": "a1"})).is_err());
        assert!(from_value::<AttachResult>(json!({"argv": "tmux attach"})).is_err());
        assert!(from_value::<MetricsResult>(json!("text")).is_err());
        assert!(from_value::<ListResult>(json!([])).is_err());
        assert!(from_value::<Pong>(json!({})).is_err());
    }

    #[test]
    fn unknown_method_is_32601() {
        assert_eq!(Request::parse("nope", None).unwrap_err().code, METHOD_NOT_FOUND);
    }

    #[test]
    fn bad_params_name_the_field() {
        let e = Request::parse("session.create", Some(json!({"command": "ls -l"}))).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        assert!(e.message.contains("command"), "{}", e.message);
        let e = Request::parse("session.create", Some(json!({"command": ["a", 1]}))).unwrap_err();
        assert!(e.message.contains("command[1]"), "{}", e.message);
        let e = Request::parse("session.get", Some(json!({}))).unwrap_err();
        assert!(e.message.contains("missing field `id`"), "{}", e.message);
        let e = Request::parse("daemon.ping", Some(json!({"x": 1}))).unwrap_err();
        assert!(e.message.contains("unknown field `x`"), "{}", e.message);
        let e = Request::parse(
            "session.create",
            Some(json!({"command": ["a"], "limits": {"nofile": "x"}})),
        )
        .unwrap_err();
        assert!(e.message.contains("limits.nofile"), "{}", e.message);
    }

    #[test]
    fn no_params_accepts_the_empty_forms() {
        for p in [None, Some(Value::Null), Some(json!({})), Some(json!([]))] {
            assert_eq!(Request::parse("daemon.ping", p).unwrap(), Request::DaemonPing(NoParams {}));
        }
        assert_eq!(
            Request::parse("daemon.ping", Some(json!([1]))).unwrap_err().code,
            INVALID_PARAMS
        );
    }
}
