//! `ccmanagerctl attach ID`: this terminal becomes the session's, through
//! the daemon's socket only (no tmux client, no tmux socket: it works for
//! any owner the daemon lets see the session).
//!
//! The conversation is the one docs/protocol.md ("Streams and logs")
//! shows a web backend: `session.resize` to this terminal's size,
//! `session.subscribe {from: "screen"}`, draw the screen, then write each
//! `session.output` to stdout and `session.ack` what was written (so a slow
//! terminal only holds its own stream back); keystrokes go out as
//! `session.write`, one per read of stdin (a paste is one write); SIGWINCH
//! sends `session.resize`; `session.reset` redraws. When the daemon closes
//! the connection (it restarts), the attach reconnects within `--timeout`
//! and subscribes from the last offset written, so nothing is lost or
//! repeated; keys typed meanwhile are sent after (up to [`TYPE_AHEAD`]).
//!
//! It ends on the detach key (exit 0), on `session.exit` ([`EXITED`]), or
//! on SIGTERM/SIGHUP/SIGINT/SIGQUIT (128 + the signal), always with the
//! terminal restored (`terminal.rs`). `--tmux` is the former attach: exec
//! the tmux client `session.attach` names, for the session's own user.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use ccmanagerd::client::{Client, ClientError, Incoming, StreamEvent};
use ccmanagerd::protocol::method::{
    SessionAck, SessionAttach, SessionGet, SessionResize, SessionSubscribe, SessionWrite,
};
use ccmanagerd::protocol::methods::{self, SessionId};
use ccmanagerd::protocol::streams::{self, Bytes, From as Start, SubscribeResult};

use crate::output::{failed, usage, Ctl, Failure, UNAVAILABLE};
use crate::terminal::{self, AltScreen, RawMode, Signals};
use crate::AttachArgs;

/// Exit code when the session ended while attached (or had ended): its
/// exit status is in the message.
pub const EXITED: u8 = 3;
/// Keys typed while reconnecting that are kept to send after; more are
/// dropped.
const TYPE_AHEAD: usize = 64 * 1024;
/// Between tries to reconnect.
const RETRY: Duration = Duration::from_millis(200);
/// Bytes read from the terminal at once: a paste of this much is one
/// `session.write` (whose bound is 64 KiB).
const READ_KEYS: usize = 16 * 1024;

pub fn run(ctl: &mut Ctl, mut args: AttachArgs) -> Result<(), Failure> {
    args.id = crate::resolve::one(ctl, &args.id)?;
    if args.tmux {
        return tmux(ctl, args.id);
    }
    if ctl.json {
        return Err(usage("--json applies to `attach --tmux` (it prints the tmux command)"));
    }
    if !terminal::is_terminal() {
        return Err(usage(
            "attach needs a terminal on stdin and stdout (`ccmanagerctl logs -f ID` follows the output without one)",
        ));
    }
    let mut a = Attach {
        ctl,
        id: args.id,
        key: args.detach_key,
        subscription: 0,
        next: 0,
        acked: 0,
        pending: HashMap::new(),
        lost: None,
        typed_ahead: Vec::new(),
        alternate: AltScreen::default(),
    };
    a.resize_now().map_err(End::failure)?;
    let screen = match a.subscribe(Start::Screen) {
        Ok(screen) => screen,
        // Ended already: said without touching the terminal.
        Err(end) => return report(&a, end),
    };
    let signals = Signals::catch(&[&[libc::SIGWINCH][..], &terminal::TERMINATING].concat())
        .map_err(|e| failed(format!("cannot catch signals: {e}")))?;
    let raw = RawMode::enter().map_err(|e| failed(format!("cannot make the terminal raw: {e}")))?;
    let end = match a.draw(&[&terminal::make_room(), &screen[..]].concat()) {
        Ok(()) => a.run(&signals),
        Err(end) => end,
    };
    if matches!(end, End::Detached) {
        a.finish_writes();
    }
    drop(raw);
    drop(signals);
    report(&a, end)
}

