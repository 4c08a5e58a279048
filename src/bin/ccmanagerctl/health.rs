//! `ccmanagerctl health`: `health.check`, one aligned row per check.

use ccmanagerd::protocol::method::HealthCheck;
use ccmanagerd::protocol::methods::NoParams;
use ccmanagerd::protocol::types::Health;

use crate::output::{print_table, Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(health) = ctl.call::<HealthCheck>(&NoParams {})? {
        print_health(&health);
    }
    Ok(())
}

fn print_health(h: &Health) {
    outln!("health: {}", h.status);
    let mut rows = vec![["CHECK", "STATUS", "DETAIL"].map(String::from).to_vec()];
    for c in &h.checks {
        rows.push(vec![c.name.clone(), c.status.clone(), c.detail.clone()]);
    }
    print_table(&rows);
}
