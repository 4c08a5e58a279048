//! `cleanup.run`: one reaper pass on demand, optionally as a dry run.

use super::Ctx;
use crate::protocol::methods::CleanupRun;
use crate::protocol::types::CleanupReport;

/// `cleanup.run {dry_run}` -> `{removed: [{id, reason}], dry_run}`.
pub async fn run(ctx: &Ctx, p: CleanupRun) -> CleanupReport {
    tracing::info!(peer_uid = ctx.peer.uid, dry_run = p.dry_run, "cleanup requested over RPC");
    ctx.daemon.reaper.run(&ctx.daemon, p.dry_run).await
}
