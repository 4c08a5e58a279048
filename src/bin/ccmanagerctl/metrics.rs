//! `ccmanagerctl metrics`: `daemon.metrics`, the Prometheus text as is.

use ccmanagerd::protocol::method::DaemonMetrics;
use ccmanagerd::protocol::methods::NoParams;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(metrics) = ctl.call::<DaemonMetrics>(&NoParams {})? {
        out!("{}", metrics.text);
    }
    Ok(())
}
