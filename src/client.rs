//! A small blocking JSON-RPC client over the control socket, used by
//! `ccmanagerctl` and the tests. [`Client::request`] calls typed through
//! the method table (`client.request::<method::SessionGet>(&SessionId { id })`
//! is a `Session`); [`Client::call`] takes any method name and JSON params.
//! Both wait for their own reply; whatever else arrives meanwhile (the
//! notifications of a subscription, replies to requests sent with
//! [`Client::start`]) is kept, in order, for [`Client::next`]. A loop that
//! also waits on other files polls the client's fd and calls
//! [`Client::receive`] then [`Client::take`].
//!
//! Nothing here waits forever: the connect and each request (write and
//! whole reply) have deadlines, so a socket whose daemon does not accept
//! (a socket-activated service failing to start keeps connections in the
//! backlog) or does not answer is a [`ClientError::Timeout`].
//!
//! Without a path, [`Client::connect_first`] over [`default_sockets`] finds
//! the daemon (client/discover.rs).

mod discover;
mod incoming;

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::protocol::{Method, RpcError};
pub use discover::{default_sockets, Tried, SYSTEM_SOCKET};
use incoming::{present, Lines};
pub use incoming::{Incoming, Notification, Reply, StreamEvent};

/// What a [`ClientError::Timeout`] waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The connection (the listening socket's backlog is full: nobody accepts).
    Connect,
    /// The reply to a request.
    Reply,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No connection, or no complete reply, within the timeout.
    #[error("{}", timeout_message(.path, *.stage, *.after))]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// What was waited for.
        stage: Stage,
        /// How long.
        after: Duration,
    },
    /// The connection ended before the reply: the daemon closed it (it
    /// stopped, crashed, or was never started behind its socket).
    #[error("{path}: the daemon closed the connection without replying{}", detail(.reason))]
    Closed {
        /// The socket path.
        path: PathBuf,
        /// The OS error, when there was one.
        reason: Option<String>,
    },
    /// None of the sockets tried accepted a connection ([`Client::connect_first`]).
    #[error("cannot connect to ccmanagerd: tried {}", discover::list(.tried))]
    NotFound {
        /// Each path and why it did not work.
        tried: Vec<Tried>,
    },
    /// The daemon answered with an error object.
    #[error("{}", .0.message)]
    Rpc(RpcError),
    /// The reply was not JSON-RPC, or a request could not be encoded.
    #[error("protocol error: {0}")]
    Protocol(String),
}

fn timeout_message(path: &Path, stage: Stage, after: Duration) -> String {
    let after = humantime::format_duration(after);
    match stage {
        Stage::Connect => format!(
            "no connection to {} within {after}: the socket exists but nobody accepts connections",
            path.display()
        ),
        Stage::Reply => format!("no reply from the daemon on {} within {after}", path.display()),
    }
}

fn detail(reason: &Option<String>) -> String {
    reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
}

/// A connection to the daemon.
pub struct Client {
    stream: UnixStream,
    /// Received bytes not yet cut into messages.
    lines: Lines,
    /// Messages that arrived while a blocking call waited for its reply.
    queued: VecDeque<String>,
    /// Their bytes, bounded by [`MAX_QUEUED_BYTES`].
    queued_bytes: usize,
    path: PathBuf,
    /// Bounds each request: writing it and reading the whole reply.
    reply_timeout: Option<Duration>,
    next_id: u64,
}

/// Between tries of a connect that found the backlog full.
const CONNECT_RETRY: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(200));

/// Bytes of messages a blocking call keeps while it waits for its reply.
/// The daemon sends a subscription at most its credit window ahead of the
/// acknowledgements (`streams.window`, 256 KiB by default; about 350 KB of
/// base64 and JSON), so this is many subscriptions' worth; more means the
/// caller subscribed and stopped taking notifications.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

impl Client {
    /// Connects to `path`; `timeout` bounds the connect and each request.
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<Client, ClientError> {
        Client::connect_within(path, timeout, timeout)
    }

    /// Connects to `path` within `connect_timeout`; `reply_timeout` bounds
    /// each request (its write and its whole reply). `None`: no bound.
    pub fn connect_within(
        path: &Path,
        connect_timeout: Option<Duration>,
        reply_timeout: Option<Duration>,
    ) -> Result<Client, ClientError> {
        let refused = |source| ClientError::Connect { path: path.to_owned(), source };
        let stream = match connect_timeout {
            None => UnixStream::connect(path).map_err(refused)?,
            Some(after) => connect_before(path, Instant::now() + after).map_err(|e| match e {
                None => {
                    ClientError::Timeout { path: path.to_owned(), stage: Stage::Connect, after }
                }
                Some(source) => refused(source),
            })?,
        };
        let io = |e: std::io::Error| ClientError::Protocol(e.to_string());
        stream.set_write_timeout(reply_timeout).map_err(io)?;
        Ok(Client {
            stream,
            lines: Lines::default(),
            queued: VecDeque::new(),
            queued_bytes: 0,
            path: path.to_owned(),
            reply_timeout,
            next_id: 1,
        })
    }

