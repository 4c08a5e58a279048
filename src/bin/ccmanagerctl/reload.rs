//! `ccmanagerctl reload`: `daemon.reload` (same as `systemctl reload
//! ccmanagerd`): what was applied live and what waits for a restart.

use ccmanagerd::protocol::method::DaemonReload;
use ccmanagerd::protocol::methods::NoParams;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(reloaded) = ctl.call::<DaemonReload>(&NoParams {})? {
        if reloaded.applied.is_empty() && reloaded.needs_restart.is_empty() {
            outln!("reloaded: nothing changed");
        } else {
            outln!("reloaded");
        }
        for key in reloaded.applied {
            outln!("applied:       {key}");
        }
        for key in reloaded.needs_restart {
            outln!(
                "needs restart: {key} (takes effect at the next `systemctl restart ccmanagerd`)"
            );
        }
    }
    Ok(())
}
