//! One client connection: newline-delimited JSON-RPC with a size cap,
//! requests served concurrently up to a per-connection bound, budgets that
//! hold against a client that never reads, an idle timeout, and a graceful
//! drain on shutdown; the notification lines of its subscriptions
//! (`outlet.rs`) go through the same outbox and budgets.
//!
//! Everything of a connection runs in one task: reading, the calls in
//! flight (polled together, not spawned) and writing the replies. A request
//! thus costs no task spawn and no hand-over to a writer task; on this
//! 2-core machine those hops were a third of a `daemon.ping` round trip.
//!
//! The budgets (docs/protocol.md, "Bounds"): every call of a batch takes one
//! of `max_inflight_per_connection` slots; replies wait in an outbox, and
//! while it holds `max_pending_reply_bytes` the connection neither reads
//! nor completes calls (a call that finished in tmux keeps its share of the
//! server's budget until then, so what a connection holds stays bounded);
//! a client that takes no reply byte for `write_timeout` is disconnected.
//! One client that never read once grew the daemon from 10.8 to 368 MB.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tracing::Instrument;

use super::outlet::{Note, Outlet, Shared};
use super::{ActiveGuard, Bounds, Handler, Peer};
use crate::protocol::envelope::{self, failure, success, Call, Id, Item, Message, RpcError};
use crate::protocol::{ErrorKind, Request};
use crate::shutdown::ShutdownListener;

/// During shutdown, how long a connection may stay silent before it is
/// closed (requests already on the wire are still served).
const DRAIN_READ_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// A reply of a batch call at most this long is always kept, whatever the
/// budget: every reply of a call that changes something (create, kill,
/// send) is far smaller, so only large read results (captures, lists) are
/// ever replaced by a `limit_reached` error.
const SMALL_REPLY_BYTES: usize = 64 << 10;

/// What a call in flight yields.
struct Done {
    /// The batch it belongs to, if any.
    batch: Option<u64>,
    /// Its id, to answer with an error instead of a reply too large to keep.
    id: Option<Id>,
    /// Its reply, if one is due.
    reply: Option<String>,
    /// Subscriptions it opened, started once its reply is queued.
    opened: Opened,
}

/// Subscriptions opened by a call, with their tasks.
type Opened = Vec<(u64, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>)>;

/// A call being served.
type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + Send>>;

/// Outcome of reading one line.
#[derive(Debug)]
pub(crate) enum Line {
    /// A complete message (without the newline).
    Message(Vec<u8>),
    /// The message grew past the cap before its newline.
    TooLong,
    /// The peer closed the connection.
    Eof,
}

/// Reads newline-delimited messages into a fresh buffer each, at most `max`
/// bytes. The partial line lives in the reader, not in the future, so
/// [`LineReader::next`] is cancel-safe: the connection loop drops it
/// whenever a reply completes first, and nothing read is lost.
pub(crate) struct LineReader<R> {
    reader: R,
    partial: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        LineReader { reader, partial: Vec::new() }
    }

    /// The next line without its `\n` (and `\r`). A final line without
    /// newline at EOF still counts as a message. `max` bounds the message
    /// without the `\r\n`: the buffer may hold one byte more, a `\r` that
    /// turns out to end the line.
    pub(crate) async fn next(&mut self, max: usize) -> std::io::Result<Line> {
        let room = max.saturating_add(1);
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(if self.partial.is_empty() {
                    Line::Eof
                } else {
                    Self::finish(std::mem::take(&mut self.partial), max)
                });
            }
            let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if self.partial.len() + chunk.len() > room {
                self.partial = Vec::new();
                return Ok(Line::TooLong);
            }
            self.partial.extend_from_slice(chunk);
            let consumed = found.unwrap_or(available.len());
            self.reader.consume(consumed);
            if found.is_some() {
                return Ok(Self::finish(std::mem::take(&mut self.partial), max));
            }
        }
    }

    /// A complete line: without one trailing `\r`, then checked against `max`.
    fn finish(mut line: Vec<u8>, max: usize) -> Line {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > max {
            Line::TooLong
        } else {
            Line::Message(line)
        }
    }
}

