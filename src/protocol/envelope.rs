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

/// A request id exactly as it was sent: the raw JSON text of a string, a
/// number or null, echoed byte for byte. A `Value` would not do: it turns
/// `18446744073709551616` into a float, `1.50` into `1.5`, and refuses
/// `1e400` (valid JSON, beyond f64). The text was checked by the JSON parser,
/// so it holds no raw newline and cannot break the reply's framing.
#[derive(Debug, Clone)]
pub struct Id(Option<Box<RawValue>>);

impl Id {
    /// The id `null`: replies to messages whose id cannot be read.
    pub const NULL: Id = Id(None);

    /// The id of this raw JSON text when the spec allows it as an id (a
    /// string, a number or null); `None` for objects, arrays and booleans.
    pub fn from_raw(raw: &RawValue) -> Option<Id> {
        match raw.get().as_bytes().first()? {
            b'"' | b'-' | b'0'..=b'9' => Some(Id(Some(raw.to_owned()))),
            b'n' => Some(Id::NULL),
            _ => None,
        }
    }

    /// The JSON text, as sent (`null` for [`Id::NULL`]).
    pub fn as_str(&self) -> &str {
        self.0.as_deref().map_or("null", RawValue::get)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(raw) => raw.serialize(s),
            None => s.serialize_unit(),
        }
    }
}

/// One well-formed call (request or notification) out of a message.
#[derive(Debug, Clone)]
pub struct Call {
    /// `None` for a notification (no `id` member): it gets no reply.
    pub id: Option<Id>,
    /// The method name.
    pub method: String,
    /// The params member, if any (an object or an array), as raw JSON text:
    /// it is decoded once, straight into the method's params type
    /// ([`crate::protocol::Request::parse`]), so a number no float can hold
    /// fails there as `-32602` naming the field, not here as a parse error.
    pub params: Option<Box<RawValue>>,
}

impl PartialEq for Call {
    fn eq(&self, other: &Call) -> bool {
        self.id == other.id
            && self.method == other.method
            && self.params.as_deref().map(RawValue::get)
                == other.params.as_deref().map(RawValue::get)
    }
}

/// One element of a message: a call to serve, or an error to reply at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Serve it.
    Call(Call),
    /// Reply with this error (the id may be null).
    Invalid {
        /// Echoed id, or null when it could not be read.
        id: Id,
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

/// The members of a request object that matter, each as raw JSON text
/// borrowed from the line (others are skipped unparsed; a repeated member:
/// the last wins, as with `serde_json::Value`). Raw, so that reading the
/// envelope converts no number: `1e400` anywhere is no parse error.
#[derive(Default)]
struct Members<'a> {
    jsonrpc: Option<&'a RawValue>,
    method: Option<&'a RawValue>,
    params: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Jsonrpc,
            Method,
            Params,
            Id,
            #[serde(other)]
            Other,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut m = Members::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = match field {
                        Field::Jsonrpc => &mut m.jsonrpc,
                        Field::Method => &mut m.method,
                        Field::Params => &mut m.params,
                        Field::Id => &mut m.id,
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// JSON's insignificant whitespace.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

fn parse_error(what: &str, e: impl std::fmt::Display) -> Message {
    Message::Single(Item::Invalid {
        id: Id::NULL,
        error: RpcError::new(PARSE_ERROR, format!("parse error: {what}: {e}")),
    })
}

/// Classifies one line of input (without the trailing newline). Nothing of
/// the message is converted to a number or a tree here: ids and params stay
/// raw JSON text (see [`Id`] and [`Call::params`]).
pub fn parse_message(line: &[u8]) -> Message {
    let Ok(text) = std::str::from_utf8(line) else {
        return parse_error("invalid UTF-8", "the message must be UTF-8 text");
    };
    match text.trim_start_matches(JSON_WHITESPACE).as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<Members>(text) {
            Ok(members) => Message::Single(classify(members)),
            Err(e) => parse_error("invalid JSON", e),
        },
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) if items.is_empty() => Message::Single(Item::Invalid {
                id: Id::NULL,
                error: RpcError::invalid_request("invalid request: empty batch"),
            }),
            Ok(items) => Message::Batch(items.into_iter().map(classify_element).collect()),
            Err(e) => parse_error("invalid JSON", e),
        },
        _ => match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => Message::Single(not_an_object()),
            Err(e) => parse_error("invalid JSON", e),
        },
    }
}

