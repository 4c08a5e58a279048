//! `cleanup.run`: one reaper pass on demand, optionally as a dry run. Any
//! peer may trigger the pass (it applies the configured policy, nothing
//! more), but a non-admin sees only the removals of its own sessions.

use std::collections::BTreeSet;

use super::Ctx;
use crate::protocol::methods::CleanupRun;
use crate::protocol::types::CleanupReport;

/// `cleanup.run {dry_run}` -> `{removed: [{id, reason}], dry_run}`.
pub async fn run(ctx: &Ctx, p: CleanupRun) -> CleanupReport {
    let config = ctx.daemon.config();
    tracing::info!(peer_uid = ctx.peer.uid, dry_run = p.dry_run, "cleanup requested over RPC");
    let admin = ctx.peer.is_admin(&config);
    let mine: BTreeSet<String> =
        ctx.daemon.sessions.list(&ctx.peer, &config, None).into_iter().map(|s| s.id).collect();
    let mut report = ctx.daemon.reaper.run(&ctx.daemon, p.dry_run).await;
    if !admin {
        report.removed.retain(|r| mine.contains(&r.id));
    }
    report
}
