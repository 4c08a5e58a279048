//! One subscription's task: reads its session's log from its offset and
//! sends it as `session.output` notifications, within its credit, until the
//! session has ended and its last byte is sent (`session.exit`), or it is
//! closed.
//!
//! What it holds is bounded whatever the session prints: its place (an
//! offset), one chunk of at most [`CHUNK_BYTES`] while it sends it, and a
//! share of its log's [`Watch`]. It waits for room on its connection before
//! it reads (the outbox's budget), and stops when the bytes sent and not
//! acknowledged reach `streams.window`; the program and tmux never wait for
//! it (the logger writes the log whatever anybody reads). A viewer that
//! stays behind until the log's cap drops its next byte (or a gap in the
//! log) gets a `session.reset`: a screen snapshot and the offset output
//! continues from.
//!
//! The end: the log is `closed` (its logger saw the pane's pipe close) and
//! read to its end; or the registry says the session ended (exited, lost,
//! removed) and the log has not grown for [`EXIT_SETTLE`] (tmux keeps an
//! exited pane, and its pipe, open: `remain-on-exit`; the exec-wrapper
//! exits only after tmux read the program's last byte, so the registry
//! learns of the exit after tmux has the bytes, and the logger writes them
//! within milliseconds). The exit status is the registry's, waited for at
//! most [`STATUS_WAIT`] (null when the session was removed or lost).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::screen::{self, CLEAR};
use super::watch::Watch;
use crate::config::ConfigHandle;
use crate::error::{Error, Result};
use crate::logs::{Chunk, Cursor, Extent, Followed, Log};
use crate::metrics::Metrics;
use crate::protocol::streams::{notification, Bytes, Exit, Output, Reset};
use crate::protocol::types::SessionState;
use crate::server::Sink;
use crate::sessions::{Caller, Sessions};

/// Most bytes of one `session.output` (before base64).
pub const CHUNK_BYTES: usize = 64 << 10;
/// How long an ended session's log must stay still before `session.exit`.
pub const EXIT_SETTLE: Duration = Duration::from_millis(500);
/// How long a closed log waits for the registry to learn the exit status.
pub const STATUS_WAIT: Duration = Duration::from_secs(2);
/// How often the registry is asked during [`STATUS_WAIT`].
const STATUS_POLL: Duration = Duration::from_millis(50);
/// A notification at least this large means the pane prints fast: the next
/// read waits until [`COALESCE`] after it, so that a follower keeping up
/// sends fewer, larger notifications (the daemon's cost is per
/// notification: ~200 µs each; docs/performance.md). A keystroke's echo is
/// far smaller and is never held back.
const BULK_BYTES: u64 = 4 << 10;
/// See [`BULK_BYTES`]: at 30 MB/s, about a chunk's worth.
const COALESCE: Duration = Duration::from_millis(2);
/// A failing log read is tried again after this long.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What `session.ack` and the task share.
pub struct Credit {
    /// The highest offset acknowledged.
    acked: watch::Sender<u64>,
    /// Just past the last byte queued for the client.
    sent: AtomicU64,
}

impl Credit {
    /// Credit for a subscription starting at `offset`.
    pub fn new(offset: u64) -> Credit {
        Credit { acked: watch::channel(offset).0, sent: AtomicU64::new(offset) }
    }

    /// `session.ack {offset}`: every byte before `offset` was consumed. An
    /// offset past what was sent is refused (it would lift the window); an
    /// older one changes nothing.
    pub fn ack(&self, subscription: u64, offset: u64) -> Result<()> {
        let sent = self.sent.load(Ordering::Acquire);
        if offset > sent {
            return Err(Error::InvalidParams(format!(
                "offset: {offset} is past what subscription {subscription} was sent (up to {sent})"
            )));
        }
        self.acked.send_if_modified(|a| {
            let newer = offset > *a;
            if newer {
                *a = offset;
            }
            newer
        });
        Ok(())
    }
}

/// Counts an open subscription in the metrics for as long as it lives.
pub struct Counted(Arc<Metrics>);

impl Counted {
    /// Counts one more.
    pub fn new(metrics: Arc<Metrics>) -> Counted {
        metrics.streams.open(1);
        Counted(metrics)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.streams.open(-1);
    }
}

/// One subscription's task.
pub struct Follow {
    /// The session.
    pub id: String,
    /// Who subscribed (for screen snapshots on reset).
    pub caller: Caller,
    /// The sessions, for snapshots and the exit status.
    pub sessions: Sessions,
    /// Its log.
    pub log: Arc<Log>,
    /// Its log's wake-ups.
    pub watch: Arc<Watch>,
    /// Shared with `session.ack`.
    pub credit: Arc<Credit>,
    /// For `streams.window` and `streams.poll_interval`, read as it goes.
    pub config: ConfigHandle,
    /// For bytes sent and resets.
    pub metrics: Arc<Metrics>,
    /// Where it starts.
    pub offset: u64,
    /// Keeps it counted.
    pub counted: Counted,
}

