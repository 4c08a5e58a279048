//! `ccmanagerctl ping`: `daemon.ping`, prints `pong`.

use ccmanagerd::protocol::method::DaemonPing;
use ccmanagerd::protocol::methods::NoParams;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(pong) = ctl.call::<DaemonPing>(&NoParams {})? {
        outln!("{pong}");
    }
    Ok(())
}
