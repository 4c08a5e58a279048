//! Sessions by id, id prefix or name, everywhere the CLI takes one.
//! Resolved here, from `session.list` with only `id` and `name` (the
//! daemon takes exact ids only): an exact id wins, then an exact name,
//! then a unique id prefix. Several sessions matching (a shared name, a
//! short prefix) is an error listing them; no match goes to the daemon
//! as typed, so its `session_not_found` answers.

use serde::Deserialize;

use ccmanagerd::protocol::method::SessionList;
use ccmanagerd::protocol::methods;
use ccmanagerd::protocol::types::SessionField;

use crate::output::{usage, Ctl, Failure};

#[derive(Deserialize)]
struct Listed {
    sessions: Vec<IdName>,
}

#[derive(Deserialize, Clone)]
struct IdName {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

/// The id `arg` names, for one session argument.
pub fn one(ctl: &mut Ctl, arg: &str) -> Result<String, Failure> {
    let list = listed(ctl)?;
    pick(&list, arg)
}

/// The ids `args` name, listing the sessions once.
pub fn many(ctl: &mut Ctl, args: &[String]) -> Result<Vec<String>, Failure> {
    let list = listed(ctl)?;
    args.iter().map(|a| pick(&list, a)).collect()
}

fn listed(ctl: &mut Ctl) -> Result<Vec<IdName>, Failure> {
    let params = methods::SessionList {
        state: None,
        fields: Some(vec![SessionField::Id, SessionField::Name]),
    };
    Ok(ctl.client.request_as::<SessionList, Listed>(&params)?.sessions)
}

/// Exact id > exact name > unique id prefix; else `arg` itself.
fn pick(list: &[IdName], arg: &str) -> Result<String, Failure> {
    if arg.is_empty() {
        return Err(usage("a session id or name cannot be empty"));
    }
    if list.iter().any(|s| s.id == arg) {
        return Ok(arg.to_string());
    }
    let named: Vec<&IdName> = list.iter().filter(|s| s.name.as_deref() == Some(arg)).collect();
    let prefixed: Vec<&IdName> = list.iter().filter(|s| s.id.starts_with(arg)).collect();
    let matches = if named.is_empty() { prefixed } else { named };
    match matches[..] {
        [] => Ok(arg.to_string()),
        [one] => Ok(one.id.clone()),
        _ => {
            let each: Vec<String> = matches
                .iter()
                .map(|s| format!("{} ({})", s.id, s.name.as_deref().unwrap_or("no name")))
                .collect();
            Err(usage(format!(
                "{arg:?} matches {} sessions: {}; give more of the id",
                matches.len(),
                each.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, name: Option<&str>) -> IdName {
        IdName { id: id.into(), name: name.map(Into::into) }
    }

    #[test]
    fn exact_id_then_name_then_unique_prefix() {
        let list = [
            s("ab12", Some("cd34")),
            s("cd34", None),
            s("ab99", Some("web")),
            s("ef", Some("web")),
        ];
        assert_eq!(pick(&list, "cd34").ok(), Some("cd34".into()), "an exact id beats a name");
        assert_eq!(pick(&list, "ab1").ok(), Some("ab12".into()));
        assert_eq!(pick(&list, "zz").ok(), Some("zz".into()), "no match: the daemon says so");
        let e = pick(&list, "ab").err().unwrap();
        assert!(
            e.message.contains("ab12 (cd34)") && e.message.contains("ab99 (web)"),
            "{}",
            e.message
        );
        let e = pick(&list, "web").err().unwrap();
        assert!(e.message.contains("matches 2 sessions"), "{}", e.message);
    }
}