/// A notification line.
fn line<P: Serialize>(method: &str, params: &P) -> String {
    #[derive(Serialize)]
    struct Note<'a, P> {
        jsonrpc: &'static str,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_string(&Note { jsonrpc: "2.0", method, params }).unwrap_or_else(|e| {
        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":null,"error":"{e}"}}"#)
    })
}

/// How the session stands, as far as ending the stream goes.
enum Ended {
    /// Still running (or being created).
    No,
    /// Ended, with this exit status.
    Yes(Option<i32>),
}

impl Follow {
    fn ended(&self) -> Ended {
        let records = self.sessions.registry().lock();
        match records.get(&self.id) {
            // A program started again by its policy continues the same log:
            // the stream stays open across it.
            Some(r) if r.session.state == SessionState::Running || r.spawning || r.comes_back() => {
                Ended::No
            }
            Some(r) => Ended::Yes(r.session.exit_status),
            None => Ended::Yes(None),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Log) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        super::blocking(&self.log, f).await
    }

    /// Runs until the stream is over, it is closed, or its connection goes.
    pub async fn run(self, sink: Sink) {
        let sub = sink.id();
        let mut acks = self.credit.acked.subscribe();
        let mut base = self.offset;
        let mut next = self.offset;
        // Since when an ended session's log has stood still, and at what end.
        let mut still: Option<(Instant, u64)> = None;
        // Looks at the end that found more right after an empty read.
        let mut raced = 0;
        // The segment being read, kept open (the fast path, `Log::follow`).
        let mut cursor = Cursor::new();
        // When the log is next listed (`Log::read`) even if the segment held
        // says "at the end": at least every poll interval, which finds a
        // segment the logger began after a gap.
        let mut list_at = Instant::now();
        // When the last notification of at least BULK_BYTES went.
        let mut bulk: Option<Instant> = None;
        loop {
            let config = self.config.get();
            let window = config.streams.window.0;
            let poll = config.streams.poll_interval.0;
            drop(config);
            let acked = (*acks.borrow_and_update()).max(base);
            let unacked = next.saturating_sub(acked);
            if unacked >= window {
                if acks.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let room = (window - unacked).min(CHUNK_BYTES as u64) as usize;
            let Some(slot) = sink.reserve().await else { return };
            if let Some(wait) = bulk.and_then(|at| COALESCE.checked_sub(at.elapsed())) {
                // A pane printing fast: let a few more of the logger's writes
                // land, and send them as one notification.
                tokio::time::sleep(wait).await;
            }
            let at = next;
            let chunk = match self.log.follow(&mut cursor, at, room) {
                Followed::Data(data) => Ok(Chunk {
                    next_offset: at + data.len() as u64,
                    offset: at,
                    first_offset: at,
                    end: false,
                    data,
                }),
                Followed::AtEnd if Instant::now() < list_at => Ok(Chunk {
                    data: Vec::new(),
                    offset: at,
                    next_offset: at,
                    first_offset: at,
                    end: true,
                }),
                Followed::AtEnd | Followed::Unknown => {
                    list_at = Instant::now() + poll;
                    let read = self
                        .blocking(move |log| {
                            let chunk = log.read(at, room)?;
                            let mut cursor = Cursor::new();
                            log.seek(&mut cursor, chunk.next_offset);
                            Ok((chunk, cursor))
                        })
                        .await;
                    read.map(|(chunk, fresh)| {
                        cursor = fresh;
                        chunk
                    })
                }
            };
            match chunk {
                Ok(c) if c.offset > next => {
                    // Dropped by the cap, or never logged (a gap).
                    let (screen, offset) = self.restart_point(&c).await;
                    tracing::debug!(session_id = %self.id, subscription = sub, from = next, to = offset, "stream reset");
                    let reset = Reset { subscription: sub, offset, screen: Bytes(screen) };
                    // Before the line goes: the client may ack as soon as it has it.
                    self.credit.sent.store(offset, Ordering::Release);
                    slot.send(line(notification::RESET, &reset));
                    self.metrics.streams.reset();
                    (base, next) = (offset, offset);
                    cursor = Cursor::new();
                    still = None;
                    bulk = None;
                }
                Ok(c) if !c.data.is_empty() => {
                    let n = c.data.len() as u64;
                    next = c.next_offset;
                    // Before the line goes: the client may ack as soon as it has it.
                    self.credit.sent.store(next, Ordering::Release);
                    let output =
                        Output { subscription: sub, offset: c.offset, data: Bytes(c.data) };
                    slot.send(line(notification::OUTPUT, &output));
                    self.metrics.streams.sent(n);
                    bulk = (n >= BULK_BYTES).then(Instant::now);
                    still = None;
                    raced = 0;
                }
                Ok(_) => {
                    drop(slot);
                    // Receiver, mark, then one more look (watch.rs): a
                    // write at any point is seen or wakes us.
                    let mut wake = self.watch.subscribe();
                    self.watch.arm();
                    let more = matches!(self.log.follow(&mut cursor, next, 1), Followed::Data(_));
                    if more && raced < 3 {
                        raced += 1;
                        continue;
                    }
                    raced = 0;
                    // Only a session that ended can end the stream: the log's
                    // extent (a listing) is looked at only then.
                    let extent = match self.ended() {
                        Ended::No => None,
                        Ended::Yes(_) => self.blocking(|log| log.extent()).await.ok(),
                    };
                    if let Some(status) = self.finished(extent, next, &mut still).await {
                        if let Some(slot) = sink.reserve().await {
                            let exit = Exit { subscription: sub, exit_status: status };
                            slot.send_last(line(notification::EXIT, &exit));
                        }
                        return;
                    }
                    let wait = match still {
                        Some((since, _)) => EXIT_SETTLE.saturating_sub(since.elapsed()).min(poll),
                        None => poll,
                    };
                    tokio::select! {
                        _ = wake.changed() => {}
                        _ = tokio::time::sleep(wait) => list_at = Instant::now(),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // The log itself is gone (cleanup removed the session).
                    drop(slot);
                    tracing::debug!(session_id = %self.id, subscription = sub, error = %e, "log gone; stream over");
                    if let Some(slot) = sink.reserve().await {
                        let exit = Exit { subscription: sub, exit_status: None };
                        slot.send_last(line(notification::EXIT, &exit));
                    }
                    return;
                }
                Err(e) => {
                    drop(slot);
                    tracing::warn!(session_id = %self.id, subscription = sub, offset = next, error = %e, "reading the log for a subscriber failed; trying again");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        }
    }

    /// Whether the stream is over at `next` (all of the log sent): its exit
    /// status if so.
    async fn finished(
        &self,
        extent: Option<Extent>,
        next: u64,
        still: &mut Option<(Instant, u64)>,
    ) -> Option<Option<i32>> {
        let extent = extent?;
        if extent.end > next {
            return None; // more came meanwhile
        }
        if extent.closed {
            let deadline = Instant::now() + STATUS_WAIT;
            loop {
                match self.ended() {
                    Ended::Yes(status) => return Some(status),
                    Ended::No if Instant::now() >= deadline => return Some(None),
                    Ended::No => tokio::time::sleep(STATUS_POLL).await,
                }
            }
        }
        match self.ended() {
            Ended::No => {
                *still = None;
                None
            }
            Ended::Yes(status) => match *still {
                Some((since, end)) if end == extent.end && since.elapsed() >= EXIT_SETTLE => {
                    Some(status)
                }
                Some((_, end)) if end == extent.end => None,
                _ => {
                    *still = Some((Instant::now(), extent.end));
                    None
                }
            },
        }
    }

    /// Where a stream that cannot continue at its offset starts again: a
    /// snapshot of the screen and the offset after it, or, when there is no
    /// pane to capture (the session is gone), a cleared screen and the
    /// oldest byte the log still has.
    async fn restart_point(&self, chunk: &Chunk) -> (Vec<u8>, u64) {
        match screen::snapshot(&self.sessions, &self.caller, &self.id, &self.log).await {
            Ok(s) => (s.screen, s.offset),
            Err(e) => {
                tracing::debug!(session_id = %self.id, error = %e, "no screen for a reset; continuing from the oldest byte kept");
                (CLEAR.to_vec(), chunk.offset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_move_forward_only_and_never_past_what_was_sent() {
        let c = Credit::new(100);
        let mut rx = c.acked.subscribe();
        c.sent.store(500, Ordering::Release);
        c.ack(1, 300).unwrap();
        assert_eq!(*rx.borrow_and_update(), 300);
        c.ack(1, 200).unwrap();
        assert!(!rx.has_changed().unwrap(), "an older ack changes nothing");
        let e = c.ack(7, 501).unwrap_err().to_string();
        assert!(e.contains("501 is past what subscription 7 was sent (up to 500)"), "{e}");
    }

    #[test]
    fn notification_lines_are_json_rpc() {
        let l = line(notification::EXIT, &Exit { subscription: 3, exit_status: Some(1) });
        assert_eq!(
            l,
            r#"{"jsonrpc":"2.0","method":"session.exit","params":{"subscription":3,"exit_status":1}}"#
        );
    }
}
