//! `session.write`, `session.read` and the subscription methods.
//!
//! Scaffolding while issue 12 is built: each answers an internal error
//! until its branch lands (see docs/protocol.md, "Streams and logs").

use super::Ctx;
use crate::error::{Error, Result};
use crate::protocol::streams::{
    Empty, ReadResult, SessionAck, SessionRead, SessionSubscribe, SessionUnsubscribe, SessionWrite,
    SubscribeResult, WriteResult,
};

fn not_yet(method: &str) -> Error {
    Error::Internal(format!("{method} is not built yet"))
}

/// `session.write`.
pub async fn write(_ctx: &Ctx<'_>, _p: SessionWrite) -> Result<WriteResult> {
    Err(not_yet("session.write"))
}

/// `session.read`.
pub async fn read(_ctx: &Ctx<'_>, _p: SessionRead) -> Result<ReadResult> {
    Err(not_yet("session.read"))
}

/// `session.subscribe`.
pub async fn subscribe(_ctx: &Ctx<'_>, _p: SessionSubscribe) -> Result<SubscribeResult> {
    Err(not_yet("session.subscribe"))
}

/// `session.ack`.
pub fn ack(_ctx: &Ctx<'_>, _p: SessionAck) -> Result<Empty> {
    Err(not_yet("session.ack"))
}

/// `session.unsubscribe`.
pub fn unsubscribe(_ctx: &Ctx<'_>, _p: SessionUnsubscribe) -> Result<Empty> {
    Err(not_yet("session.unsubscribe"))
}
