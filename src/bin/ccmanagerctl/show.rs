//! `ccmanagerctl show ID`: `session.get`, one field a line.

use ccmanagerd::protocol::method::SessionGet;
use ccmanagerd::protocol::methods::SessionId;
use ccmanagerd::protocol::types::Session;

use crate::output::{age, Ctl, Failure};

pub fn run(ctl: &mut Ctl, id: String) -> Result<(), Failure> {
    if let Some(session) = ctl.call::<SessionGet>(&SessionId { id })? {
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
}
