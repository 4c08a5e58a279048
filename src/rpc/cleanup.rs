//! `cleanup.run`: one reaper pass on demand, optionally as a dry run. Any
//! peer may trigger the pass (it applies the configured policy, nothing
//! more), but a non-admin sees only the removals of its own sessions.

use std::collections::BTreeSet;

use super::Ctx;
use crate::protocol::methods::CleanupRun;
use crate::protocol::types::CleanupReport;

/// `cleanup.run {dry_run}` -> `{removed: [{id, reason}], dry_run}`.
pub async fn run(ctx: &Ctx<'_>, p: CleanupRun) -> CleanupReport {
    tracing::info!(
        peer_uid = ctx.peer.uid,
        dry_run = p.dry_run,
        "uid {} asked for a cleanup (dry run: {})",
        ctx.peer.uid,
        p.dry_run
    );
    let s = ctx.service;
    let mine: BTreeSet<String> =
        s.sessions.list(&ctx.caller, None).into_iter().map(|s| s.id).collect();
    let mut report = s.reaper.run(&s.sessions, &s.config, &s.metrics, p.dry_run).await;
    if !ctx.caller.admin {
        report.removed.retain(|r| mine.contains(&r.id));
    }
    report
}
