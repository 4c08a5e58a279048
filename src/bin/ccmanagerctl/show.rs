//! `ccmanagerctl show ID`: `session.get`, one field a line; `ccmanagerctl
//! restart ID`: `session.restart`, then the same.

use ccmanagerd::protocol::method::{SessionGet, SessionRestart};
use ccmanagerd::protocol::methods::{self, SessionId};
use ccmanagerd::protocol::types::Session;

use crate::output::{age, Ctl, Failure};

pub fn run(ctl: &mut Ctl, id: String) -> Result<(), Failure> {
    if let Some(session) = ctl.call::<SessionGet>(&SessionId { id })? {
        print_session(&session);
    }
    Ok(())
}

pub fn restart(ctl: &mut Ctl, id: String, resume: bool) -> Result<(), Failure> {
    if let Some(session) = ctl.call::<SessionRestart>(&methods::SessionRestart { id, resume })? {
        print_session(&session);
    }
    Ok(())
}

fn print_session(s: &Session) {
    println!("id:            {}", s.id);
    println!("name:          {}", s.name.as_deref().unwrap_or("-"));
    println!("tmux session:  {}", s.tmux_session);
    println!("command:       {}", serde_json::to_string(&s.command).unwrap_or_default());
    println!(
        "cwd:           {}",
        s.cwd.as_ref().map(|p| p.display().to_string()).unwrap_or("-".into())
    );
    println!("state:         {}", s.state.as_str());
    if let Some(code) = s.exit_status {
        println!("exit status:   {code}");
    }
    println!("pid:           {}", s.pid.map(|p| p.to_string()).unwrap_or("-".into()));
    println!("created:       {} ({} ago)", s.created_at, age(Some(&s.created_at)));
    println!("last activity: {}", s.last_activity_at.as_deref().unwrap_or("-"));
    println!("owner uid:     {}", s.owner_uid);
    println!("keep:          {}", s.keep);
    println!("limits:        {}", serde_json::to_string(&s.limits).unwrap_or_default());
    println!("restore:       {}", word(&s.restore));
    if let Some(argv) = &s.resume_command {
        println!("resume:        {}", serde_json::to_string(argv).unwrap_or_default());
    }
    println!("restart:       {}", word(&s.restart));
    println!("restarts:      {}", s.restarts);
    if let Some(at) = &s.restarted_at {
        let why = s.restart_reason.map(|r| r.as_str()).unwrap_or("-");
        println!("restarted:     {at} ({why})");
    }
    if let Some(at) = &s.restored_at {
        println!("restored:      {at}");
    }
    if let Some(why) = &s.state_reason {
        println!("state reason:  {why}");
    }
}

/// A policy's wire word (`on_boot`).
fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}