/// What the end of an attach says, once the terminal is restored.
fn report(a: &Attach, end: End) -> Result<(), Failure> {
    let id = &a.id;
    match end {
        End::Detached => {
            let key = terminal::key_name(a.key);
            eprintln!(
                "[detached from session {id} ({key}): `ccmanagerctl attach {id}` attaches again]"
            );
            Ok(())
        }
        End::Exited(status) => Err(Failure {
            code: EXITED,
            message: match status {
                Some(s) => format!("session {id} exited with status {s}"),
                None => format!("session {id} ended (exit status unknown)"),
            },
            rpc: None,
        }),
        End::Signal(s) => Err(Failure {
            code: 128 + s as u8,
            message: format!("detached from session {id}: {}", terminal::signal_name(s)),
            rpc: None,
        }),
        End::Hangup => Err(failed(format!("detached from session {id}: the terminal closed"))),
        End::Failed(f) => Err(f),
    }
}

/// `--tmux`: `session.attach`, then exec the command it names (this
/// process becomes the tmux client; the session's own user or root only).
fn tmux(ctl: &mut Ctl, id: String) -> Result<(), Failure> {
    let Some(attach) = ctl.call::<SessionAttach>(&SessionId { id })? else { return Ok(()) };
    let (program, args) = attach
        .argv
        .split_first()
        .ok_or_else(|| failed("the daemon sent an empty attach command"))?;
    let err = std::process::Command::new(program).args(args).exec();
    Err(failed(format!("cannot run {program}: {err}")))
}

/// Why the attach ends.
enum End {
    Detached,
    Exited(Option<i32>),
    Signal(i32),
    Hangup,
    Failed(Failure),
}

impl End {
    fn failure(self) -> Failure {
        match self {
            End::Failed(f) => f,
            _ => failed("the attach ended before it began"),
        }
    }
}

impl From<ClientError> for End {
    fn from(e: ClientError) -> End {
        End::Failed(e.into())
    }
}

/// A request whose reply is still to come.
enum Sent {
    Write,
    Resize,
    Ack,
}

struct Attach<'a> {
    ctl: &'a mut Ctl,
    id: String,
    key: u8,
    subscription: u64,
    /// The offset just past the last byte written to the terminal.
    next: u64,
    /// The offset last acknowledged.
    acked: u64,
    pending: HashMap<u64, Sent>,
    /// Since when the connection is gone.
    lost: Option<Instant>,
    typed_ahead: Vec<u8>,
    /// Follows the program's alternate screen, to leave it at the end.
    alternate: AltScreen,
}

