//! The method table: for every method its wire name, its params type and its
//! result type (the `lsp_types` pattern). From the one table below the macro
//! generates
//! - [`Request`], one variant per method, which the daemon parses and
//!   dispatches on (one exhaustive `match`, no `_` arm);
//! - one zero-sized marker type per method in [`method`], implementing
//!   [`Method`], so the CLI and the tests call typed:
//!   `client.request::<method::SessionGet>(&SessionId { id })` returns a
//!   [`Session`].
//!
//! Params are structs named after the method (or shared, like [`SessionId`]);
//! results live in [`types`](super::types) (the shared objects) and
//! [`results`](super::results) (one per method).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::envelope::{RpcError, METHOD_NOT_FOUND};
use super::openrpc::OpenRpcDocument;
#[cfg(feature = "test-hooks")]
use super::results::Slept;
use super::results::{
    AttachResult, CaptureResult, KillResult, ListResult, MetricsResult, Pong, SendResult,
};
use super::streams::{
    Empty, ReadResult, SessionAck, SessionRead, SessionSubscribe, SessionUnsubscribe, SessionWrite,
    SubscribeResult, WriteResult,
};
use super::types::{
    CleanupReport, Health, ReloadResult, RestartPolicy, RestorePolicy, Session, SessionField,
    SessionState, Status,
};
use crate::limits::Limits;
use crate::users::UserSpec;

/// Methods that take no params (absent, null, `{}` or `[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `session.create`: `{"command": ["claude"], "name": "x", "cwd": "/srv", "env": {"K": "V"}, "cols": 120, "rows": 40, "limits": {"nofile": 1024}, "keep": false, "user": "alice"}`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// Re-create it after a reboot (`on_boot`) or also after its tmux
    /// server died (`always`). Default: `sessions.restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestorePolicy>,
    /// What a restore runs instead of `command` (an argv, like it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_command: Option<Vec<String>>,
    /// Run the program again when it exits. Default: `sessions.restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
}

/// `session.restart`: `{"id": "a1", "resume": true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRestart {
    /// The session id.
    pub id: String,
    /// Run `resume_command` (when the session has one) instead of `command`.
    #[serde(default)]
    pub resume: bool,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `session.list`: `{"state": "running", "fields": ["id", "state"]}` (both
/// optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionId {
    /// The session id.
    pub id: String,
}

/// `session.send`: `{"id": "a1", "text": "ls", "keys": ["C-c"], "enter": true}`
/// (text first, then keys, then Enter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRun {
    /// Report what would go, remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `debug.sleep` (test builds only): `{"ms": 500}`.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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

/// One method as [`Request::describe`] gives it.
#[derive(Debug, Clone)]
pub struct Described {
    /// The wire name.
    pub name: &'static str,
    /// One line from the table ("" when it has none).
    pub summary: &'static str,
    /// The params object's schema (a `$ref` to its definition).
    pub params: schemars::Schema,
    /// The Rust type of the params, e.g. `SessionId`.
    pub params_type: &'static str,
    /// The result's schema.
    pub result: schemars::Schema,
    /// The Rust type of the result.
    pub result_type: &'static str,
}

