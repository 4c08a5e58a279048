//! One client connection: newline-delimited JSON-RPC with a size cap (each
//! message read into a fresh buffer), requests served concurrently up to a
//! per-connection bound, replies written by a single writer task, an idle
//! timeout, and a graceful drain on shutdown.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{ActiveGuard, Peer};
use crate::daemon::Daemon;
use crate::protocol::envelope::{self, batch, failure, success, Call, Item, Message, RpcError};
use crate::protocol::Request;
use crate::rpc::{dispatch, Ctx};

/// During shutdown, how long a connection may stay silent before it is
/// closed (requests already on the wire are still served).
const DRAIN_READ_GRACE: std::time::Duration = std::time::Duration::from_millis(100);
/// Replies queued for the writer before request tasks wait.
const REPLY_QUEUE: usize = 64;

/// Outcome of reading one line.
enum Line {
    /// A complete message (without the newline).
    Message(Vec<u8>),
    /// The message grew past the cap before its newline.
    TooLong,
    /// The peer closed the connection.
    Eof,
}

/// Reads up to and excluding `\n` into a fresh buffer, at most `max` bytes.
/// A final line without newline at EOF still counts as a message.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() { Line::Eof } else { Line::Message(buf) });
        }
        let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if buf.len() + chunk.len() > max {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(chunk);
        let consumed = found.unwrap_or(available.len());
        reader.consume(consumed);
        if found.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Message(buf));
        }
    }
}

/// Serves a connection until EOF, error, idle timeout or shutdown.
pub async fn serve_connection(
    daemon: Arc<Daemon>,
    stream: UnixStream,
    peer: Peer,
    _active: ActiveGuard,
) {
    let span = tracing::info_span!("conn", peer_uid = peer.uid, peer_pid = peer.pid);
    async move {
        let (read_half, mut write_half) = stream.into_split();
        let mut reader = BufReader::new(read_half);
        let (tx, mut rx) = mpsc::channel::<String>(REPLY_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if write_half.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            let _ = write_half.shutdown().await;
        });
        let ctx = Arc::new(Ctx { daemon: daemon.clone(), peer });
        let config = daemon.config();
        let inflight = Arc::new(Semaphore::new(config.daemon.max_inflight_per_connection));
        let mut tasks = JoinSet::new();
        let mut shutdown = daemon.shutdown.listener();
        // On shutdown a connection is drained, not cut: requests the client
        // already sent are still read and answered.
        let mut draining = false;
        loop {
            let config = daemon.config();
            let idle = if draining { DRAIN_READ_GRACE } else { config.daemon.idle_timeout.0 };
            let line = tokio::select! {
                _ = shutdown.wait(), if !draining => {
                    draining = true;
                    continue;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                read = tokio::time::timeout(idle, read_line(&mut reader, config.daemon.max_message_bytes)) => read,
            };
            let bytes = match line {
                Err(_) if !tasks.is_empty() && !draining => continue,
                Err(_) => {
                    tracing::debug!("closing idle connection");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read error");
                    break;
                }
                Ok(Ok(Line::Eof)) => break,
                Ok(Ok(Line::TooLong)) => {
                    let max = config.daemon.max_message_bytes;
                    tracing::warn!(max, "message over the size cap; closing connection");
                    let err = RpcError::invalid_request(format!(
                        "invalid request: message exceeds daemon.max_message_bytes = {max} bytes"
                    ));
                    let _ = tx.send(line_of(failure(&Value::Null, &err))).await;
                    break;
                }
                Ok(Ok(Line::Message(bytes))) => bytes,
            };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(permit) = inflight.clone().acquire_owned().await else { break };
            let (ctx, tx) = (ctx.clone(), tx.clone());
            tasks.spawn(async move {
                if let Some(reply) = handle_message(&ctx, &bytes).await {
                    let _ = tx.send(line_of(reply)).await;
                }
                drop(permit);
            });
        }
        // Finish what is in flight; the accept loop bounds the total wait.
        while tasks.join_next().await.is_some() {}
        drop(tx);
        let _ = writer.await;
    }
    .instrument(span)
    .await
}

fn line_of(mut reply: String) -> String {
    reply.push('\n');
    reply
}

/// Serves one message (single or batch); `None` when nothing is to be sent.
async fn handle_message(ctx: &Ctx, bytes: &[u8]) -> Option<String> {
    match envelope::parse_message(bytes) {
        Message::Single(item) => handle_item(ctx, item).await,
        Message::Batch(items) => {
            let replies: Vec<String> =
                futures::future::join_all(items.into_iter().map(|i| handle_item(ctx, i)))
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
            (!replies.is_empty()).then(|| batch(&replies))
        }
    }
}

async fn handle_item(ctx: &Ctx, item: Item) -> Option<String> {
    match item {
        Item::Invalid { id, error } => {
            tracing::debug!(code = error.code, message = %error.message, "invalid message");
            Some(failure(&id, &error))
        }
        Item::Call(call) => handle_call(ctx, call).await,
    }
}

async fn handle_call(ctx: &Ctx, call: Call) -> Option<String> {
    let Call { id, method, params } = call;
    let request = match Request::parse(&method, params) {
        Ok(r) => r,
        Err(error) => {
            tracing::debug!(method = %method, code = error.code, "rejected: {}", error.message);
            return id.map(|id| failure(&id, &error));
        }
    };
    let name = request.method();
    let started = Instant::now();
    let result = dispatch(ctx, request).await;
    let took = started.elapsed();
    ctx.daemon.metrics.request(name, result.is_ok(), took);
    match &result {
        Ok(_) => tracing::debug!(
            method = name,
            peer_uid = ctx.peer.uid,
            peer_pid = ctx.peer.pid,
            took_us = took.as_micros() as u64,
            "request served"
        ),
        Err(e) => {
            tracing::info!(method = name, peer_uid = ctx.peer.uid, peer_pid = ctx.peer.pid, error = %e, "request failed")
        }
    }
    let id = id?;
    Some(match result {
        Ok(value) => success(&id, &value),
        Err(e) => failure(&id, &RpcError::from(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            match read_line(&mut r, max).await.unwrap() {
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
    async fn stops_at_the_cap() {
        assert_eq!(lines(b"12345\n123456789\n", 5).await, vec!["12345", "<too long>"]);
    }
}
