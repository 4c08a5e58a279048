//! One enum of requests, one variant per method, params as a struct named
//! after the method. The method table below is the single list of method
//! names: parsing, naming and re-encoding are generated from it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope::{RpcError, METHOD_NOT_FOUND};
use super::types::{SessionField, SessionState};
use crate::limits::Limits;
use crate::users::UserSpec;

/// Methods that take no params (absent, null, `{}` or `[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `session.create`: `{"command": ["claude"], "name": "x", "cwd": "/srv", "env": {"K": "V"}, "cols": 120, "rows": 40, "limits": {"nofile": 1024}, "keep": false, "user": "alice"}`
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
    /// Run as this user (a name or a uid); root and admins only. Default:
    /// the caller (root: `tmux.session_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSpec>,
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

macro_rules! methods {
    ($( $(#[$attr:meta])* $name:literal => $variant:ident($params:ty), )*) => {
        /// A parsed request: one variant per method.
        // Requests are parsed once and moved, never stored in bulk: boxing
        // the larger params would cost an allocation per request for nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[$attr])* #[doc = concat!("`", $name, "`")] $variant($params), )*
        }

        impl Request {
            /// Parses `method` and its `params` into a typed request.
            pub fn parse(method: &str, params: Option<Value>) -> Result<Request, RpcError> {
                match method {
                    $( $(#[$attr])* $name => Ok(Request::$variant(decode(params)?)), )*
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

methods! {
    "daemon.ping" => DaemonPing(NoParams),
    "daemon.status" => DaemonStatus(NoParams),
    "daemon.reload" => DaemonReload(NoParams),
    "daemon.metrics" => DaemonMetrics(NoParams),
    "health.check" => HealthCheck(NoParams),
    "session.create" => SessionCreate(SessionCreate),
    "session.list" => SessionList(SessionList),
    "session.get" => SessionGet(SessionId),
    "session.kill" => SessionKill(SessionId),
    "session.send" => SessionSend(SessionSend),
    "session.capture" => SessionCapture(SessionCapture),
    "session.resize" => SessionResize(SessionResize),
    "session.attach" => SessionAttach(SessionId),
    "cleanup.run" => CleanupRun(CleanupRun),
    #[cfg(feature = "test-hooks")]
    "debug.fail" => DebugFail(NoParams),
    #[cfg(feature = "test-hooks")]
    "debug.sleep" => DebugSleep(DebugSleep),
}

/// Decodes named params; an error message names the bad field.
fn decode<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
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

    #[test]
    fn every_name_parses_back_to_its_variant() {
        for name in Request::names() {
            let params = match name {
                "session.create" => json!({"command": ["true"]}),
                "session.get" | "session.kill" | "session.attach" | "session.send"
                | "session.capture" => json!({"id": "a"}),
                "session.resize" => json!({"id": "a", "cols": 80, "rows": 24}),
                "debug.sleep" => json!({"ms": 1}),
                _ => json!({}),
            };
            let req = Request::parse(name, Some(params)).unwrap();
            assert_eq!(req.method(), name);
            assert_eq!(Request::parse(name, Some(req.params())).unwrap(), req);
        }
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
