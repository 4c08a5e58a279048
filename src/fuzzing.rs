//! Not an API (hidden, may change at any time): entry points for the fuzz
//! targets in `fuzz/` and the property tests in `tests/parser_props.rs`.
//! Each drives one parser of untrusted input the way the daemon drives it,
//! and checks the invariants it must keep, so that the fuzzer and proptest
//! check the same things: it panics on a violation.
//!
//! - [`check_framing`]: bytes from a client → `LineReader` (the size cap,
//!   any read boundaries) → envelope → typed params → the replies.
//! - [`check_control`]: bytes from tmux → the control-mode parser.
//! - [`check_config`]: TOML text → `Config` (with validation).

use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::value::RawValue;
use tokio::io::{AsyncRead, BufReader, ReadBuf};

use crate::config::Config;
use crate::protocol::envelope::{self, Item, Message};
use crate::protocol::Request;
use crate::server::conn::{Line, LineReader};
use crate::tmux::{Event, Parser};

/// One outcome of framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message, without its line ending.
    Message(Vec<u8>),
    /// The message went past the cap: the connection would be closed.
    TooLong,
}

/// A source that hands `data` out in reads of the given sizes (cycled; 0
/// counts as 1), the way a socket splits a stream.
struct Chunked<'a> {
    data: &'a [u8],
    reads: &'a [usize],
    next: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size =
            self.reads.get(self.next % self.reads.len().max(1)).copied().unwrap_or(usize::MAX);
        self.next += 1;
        let n = size.max(1).min(self.data.len()).min(buf.remaining());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Frames `data` as a connection does: messages of at most `max` bytes read
/// through a buffer of `capacity` bytes from reads of `reads` sizes. Stops
/// at the first [`Frame::TooLong`] (the daemon closes the connection there).
pub fn frame(data: &[u8], max: usize, capacity: usize, reads: &[usize]) -> Vec<Frame> {
    let source = Chunked { data, reads, next: 0 };
    let mut reader = LineReader::new(BufReader::with_capacity(capacity.max(1), source));
    futures::executor::block_on(async {
        let mut out = Vec::new();
        loop {
            match reader.next(max).await {
                Ok(Line::Message(m)) => out.push(Frame::Message(m)),
                Ok(Line::TooLong) => {
                    out.push(Frame::TooLong);
                    return out;
                }
                Ok(Line::Eof) | Err(_) => return out,
            }
        }
    })
}

/// The lines the daemon would write for one message, up to its handler:
/// every error it answers itself, and `"result": null` in place of what
/// a handler would answer (the ids are what matters here).
pub fn replies(line: &[u8]) -> Vec<String> {
    fn item(item: Item) -> Option<String> {
        match item {
            Item::Invalid { id, error } => Some(envelope::failure(&id, &error)),
            Item::Call(call) => {
                let id = call.id?;
                Some(match Request::parse(&call.method, call.params) {
                    Ok(_) => envelope::success(&id, &RawValue::NULL.to_owned()),
                    Err(e) => envelope::failure(&id, &e),
                })
            }
        }
    }
    match envelope::parse_message(line) {
        Message::Single(i) => item(i).into_iter().collect(),
        Message::Batch(items) => {
            let replies: Vec<String> = items.into_iter().filter_map(item).collect();
            if replies.is_empty() {
                Vec::new()
            } else {
                vec![envelope::batch(&replies)]
            }
        }
    }
}

/// Frames `data` (cap `max`, reads of `reads` sizes) and serves every
/// message up to the handler. Checks: framing does not depend on read
/// boundaries or the buffer size; no message is over the cap or holds a
/// newline; every reply is one line of valid JSON; a request's reply
/// carries its id as the very same text.
pub fn check_framing(data: &[u8], max: usize, capacity: usize, reads: &[usize]) {
    let frames = frame(data, max, capacity, reads);
    let reference = frame(data, max, 8192, &[usize::MAX]);
    assert_eq!(frames, reference, "framing depends on read boundaries");
    for f in &frames {
        let Frame::Message(m) = f else { continue };
        assert!(m.len() <= max, "a message over the cap: {} > {max}", m.len());
        assert!(!m.contains(&b'\n'), "a message holds a newline");
        check_message(m);
    }
}

/// Serves one message (see [`replies`]) and checks the replies.
pub fn check_message(line: &[u8]) {
    for reply in replies(line) {
        assert!(!reply.contains('\n'), "a reply spans lines: {reply}");
        if let Err(e) = serde_json::from_str::<&RawValue>(&reply) {
            panic!("a reply is not JSON ({e}): {reply}");
        }
    }
    // A single request's reply ends with its id, as sent.
    if let Message::Single(Item::Call(call)) = envelope::parse_message(line) {
        if let Some(id) = call.id {
            let reply = replies(line).pop().expect("a request gets a reply");
            let tail = format!(",\"id\":{}}}", id.as_str());
            assert!(reply.ends_with(&tail), "id not echoed as sent: {reply}");
        }
    }
}

/// Feeds `data` to the control-mode parser at once and in pieces cut at
/// `cuts` (offsets, any order; out-of-range ones ignored). Checks: the
/// events do not depend on how the stream was cut.
pub fn check_control(data: &[u8], cuts: &[usize]) {
    let whole = Parser::new().feed(data);
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|c| *c <= data.len()).collect();
    cuts.sort_unstable();
    let mut parser = Parser::new();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([data.len()]) {
        pieces.extend(parser.feed(&data[at..c]));
        at = c;
    }
    assert_eq!(whole, pieces, "control-mode events depend on read boundaries");
    for e in whole {
        if let Event::Reply(r) = e {
            let _ = (r.message(), r.lines.first());
        }
    }
}

/// Parses `text` as a config file. Checks: no panic; an error names a line
/// within the text; a valid config written back as TOML parses to the same
/// config.
pub fn check_config(text: &str) {
    let path = std::path::Path::new("/fuzz/config.toml");
    match Config::parse(text, path) {
        Err(e) => {
            if let crate::config::ConfigError::Invalid { line, .. } = &e {
                let lines = text.matches('\n').count() + 1;
                assert!(*line <= lines, "line {line} beyond the text: {e}");
            }
            let _ = e.to_string();
        }
        Ok(config) => {
            let written = toml::to_string(&config).expect("a valid config serialises");
            let again = Config::parse(&written, path)
                .unwrap_or_else(|e| panic!("a written config does not parse: {e}\n{written}"));
            assert_eq!(again, config, "config round trip\n{written}");
        }
    }
}
