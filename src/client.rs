//! A small blocking JSON-RPC client over the control socket, used by
//! `ccmanagerctl` and the tests. One request at a time per connection.
//! [`Client::request`] calls typed through the method table
//! (`client.request::<method::SessionGet>(&SessionId { id })` is a
//! `Session`); [`Client::call`] takes any method name and JSON params.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::protocol::{Method, RpcError};

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

    /// Writes one line and reads one reply line.
    fn exchange(&mut self, line: &str) -> Result<String, ClientError> {
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
        Ok(reply)
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
