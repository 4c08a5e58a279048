//! I/O-free parser of tmux control-mode output (`tmux -C`).
//!
//! Owns the byte-level grammar only: `%begin`/`%end`/`%error` reply blocks
//! and `%`-notifications. Feed it bytes in any chunking with
//! [`Parser::feed`]; it yields [`Event`]s. Memory is bounded by
//! [`MAX_LINE_BYTES`] and [`MAX_BLOCK_BYTES`].

use super::notification::parse_notification;
pub use super::notification::Notification;

/// Longest single line kept; longer lines are discarded (outside a block) or
/// turn the block into a [`ReplyKind::TooLarge`] reply.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Largest reply block kept in memory; beyond it the reply becomes
/// [`ReplyKind::TooLarge`] and its lines are dropped.
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

/// A line buffer grown past this (by a long `%output` line) is not kept for
/// the next line.
const REUSED_LINE_CAPACITY: usize = 64 << 10;

/// How a reply block ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// `%end`: the command succeeded; `lines` is its output.
    Ok,
    /// `%error`: the command failed; `lines` is tmux's message.
    Error,
    /// The block exceeded [`MAX_BLOCK_BYTES`] (or a line exceeded
    /// [`MAX_LINE_BYTES`]); its content was dropped.
    TooLarge,
}

/// One `%begin ... %end|%error` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Server time from the guard lines.
    pub time: u64,
    /// Command number from the guard lines.
    pub number: u64,
    /// Guard flags; bit 0 set means the command came from this client.
    pub flags: u32,
    /// How the block ended.
    pub kind: ReplyKind,
    /// Output lines, each decoded lossily after it was fully assembled.
    pub lines: Output,
}

impl Reply {
    /// Whether this reply answers a command written by this client (flags=1),
    /// as opposed to e.g. the initial command given on tmux's command line.
    pub fn from_this_client(&self) -> bool {
        self.flags & 1 != 0
    }

    /// The lines joined with `\n`: the error message for `%error` replies.
    pub fn message(&self) -> String {
        self.lines.text().strip_suffix('\n').unwrap_or_default().to_string()
    }
}

/// The output lines of one command, kept in one buffer, each line followed
/// by `\n` (a line cannot contain one). One allocation per reply instead of
/// one per line: a 1000-line capture is one growing buffer, handed to the
/// requester as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    text: String,
}

impl Output {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// The lines, without their `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split_terminator('\n')
    }

    /// The first line.
    pub fn first(&self) -> Option<&str> {
        self.lines().next()
    }

    /// All lines, each followed by `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// See [`Output::text`].
    pub fn into_text(self) -> String {
        self.text
    }
}

impl<S: AsRef<str>> FromIterator<S> for Output {
    fn from_iter<I: IntoIterator<Item = S>>(lines: I) -> Output {
        let mut out = Output::default();
        for line in lines {
            out.push(line.as_ref());
        }
        out
    }
}

impl<const N: usize> PartialEq<[&str; N]> for Output {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.lines().eq(other.iter().copied())
    }
}

/// One item of control-mode output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete reply block.
    Reply(Reply),
    /// An asynchronous notification.
    Notification(Notification),
    /// A non-empty line outside any block that is not a `%` line.
    Stray(String),
    /// A line outside a block exceeded [`MAX_LINE_BYTES`] and was dropped.
    LineTooLong {
        /// Its full length in bytes.
        bytes: usize,
    },
}

#[derive(Debug)]
struct Block {
    time: u64,
    number: u64,
    flags: u32,
    lines: Output,
    bytes: usize,
    overflow: bool,
}