/// One connection's view of the handler, its peer and its subscriptions.
struct Ctx<H> {
    handler: Arc<H>,
    peer: Peer,
    subs: Arc<Shared>,
}

/// Replies waiting to be written, in order; a line is written from where
/// the last write stopped, never copied into a larger buffer.
struct Outbox {
    lines: VecDeque<Vec<u8>>,
    /// Bytes of the front line already written.
    written: usize,
    /// Bytes not yet written, in all.
    bytes: usize,
    /// When the last byte was written, or when the outbox last filled from
    /// empty: the write timeout counts from here.
    progress: Instant,
}

impl Outbox {
    fn new() -> Self {
        Outbox { lines: VecDeque::new(), written: 0, bytes: 0, progress: Instant::now() }
    }

    fn push(&mut self, mut line: String) {
        line.push('\n');
        if self.lines.is_empty() {
            self.progress = Instant::now();
        }
        self.bytes += line.len();
        self.lines.push_back(line.into_bytes());
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn front(&self) -> &[u8] {
        self.lines.front().map_or(&[], |l| &l[self.written..])
    }

    fn advance(&mut self, n: usize) {
        self.bytes -= n;
        self.written += n;
        self.progress = Instant::now();
        if self.lines.front().is_some_and(|l| self.written == l.len()) {
            self.lines.pop_front();
            self.written = 0;
        }
    }

    /// Writes what the socket takes without waiting (most replies go out
    /// here, at once, as with an inline write).
    fn flush_ready(&mut self, writer: &OwnedWriteHalf) -> std::io::Result<()> {
        while !self.is_empty() {
            match writer.try_write(self.front()) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A batch whose calls are in flight: its reply array, grown as they finish.
struct Batch {
    /// Calls not finished yet.
    left: usize,
    /// `[` and the replies so far, comma-separated.
    text: String,
    /// Bytes of replies in `text`.
    bytes: usize,
    /// Subscriptions its calls opened, started once the array is queued.
    opened: Opened,
}

/// The calls of a connection and their replies.
struct Work<H> {
    ctx: Arc<Ctx<H>>,
    inflight: FuturesUnordered<Pending>,
    /// Calls in flight (a batch of N counts N).
    slots: usize,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
    /// Bytes of replies held in unfinished batches.
    partial: usize,
    /// A batch read but not started: it waits for enough free slots.
    waiting: Option<Vec<Item>>,
    outbox: Outbox,
}

impl<H: Handler> Work<H> {
    fn new(ctx: Arc<Ctx<H>>) -> Self {
        Work {
            ctx,
            inflight: FuturesUnordered::new(),
            slots: 0,
            batches: HashMap::new(),
            next_batch: 0,
            partial: 0,
            waiting: None,
            outbox: Outbox::new(),
        }
    }

    /// Nothing in flight, waiting or to be written.
    fn idle(&self) -> bool {
        self.inflight.is_empty() && self.waiting.is_none() && self.outbox.is_empty()
    }

    fn start(&mut self, batch: Option<u64>, item: Item) {
        let ctx = self.ctx.clone();
        let id = match &item {
            Item::Call(call) => call.id.clone(),
            Item::Invalid { id, .. } => Some(id.clone()),
        };
        self.slots += 1;
        self.inflight.push(Box::pin(async move {
            let (reply, opened) = handle_item(&ctx, item).await;
            Done { batch, id, reply, opened }
        }));
    }

    /// One message read from the client.
    fn message(&mut self, bytes: &[u8], bounds: &Bounds) {
        match envelope::parse_message(bytes) {
            Message::Single(item) => self.start(None, item),
            Message::Batch(items) if items.len() > bounds.max_inflight_per_connection => {
                let max = bounds.max_inflight_per_connection;
                tracing::info!(calls = items.len(), max, "batch over the in-flight bound refused");
                self.ctx.handler.budget_hit("daemon.max_inflight_per_connection");
                let err = RpcError::app(
                    ErrorKind::LimitReached,
                    format!(
                        "limit reached: a batch of {} calls is more than daemon.max_inflight_per_connection = {max}; send at most {max} calls per batch",
                        items.len()
                    ),
                );
                self.outbox.push(failure(&Id::NULL, &err));
            }
            Message::Batch(items) => {
                self.waiting = Some(items);
                self.start_waiting(bounds);
            }
        }
    }

    /// Starts the waiting batch if enough slots are free; a batch is never
    /// started in part.
    fn start_waiting(&mut self, bounds: &Bounds) {
        let Some(items) = self.waiting.take() else { return };
        if self.slots + items.len() > bounds.max_inflight_per_connection {
            self.waiting = Some(items);
            return;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        let batch = Batch { left: items.len(), text: "[".into(), bytes: 0, opened: Vec::new() };
        self.batches.insert(id, batch);
        for item in items {
            self.start(Some(id), item);
        }
    }

    /// Starts the subscriptions a call opened (its reply is queued).
    fn start_opened(&self, opened: Opened) {
        for (sub, task) in opened {
            self.ctx.subs.start(sub, task);
        }
    }

    /// A call finished: its reply goes to the outbox, or into its batch.
    fn finish(&mut self, done: Done, bounds: &Bounds) {
        self.slots -= 1;
        let Some(batch_id) = done.batch else {
            if let Some(reply) = done.reply {
                self.outbox.push(reply);
            }
            self.start_opened(done.opened);
            return;
        };
        let Some(batch) = self.batches.get_mut(&batch_id) else { return };
        batch.left -= 1;
        batch.opened.extend(done.opened);
        if let Some(mut reply) = done.reply {
            // A batch's replies go out together: while a large one is held
            // in the batches, another that would take the connection past its
            // budget is not kept (so the first always is).
            let held = self.outbox.bytes + self.partial;
            let max = bounds.max_pending_reply_bytes;
            let large_held = self.partial > SMALL_REPLY_BYTES;
            if reply.len() > SMALL_REPLY_BYTES && large_held && held + reply.len() > max {
                self.ctx.handler.budget_hit("daemon.max_pending_reply_bytes");
                let err = RpcError::app(
                    ErrorKind::LimitReached,
                    format!(
                        "limit reached: this reply ({} bytes) was dropped: {held} bytes of replies to this connection are already held (daemon.max_pending_reply_bytes = {max}); ask for less in one batch",
                        reply.len()
                    ),
                );
                reply = failure(&done.id.unwrap_or(Id::NULL), &err);
            }
            if batch.text.len() > 1 {
                batch.text.push(',');
            }
            batch.text.push_str(&reply);
            batch.bytes += reply.len();
            self.partial += reply.len();
        }
        if batch.left == 0 {
            if let Some(mut batch) = self.batches.remove(&batch_id) {
                self.partial -= batch.bytes;
                // Only notifications: no reply at all.
                if batch.text.len() > 1 {
                    batch.text.push(']');
                    self.outbox.push(batch.text);
                }
                self.start_opened(batch.opened);
            }
        }
    }
}

/// Why the connection loop ended.
#[derive(Debug, PartialEq)]
enum End {
    /// EOF (or shutdown) and every reply written.
    Done,
    /// Silent for `idle_timeout` with nothing in flight.
    Idle,
    /// A write failed: nobody reads the replies.
    Broken,
    /// The client took no reply byte for `write_timeout`.
    WriteTimeout,
}

/// Serves a connection until EOF, error, idle or write timeout, or shutdown.
pub async fn serve_connection<H: Handler>(
    handler: Arc<H>,
    stream: UnixStream,
    peer: Peer,
    _active: ActiveGuard,
    mut shutdown: ShutdownListener,
) {
    let span = tracing::info_span!("conn", peer_uid = peer.uid, peer_pid = peer.pid);
    async move {
        let (read_half, mut writer) = stream.into_split();
        let mut reader = LineReader::new(BufReader::new(read_half));
        let (subs, mut notes) = Shared::new();
        // Every subscription ends with the connection, however it ends.
        let _subs_end = SubsEnd(subs.clone());
        let mut work = Work::new(Arc::new(Ctx { handler: handler.clone(), peer, subs: subs.clone() }));
        // On shutdown a connection is drained, not cut: requests the client
        // already sent are still read and answered.
        let mut draining = false;
        // False after EOF, an over-long message, or the drain grace.
        let mut reading = true;
        let mut last_activity = Instant::now();
        // Whether reading stopped for a full outbox / full slots (counted
        // once each time it happens).
        let (mut was_over, mut was_full) = (false, false);
        let end = loop {
            let bounds = handler.bounds();
            work.start_waiting(&bounds);
            if !reading && work.idle() {
                break End::Done;
            }
            let over = work.outbox.bytes >= bounds.max_pending_reply_bytes;
            let full = work.waiting.is_some() || work.slots >= bounds.max_inflight_per_connection;
            if over && !was_over {
                tracing::debug!(bytes = work.outbox.bytes, "replies wait to be read; reading paused");
                handler.budget_hit("daemon.max_pending_reply_bytes");
            }
            if full && !was_full && reading {
                handler.budget_hit("daemon.max_inflight_per_connection");
            }
            (was_over, was_full) = (over, full);
            let writing = !work.outbox.is_empty();
            let can_read = reading && !full && !over;
            let can_poll = !work.inflight.is_empty() && !over;
            let (quiet, quiet_for) = if draining {
                (reading, DRAIN_READ_GRACE)
            } else {
                // A viewer following a quiet session is not idle.
                (reading && work.idle() && subs.count() == 0, bounds.idle_timeout)
            };
            let idle_at = tokio::time::Instant::from_std(last_activity + quiet_for);
            let stuck_at = tokio::time::Instant::from_std(work.outbox.progress + bounds.write_timeout);
            tokio::select! {
                _ = shutdown.wait(), if !draining => {
                    draining = true;
                    last_activity = Instant::now();
                }
                written = writer.write(work.outbox.front()), if writing => match written {
                    Ok(n) if n > 0 => {
                        work.outbox.advance(n);
                        last_activity = Instant::now();
                    }
                    Ok(_) => break End::Broken,
                    Err(e) => {
                        tracing::debug!(error = %e, "write error");
                        break End::Broken;
                    }
                },
                _ = tokio::time::sleep_until(stuck_at), if writing => {
                    tracing::warn!(
                        pending_bytes = work.outbox.bytes,
                        write_timeout = ?bounds.write_timeout,
                        "the client reads no replies; closing (daemon.write_timeout)"
                    );
                    handler.budget_hit("daemon.write_timeout");
                    break End::WriteTimeout;
                }
                Some(note) = notes.recv(), if !over => {
                    deliver(&subs, &mut work.outbox, note);
                    if work.outbox.flush_ready(&writer).is_err() {
                        break End::Broken;
                    }
                }
                Some(done) = work.inflight.next(), if can_poll => {
                    last_activity = Instant::now();
                    work.finish(done, &bounds);
                    if work.outbox.flush_ready(&writer).is_err() {
                        break End::Broken;
                    }
                }
                line = reader.next(bounds.max_message_bytes), if can_read => {
                    last_activity = Instant::now();
                    match line {
                        Err(e) => {
                            tracing::debug!(error = %e, "read error");
                            reading = false;
                        }
                        Ok(Line::Eof) => reading = false,
                        Ok(Line::TooLong) => {
                            let max = bounds.max_message_bytes;
                            tracing::warn!(max, "message over the size cap; closing connection");
                            let err = RpcError::invalid_request(format!(
                                "invalid request: message exceeds daemon.max_message_bytes = {max} bytes"
                            ));
                            work.outbox.push(failure(&Id::NULL, &err));
                            reading = false;
                        }
                        Ok(Line::Message(bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => {}
                        Ok(Line::Message(bytes)) => work.message(&bytes, &bounds),
                    }
                    if work.outbox.flush_ready(&writer).is_err() {
                        break End::Broken;
                    }
                }
                _ = tokio::time::sleep_until(idle_at), if quiet => {
                    if draining {
                        reading = false;
                    } else {
                        tracing::debug!("closing idle connection");
                        break End::Idle;
                    }
                }
            }
        };
        subs.close_all();
        if end == End::Done {
            let _ = writer.shutdown().await;
        }
        drop((reader, writer, notes));
        // Calls already started are finished, their replies dropped: a
        // create cut half-way would be worse than a reply nobody reads. Each
        // is bounded by its own timeouts; the accept loop bounds shutdown.
        while work.inflight.next().await.is_some() {}
    }
    .instrument(span)
    .await
}

/// Ends a connection's subscriptions when it is dropped.
struct SubsEnd(Arc<Shared>);

impl Drop for SubsEnd {
    fn drop(&mut self) {
        self.0.close_all();
    }
}

/// A notification line goes to the outbox if its subscription is still open.
fn deliver(subs: &Shared, outbox: &mut Outbox, note: Note) {
    if subs.deliver(&note) {
        outbox.push(note.line);
    }
}

async fn handle_item<H: Handler>(ctx: &Ctx<H>, item: Item) -> (Option<String>, Opened) {
    match item {
        Item::Invalid { id, error } => {
            tracing::debug!(code = error.code, message = %error.message, "invalid message");
            (Some(failure(&id, &error)), Vec::new())
        }
        Item::Call(call) => handle_call(ctx, call).await,
    }
}

async fn handle_call<H: Handler>(ctx: &Ctx<H>, call: Call) -> (Option<String>, Opened) {
    let Call { id, method, params } = call;
    let request = match Request::parse(&method, params) {
        Ok(r) => r,
        Err(error) => {
            tracing::debug!(method = %method, code = error.code, "rejected: {}", error.message);
            return (id.map(|id| failure(&id, &error)), Vec::new());
        }
    };
    let name = request.method();
    let started = Instant::now();
    let outlet = Outlet::new(ctx.subs.clone());
    let result = ctx.handler.handle(&ctx.peer, &outlet, request).await;
    let opened = outlet.take_opened();
    let took = started.elapsed();
    ctx.handler.served(name, result.is_ok(), took);
    match &result {
        Ok(_) => tracing::debug!(
            method = name,
            peer_uid = ctx.peer.uid,
            peer_pid = ctx.peer.pid,
            took_us = took.as_micros() as u64,
            "request served"
        ),
        Err(e) => {
            tracing::info!(method = name, peer_uid = ctx.peer.uid, peer_pid = ctx.peer.pid, error = %e.message, "request failed")
        }
    }
    let Some(id) = id else { return (None, opened) };
    let reply = match result {
        Ok(value) => success(&id, &value),
        Err(e) => failure(&id, &e),
    };
    (Some(reply), opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(BufReader::with_capacity(4, input));
        let mut out = Vec::new();
        loop {
            match r.next(max).await.unwrap() {
                Line::Message(m) => out.push(String::from_utf8(m).unwrap()),
                Line::TooLong => {
                    out.push("<too long>".into());
                    return out;
                }
                Line::Eof => return out,
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_across_small_reads() {
        assert_eq!(lines(b"abc\r\ndefgh\nlast", 100).await, vec!["abc", "defgh", "last"]);
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = LineReader::new(BufReader::new(server));
        client.write_all(b"{\"half\":").await.unwrap();
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(20), r.next(100)).await;
        assert!(cancelled.is_err(), "no newline yet: {cancelled:?}");
        client.write_all(b" 1}\n").await.unwrap();
        match r.next(100).await.unwrap() {
            Line::Message(m) => assert_eq!(m, b"{\"half\": 1}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn stops_at_the_cap() {
        assert_eq!(lines(b"12345\n123456789\n", 5).await, vec!["12345", "<too long>"]);
        assert_eq!(lines(b"123456\n", 5).await, vec!["<too long>"]);
        assert_eq!(lines(b"123456", 5).await, vec!["<too long>"]);
        assert_eq!(lines(b"12345\r\r\n", 5).await, vec!["<too long>"]);
    }

    /// The cap counts the message, not its line ending: exactly `max` bytes
    /// followed by CRLF is accepted, whatever the read boundaries (the
    /// reader's buffer is 4 bytes here, so the `\r` and the `\n` often
    /// arrive in different reads).
    #[tokio::test]
    async fn a_trailing_cr_does_not_count_against_the_cap() {
        for max in 1..12 {
            let msg = "x".repeat(max);
            let input = format!("{msg}\r\n{msg}\r\n{msg}\r");
            assert_eq!(lines(input.as_bytes(), max).await, vec![msg.clone(), msg.clone(), msg]);
        }
    }
}
