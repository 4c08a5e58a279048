//! `ccmanagerctl new [OPTIONS] -- CMD...`: `session.create`, prints the id.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use ccmanagerd::limits::Limits;
use ccmanagerd::protocol::method::SessionCreate;
use ccmanagerd::protocol::methods::{self, decode_params};
use ccmanagerd::users::UserSpec;

use crate::output::{usage, Ctl, Failure};
use crate::NewArgs;

pub fn run(ctl: &mut Ctl, args: NewArgs) -> Result<(), Failure> {
    let NewArgs {
        name,
        cwd,
        user,
        env,
        size,
        keep,
        limits,
        restore,
        resume_command,
        restart,
        argv,
    } = args;
    let mut vars = BTreeMap::new();
    for kv in env {
        let (k, v) =
            kv.split_once('=').ok_or_else(|| usage(format!("--env {kv:?}: expected K=V")))?;
        vars.insert(k.to_string(), v.to_string());
    }
    let (cols, rows) = (size.map(|s| s.cols), size.map(|s| s.rows));
    let params = methods::SessionCreate {
        command: argv,
        name,
        cwd,
        env: vars,
        cols,
        rows,
        limits: parse_limits(limits)?,
        keep,
        user: user.map(|u| match u.parse::<u32>() {
            Ok(uid) => UserSpec::Uid(uid),
            Err(_) => UserSpec::Name(u),
        }),
        restore: restore.map(|v| word("--restore", &v)).transpose()?,
        resume_command: resume_command
            .map(|v| {
                serde_json::from_str::<Vec<String>>(&v).map_err(|e| {
                    usage(format!(
                        "--resume-command {v:?}: expected a JSON array of strings, e.g. '[\"claude\",\"--continue\"]' ({e})"
                    ))
                })
            })
            .transpose()?,
        restart: restart.map(|v| word("--restart", &v)).transpose()?,
    };
    if let Some(session) = ctl.call::<SessionCreate>(&params)? {
        outln!("{}", session.id);
    }
    Ok(())
}

/// A policy word (`on_boot`), read as the daemon reads it.
fn word<T: serde::de::DeserializeOwned>(flag: &str, v: &str) -> Result<T, Failure> {
    serde_json::from_value(json!(v)).map_err(|e| usage(format!("{flag} {v:?}: {e}")))
}

/// `NAME=VALUE` pairs read as the daemon reads `limits`: a number where the
/// value is one, else a string (`memory_max=2G`, `nofile=unlimited`). A bad
/// name or value gets the daemon's own message (`invalid params:
/// limits.nofile: ...`).
fn parse_limits(pairs: Vec<String>) -> Result<Limits, Failure> {
    let mut map = serde_json::Map::new();
    for kv in pairs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| usage(format!("--limit {kv:?}: expected NAME=VALUE")))?;
        let value = v.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(v));
        map.insert(k.to_string(), value);
    }
    #[derive(Deserialize)]
    struct Only {
        #[serde(default)]
        limits: Limits,
    }
    let only: Only = decode_params(Some(json!({ "limits": map }))).map_err(|e| usage(e.message))?;
    Ok(only.limits)
}