/// Incremental control-mode parser; see the module documentation.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// Bytes of the current line beyond what was kept in `line`.
    dropped: usize,
    block: Option<Block>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the parser is inside an unfinished reply block.
    pub fn in_block(&self) -> bool {
        self.block.is_some()
    }

    /// Consumes `data` and returns the events completed by it.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            self.push_bytes(&data[..i]);
            data = &data[i + 1..];
            self.finish_line(&mut out);
        }
        self.push_bytes(data);
        out
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
        let keep = room.min(bytes.len());
        self.line.extend_from_slice(&bytes[..keep]);
        self.dropped += bytes.len() - keep;
    }

    fn finish_line(&mut self, out: &mut Vec<Event>) {
        // The line buffer is reused from line to line (a 1000-line capture
        // would otherwise regrow it from nothing for every line).
        let mut line = std::mem::take(&mut self.line);
        let dropped = std::mem::take(&mut self.dropped);
        // tmux writes LF; a tty in between may turn that into CRLF.
        if dropped == 0 && line.last() == Some(&b'\r') {
            line.pop();
        }
        if self.block.is_some() {
            self.block_line(&line, dropped, out);
        } else if dropped > 0 {
            out.push(Event::LineTooLong { bytes: line.len() + dropped });
        } else {
            self.top_line(&line, out);
        }
        line.clear();
        if line.capacity() > REUSED_LINE_CAPACITY {
            line = Vec::new();
        }
        self.line = line;
    }

    /// A line inside the current block (which exists). The block is worked
    /// on in place: moving it out and back for every line was the parser's
    /// main cost on large replies.
    fn block_line(&mut self, line: &[u8], dropped: usize, out: &mut Vec<Event>) {
        let Some(block) = self.block.as_mut() else { return };
        if dropped == 0 {
            if let Some(kind) = guard_kind(line, block) {
                let Some(block) = self.block.take() else { return };
                let lines = if block.overflow {
                    [format!("tmux reply exceeded {MAX_BLOCK_BYTES} bytes")].into_iter().collect()
                } else {
                    block.lines
                };
                out.push(Event::Reply(Reply {
                    time: block.time,
                    number: block.number,
                    flags: block.flags,
                    kind: if block.overflow { ReplyKind::TooLarge } else { kind },
                    lines,
                }));
                return;
            }
        }
        let len = line.len() + dropped + 1;
        if block.overflow || dropped > 0 || block.bytes + len > MAX_BLOCK_BYTES {
            block.overflow = true;
            block.lines = Output::default();
        } else {
            block.bytes += len;
            block.lines.push(&String::from_utf8_lossy(line));
        }
    }

    fn top_line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if let Some(rest) = line.strip_prefix(b"%begin ") {
            if let Some((time, number, flags)) = guard_fields(rest) {
                self.block = Some(Block {
                    time,
                    number,
                    flags,
                    lines: Output::default(),
                    bytes: 0,
                    overflow: false,
                });
                return;
            }
        }
        if line.first() == Some(&b'%') {
            out.push(Event::Notification(parse_notification(line)));
        } else if !line.is_empty() {
            out.push(Event::Stray(String::from_utf8_lossy(line).into_owned()));
        }
    }
}

/// If `line` is the `%end`/`%error` closing `block` (same time and number),
/// the reply kind it ends with. Anything else is block content, so a pane's
/// text that merely looks like a guard cannot end a block early.
fn guard_kind(line: &[u8], block: &Block) -> Option<ReplyKind> {
    let (kind, rest) = if let Some(rest) = line.strip_prefix(b"%end ") {
        (ReplyKind::Ok, rest)
    } else if let Some(rest) = line.strip_prefix(b"%error ") {
        (ReplyKind::Error, rest)
    } else {
        return None;
    };
    let (time, number, _flags) = guard_fields(rest)?;
    (time == block.time && number == block.number).then_some(kind)
}

fn guard_fields(rest: &[u8]) -> Option<(u64, u64, u32)> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut it = text.split(' ');
    let time = it.next()?.parse().ok()?;
    let number = it.next()?.parse().ok()?;
    let flags = it.next()?.parse().ok()?;
    it.next().is_none().then_some((time, number, flags))
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