impl Attach<'_> {
    fn client(&mut self) -> &mut Client {
        &mut self.ctl.client
    }

    /// Subscribes; returns the screen to draw (empty from an offset).
    fn subscribe(&mut self, from: Start) -> Result<Vec<u8>, End> {
        let p = streams::SessionSubscribe { id: self.id.clone(), from };
        let r: SubscribeResult = match self.client().request::<SessionSubscribe>(&p) {
            Err(ClientError::Rpc(e)) if e.kind() == Some("invalid_state") => {
                let get = SessionId { id: self.id.clone() };
                let s = self.client().request::<SessionGet>(&get)?;
                return Err(End::Exited(s.exit_status));
            }
            r => r?,
        };
        self.subscription = r.subscription;
        self.next = r.offset;
        self.acked = r.offset;
        Ok(r.screen.map(|s| s.0).unwrap_or_default())
    }

    /// `session.resize` to the terminal's size, waiting for the reply
    /// (before a subscription: its screen then has that size).
    fn resize_now(&mut self) -> Result<(), End> {
        let Some((cols, rows)) = terminal::size() else { return Ok(()) };
        let p = methods::SessionResize { id: self.id.clone(), cols, rows };
        match self.client().request::<SessionResize>(&p) {
            Ok(_) | Err(ClientError::Rpc(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends a request without waiting; a closed connection starts a
    /// reconnect instead of failing.
    fn start<M: ccmanagerd::protocol::Method>(
        &mut self,
        params: &M::Params,
        sent: Sent,
    ) -> Result<(), End> {
        match self.client().start::<M>(params) {
            Ok(id) => {
                self.pending.insert(id, sent);
                Ok(())
            }
            Err(ClientError::Closed { .. }) => {
                self.lose();
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn lose(&mut self) {
        self.lost.get_or_insert_with(Instant::now);
        self.pending.clear();
    }

    fn draw(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.alternate.scan(bytes);
        terminal::write_out(&mut std::io::stdout().lock(), bytes).map_err(|_| End::Hangup)
    }

    fn run(&mut self, signals: &Signals) -> End {
        loop {
            if let Err(end) = self.step(signals) {
                return end;
            }
        }
    }

    /// Handles what was received, then waits for the terminal, the daemon
    /// or a signal, and handles that.
    fn step(&mut self, signals: &Signals) -> Result<(), End> {
        if self.lost.is_none() {
            self.handle_received()?;
        }
        let stdin = std::io::stdin();
        let (sig, keys, daemon) = {
            let mut fds =
                vec![PollFd::new(signals, PollFlags::IN), PollFd::new(&stdin, PollFlags::IN)];
            if self.lost.is_none() {
                fds.push(PollFd::new(&self.ctl.client, PollFlags::IN));
            }
            let retry = Timespec { tv_sec: 0, tv_nsec: RETRY.as_nanos() as i64 };
            let timeout = self.lost.map(|_| &retry);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(End::Failed(failed(format!("poll: {e}")))),
            }
            let ready = |fd: &PollFd| !fd.revents().is_empty();
            (ready(&fds[0]), ready(&fds[1]), fds.get(2).is_some_and(ready))
        };
        if sig {
            self.signals(signals)?;
        }
        if keys {
            self.keys()?;
        }
        if daemon {
            match self.client().receive() {
                Ok(()) => {}
                Err(ClientError::Closed { .. }) => self.lose(),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(since) = self.lost {
            self.reconnect(since)?;
        }
        Ok(())
    }

    fn signals(&mut self, signals: &Signals) -> Result<(), End> {
        let mut resized = false;
        for s in signals.take() {
            match s {
                libc::SIGWINCH => resized = true,
                s => return Err(End::Signal(s)),
            }
        }
        match (resized && self.lost.is_none(), terminal::size()) {
            (true, Some((cols, rows))) => {
                let p = methods::SessionResize { id: self.id.clone(), cols, rows };
                self.start::<SessionResize>(&p, Sent::Resize)
            }
            _ => Ok(()),
        }
    }

    /// One read of the terminal: the keys before the detach key, in one
    /// `session.write`.
    fn keys(&mut self) -> Result<(), End> {
        let mut buf = [0u8; READ_KEYS];
        let n = match rustix::io::read(std::io::stdin(), &mut buf) {
            Ok(0) => return Err(End::Hangup),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => return Ok(()),
            Err(_) => return Err(End::Hangup),
        };
        let detach = buf[..n].iter().position(|b| *b == self.key);
        let keys = &buf[..detach.unwrap_or(n)];
        if self.lost.is_some() {
            let room = TYPE_AHEAD.saturating_sub(self.typed_ahead.len());
            self.typed_ahead.extend_from_slice(&keys[..keys.len().min(room)]);
        } else if !keys.is_empty() {
            self.write(keys.to_vec())?;
        }
        match detach {
            Some(_) => Err(End::Detached),
            None => Ok(()),
        }
    }

    fn write(&mut self, keys: Vec<u8>) -> Result<(), End> {
        let p = streams::SessionWrite { id: self.id.clone(), data: Some(Bytes(keys)), text: None };
        self.start::<SessionWrite>(&p, Sent::Write)
    }

    /// Everything already received, then one acknowledgement for all the
    /// bytes it wrote.
    fn handle_received(&mut self) -> Result<(), End> {
        let mut out = std::io::stdout().lock();
        while let Some(message) = self.client().take()? {
            match message {
                Incoming::Reply(r) => match (self.pending.remove(&r.id), r.result) {
                    (Some(Sent::Write), Err(e)) if e.kind() != Some("invalid_state") => {
                        return Err(ClientError::Rpc(e).into())
                    }
                    // A lost resize or ack loses nothing typed or printed;
                    // a write to a session that ended is followed by its
                    // session.exit.
                    _ => {}
                },
                Incoming::Notification(n) => match n.stream_event()? {
                    Some(StreamEvent::Output(o)) if o.subscription == self.subscription => {
                        // After a reconnect the daemon may resend bytes
                        // already written; a gap in the log skips ahead.
                        let skip = self.next.saturating_sub(o.offset) as usize;
                        let end = o.offset + o.data.0.len() as u64;
                        if let Some(new) = o.data.0.get(skip..) {
                            self.alternate.scan(new);
                            out.write_all(new).map_err(|_| End::Hangup)?;
                        }
                        self.next = self.next.max(end);
                    }
                    Some(StreamEvent::Reset(r)) if r.subscription == self.subscription => {
                        self.alternate.scan(&r.screen.0);
                        out.write_all(&r.screen.0).map_err(|_| End::Hangup)?;
                        self.next = r.offset;
                        self.acked = self.acked.min(r.offset);
                    }
                    Some(StreamEvent::Exit(e)) if e.subscription == self.subscription => {
                        let _ = out.flush();
                        return Err(End::Exited(e.exit_status));
                    }
                    _ => {}
                },
            }
        }
        out.flush().map_err(|_| End::Hangup)?;
        drop(out);
        if self.next != self.acked {
            self.acked = self.next;
            let p = streams::SessionAck { subscription: self.subscription, offset: self.next };
            self.start::<SessionAck>(&p, Sent::Ack)?;
        }
        Ok(())
    }

    /// A new connection, subscribed from the last offset written, sized,
    /// and sent the keys typed meanwhile; gives up after `--timeout`.
    fn reconnect(&mut self, since: Instant) -> Result<(), End> {
        let path = self.ctl.client.path().to_owned();
        let timeout = self.ctl.timeout;
        match Client::connect_within(
            &path,
            Some(self.ctl.connect_timeout.min(RETRY)),
            Some(timeout),
        ) {
            Ok(client) => self.ctl.client = client,
            Err(e @ ClientError::Connect { .. } | e @ ClientError::Timeout { .. }) => {
                return match since.elapsed() < timeout {
                    true => Ok(()),
                    false => Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.lost = None;
        let screen = match self.subscribe(Start::Offset(self.next)) {
            Ok(screen) => screen,
            Err(End::Failed(f)) if f.code == UNAVAILABLE && since.elapsed() < timeout => {
                self.lose();
                return Ok(());
            }
            Err(end) => return Err(end),
        };
        self.draw(&screen)?;
        self.resize_now()?;
        let keys = std::mem::take(&mut self.typed_ahead);
        for chunk in keys.chunks(READ_KEYS) {
            self.write(chunk.to_vec())?;
        }
        Ok(())
    }

    /// After the detach key: waits (within the reply timeout) for the
    /// replies to the keys sent, so none is dropped with the connection.
    fn finish_writes(&mut self) {
        let deadline = Instant::now() + self.ctl.timeout;
        while self.lost.is_none() && self.pending.values().any(|s| matches!(s, Sent::Write)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.client().next(Some(left)) {
                Ok(Some(Incoming::Reply(r))) => {
                    self.pending.remove(&r.id);
                }
                Ok(Some(Incoming::Notification(_))) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }
}