fn not_an_object() -> Item {
    Item::Invalid {
        id: Id::NULL,
        error: RpcError::invalid_request("invalid request: expected a JSON object"),
    }
}

/// One element of a batch (valid JSON already).
fn classify_element(raw: &RawValue) -> Item {
    if !raw.get().starts_with('{') {
        return not_an_object();
    }
    match serde_json::from_str::<Members>(raw.get()) {
        Ok(members) => classify(members),
        // Not reached: the batch was parsed as JSON already.
        Err(e) => Item::Invalid {
            id: Id::NULL,
            error: RpcError::new(PARSE_ERROR, format!("parse error: invalid JSON: {e}")),
        },
    }
}

/// Checks one request object against the spec.
fn classify(m: Members<'_>) -> Item {
    let invalid = |id: Id, msg: &str| Item::Invalid {
        id,
        error: RpcError::invalid_request(format!("invalid request: {msg}")),
    };
    let id = match m.id.map(Id::from_raw) {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => {
            return invalid(Id::NULL, "\"id\" must be a string, a number or null");
        }
    };
    let reply_id = id.clone().unwrap_or(Id::NULL);
    match m.jsonrpc.map(|raw| raw.get()) {
        Some(r#""2.0""#) => {}
        // The same string, spelt with escapes.
        Some(raw) if serde_json::from_str::<String>(raw).is_ok_and(|v| v == "2.0") => {}
        Some(_) => return invalid(reply_id, "\"jsonrpc\" must be \"2.0\""),
        None => return invalid(reply_id, "missing \"jsonrpc\": \"2.0\""),
    }
    let method = match m.method.map(|raw| serde_json::from_str::<String>(raw.get())) {
        Some(Ok(method)) => method,
        Some(Err(_)) => return invalid(reply_id, "\"method\" must be a string"),
        None => return invalid(reply_id, "missing \"method\""),
    };
    let params = match m.params {
        None => None,
        Some(p) if p.get().starts_with(['{', '[']) => Some(p.to_owned()),
        Some(_) => return invalid(reply_id, "\"params\" must be an object or an array"),
    };
    Item::Call(Call { id, method, params })
}

/// A reply on the wire. Results arrive already serialised (see
/// [`crate::rpc::dispatch`]), so a large result such as a list of 1000
/// sessions is written once, straight from the daemon's own types, instead
/// of going through `serde_json::Value` trees.
#[derive(Serialize)]
struct Reply<'a, R: Serialize + ?Sized, I: Serialize + ?Sized> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
    id: &'a I,
}

fn encode<R: Serialize + ?Sized, I: Serialize + ?Sized>(reply: &Reply<'_, R, I>) -> String {
    // Serialising a RawValue, an id ([`Id`] or a `Value`) and an RpcError
    // cannot fail.
    serde_json::to_string(reply).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode a reply");
        format!(r#"{{"jsonrpc":"2.0","error":{{"code":{INTERNAL_ERROR},"message":"internal error: cannot encode the reply"}},"id":null}}"#)
    })
}

/// A success reply, as one JSON text. `id` is the request's [`Id`] (or
/// `Value::Null` for a reply to no request).
pub fn success<I: Serialize + ?Sized>(id: &I, result: &RawValue) -> String {
    encode(&Reply { jsonrpc: "2.0", result: Some(result), error: None, id })
}

