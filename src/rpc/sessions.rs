//! `session.*` methods: thin adapters from params to the registry, with the
//! caller's credentials for owner isolation.

use super::{Ctx, Encoded};
use crate::error::{Error, Result};
use crate::protocol::methods::{
    SessionCapture, SessionCreate, SessionId, SessionList, SessionResize, SessionSend,
};
use crate::protocol::results::{AttachResult, CaptureResult, KillResult, SendResult};
use crate::protocol::types::{Session, SessionField};

/// `session.create`.
pub async fn create(ctx: &Ctx, p: SessionCreate) -> Result<Session> {
    let config = ctx.daemon.config();
    let metrics = &ctx.daemon.metrics;
    ctx.daemon.sessions.create(&ctx.peer, &config, p, |limit| metrics.limit_rejected(limit)).await
}

/// `session.list`.
pub fn list(ctx: &Ctx, p: SessionList) -> Result<Encoded> {
    let fields = p.fields.as_deref().unwrap_or(&SessionField::ALL);
    if fields.is_empty() {
        return Err(Error::InvalidParams(
            "fields: name at least one field, or leave it out".into(),
        ));
    }
    ctx.daemon.sessions.list_encoded(&ctx.peer, &ctx.daemon.config(), p.state, fields)
}

/// `session.get`.
pub fn get(ctx: &Ctx, p: SessionId) -> Result<Session> {
    ctx.daemon.sessions.get(&ctx.peer, &ctx.daemon.config(), &p.id)
}

/// `session.kill`.
pub async fn kill(ctx: &Ctx, p: SessionId) -> Result<KillResult> {
    tracing::info!(session_id = %p.id, peer_uid = ctx.peer.uid, "kill requested");
    ctx.daemon.sessions.kill(&ctx.peer, &ctx.daemon.config(), &p.id, "killed").await?;
    Ok(KillResult { id: p.id, killed: true })
}

/// `session.send`.
pub async fn send(ctx: &Ctx, p: SessionSend) -> Result<SendResult> {
    let id = p.id.clone();
    ctx.daemon.sessions.send(&ctx.peer, &ctx.daemon.config(), p).await?;
    Ok(SendResult { id })
}

/// `session.capture`.
pub async fn capture(ctx: &Ctx, p: SessionCapture) -> Result<CaptureResult> {
    let id = p.id.clone();
    let text = ctx.daemon.sessions.capture(&ctx.peer, &ctx.daemon.config(), p).await?;
    Ok(CaptureResult { id, text })
}

/// `session.resize`.
pub async fn resize(ctx: &Ctx, p: SessionResize) -> Result<Session> {
    ctx.daemon.sessions.resize(&ctx.peer, &ctx.daemon.config(), &p.id, p.cols, p.rows).await
}

/// `session.attach`.
pub fn attach(ctx: &Ctx, p: SessionId) -> Result<AttachResult> {
    Ok(AttachResult { argv: ctx.daemon.sessions.attach(&ctx.peer, &ctx.daemon.config(), &p.id)? })
}
