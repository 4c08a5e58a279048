//! JSON-RPC 2.0 framing-independent envelope: classifying an incoming message
//! (single, batch, notification, invalid), error objects with the spec's codes
//! plus the application's `data.kind`, and building replies.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid Request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;

/// Application error kinds: a stable snake_case word in `error.data.kind`,
/// each with its own code from -32000 down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such session (or not visible to this peer).
    SessionNotFound,
    /// A global or per-owner cap, or a limit above the ceiling.
    LimitReached,
    /// The tmux server or the control connection is not available.
    TmuxUnavailable,
    /// The peer may not use the daemon.
    PermissionDenied,
    /// The daemon serves too many connections already.
    TooManyConnections,
    /// The daemon is shutting down.
    ShuttingDown,
    /// The session exists but is in a state that does not allow the request.
    InvalidState,
    /// The configuration file is invalid (e.g. on reload).
    InvalidConfig,
    /// tmux refused the command.
    TmuxError,
    /// The session's program could not be started (missing program, a cwd
    /// its owner cannot enter, ...); the message names the problem.
    SpawnFailed,
    /// The change could not be made durable in the state directory, so it
    /// was not made (a create) or not acknowledged (a kill); the message
    /// names the file and the OS error.
    StateNotSaved,
}

impl ErrorKind {
    /// The JSON-RPC error code for this kind.
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::SessionNotFound => -32000,
            ErrorKind::LimitReached => -32001,
            ErrorKind::TmuxUnavailable => -32002,
            ErrorKind::PermissionDenied => -32003,
            ErrorKind::TooManyConnections => -32004,
            ErrorKind::ShuttingDown => -32005,
            ErrorKind::InvalidState => -32006,
            ErrorKind::InvalidConfig => -32007,
            ErrorKind::TmuxError => -32008,
            ErrorKind::SpawnFailed => -32009,
            ErrorKind::StateNotSaved => -32010,
        }
    }

    /// The wire word, e.g. `session_not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::SessionNotFound => "session_not_found",
            ErrorKind::LimitReached => "limit_reached",
            ErrorKind::TmuxUnavailable => "tmux_unavailable",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::TooManyConnections => "too_many_connections",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::TmuxError => "tmux_error",
            ErrorKind::SpawnFailed => "spawn_failed",
            ErrorKind::StateNotSaved => "state_not_saved",
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// The spec's or the application's code.
    pub code: i64,
    /// A sentence for humans.
    pub message: String,
    /// `{"kind": ..., ...}` for application errors; may carry more fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a spec code and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// An application error of `kind`.
    pub fn app(kind: ErrorKind, message: impl Into<String>) -> Self {
        RpcError { code: kind.code(), message: message.into(), data: Some(json!({"kind": kind})) }
    }

    /// `-32600`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }

    /// `-32602`, naming the bad field in the message.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// `data.kind`, when present.
    pub fn kind(&self) -> Option<&str> {
        self.data.as_ref()?.get("kind")?.as_str()
    }
}

/// One well-formed call (request or notification) out of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `None` for a notification (no `id` member): it gets no reply.
    pub id: Option<Value>,
    /// The method name.
    pub method: String,
    /// The params member, if any (an object or an array).
    pub params: Option<Value>,
}

/// One element of a message: a call to serve, or an error to reply at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Serve it.
    Call(Call),
    /// Reply with this error (the id may be null).
    Invalid {
        /// Echoed id, or null when it could not be read.
        id: Value,
        /// The error.
        error: RpcError,
    },
}

/// A classified incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A single request; the reply is a single object.
    Single(Item),
    /// A batch; the reply is an array of the replies (none for notifications).
    Batch(Vec<Item>),
}

/// Classifies one line of input (without the trailing newline).
pub fn parse_message(line: &[u8]) -> Message {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let what =
                if std::str::from_utf8(line).is_err() { "invalid UTF-8" } else { "invalid JSON" };
            return Message::Single(Item::Invalid {
                id: Value::Null,
                error: RpcError::new(PARSE_ERROR, format!("parse error: {what}: {e}")),
            });
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => Message::Single(Item::Invalid {
            id: Value::Null,
            error: RpcError::invalid_request("invalid request: empty batch"),
        }),
        Value::Array(items) => Message::Batch(items.into_iter().map(classify).collect()),
        other => Message::Single(classify(other)),
    }
}

