//! `ccmanagerctl show ID`: every field `session.get` returns, one a line.
//! Printed from the reply as it came, not from the typed `Session`: a
//! field the daemon adds (restore, restart policy, ...) shows up without
//! a change here. Known fields come first in a fixed order, then the rest
//! alphabetically.

use serde_json::Value;

use ccmanagerd::protocol::method::SessionGet;
use ccmanagerd::protocol::methods::SessionId;

use crate::ls::printable;
use crate::output::{age, print_json, Ctl, Failure};

/// The order of the fields `show` knows; others follow.
const ORDER: &[&str] = &[
    "id",
    "name",
    "state",
    "state_reason",
    "exit_status",
    "command",
    "resume_command",
    "cwd",
    "pid",
    "uid",
    "user",
    "owner_uid",
    "cols",
    "rows",
    "created_at",
    "last_activity_at",
    "ended_at",
    "restart",
    "restarts",
    "restarted_at",
    "restart_reason",
    "restore",
    "restored_at",
    "keep",
    "limits",
    "env",
    "tmux_session",
    "adopted",
];

pub fn run(ctl: &mut Ctl, arg: &str) -> Result<(), Failure> {
    let id = crate::resolve::one(ctl, arg)?;
    let session = ctl.client.request_as::<SessionGet, Value>(&SessionId { id })?;
    if ctl.json {
        print_json(&session);
    } else {
        print_session(&session);
    }
    Ok(())
}

/// `key: value` lines, aligned.
pub fn print_session(session: &Value) {
    let Some(fields) = session.as_object() else {
        print_json(session);
        return;
    };
    let mut keys: Vec<&String> = fields.keys().collect();
    let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0) + 1;
    for key in keys {
        let label = format!("{key}:");
        outln!("{label:<width$} {}", value_text(key, &fields[key.as_str()]));
    }
}

/// One field's value for a person: argv shell-quoted, times with their
/// age, nothing as `-`, anything else as compact JSON.
fn value_text(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if key.ends_with("_at") => {
            format!("{} ({} ago)", printable(s), age(Some(s)))
        }
        Value::String(s) => printable(s),
        Value::Array(items) if key.ends_with("command") && items.iter().all(Value::is_string) => {
            crate::ls::shell_words(items.iter().filter_map(Value::as_str))
        }
        // serde_json escapes every control character in strings.
        other => other.to_string(),
    }
}
