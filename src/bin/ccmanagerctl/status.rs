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
    if s.tmux.servers.is_empty() {
        println!("tmux:     no server running (one starts with a user's first session)");
    }
    for t in &s.tmux.servers {
        let pid = t.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
        let state = if t.alive { "alive" } else { "not answering" };
        println!(
            "tmux:     uid {} ({}): pid {pid}, {} sessions, {}, {state}",
            t.uid,
            t.user,
            t.sessions,
            t.socket.display()
        );
    }
    let c = &s.sessions;
    println!(
        "sessions: {} total, {} running, {} exited, {} lost",
        c.total, c.running, c.exited, c.lost
    );
}
