//! `ccmanagerctl logs ID [-f] [--from OFFSET | --tail LINES] [--raw]`: a
//! session's output log, like `docker logs -f` or `pm2 logs`.
//!
//! It reads with `session.read` from the oldest byte the log keeps (or
//! `--from`, or the start of the last `--tail` lines) to the end. With
//! `-f` it subscribes from `"now"` *first*, reads up to the offset that
//! subscription starts at, then prints its `session.output` notifications
//! (acknowledging them) until `session.exit` or Ctrl-C: no byte is printed
//! twice or missed between the read and the stream, nor across a restart
//! of the daemon (it subscribes again from the last offset printed).
//!
//! Without `--raw` the bytes go through [`Sanitizer`] (what it strips and
//! why: `sanitize.rs`) so a session cannot drive the operator's terminal;
//! `--raw` writes them exactly. Bytes the log no longer holds (its cap
//! dropped them, or the logger missed them) are reported on stderr,
//! never silently skipped.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use ccmanagerd::client::{Client, ClientError, Incoming, StreamEvent};
use ccmanagerd::protocol::method::{SessionAck, SessionGet, SessionRead, SessionSubscribe};
use ccmanagerd::protocol::methods::SessionId;
use ccmanagerd::protocol::streams::{self, From as Start};

use crate::output::{usage, Ctl, Failure};
use crate::sanitize::Sanitizer;
use crate::LogsArgs;

/// Bytes asked of one `session.read`: its bound (docs/protocol.md), so a
/// whole log of the default cap (32 MiB) takes 32 calls.
const READ_BYTES: u32 = 1 << 20;
/// Between tries to reconnect after the daemon closed the connection.
const RETRY: Duration = Duration::from_millis(200);

