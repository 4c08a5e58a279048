//! `session.*` methods: thin adapters from params to the registry, with the
//! caller's credentials for owner isolation.

use super::{Ctx, Encoded};
use crate::error::{Error, Result};
use crate::protocol::methods::{
    SessionCapture, SessionCreate, SessionId, SessionList, SessionResize, SessionRestart,
    SessionSend,
};
use crate::protocol::results::{AttachResult, CaptureResult, KillResult, SendResult};
use crate::protocol::types::{Session, SessionField};

/// `session.create`.
pub async fn create(ctx: &Ctx<'_>, p: SessionCreate) -> Result<Session> {
    let metrics = &ctx.service.metrics;
    ctx.service
        .sessions
        .create(&ctx.caller, &ctx.config, p, |limit| metrics.limit_rejected(limit))
        .await
}

/// `session.restart`.
pub async fn restart(ctx: &Ctx<'_>, p: SessionRestart) -> Result<Session> {
    ctx.service.sessions.restart(&ctx.caller, &ctx.config, &p.id, p.resume).await
}

/// `session.list`.
pub fn list(ctx: &Ctx<'_>, p: SessionList) -> Result<Encoded> {
    let fields = p.fields.as_deref().unwrap_or(&SessionField::ALL);
    if fields.is_empty() {
        return Err(Error::InvalidParams(
            "fields: name at least one field, or leave it out".into(),
        ));
    }
    ctx.service.sessions.list_encoded(&ctx.caller, p.state, fields)
}

/// `session.get`.
pub fn get(ctx: &Ctx<'_>, p: SessionId) -> Result<Session> {
    ctx.service.sessions.get(&ctx.caller, &p.id)
}

/// `session.kill`.
pub async fn kill(ctx: &Ctx<'_>, p: SessionId) -> Result<KillResult> {
    tracing::info!(session_id = %p.id, peer_uid = ctx.peer.uid, "uid {} asked to kill session {}", ctx.peer.uid, p.id);
    ctx.service.sessions.kill(&ctx.caller, &p.id, "killed").await?;
    Ok(KillResult { id: p.id, killed: true })
}

/// `session.send`.
pub async fn send(ctx: &Ctx<'_>, p: SessionSend) -> Result<SendResult> {
    let id = p.id.clone();
    ctx.service.sessions.send(&ctx.caller, p).await?;
    Ok(SendResult { id })
}

/// `session.capture`.
pub async fn capture(ctx: &Ctx<'_>, p: SessionCapture) -> Result<CaptureResult> {
    let id = p.id.clone();
    let (text, truncated) = ctx.service.sessions.capture(&ctx.caller, &ctx.config, p).await?;
    if truncated {
        ctx.service.metrics.budget_hit("daemon.max_capture_bytes");
    }
    Ok(CaptureResult { id, text, truncated })
}

/// `session.resize`.
pub async fn resize(ctx: &Ctx<'_>, p: SessionResize) -> Result<Session> {
    ctx.service.sessions.resize(&ctx.caller, &p.id, p.cols, p.rows).await
}

/// `session.attach`.
pub fn attach(ctx: &Ctx<'_>, p: SessionId) -> Result<AttachResult> {
    Ok(AttachResult { argv: ctx.service.sessions.attach(&ctx.caller, &p.id)? })
}
