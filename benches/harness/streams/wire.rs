//! A JSON-RPC connection to the daemon that also receives notifications
//! (`session.output`, `session.reset`, `session.exit`), for the stream
//! figures: `ccmanagerd::client::Client` is one request, one reply, and
//! would take a notification for the reply. Requests can be sent without
//! waiting (acks while reading at full speed); replies and notifications
//! come back in arrival order from [`Wire::next`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use ccmanagerd::protocol::streams::{notification, Output};

/// Longest the harness waits for any one line from the daemon.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One line from the daemon.
pub enum Msg {
    /// The reply to request `id`: its result, or the error object.
    Reply { id: u64, result: std::result::Result<Box<RawValue>, Value> },
    /// A `session.output` notification, decoded.
    Output(Output),
    /// Any other notification.
    Note { method: String, params: Option<Box<RawValue>> },
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Value>,
}

/// A connection that sends requests and reads replies and notifications.
pub struct Wire {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    line: Vec<u8>,
    /// Messages read while [`Wire::call`] waited for its reply.
    queued: VecDeque<Msg>,
}

impl Wire {
    /// Connects to the daemon's socket.
    pub fn connect(socket: &Path) -> Result<Wire> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Wire {
            reader: BufReader::with_capacity(1 << 20, stream),
            writer,
            next_id: 1,
            line: Vec::with_capacity(1 << 20),
            queued: VecDeque::new(),
        })
    }

    /// Sends a request without waiting; returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )?;
        line.push(b'\n');
        self.writer.write_all(&line).with_context(|| format!("sending {method}"))?;
        Ok(id)
    }

    /// The next reply or notification (queued ones first).
    pub fn next(&mut self) -> Result<Msg> {
        if let Some(m) = self.queued.pop_front() {
            return Ok(m);
        }
        self.read()
    }

    fn read(&mut self) -> Result<Msg> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line).context("reading from the daemon")?;
        if n == 0 {
            bail!("the daemon closed the connection");
        }
        let l: Line = serde_json::from_slice(&self.line).with_context(|| {
            format!(
                "bad line from the daemon: {}",
                String::from_utf8_lossy(&self.line[..n.min(200)])
            )
        })?;
        if let Some(method) = l.method {
            if method == notification::OUTPUT {
                let params = l.params.context("session.output without params")?;
                return Ok(Msg::Output(serde_json::from_str(params.get())?));
            }
            return Ok(Msg::Note { method, params: l.params });
        }
        let id = l.id.context("a reply without an id")?;
        let result = match (l.result, l.error) {
            (_, Some(e)) => Err(e),
            (Some(r), None) => Ok(r),
            (None, None) => bail!("reply {id} has neither result nor error"),
        };
        Ok(Msg::Reply { id, result })
    }

    /// Sends a request and waits for its reply; notifications arriving
    /// meanwhile are kept for [`Wire::next`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let want = self.send(method, params)?;
        loop {
            match self.read()? {
                Msg::Reply { id, result } if id == want => {
                    return match result {
                        Ok(r) => Ok(serde_json::from_str(r.get())?),
                        Err(e) => bail!("{method}: {}", e["message"].as_str().unwrap_or("error")),
                    };
                }
                m => self.queued.push_back(m),
            }
        }
    }
}

/// Fails on an error reply (for requests sent with [`Wire::send`]).
pub fn check(id: u64, result: &std::result::Result<Box<RawValue>, Value>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) => bail!("request {id} failed: {e}"),
    }
}

/// Finds `marker` in a stream fed chunk by chunk (it may straddle chunks).
pub struct Finder {
    marker: Vec<u8>,
    tail: Vec<u8>,
}

impl Finder {
    /// Looks for `marker` (not empty).
    pub fn new(marker: &[u8]) -> Finder {
        Finder { marker: marker.to_vec(), tail: Vec::new() }
    }

    /// Feeds the next chunk; true once the marker has been seen.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let m = self.marker.len();
        let head = &chunk[..chunk.len().min(m - 1)];
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(head);
        if contains(&joined, &self.marker) || contains(chunk, &self.marker) {
            return true;
        }
        let keep = m - 1;
        if chunk.len() >= keep {
            self.tail = chunk[chunk.len() - keep..].to_vec();
        } else {
            let start = joined.len().saturating_sub(keep);
            self.tail = joined[start..].to_vec();
        }
        false
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let first = needle[0];
    hay.len() >= needle.len()
        && (0..=hay.len() - needle.len())
            .any(|i| hay[i] == first && &hay[i..i + needle.len()] == needle)
}