pub fn run(ctl: &mut Ctl, args: LogsArgs) -> Result<(), Failure> {
    if ctl.json {
        return Err(usage("logs has no --json form: --raw writes the log's bytes exactly"));
    }
    let mut out = Out::new(args.raw);
    let id = crate::resolve::one(ctl, &args.id)?;
    // Following: the subscription's start is where the reads stop.
    let mut subscription = None;
    if args.follow {
        let p = streams::SessionSubscribe { id: id.clone(), from: Start::Now };
        match ctl.client.request::<SessionSubscribe>(&p) {
            Ok(s) => subscription = Some((s.subscription, s.offset)),
            // An ended session: its whole log, then its status.
            Err(ClientError::Rpc(e)) if e.kind() == Some("invalid_state") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let until = subscription.map(|(_, offset)| offset);
    let from = match (args.from, args.tail) {
        (Some(offset), _) => Some(offset),
        (None, Some(lines)) => tail_start(ctl, &id, lines, until)?,
        (None, None) => None,
    };
    let next = read(ctl, &id, from, until, |_, data| out.write(data))?;
    let Some((subscription, _)) = subscription else {
        out.finish()?;
        if args.follow {
            let s = ctl.client.request::<SessionGet>(&SessionId { id: id.clone() })?;
            eprintln!("[session {id} {}]", ended(s.exit_status));
        }
        return Ok(());
    };
    follow(ctl, &id, subscription, next, &mut out)
}

fn ended(status: Option<i32>) -> String {
    match status {
        Some(s) => format!("exited with status {s}"),
        None => "ended (exit status unknown)".into(),
    }
}

/// Reads the log from `from` (`None`: the oldest byte kept) to `until`
/// (`None`: the end), passing each piece with its offset to `sink`;
/// returns the offset after the last byte passed.
fn read(
    ctl: &mut Ctl,
    id: &str,
    from: Option<u64>,
    until: Option<u64>,
    mut sink: impl FnMut(u64, &[u8]) -> Result<(), Failure>,
) -> Result<u64, Failure> {
    let mut offset = from;
    loop {
        let p = streams::SessionRead { id: id.to_string(), offset, max_bytes: Some(READ_BYTES) };
        let r = ctl.client.request::<SessionRead>(&p)?;
        if let Some(asked) = offset.filter(|asked| r.offset > *asked) {
            eprintln!(
                "ccmanagerctl: bytes {asked}..{} of session {id}'s output are not in its log (dropped by its size cap, or never logged)",
                r.offset
            );
        }
        let data = &r.data.0;
        let keep =
            until.map_or(data.len(), |u| (u.saturating_sub(r.offset) as usize).min(data.len()));
        sink(r.offset, &data[..keep])?;
        let next = r.offset + keep as u64;
        let done = until.is_some_and(|u| next >= u) || r.end || r.next_offset <= r.offset;
        if done {
            return Ok(next);
        }
        offset = Some(r.next_offset);
    }
}

/// The offset where the last `lines` lines before `until` (or the end)
/// begin: one pass over the log remembering the last `lines` newlines
/// (the log is bounded by its cap, `logs.max_bytes_per_session`).
fn tail_start(
    ctl: &mut Ctl,
    id: &str,
    lines: usize,
    until: Option<u64>,
) -> Result<Option<u64>, Failure> {
    let mut newlines: VecDeque<u64> = VecDeque::with_capacity(lines.min(4096) + 1);
    let mut last = None;
    let end = read(ctl, id, None, until, |offset, data| {
        for (i, b) in data.iter().enumerate() {
            if *b == b'\n' {
                newlines.push_back(offset + i as u64 + 1);
                if newlines.len() > lines + 1 {
                    newlines.pop_front();
                }
            }
        }
        last = data.last().copied();
        Ok(())
    })?;
    // A final line without a newline counts as a line.
    if last.is_some_and(|b| b != b'\n') && newlines.back() != Some(&end) {
        newlines.push_back(end);
        if newlines.len() > lines + 1 {
            newlines.pop_front();
        }
    }
    Ok(match newlines.len() > lines {
        true => newlines.front().copied(),
        false => None,
    })
}

/// Prints the subscription's output until the session ends. When the
/// daemon closes the connection (it restarts), subscribes again from the
/// last offset printed, on a new connection, within `--timeout`.
fn follow(
    ctl: &mut Ctl,
    id: &str,
    mut subscription: u64,
    mut next: u64,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut acked = next;
    loop {
        let message = match ctl.client.next(None) {
            Err(ClientError::Closed { .. }) => {
                out.flush()?;
                subscription = resubscribe(ctl, id, next)?;
                acked = next;
                continue;
            }
            m => m?,
        };
        match message {
            Some(Incoming::Notification(n)) => match n.stream_event()? {
                Some(StreamEvent::Output(o)) if o.subscription == subscription => {
                    let skip = next.saturating_sub(o.offset) as usize;
                    if let Some(new) = o.data.0.get(skip..) {
                        out.write(new)?;
                    }
                    next = next.max(o.offset + o.data.0.len() as u64);
                }
                Some(StreamEvent::Reset(r)) if r.subscription == subscription => {
                    eprintln!(
                        "ccmanagerctl: bytes {next}..{} of session {id}'s output were dropped by its log's size cap before they were read",
                        r.offset
                    );
                    next = r.offset;
                }
                Some(StreamEvent::Exit(e)) if e.subscription == subscription => {
                    out.finish()?;
                    eprintln!("[session {id} {}]", ended(e.exit_status));
                    return Ok(());
                }
                _ => {}
            },
            // Replies to acknowledgements.
            Some(Incoming::Reply(_)) | None => {}
        }
        if !ctl.client.has_incoming() && next != acked {
            out.flush()?;
            acked = next;
            let p = streams::SessionAck { subscription, offset: next };
            match ctl.client.start::<SessionAck>(&p) {
                // The next read sees the end and reconnects.
                Ok(_) | Err(ClientError::Closed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A new connection subscribed from `next`; retried every [`RETRY`] for
/// `--timeout`.
fn resubscribe(ctl: &mut Ctl, id: &str, next: u64) -> Result<u64, Failure> {
    let since = Instant::now();
    loop {
        let path = ctl.client.path().to_owned();
        let connected = Client::connect_within(&path, Some(ctl.connect_timeout), Some(ctl.timeout));
        let tried = connected.and_then(|client| {
            ctl.client = client;
            let p = streams::SessionSubscribe { id: id.to_string(), from: Start::Offset(next) };
            ctl.client.request::<SessionSubscribe>(&p)
        });
        match tried {
            Ok(s) => return Ok(s.subscription),
            Err(e @ (ClientError::Rpc(_) | ClientError::Protocol(_))) => return Err(e.into()),
            Err(e) if since.elapsed() >= ctl.timeout => return Err(e.into()),
            Err(_) => std::thread::sleep(RETRY),
        }
    }
}

/// Stdout, raw or through the sanitizer. A closed stdout (`logs ID |
/// head`) ends the command quietly, as it does `cat`.
struct Out {
    sanitizer: Option<Sanitizer>,
    buf: Vec<u8>,
    stdout: std::io::Stdout,
}

impl Out {
    fn new(raw: bool) -> Out {
        let sanitizer = (!raw).then(Sanitizer::default);
        Out { sanitizer, buf: Vec::new(), stdout: std::io::stdout() }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        match &mut self.sanitizer {
            None => emit(&mut self.stdout, data),
            Some(s) => {
                self.buf.clear();
                s.feed(data, &mut self.buf);
                emit(&mut self.stdout, &self.buf)
            }
        }
    }

    fn flush(&mut self) -> Result<(), Failure> {
        check(self.stdout.flush())
    }

    fn finish(&mut self) -> Result<(), Failure> {
        if let Some(s) = &mut self.sanitizer {
            self.buf.clear();
            s.finish(&mut self.buf);
            emit(&mut self.stdout, &self.buf)?;
        }
        self.flush()
    }
}

fn emit(out: &mut std::io::Stdout, bytes: &[u8]) -> Result<(), Failure> {
    check(out.write_all(bytes))
}

fn check(r: std::io::Result<()>) -> Result<(), Failure> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(crate::output::failed(format!("writing to stdout: {e}"))),
    }
}
