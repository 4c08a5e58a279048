//! `ccmanagerctl status`: `daemon.status` as a few lines.

use ccmanagerd::protocol::method::DaemonStatus;
use ccmanagerd::protocol::methods::NoParams;
use ccmanagerd::protocol::types::Status;

use crate::output::{Ctl, Failure};

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    if let Some(status) = ctl.call::<DaemonStatus>(&NoParams {})? {
        print_status(&status);
    }
    Ok(())
}

fn print_status(s: &Status) {
    println!("ccmanagerd {} (pid {}), up {}s, health {}", s.version, s.pid, s.uptime_s, s.health);
    if let Some(sock) = &s.socket {
        println!("socket:   {}", sock.display());
    }
    match (s.tmux.pid, &s.tmux.socket) {
        (Some(pid), Some(sock)) => println!(
            "tmux:     pid {pid}, {}, {}",
            sock.display(),
            if s.tmux.alive { "alive" } else { "not answering" }
        ),
        _ => println!("tmux:     not running"),
    }
    let c = &s.sessions;
    println!(
        "sessions: {} total, {} running, {} exited, {} lost",
        c.total, c.running, c.exited, c.lost
    );
}
