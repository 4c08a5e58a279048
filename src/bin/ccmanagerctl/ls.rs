//! `ccmanagerctl ls`: `session.list` as a table.

use ccmanagerd::protocol::method::SessionList;
use ccmanagerd::protocol::methods;
use ccmanagerd::protocol::types::{Session, SessionState};

use crate::output::{age, usage, Ctl, Failure};

pub fn run(ctl: &mut Ctl, state: Option<String>) -> Result<(), Failure> {
    let state = state.map(|s| parse_state(&s)).transpose()?;
    let params = methods::SessionList { state, fields: None };
    if let Some(list) = ctl.call::<SessionList>(&params)? {
        print_table(&list.sessions);
    }
    Ok(())
}

/// A state word, refused with the daemon's own message for a bad one.
fn parse_state(s: &str) -> Result<SessionState, Failure> {
    serde_json::from_value(s.into()).map_err(|e| usage(format!("invalid params: state: {e}")))
}

fn print_table(sessions: &[Session]) {
    println!("{:<10} {:<16} {:<8} {:>7} {:>7}  COMMAND", "ID", "NAME", "STATE", "AGE", "IDLE");
    for s in sessions {
        let state = match (s.state.as_str(), s.exit_status) {
            ("exited", Some(code)) => format!("exit:{code}"),
            (st, _) => st.to_string(),
        };
        println!(
            "{:<10} {:<16} {:<8} {:>7} {:>7}  {}",
            s.id,
            s.name.as_deref().unwrap_or("-"),
            state,
            age(Some(&s.created_at)),
            age(s.last_activity_at.as_deref()),
            s.command.join(" ")
        );
    }
}
