//! What a connection receives besides the reply a blocking call waits for:
//! replies to requests sent with [`Client::start`](super::Client::start)
//! and notifications (`session.output`, `session.reset`, `session.exit`),
//! plus the line buffer they are cut from.
//!
//! A connection with a subscription carries notifications interleaved with
//! replies (docs/protocol.md, "Streams and logs"); a blocking call keeps
//! whatever arrives before its own reply, in order, for
//! [`Client::next`](super::Client::next).

use std::io::Read;
use std::os::unix::net::UnixStream;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::ClientError;
use crate::protocol::streams::{notification, Exit, Output, Reset};
use crate::protocol::RpcError;

/// One message from the daemon.
#[derive(Debug)]
pub enum Incoming {
    /// The reply to a request sent with `Client::start`.
    Reply(Reply),
    /// A notification (a message with a `method` and no `id`).
    Notification(Notification),
}

/// A reply to a request sent with `Client::start`.
#[derive(Debug)]
pub struct Reply {
    /// The id `start` returned.
    pub id: u64,
    /// The `result`, undecoded, or the `error`.
    pub result: Result<Box<RawValue>, RpcError>,
}

impl Reply {
    /// The result decoded as `T` (an error reply is [`ClientError::Rpc`]).
    pub fn decode<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let raw = self.result.map_err(ClientError::Rpc)?;
        serde_json::from_str(raw.get())
            .map_err(|e| ClientError::Protocol(format!("bad result of request {}: {e}", self.id)))
    }
}

/// A notification: its method and its params, undecoded.
#[derive(Debug)]
pub struct Notification {
    /// E.g. `session.output`.
    pub method: String,
    /// The `params` member (`null` when absent).
    pub params: Box<RawValue>,
}

/// The notifications of a subscription, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// `session.output`: bytes at an offset.
    Output(Output),
    /// `session.reset`: draw the screen, continue at the offset.
    Reset(Reset),
    /// `session.exit`: the session ended; the subscription is over.
    Exit(Exit),
}

impl Notification {
    /// The params decoded as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_str(self.params.get())
            .map_err(|e| ClientError::Protocol(format!("bad {} notification: {e}", self.method)))
    }

    /// A subscription's notification, decoded; `None` for other methods.
    pub fn stream_event(&self) -> Result<Option<StreamEvent>, ClientError> {
        Ok(Some(match self.method.as_str() {
            notification::OUTPUT => StreamEvent::Output(self.decode()?),
            notification::RESET => StreamEvent::Reset(self.decode()?),
            notification::EXIT => StreamEvent::Exit(self.decode()?),
            _ => return Ok(None),
        }))
    }
}

/// Decodes a line that is not the reply a blocking call waits for.
pub(super) fn decode(line: &str) -> Result<Incoming, ClientError> {
    #[derive(Deserialize)]
    struct Any {
        #[serde(default, deserialize_with = "present")]
        id: Option<Value>,
        method: Option<String>,
        params: Option<Box<RawValue>>,
        #[serde(default, deserialize_with = "present")]
        result: Option<Box<RawValue>>,
        error: Option<RpcError>,
    }
    let bad = |why: &str| ClientError::Protocol(format!("{why}: {}", line.trim_end()));
    let any: Any = serde_json::from_str(line).map_err(|e| bad(&format!("bad message: {e}")))?;
    match (any.id, any.method) {
        (None, Some(method)) => {
            let params =
                any.params.unwrap_or_else(|| RawValue::from_string("null".into()).unwrap());
            Ok(Incoming::Notification(Notification { method, params }))
        }
        (Some(id), None) => {
            let id = id.as_u64().ok_or_else(|| bad("a reply to no request of ours"))?;
            let result = match (any.result, any.error) {
                (_, Some(error)) => Err(error),
                (Some(result), None) => Ok(result),
                (None, None) => return Err(bad("reply has neither result nor error")),
            };
            Ok(Incoming::Reply(Reply { id, result }))
        }
        _ => Err(bad("neither a reply nor a notification")),
    }
}

/// A field that is there, even as `null`, is `Some`.
pub(super) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Bytes read at most per `read(2)`: a `session.output` of the default
/// credit window (256 KiB, base64) is about 350 KB, so a few reads a line.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes received and not yet cut into lines. Lines are as long as the
/// daemon makes them (a reply is bounded by the daemon's own caps).
#[derive(Default)]
pub(super) struct Lines {
    buf: Vec<u8>,
    /// Where the next line starts.
    start: usize,
    /// `buf[start..scanned]` holds no newline.
    scanned: usize,
}

impl Lines {
    /// The next complete line (without its `\n`), if one was received.
    pub(super) fn next_line(&mut self) -> Option<Result<String, ClientError>> {
        let Some(i) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') else {
            self.scanned = self.buf.len();
            return None;
        };
        let at = self.scanned + i;
        let line = self.buf[self.start..at].to_vec();
        self.start = at + 1;
        self.scanned = self.start;
        Some(
            String::from_utf8(line)
                .map_err(|_| ClientError::Protocol("a message that is not UTF-8".into())),
        )
    }

    /// Whether a complete line is waiting.
    pub(super) fn has_line(&self) -> bool {
        self.buf[self.scanned..].contains(&b'\n')
    }

    /// One `read(2)` from `stream`; `Ok(0)` at the end of the stream.
    pub(super) fn fill(&mut self, mut stream: &UnixStream) -> std::io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let read = stream.read(&mut self.buf[len..]);
        self.buf.truncate(len + *read.as_ref().unwrap_or(&0));
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_across_reads() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut lines = Lines::default();
        std::io::Write::write_all(&mut a, b"{\"x\":1}\n{\"y\"").unwrap();
        lines.fill(&b).unwrap();
        assert_eq!(lines.next_line().unwrap().unwrap(), "{\"x\":1}");
        assert!(lines.next_line().is_none() && !lines.has_line());
        std::io::Write::write_all(&mut a, b":2}\n").unwrap();
        lines.fill(&b).unwrap();
        assert!(lines.has_line());
        assert_eq!(lines.next_line().unwrap().unwrap(), "{\"y\":2}");
        drop(a);
        assert_eq!(lines.fill(&b).unwrap(), 0);
    }

    #[test]
    fn notifications_and_replies_decode() {
        let line = r#"{"jsonrpc":"2.0","method":"session.output","params":{"subscription":1,"offset":5,"data":"aGk="}}"#;
        let Incoming::Notification(n) = decode(line).unwrap() else { panic!() };
        let Some(StreamEvent::Output(o)) = n.stream_event().unwrap() else { panic!() };
        assert_eq!((o.offset, o.data.0.as_slice()), (5, &b"hi"[..]));
        let line = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"no"}}"#;
        let Incoming::Reply(r) = decode(line).unwrap() else { panic!() };
        assert_eq!(r.id, 3);
        assert!(matches!(r.decode::<Value>(), Err(ClientError::Rpc(e)) if e.message == "no"));
        let line = r#"{"jsonrpc":"2.0","id":4,"result":null}"#;
        let Incoming::Reply(r) = decode(line).unwrap() else { panic!() };
        assert_eq!(r.decode::<Value>().unwrap(), Value::Null);
        assert!(decode(r#"{"jsonrpc":"2.0"}"#).is_err());
    }
}
