//! A small blocking JSON-RPC client over the control socket, used by
//! `ccmanagerctl` and the tests. One request at a time per connection.
//! [`Client::request`] calls typed through the method table
//! (`client.request::<method::SessionGet>(&SessionId { id })` is a
//! `Session`); [`Client::call`] takes any method name and JSON params.
//!
//! Nothing here waits forever: the connect and each request (write and
//! whole reply) have deadlines, so a socket whose daemon does not accept
//! (a socket-activated service failing to start keeps connections in the
//! backlog) or does not answer is a [`ClientError::Timeout`].

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::protocol::{Method, RpcError};

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
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: PathBuf,
    /// Bounds each request: writing it and reading the whole reply.
    reply_timeout: Option<Duration>,
    next_id: u64,
}

/// Between tries of a connect that found the backlog full.
const CONNECT_RETRY: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(200));

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
        let writer = stream.try_clone().map_err(io)?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            path: path.to_owned(),
            reply_timeout,
            next_id: 1,
        })
    }

    /// Writes one line and reads one reply line, within the reply timeout.
    fn exchange(&mut self, line: &str) -> Result<String, ClientError> {
        let deadline = self.reply_timeout.map(|t| (Instant::now() + t, t));
        let timeout =
            |after| ClientError::Timeout { path: self.path.clone(), stage: Stage::Reply, after };
        // A refused connection (permission, too many) gets one error reply and
        // is closed, possibly before our write: read that reply anyway.
        let written = self.writer.write_all(format!("{line}\n").as_bytes());
        if let (Err(e), Some((_, after))) = (&written, deadline) {
            if is_timeout(e) {
                return Err(timeout(after));
            }
        }
        let mut reply = Vec::new();
        loop {
            if let Some((at, after)) = deadline {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timeout(after));
                }
                let set = self.reader.get_ref().set_read_timeout(Some(left));
                set.map_err(|e| ClientError::Protocol(e.to_string()))?;
            }
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(timeout(deadline.map_or(Duration::ZERO, |d| d.1)))
                }
                Err(e) => {
                    let reason = written.err().unwrap_or(e).to_string();
                    return Err(ClientError::Closed {
                        path: self.path.clone(),
                        reason: Some(reason),
                    });
                }
            };
            if available.is_empty() {
                let reason = written.err().map(|e| e.to_string());
                return Err(ClientError::Closed { path: self.path.clone(), reason });
            }
            match available.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    reply.extend_from_slice(&available[..=i]);
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = available.len();
                    reply.extend_from_slice(available);
                    self.reader.consume(n);
                }
            }
        }
        String::from_utf8(reply).map_err(|_| ClientError::Protocol("the reply is not UTF-8".into()))
    }

    /// Sends one raw line and reads one reply line.
    pub fn raw(&mut self, line: &str) -> Result<Value, ClientError> {
        let reply = self.exchange(line)?;
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

    /// One request and its reply: params serialised straight into the line,
    /// the result decoded straight into `T`.
    fn send<P: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<T, ClientError> {
        #[derive(Serialize)]
        struct Call<'a, P: ?Sized> {
            jsonrpc: &'static str,
            method: &'a str,
            params: &'a P,
            id: u64,
        }
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "T: Deserialize<'de>"))]
        struct Reply<T> {
            #[serde(default, deserialize_with = "present")]
            id: Option<Value>,
            #[serde(default, deserialize_with = "present")]
            result: Option<T>,
            error: Option<RpcError>,
        }
        /// A field that is there, even as `null`, is `Some`.
        fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            T::deserialize(d).map(Some)
        }
        let id = self.next_id;
        self.next_id += 1;
        let request = Call { jsonrpc: "2.0", method, params, id };
        let line = serde_json::to_string(&request)
            .map_err(|e| ClientError::Protocol(format!("encoding the params: {e}")))?;
        let text = self.exchange(&line)?;
        let reply: Reply<T> = serde_json::from_str(&text)
            .map_err(|e| ClientError::Protocol(format!("bad reply: {e}: {}", text.trim_end())))?;
        let refused = reply.id == Some(Value::Null) && reply.error.is_some();
        if reply.id != Some(json!(id)) && !refused {
            return Err(ClientError::Protocol(format!(
                "reply for another request: {}",
                text.trim_end()
            )));
        }
        if let Some(error) = reply.error {
            return Err(ClientError::Rpc(error));
        }
        reply
            .result
            .ok_or_else(|| ClientError::Protocol("reply has neither result nor error".into()))
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
