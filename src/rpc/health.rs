//! `health.check`: every check, with a timed round trip to each tmux server.

use super::Ctx;
use crate::protocol::types::Health;

/// `health.check` -> `{status, checks: [{name, ok, status, detail, ...}]}`.
pub async fn check(ctx: &Ctx<'_>) -> Health {
    ctx.service.health.evaluate().await
}
