//! A small blocking JSON-RPC client over the control socket, used by
//! `ccmanagerctl` and the tests. One request at a time per connection.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::protocol::RpcError;

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
    /// The daemon answered with an error object.
    #[error("{}", .0.message)]
    Rpc(RpcError),
    /// The connection broke or the reply was not JSON-RPC.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A connection to the daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to `path`; `timeout` bounds each read and write.
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.to_path_buf(), source })?;
        let io = |e: std::io::Error| ClientError::Protocol(e.to_string());
        stream.set_read_timeout(timeout).map_err(io)?;
        stream.set_write_timeout(timeout).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Client { reader: BufReader::new(stream), writer, next_id: 1 })
    }

    /// Sends one raw line and reads one reply line.
    pub fn raw(&mut self, line: &str) -> Result<Value, ClientError> {
        let io = |e: std::io::Error| ClientError::Protocol(e.to_string());
        // A refused connection (permission, too many) gets one error reply and
        // is closed, possibly before our write: read that reply anyway.
        let written = self.writer.write_all(format!("{line}\n").as_bytes());
        let mut reply = String::new();
        match self.reader.read_line(&mut reply) {
            Ok(0) | Err(_) if written.is_err() => return Err(io(written.unwrap_err())),
            Ok(0) => return Err(ClientError::Protocol("the daemon closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(io(e)),
        }
        serde_json::from_str(&reply).map_err(|e| ClientError::Protocol(format!("bad reply: {e}")))
    }

    /// Calls `method` with `params` and returns the result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
        let mut reply = self.raw(&request.to_string())?;
        let refused = reply.get("id") == Some(&Value::Null) && reply.get("error").is_some();
        if reply.get("id") != Some(&json!(id)) && !refused {
            return Err(ClientError::Protocol(format!("reply for another request: {reply}")));
        }
        if let Some(error) = reply.get_mut("error") {
            let error: RpcError = serde_json::from_value(error.take())
                .map_err(|e| ClientError::Protocol(format!("bad error object: {e}")))?;
            return Err(ClientError::Rpc(error));
        }
        reply
            .get_mut("result")
            .map(Value::take)
            .ok_or_else(|| ClientError::Protocol("reply has neither result nor error".into()))
    }
}
