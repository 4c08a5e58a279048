//! `ccmanagerctl cleanup [--dry-run]`: `cleanup.run`, one line per removal.

use ccmanagerd::protocol::method::CleanupRun;
use ccmanagerd::protocol::methods;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl, dry_run: bool) -> Result<(), Failure> {
    let Some(report) = ctl.call::<CleanupRun>(&methods::CleanupRun { dry_run })? else {
        return Ok(());
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    if report.removed.is_empty() {
        outln!("nothing to remove");
    }
    for r in report.removed {
        outln!("{verb} {} ({})", r.id, r.reason);
    }
    Ok(())
}
