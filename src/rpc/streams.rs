//! `session.write`, `session.read` and the subscription methods: thin
//! adapters to the logs (src/logs) and the streams (src/streams), whose
//! subscriptions live on the caller's connection (`ctx.outlet`).

use super::Ctx;
use crate::error::{Error, Result};
use crate::protocol::streams::{
    Bytes, Empty, ReadResult, SessionAck, SessionRead, SessionSubscribe, SessionUnsubscribe,
    SessionWrite, SubscribeResult, WriteResult,
};

/// `session.write`.
pub async fn write(ctx: &Ctx<'_>, p: SessionWrite) -> Result<WriteResult> {
    let (id, bytes) = crate::streams::input::bytes_of(p)?;
    ctx.service.streams.write(&ctx.config, &ctx.caller, &id, &bytes).await?;
    Ok(WriteResult { id })
}

/// `session.read`'s `max_bytes` when the request names none.
pub const DEFAULT_READ_BYTES: u32 = 64 << 10;
/// Largest `max_bytes` of one `session.read`.
pub const MAX_READ_BYTES: u32 = 1 << 20;

/// `session.read`: bytes of a session's log by offset (src/logs), for
/// whoever may open that log (`Streams::log_of`: the session's owner, the
/// log directory's owner once the session is removed, an admin).
pub async fn read(ctx: &Ctx<'_>, p: SessionRead) -> Result<ReadResult> {
    let max = p.max_bytes.unwrap_or(DEFAULT_READ_BYTES);
    if max > MAX_READ_BYTES {
        return Err(Error::InvalidParams(format!(
            "max_bytes: {max} is above the bound of {MAX_READ_BYTES} (1 MiB)"
        )));
    }
    let log = ctx.service.streams.log_of(&ctx.config, &ctx.caller, &p.id).await?;
    // The bytes a read will hold count against the caller's budget until
    // its reply is taken (they wait in the call while the connection's
    // outbox is full): without it, 32 connections of 64 reads each held 2
    // GiB for a client that never read its replies.
    let _budget = ctx.service.streams.read_budget(ctx.caller.uid, max).await?;
    let offset = p.offset.unwrap_or(0);
    let id = p.id;
    let read = move || -> Result<ReadResult> {
        let chunk = match log {
            Some((log, _)) => log.read(offset, max as usize),
            // A known session whose logger has not made its log yet.
            None => crate::logs::Log::empty_read(offset),
        };
        let c = chunk.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => Error::InvalidParams(format!("offset: {e}")),
            _ => Error::Internal(format!("reading the log of session {id}: {e}")),
        })?;
        Ok(ReadResult {
            data: Bytes(c.data),
            offset: c.offset,
            next_offset: c.next_offset,
            first_offset: c.first_offset,
            end: c.end,
        })
    };
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| Error::Internal(format!("session.read: {e}")))?
}

/// `session.subscribe`.
pub async fn subscribe(ctx: &Ctx<'_>, p: SessionSubscribe) -> Result<SubscribeResult> {
    ctx.service.streams.subscribe(ctx.outlet, &ctx.config, &ctx.caller, p).await
}

/// `session.ack`.
pub fn ack(ctx: &Ctx<'_>, p: SessionAck) -> Result<Empty> {
    ctx.service.streams.ack(ctx.outlet, p.subscription, p.offset)?;
    Ok(Empty {})
}

/// `session.unsubscribe`.
pub fn unsubscribe(ctx: &Ctx<'_>, p: SessionUnsubscribe) -> Result<Empty> {
    ctx.service.streams.unsubscribe(ctx.outlet, p.subscription)?;
    Ok(Empty {})
}
