//! `ccmanagerctl reload`: `daemon.reload` (same as `systemctl reload
//! ccmanagerd`), naming the settings that wait for a restart.

use ccmanagerd::protocol::method::DaemonReload;
use ccmanagerd::protocol::methods::NoParams;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(reloaded) = ctl.call::<DaemonReload>(&NoParams {})? {
        println!("reloaded");
        for key in reloaded.needs_restart {
            println!("needs a restart to take effect: {key}");
        }
    }
    Ok(())
}
