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

/// `session.read`: bytes of a session's log by offset (src/logs). A session
/// the caller may see (its owner or an admin), or, once removed (killed,
/// cleaned up) while its log stays, the log's: the directory's owner (the
/// daemon made it and chowned it, in a root-only directory) or an admin.
/// Anyone else gets "not found", as for an id that never existed.
pub async fn read(ctx: &Ctx<'_>, p: SessionRead) -> Result<ReadResult> {
    crate::sessions::validate::id(&p.id)?;
    let max = p.max_bytes.unwrap_or(DEFAULT_READ_BYTES);
    if max > MAX_READ_BYTES {
        return Err(Error::InvalidParams(format!(
            "max_bytes: {max} is above the bound of {MAX_READ_BYTES} (1 MiB)"
        )));
    }
    let known = ctx.service.sessions.registry().find(&ctx.caller, &p.id).map(drop);
    let dir = crate::logs::dir_of(&ctx.config, &p.id);
    let caller = ctx.caller;
    let offset = p.offset.unwrap_or(0);
    let id = p.id;
    let read = move || -> Result<ReadResult> {
        let chunk = match crate::logs::Log::open(&dir) {
            Ok(log) => {
                if let Err(hidden) = known {
                    let owner = log.owner().map_err(|e| Error::Internal(e.to_string()))?;
                    if !caller.admin && owner != caller.uid {
                        return Err(hidden);
                    }
                }
                log.read(offset, max as usize)
            }
            // A known session whose logger has not made its log yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                known?;
                crate::logs::Log::empty_read(offset)
            }
            Err(e) => Err(e),
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
