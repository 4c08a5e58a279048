//! `health.check`: every check, with a timed round trip to the tmux server.

use super::Ctx;
use crate::protocol::types::Health;

/// `health.check` -> `{status, checks: [{name, ok, status, detail, ...}]}`.
pub async fn check(ctx: &Ctx) -> Health {
    crate::health::evaluate(&ctx.daemon).await
}