    /// The socket path this client connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn timeout(&self, after: Duration) -> ClientError {
        ClientError::Timeout { path: self.path.clone(), stage: Stage::Reply, after }
    }

    /// Writes one line (the reply timeout bounds the write).
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let mut framed = Vec::with_capacity(line.len() + 1);
        framed.extend_from_slice(line.as_bytes());
        framed.push(b'\n');
        (&self.stream).write_all(&framed)
    }

    /// The next line received, reading until `deadline` (`None`: no bound;
    /// the reply timeout it stands for is in the error). `written` is the
    /// outcome of the write this read answers: a refused connection (too
    /// many, permission) gets one error reply and is closed, possibly
    /// before our write, so the reply is read anyway and the write's error
    /// only explains an end without one.
    fn read_line(
        &mut self,
        deadline: Option<(Instant, Duration)>,
        written: &std::io::Result<()>,
    ) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return line.map(Some);
            }
            let left = match deadline {
                Some((at, _)) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
                None => None,
            };
            let set = self.stream.set_read_timeout(left);
            set.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let closed = |reason: Option<String>| ClientError::Closed {
                path: self.path.clone(),
                reason: written.as_ref().err().map(|e| e.to_string()).or(reason),
            };
            match self.lines.fill(&self.stream) {
                Ok(0) => return Err(closed(None)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(closed(Some(e.to_string()))),
            }
        }
    }

    /// Keeps a message that is not the awaited reply, for [`Client::next`].
    fn queue(&mut self, line: String) -> Result<(), ClientError> {
        self.queued_bytes += line.len();
        if self.queued_bytes > MAX_QUEUED_BYTES {
            return Err(ClientError::Protocol(format!(
                "more than {MAX_QUEUED_BYTES} bytes of notifications arrived while waiting for a reply (take them with Client::next)"
            )));
        }
        self.queued.push_back(line);
        Ok(())
    }

    /// Sends one raw line and reads the next line received, whatever it
    /// is (for tests that send malformed messages and batches).
    pub fn raw(&mut self, line: &str) -> Result<Value, ClientError> {
        let deadline = self.reply_timeout.map(|t| (Instant::now() + t, t));
        let written = self.write_line(line);
        if let (Err(e), Some((_, after))) = (&written, deadline) {
            if is_timeout(e) {
                return Err(self.timeout(after));
            }
        }
        let Some(reply) = self.read_line(deadline, &written)? else {
            return Err(self.timeout(deadline.map_or(Duration::ZERO, |d| d.1)));
        };
        serde_json::from_str(&reply).map_err(|e| ClientError::Protocol(format!("bad reply: {e}")))
    }

    /// Calls `method` with `params` and returns the result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.call_as(method, params)
    }

    /// Calls `method` with `params` and decodes the result straight into
    /// `T` (e.g. `Vec<Session>` inside a list), without a `Value` tree.
    pub fn call_as<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<T, ClientError> {
        self.send(method, &params)
    }

    /// Calls method `M` and decodes its declared result type.
    pub fn request<M: Method>(&mut self, params: &M::Params) -> Result<M::Result, ClientError> {
        self.send(M::NAME, params)
    }

    /// Calls method `M` and decodes its result as `T` instead: a `Value` to
    /// show the reply exactly as it came, or a narrower type (a
    /// `session.list` with `fields`).
    pub fn request_as<M: Method, T: DeserializeOwned>(
        &mut self,
        params: &M::Params,
    ) -> Result<T, ClientError> {
        self.send(M::NAME, params)
    }

    /// Sends a request for method `M` without waiting: its reply comes as
    /// an [`Incoming::Reply`] with the id returned here, from
    /// [`Client::next`] or [`Client::take`].
    pub fn start<M: Method>(&mut self, params: &M::Params) -> Result<u64, ClientError> {
        let (id, line) = self.encode(M::NAME, params)?;
        match self.write_line(&line) {
            Ok(()) => Ok(id),
            Err(e) if is_timeout(&e) => Err(self.timeout(self.reply_timeout.unwrap_or_default())),
            Err(e) => {
                Err(ClientError::Closed { path: self.path.clone(), reason: Some(e.to_string()) })
            }
        }
    }

    /// The next message that is not the reply of a blocking call: one kept
    /// while such a call waited, else one received within `timeout`
    /// (`None`: no bound). `Ok(None)`: nothing within `timeout`.
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Incoming>, ClientError> {
        if let Some(incoming) = self.take()? {
            return Ok(Some(incoming));
        }
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        match self.read_line(deadline, &Ok(()))? {
            Some(line) => incoming::decode(&line).map(Some),
            None => Ok(None),
        }
    }

    /// A message already received, without reading: for a loop that polls
    /// this client's fd ([`AsFd`]) with others. Call it until `None` after
    /// each [`Client::receive`], and before polling again.
    pub fn take(&mut self) -> Result<Option<Incoming>, ClientError> {
        if let Some(line) = self.queued.pop_front() {
            self.queued_bytes -= line.len();
            return incoming::decode(&line).map(Some);
        }
        match self.lines.next_line() {
            Some(line) => incoming::decode(&line?).map(Some),
            None => Ok(None),
        }
    }

    /// Whether [`Client::take`] has something without reading.
    pub fn has_incoming(&self) -> bool {
        !self.queued.is_empty() || self.lines.has_line()
    }

    /// One read of what the daemon sent (call it when the fd is readable:
    /// it blocks otherwise). [`ClientError::Closed`] when the daemon closed
    /// the connection.
    pub fn receive(&mut self) -> Result<(), ClientError> {
        self.stream.set_read_timeout(None).map_err(|e| ClientError::Protocol(e.to_string()))?;
        loop {
            let closed = |reason| ClientError::Closed { path: self.path.clone(), reason };
            return match self.lines.fill(&self.stream) {
                Ok(0) => Err(closed(None)),
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(closed(Some(e.to_string()))),
            };
        }
    }

    /// A request line with a fresh id.
    fn encode<P: Serialize + ?Sized>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<(u64, String), ClientError> {
        #[derive(Serialize)]
        struct Call<'a, P: ?Sized> {
            jsonrpc: &'static str,
            method: &'a str,
            params: &'a P,
            id: u64,
        }
        let id = self.next_id;
        self.next_id += 1;
        let request = Call { jsonrpc: "2.0", method, params, id };
        let line = serde_json::to_string(&request)
            .map_err(|e| ClientError::Protocol(format!("encoding the params: {e}")))?;
        Ok((id, line))
    }

    /// One request and its reply: params serialised straight into the line,
    /// the result decoded straight into `T`. Other messages that arrive
    /// first are kept for [`Client::next`].
    fn send<P: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<T, ClientError> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "T: Deserialize<'de>"))]
        struct Reply<T> {
            #[serde(default, deserialize_with = "present")]
            id: Option<Value>,
            #[serde(default, deserialize_with = "present")]
            result: Option<T>,
            error: Option<RpcError>,
        }
        /// Just enough of a message to tell whose it is.
        #[derive(Deserialize)]
        struct Header {
            #[serde(default, deserialize_with = "present")]
            id: Option<Value>,
        }
        let (id, line) = self.encode(method, params)?;
        let deadline = self.reply_timeout.map(|t| (Instant::now() + t, t));
        let written = self.write_line(&line);
        if let (Err(e), Some((_, after))) = (&written, deadline) {
            if is_timeout(e) {
                return Err(self.timeout(after));
            }
        }
        // A reply to an earlier `start`ed request, or a notification.
        let earlier = |v: &Option<Value>| match v {
            None => true,
            Some(v) => v.as_u64().is_some_and(|other| other < id),
        };
        loop {
            let Some(text) = self.read_line(deadline, &written)? else {
                return Err(self.timeout(deadline.map_or(Duration::ZERO, |d| d.1)));
            };
            // Decoded straight into T first: the common case costs one pass.
            let reply = match serde_json::from_str::<Reply<T>>(&text) {
                Ok(reply) => reply,
                Err(e) => match serde_json::from_str::<Header>(&text) {
                    Ok(h) if earlier(&h.id) => {
                        self.queue(text)?;
                        continue;
                    }
                    _ => {
                        return Err(ClientError::Protocol(format!(
                            "bad reply: {e}: {}",
                            text.trim_end()
                        )))
                    }
                },
            };
            let refused = reply.id == Some(Value::Null) && reply.error.is_some();
            if reply.id != Some(json!(id)) && !refused {
                if earlier(&reply.id) {
                    self.queue(text)?;
                    continue;
                }
                return Err(ClientError::Protocol(format!(
                    "reply for another request: {}",
                    text.trim_end()
                )));
            }
            if let Some(error) = reply.error {
                return Err(ClientError::Rpc(error));
            }
            return reply
                .result
                .ok_or_else(|| ClientError::Protocol("reply has neither result nor error".into()));
        }
    }
}

impl AsFd for Client {
    /// The socket, to poll for [`Client::receive`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A Unix-socket connect that gives up at `deadline`. A blocking connect
/// waits without bound while the listener's backlog is full; a non-blocking
/// one says `EAGAIN` then (it has no "in progress" state to poll on a Unix
/// socket), so it is retried with a short backoff. `Err(None)`: timed out.
fn connect_before(path: &Path, deadline: Instant) -> Result<UnixStream, Option<std::io::Error>> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path).map_err(|e| Some(e.into()))?;
    let mut pause = CONNECT_RETRY.0;
    loop {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Some(e.into()))?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false).map_err(Some)?;
                return Ok(stream);
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Some(e.into())),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(None);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(CONNECT_RETRY.1);
    }
}