macro_rules! methods {
    ($( $(#[$attr:meta])* $name:literal => $variant:ident($params:ty) -> $result:ty $(: $summary:literal)?, )*) => {
        /// A parsed request: one variant per method.
        // Requests are parsed once and moved, never stored in bulk: boxing
        // the larger params would cost an allocation per request for nothing.
        #[allow(clippy::large_enum_variant)]
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
            /// Parses `method` and its `params` (the raw JSON text of the
            /// params member, see [`Call`](super::envelope::Call)) into a
            /// typed request.
            pub fn parse(method: &str, params: Option<Box<RawValue>>) -> Result<Request, RpcError> {
                let params = params.as_deref();
                match method {
                    $( $(#[$attr])* $name => Ok(Request::$variant(decode_raw_params(params)?)), )*
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

            /// Every method with the JSON Schemas of its params (from
            /// `params`, a generator with the deserialize contract: what the
            /// daemon accepts) and of its result (from `results`, the
            /// serialize contract: what it sends), for `rpc.discover`
            /// ([`openrpc`](super::openrpc)).
            pub fn describe(
                params: &mut schemars::SchemaGenerator,
                results: &mut schemars::SchemaGenerator,
            ) -> Vec<Described> {
                vec![$( $(#[$attr])* Described {
                    name: $name,
                    summary: concat!("" $(, $summary)?),
                    params: params.subschema_for::<$params>(),
                    params_type: stringify!($params),
                    result: results.subschema_for::<$result>(),
                    result_type: stringify!($result),
                }, )*]
            }
        }
    };
}

// The table. Adding a method: a line here (`: "summary"` is optional and goes
// to `rpc.discover`), its params and result types (with a JSON example each,
// and `#[derive(JsonSchema)]` next to Serialize/Deserialize: the document is
// generated from them; a hand-written `Serialize` needs a hand-written
// `JsonSchema`, see `streams::Bytes`), an arm in `rpc::dispatch` (the compiler
// asks for it), and an example in the round-trip test below.
methods! {
    "rpc.discover" => RpcDiscover(NoParams) -> OpenRpcDocument
        : "This document: every method, its params and its result (OpenRPC).",
    "daemon.ping" => DaemonPing(NoParams) -> Pong : "Liveness check.",
    "daemon.status" => DaemonStatus(NoParams) -> Status
        : "Version, uptime, tmux servers and session counts.",
    "daemon.reload" => DaemonReload(NoParams) -> ReloadResult
        : "Reread the config file (root and admins only).",
    "daemon.metrics" => DaemonMetrics(NoParams) -> MetricsResult
        : "Prometheus text exposition.",
    "health.check" => HealthCheck(NoParams) -> Health : "Run every health check.",
    "session.create" => SessionCreate(SessionCreate) -> Session
        : "Start a program in a new session.",
    "session.list" => SessionList(SessionList) -> ListResult
        : "The sessions the caller may see.",
    "session.get" => SessionGet(SessionId) -> Session : "One session.",
    "session.kill" => SessionKill(SessionId) -> KillResult
        : "End a session and its whole process tree.",
    "session.send" => SessionSend(SessionSend) -> SendResult
        : "Type text and tmux key names.",
    "session.capture" => SessionCapture(SessionCapture) -> CaptureResult
        : "The visible screen and scrollback as text.",
    "session.resize" => SessionResize(SessionResize) -> Session : "Resize the pane.",
    "session.attach" => SessionAttach(SessionId) -> AttachResult
        : "A command to attach a real terminal.",
    "session.write" => SessionWrite(SessionWrite) -> WriteResult
        : "Type raw bytes into the pane.",
    "session.read" => SessionRead(SessionRead) -> ReadResult
        : "Read the output log by offset.",
    "session.subscribe" => SessionSubscribe(SessionSubscribe) -> SubscribeResult
        : "Follow the output live (session.output notifications).",
    "session.ack" => SessionAck(SessionAck) -> Empty
        : "Credit a subscription: bytes before offset were consumed.",
    "session.unsubscribe" => SessionUnsubscribe(SessionUnsubscribe) -> Empty
        : "End a subscription.",
    "session.restart" => SessionRestart(SessionRestart) -> Session
        : "Run a session's program again (its resume_command with resume).",
    "cleanup.run" => CleanupRun(CleanupRun) -> CleanupReport
        : "Run the cleanup pass now.",
    // Always an error reply; `()` (null) is never sent.
    #[cfg(feature = "test-hooks")]
    "debug.fail" => DebugFail(NoParams) -> () : "Test builds only: always an error.",
    #[cfg(feature = "test-hooks")]
    "debug.sleep" => DebugSleep(DebugSleep) -> Slept : "Test builds only: answer after ms.",
}

/// Decodes named params (absent, null and `[]` are `{}`); an error message
/// names the bad field, e.g. `invalid params: limits.nofile: ...`.
pub fn decode_params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
    let value = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Array(a)) if a.is_empty() => Value::Object(Default::default()),
        Some(Value::Array(_)) => return Err(positional()),
        Some(v) => v,
    };
    serde_path_to_error::deserialize(value).map_err(params_error)
}

/// [`decode_params`] from raw JSON text, straight into `T` (no `Value`
/// tree). A number no `f64` holds (`1e400`) where `T` wants a number is
/// `invalid params: lines: number out of range`; where nothing reads it,
/// it is never converted.
pub fn decode_raw_params<T: DeserializeOwned>(params: Option<&RawValue>) -> Result<T, RpcError> {
    let text = params.map_or("null", RawValue::get);
    let empty = |inner: &str| inner.trim_matches([' ', '\t', '\n', '\r']).is_empty();
    let text = match text.as_bytes().first() {
        Some(b'n') => "{}",
        Some(b'[') if empty(&text[1..text.len() - 1]) => "{}",
        Some(b'[') => return Err(positional()),
        _ => text,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(params_error)
}

fn positional() -> RpcError {
    RpcError::invalid_params(
        "invalid params: this method takes named params (a JSON object), not an array",
    )
}

/// `invalid params: PATH: what`, without serde_json's position (a column in
/// the params text is no help to the client; the path says where).
fn params_error(e: serde_path_to_error::Error<serde_json::Error>) -> RpcError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let mut message = inner.to_string();
    if inner.line() > 0 {
        let at = format!(" at line {} column {}", inner.line(), inner.column());
        if let Some(stripped) = message.strip_suffix(&at) {
            message = stripped.to_string();
        }
    }
    if path == "." || path.is_empty() {
        RpcError::invalid_params(format!("invalid params: {message}"))
    } else {
        RpcError::invalid_params(format!("invalid params: {path}: {message}"))
    }
}

#[cfg(test)]
#[path = "methods_tests.rs"]
mod tests;