/// An error reply, as one JSON text; `id` as for [`success`].
pub fn failure<I: Serialize + ?Sized>(id: &I, error: &RpcError) -> String {
    encode::<RawValue, I>(&Reply { jsonrpc: "2.0", result: None, error: Some(error), id })
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
        assert_eq!(
            code(&single(r#"{"jsonrpc":"2.0","method":"x","params":null,"id":1}"#)),
            INVALID_REQUEST
        );
        let Item::Call(c) = single(r#"{"jsonrpc":"2.0","method":"x","params":[1],"id":"a"}"#)
        else {
            panic!()
        };
        assert_eq!(c.id.as_ref().map(Id::as_str), Some(r#""a""#));
        assert_eq!(c.params.as_deref().map(RawValue::get), Some("[1]"));
        let Item::Call(n) = single(r#"{"jsonrpc":"2.0","method":"x"}"#) else { panic!() };
        assert_eq!(n.id, None);
        let Item::Call(n) = single(r#"{"jsonrpc":"2.0","method":"x","id":null}"#) else { panic!() };
        assert_eq!(n.id, Some(Id::NULL), "an id of null is a request, not a notification");
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let Message::Single(Item::Invalid { error, id }) = parse_message(b"{\"a\":\"\xff\"}")
        else {
            panic!()
        };
        assert_eq!(error.code, PARSE_ERROR);
        assert_eq!(id, Id::NULL);
    }

    #[test]
    fn invalid_request_echoes_a_readable_id() {
        let Item::Invalid { id, .. } = single(r#"{"jsonrpc":"2.0","method":5,"id":"abc"}"#) else {
            panic!()
        };
        assert_eq!(id.as_str(), r#""abc""#);
    }

    /// The id comes back as the same JSON text, whatever number or string
    /// it is: beyond u64, beyond f64, negative zero, trailing zeros, escapes.
    #[test]
    fn ids_are_echoed_byte_for_byte() {
        for id in [
            "18446744073709551616",
            "-18446744073709551617",
            "-0",
            "1.50",
            "1e400",
            "-1E-400",
            "0",
            r#""a\u0041\n\"""#,
            r#""\ud800""#,
            r#""""#,
            "null",
        ] {
            let line = format!(r#"{{"jsonrpc":"2.0","method":"daemon.ping","id": {id} }}"#);
            let Item::Call(call) = single(&line) else { panic!("{line}") };
            let echoed = call.id.expect("a request");
            assert_eq!(echoed.as_str(), id);
            let reply = success(&echoed, &RawValue::from_string("\"pong\"".into()).unwrap());
            assert_eq!(reply, format!(r#"{{"jsonrpc":"2.0","result":"pong","id":{id}}}"#));
            let error = failure(&echoed, &RpcError::invalid_params("x"));
            assert!(error.ends_with(&format!(r#","id":{id}}}"#)), "{error}");
        }
    }

    /// The spec allows a string, a number or null as id; anything else is
    /// an invalid request answered with id null (it cannot be echoed).
    #[test]
    fn ids_of_other_types_are_invalid_requests() {
        for id in ["{\"a\":1}", "[1]", "true", "false"] {
            let line = format!(r#"{{"jsonrpc":"2.0","method":"daemon.ping","id":{id}}}"#);
            let Item::Invalid { id, error } = single(&line) else { panic!("{line}") };
            assert_eq!(error.code, INVALID_REQUEST);
            assert!(error.message.contains("\"id\" must be"), "{}", error.message);
            assert_eq!(id, Id::NULL);
        }
    }

    /// `1e400` is valid JSON: anywhere in the message it is no parse error.
    /// The envelope does not read params; the method's params type does.
    #[test]
    fn huge_numbers_do_not_break_the_envelope() {
        let Item::Call(c) =
            single(r#"{"jsonrpc":"2.0","method":"x","params":{"n":1e400,"m":[-1e400]},"id":1}"#)
        else {
            panic!()
        };
        assert_eq!(c.params.as_deref().map(RawValue::get), Some(r#"{"n":1e400,"m":[-1e400]}"#));
        let Item::Call(c) = single(r#"{"jsonrpc":"2.0","method":"x","other":1e400,"id":2}"#) else {
            panic!()
        };
        assert_eq!(c.id.map(|i| i.as_str().to_string()).as_deref(), Some("2"));
        assert_eq!(code(&single("1e400")), INVALID_REQUEST);
        let Message::Batch(items) =
            parse_message(b"[1e400, {\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1e400}]")
        else {
            panic!()
        };
        assert_eq!(code(&items[0]), INVALID_REQUEST);
        assert!(matches!(&items[1], Item::Call(c) if c.id.as_ref().unwrap().as_str() == "1e400"));
    }

    /// Members spelt with escapes are the same members; a repeated member:
    /// the last wins; deep nesting and junk after the message are parse
    /// errors or are skipped without recursion.
    #[test]
    fn member_spelling_and_structure() {
        let Item::Call(c) = single(r#"{"jsonrpc":"2\u002e0","\u006dethod":"x","id":1,"id":2}"#)
        else {
            panic!()
        };
        assert_eq!((c.method.as_str(), c.id.unwrap().as_str()), ("x", "2"));
        assert_eq!(code(&single(r#"{"jsonrpc":"2.0","method":"x","id":1} {}"#)), PARSE_ERROR);
        assert_eq!(code(&single(r#"{"jsonrpc":"2.0","method":"x","id":01}"#)), PARSE_ERROR);
        assert_eq!(code(&single(" \t\r")), PARSE_ERROR);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","method":"x","params":[{}1{}],"id":1}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(single(&deep), Item::Call(_)));
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
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        for k in kinds {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }
}
