//! `ccmanagerctl status`: `daemon.status`, then a table of the tmux servers
//! (one per session uid) and one of the owners with their session counts
//! (`session.list` with only `owner_uid` and `state`).

use std::collections::BTreeMap;

use serde::Deserialize;

use ccmanagerd::protocol::method::{DaemonStatus, SessionList};
use ccmanagerd::protocol::methods::{self, NoParams};
use ccmanagerd::protocol::types::{SessionField, Status};

use crate::output::{print_table, Ctl, Failure};

#[derive(Deserialize)]
struct Listed {
    sessions: Vec<OwnerState>,
}

#[derive(Deserialize)]
struct OwnerState {
    owner_uid: u32,
    state: String,
}

pub fn run(ctl: &mut Ctl) -> Result<(), Failure> {
    let Some(status) = ctl.call::<DaemonStatus>(&NoParams {})? else { return Ok(()) };
    let fields = Some(vec![SessionField::OwnerUid, SessionField::State]);
    let params = methods::SessionList { state: None, fields };
    let listed = ctl.client.request_as::<SessionList, Listed>(&params)?;
    print_status(&status, &listed.sessions);
    Ok(())
}

fn print_status(s: &Status, sessions: &[OwnerState]) {
    let up = humantime::format_duration(std::time::Duration::from_secs(s.uptime_s));
    outln!("ccmanagerd {} (pid {}), up {up}, health {}", s.version, s.pid, s.health);
    if let Some(sock) = &s.socket {
        outln!("socket:   {}", sock.display());
    }
    let c = &s.sessions;
    outln!(
        "sessions: {} total, {} running, {} exited, {} lost",
        c.total,
        c.running,
        c.exited,
        c.lost
    );
    outln!();
    if s.tmux.servers.is_empty() {
        outln!("tmux servers: none running (one starts with a user's first session)");
    } else {
        let version = s.tmux.version.as_deref().unwrap_or("tmux");
        outln!("tmux servers ({version}):");
        let mut rows =
            vec![["UID", "USER", "PID", "SESSIONS", "STATE", "SOCKET"].map(String::from).to_vec()];
        for t in &s.tmux.servers {
            rows.push(vec![
                t.uid.to_string(),
                t.user.clone(),
                t.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                t.sessions.to_string(),
                if t.alive { "alive" } else { "not answering" }.to_string(),
                t.socket.display().to_string(),
            ]);
        }
        print_table(&rows);
    }
    outln!();
    if sessions.is_empty() {
        outln!("owners: no sessions you can see");
        return;
    }
    // uid -> (running, exited, lost or other)
    let mut owners: BTreeMap<u32, [usize; 3]> = BTreeMap::new();
    for session in sessions {
        let counts = owners.entry(session.owner_uid).or_default();
        counts[match session.state.as_str() {
            "running" => 0,
            "exited" => 1,
            _ => 2,
        }] += 1;
    }
    outln!("owners:");
    let mut rows = vec![["UID", "USER", "RUNNING", "EXITED", "LOST"].map(String::from).to_vec()];
    for (uid, [running, exited, lost]) in owners {
        let user = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map_or_else(|| "-".to_string(), |u| u.name);
        rows.push(vec![
            uid.to_string(),
            user,
            running.to_string(),
            exited.to_string(),
            lost.to_string(),
        ]);
    }
    print_table(&rows);
}
