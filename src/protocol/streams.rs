//! The byte-stream methods and their notifications: reading a session's
//! output log by offset (`session.read`), following it live with credit
//! flow control (`session.subscribe`, `session.ack`, `session.unsubscribe`,
//! then `session.output` / `session.reset` / `session.exit` notifications),
//! and typing raw bytes into a pane (`session.write`).
//!
//! Offsets count bytes the session has printed since its log began, the
//! same in the log on disk, in the stream and in the client: a client that
//! remembers the `next_offset` of the last byte it took gets exactly the
//! bytes it missed after any reconnect. Bytes travel base64-encoded
//! ([`Bytes`]): terminal output is not UTF-8 in general.

use std::borrow::Cow;

use base64::Engine as _;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Raw bytes, base64 (standard alphabet, padded) on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

impl JsonSchema for Bytes {
    fn schema_name() -> Cow<'static, str> {
        "Bytes".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Raw bytes, base64 (standard alphabet, padded).",
            "type": "string",
            "contentEncoding": "base64",
            "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        })
    }
}

/// `session.write`: `{"id": "a1", "data": "G1tB"}` (base64 bytes) or
/// `{"id": "a1", "text": "ls\r"}` (UTF-8); exactly one of the two. The bytes
/// reach the program as typed, with no tmux key-name parsing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionWrite {
    /// The session id.
    pub id: String,
    /// Raw bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
    /// UTF-8 text, sent as its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `session.write`: `{"id": "a1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteResult {
    /// The session id.
    pub id: String,
}

/// `session.read`: `{"id": "a1", "offset": 0, "max_bytes": 65536}`. Without
/// `offset`, from the oldest byte kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRead {
    /// The session id.
    pub id: String,
    /// First byte wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// At most this many bytes (default and bound in docs/protocol.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u32>,
}

/// `session.read`:
/// `{"data": "aGVsbG8K", "offset": 0, "next_offset": 6, "first_offset": 0, "end": true}`.
/// `offset` is where `data` starts: the one asked, or later when the cap
/// has dropped the bytes asked for (then `offset == first_offset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReadResult {
    /// The bytes.
    pub data: Bytes,
    /// Offset of the first byte of `data`.
    pub offset: u64,
    /// Offset just past `data`: the `offset` of the next read.
    pub next_offset: u64,
    /// The oldest offset the log still holds.
    pub first_offset: u64,
    /// `next_offset` is the end of what the session has printed so far.
    pub end: bool,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// At this offset (the `next_offset` a client last saw).
    Offset(u64),
    /// At the end of the log: only what is printed from now on.
    Now,
    /// A snapshot of the current screen (in the reply), then live output.
    Screen,
}

impl Serialize for From {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            From::Offset(o) => s.serialize_u64(*o),
            From::Now => s.serialize_str("now"),
            From::Screen => s.serialize_str("screen"),
        }
    }
}

impl<'de> Deserialize<'de> for From {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Offset(u64),
            Word(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected an offset (a number), \"now\" or \"screen\"")
        })? {
            Raw::Offset(o) => Ok(From::Offset(o)),
            Raw::Word(w) if w == "now" => Ok(From::Now),
            Raw::Word(w) if w == "screen" => Ok(From::Screen),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "expected an offset (a number), \"now\" or \"screen\", not {w:?}"
            ))),
        }
    }
}

impl JsonSchema for From {
    fn schema_name() -> Cow<'static, str> {
        "From".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Where a subscription starts: an offset, \"now\" (the end of the log) or \"screen\" (a snapshot of the screen, then live output).",
            "oneOf": [
                {"type": "integer", "format": "uint64", "minimum": 0},
                {"type": "string", "enum": ["now", "screen"]},
            ],
        })
    }
}

/// `session.subscribe`: `{"id": "a1", "from": 4096}` (or `"now"`,
/// `"screen"`; default `"screen"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSubscribe {
    /// The session id.
    pub id: String,
    /// Where to start.
    #[serde(default = "screen")]
    pub from: From,
}

fn screen() -> From {
    From::Screen
}

/// `session.subscribe`: `{"subscription": 1, "offset": 4096}`, with
/// `"screen": "<base64>"` when it started from the screen: output from
/// `offset` follows as `session.output` notifications, never before this
/// reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscribeResult {
    /// The subscription's number on this connection.
    pub subscription: u64,
    /// The offset of the first byte the notifications will carry.
    pub offset: u64,
    /// The screen as escape sequences (clear, contents, cursor position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<Bytes>,
}

/// `session.ack`: `{"subscription": 1, "offset": 65536}`: every byte before
/// `offset` was consumed (credit for more).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionAck {
    /// The subscription.
    pub subscription: u64,
    /// Consumed up to here.
    pub offset: u64,
}

/// `session.unsubscribe`: `{"subscription": 1}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionUnsubscribe {
    /// The subscription.
    pub subscription: u64,
}

/// The result of `session.ack` and `session.unsubscribe`: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Notification `session.output`:
/// `{"subscription": 1, "offset": 4096, "data": "aGVsbG8K"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// The subscription.
    pub subscription: u64,
    /// Offset of the first byte of `data`.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// Notification `session.reset`: the stream could not continue where it
/// was (the bytes were dropped by the cap): draw `screen`, then output
/// continues at `offset`.
/// `{"subscription": 1, "offset": 900000, "screen": "G1tIG1sySi4uLg=="}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reset {
    /// The subscription.
    pub subscription: u64,
    /// Where output continues.
    pub offset: u64,
    /// The screen as escape sequences.
    pub screen: Bytes,
}

/// Notification `session.exit`, after the last `session.output` of a
/// session that ended; the subscription is over.
/// `{"subscription": 1, "exit_status": 0}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Exit {
    /// The subscription.
    pub subscription: u64,
    /// As in the session object (null: unknown, e.g. killed or lost).
    pub exit_status: Option<i32>,
}

/// The notification method names.
pub mod notification {
    /// [`Output`](super::Output).
    pub const OUTPUT: &str = "session.output";
    /// [`Reset`](super::Reset).
    pub const RESET: &str = "session.reset";
    /// [`Exit`](super::Exit).
    pub const EXIT: &str = "session.exit";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_are_base64_and_bad_base64_names_itself() {
        let b = Bytes(vec![0, 0xff, b'\n']);
        assert_eq!(serde_json::to_value(&b).unwrap(), json!("AP8K"));
        assert_eq!(serde_json::from_value::<Bytes>(json!("AP8K")).unwrap(), b);
        let e = serde_json::from_value::<SessionWrite>(json!({"id": "a", "data": "%%"}));
        assert!(e.unwrap_err().to_string().contains("not base64"));
    }

    #[test]
    fn from_is_an_offset_or_a_word() {
        let p = |v| serde_json::from_value::<SessionSubscribe>(v);
        assert_eq!(p(json!({"id": "a"})).unwrap().from, From::Screen);
        assert_eq!(p(json!({"id": "a", "from": 7})).unwrap().from, From::Offset(7));
        assert_eq!(p(json!({"id": "a", "from": "now"})).unwrap().from, From::Now);
        let e = p(json!({"id": "a", "from": "later"})).unwrap_err().to_string();
        assert!(e.contains("\"later\""), "{e}");
        assert!(p(json!({"id": "a", "from": -1})).is_err());
    }
}
