//! `ccmanagerctl health`: `health.check`, one line per check.

use ccmanagerd::protocol::method::HealthCheck;
use ccmanagerd::protocol::methods::NoParams;
use ccmanagerd::protocol::types::Health;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(health) = ctl.call::<HealthCheck>(&NoParams {})? {
        print_health(&health);
    }
    Ok(())
}

fn print_health(h: &Health) {
    println!("health: {}", h.status);
    for c in &h.checks {
        println!("  {:<8} {:<16} {}", c.status, c.name, c.detail);
    }
}