/// Checks one request object against the spec.
fn classify(value: Value) -> Item {
    let Value::Object(mut obj) = value else {
        return Item::Invalid {
            id: Value::Null,
            error: RpcError::invalid_request("invalid request: expected a JSON object"),
        };
    };
    let id = obj.remove("id");
    let reply_id = id.clone().unwrap_or(Value::Null);
    let invalid = |msg: &str| Item::Invalid {
        id: reply_id.clone(),
        error: RpcError::invalid_request(format!("invalid request: {msg}")),
    };
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return invalid("\"jsonrpc\" must be \"2.0\""),
        None => return invalid("missing \"jsonrpc\": \"2.0\""),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return invalid("\"method\" must be a string"),
        None => return invalid("missing \"method\""),
    };
    let params = match obj.remove("params") {
        None => None,
        Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
        Some(_) => return invalid("\"params\" must be an object or an array"),
    };
    Item::Call(Call { id, method, params })
}

/// A reply on the wire. Results arrive already serialised (see
/// [`crate::rpc::dispatch`]), so a large result such as a list of 1000
/// sessions is written once, straight from the daemon's own types, instead
/// of going through `serde_json::Value` trees.
#[derive(Serialize)]
struct Reply<'a, R: Serialize + ?Sized> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
    id: &'a Value,
}

fn encode<R: Serialize + ?Sized>(reply: &Reply<'_, R>) -> String {
    // Serialising a RawValue, a Value id and an RpcError cannot fail.
    serde_json::to_string(reply).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode a reply");
        format!(r#"{{"jsonrpc":"2.0","error":{{"code":{INTERNAL_ERROR},"message":"internal error: cannot encode the reply"}},"id":null}}"#)
    })
}

/// A success reply, as one JSON text.
pub fn success(id: &Value, result: &RawValue) -> String {
    encode(&Reply { jsonrpc: "2.0", result: Some(result), error: None, id })
}

/// An error reply, as one JSON text.
pub fn failure(id: &Value, error: &RpcError) -> String {
    encode::<RawValue>(&Reply { jsonrpc: "2.0", result: None, error: Some(error), id })
}

/// The replies of a batch, as one JSON array.
pub fn batch(replies: &[String]) -> String {
    let mut out = String::with_capacity(replies.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, r) in replies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(line: &str) -> Item {
        match parse_message(line.as_bytes()) {
            Message::Single(i) => i,
            Message::Batch(_) => panic!("expected single"),
        }
    }

    fn code(item: &Item) -> i64 {
        match item {
            Item::Invalid { error, .. } => error.code,
            Item::Call(_) => 0,
        }
    }

    #[test]
    fn classifies_the_spec_cases() {
        assert_eq!(code(&single("{")), PARSE_ERROR);
        assert_eq!(code(&single("[]")), INVALID_REQUEST);
        assert_eq!(code(&single("42")), INVALID_REQUEST);
        assert_eq!(code(&single(r#"{"method":"x","id":1}"#)), INVALID_REQUEST);
        assert_eq!(code(&single(r#"{"jsonrpc":"1.0","method":"x","id":1}"#)), INVALID_REQUEST);
        assert_eq!(code(&single(r#"{"jsonrpc":"2.0","method":1,"id":1}"#)), INVALID_REQUEST);
        assert_eq!(
            code(&single(r#"{"jsonrpc":"2.0","method":"x","params":"p","id":1}"#)),
            INVALID_REQUEST
        );
        let Item::Call(c) = single(r#"{"jsonrpc":"2.0","method":"x","params":[1],"id":{"a":1}}"#)
        else {
            panic!()
        };
        assert_eq!(c.id, Some(json!({"a": 1})));
        let Item::Call(n) = single(r#"{"jsonrpc":"2.0","method":"x"}"#) else { panic!() };
        assert_eq!(n.id, None);
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let Message::Single(Item::Invalid { error, id }) = parse_message(b"{\"a\":\"\xff\"}")
        else {
            panic!()
        };
        assert_eq!(error.code, PARSE_ERROR);
        assert_eq!(id, Value::Null);
    }

    #[test]
    fn invalid_request_echoes_a_readable_id() {
        let Item::Invalid { id, .. } = single(r#"{"jsonrpc":"2.0","method":5,"id":"abc"}"#) else {
            panic!()
        };
        assert_eq!(id, json!("abc"));
    }

    #[test]
    fn batch_of_junk_gives_one_error_per_element() {
        let Message::Batch(items) = parse_message(b"[1,2,3]") else { panic!() };
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| code(i) == INVALID_REQUEST));
    }

    #[test]
    fn kinds_have_distinct_codes() {
        let kinds = [
            ErrorKind::SessionNotFound,
            ErrorKind::LimitReached,
            ErrorKind::TmuxUnavailable,
            ErrorKind::PermissionDenied,
            ErrorKind::TooManyConnections,
            ErrorKind::ShuttingDown,
            ErrorKind::InvalidState,
            ErrorKind::InvalidConfig,
            ErrorKind::TmuxError,
            ErrorKind::SpawnFailed,
            ErrorKind::StateNotSaved,
        ];
        let mut codes: Vec<i64> = kinds.iter().map(|k| k.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        for k in kinds {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }
}
