//! `ccmanagerctl kill ID... | --all [--yes]`: `session.kill` for each, going
//! on past failures (exit 1 if any).

use std::io::{IsTerminal, Write};

use ccmanagerd::protocol::method::{SessionKill, SessionList};
use ccmanagerd::protocol::methods::SessionId;

use crate::output::{usage, Ctl, Failure};
use crate::KillArgs;

pub fn run(ctl: &mut Ctl, args: KillArgs) -> Result<(), Failure> {
    let KillArgs { ids, all, yes } = args;
    let ids = if all {
        let sessions = ctl.client.request::<SessionList>(&Default::default())?.sessions;
        if sessions.is_empty() {
            outln!("no sessions");
            return Ok(());
        }
        if !yes && !confirm(&format!("kill all {} sessions?", sessions.len()))? {
            return Err(usage("not confirmed; nothing killed (use --yes to skip the question)"));
        }
        sessions.into_iter().map(|s| s.id).collect()
    } else if ids.is_empty() {
        return Err(usage("name the sessions to kill, or use --all"));
    } else {
        crate::resolve::many(ctl, &ids)?
    };
    let mut failed = None;
    for id in ids {
        match ctl.call::<SessionKill>(&SessionId { id: id.clone() }) {
            Ok(Some(_)) => outln!("killed {id}"),
            Ok(None) => {}
            Err(f) => {
                eprintln!("ccmanagerctl: {id}: {}", f.message);
                failed = Some(f.code);
            }
        }
    }
    match failed {
        Some(code) => {
            Err(Failure { code, message: "some sessions were not killed".into(), rpc: None })
        }
        None => Ok(()),
    }
}

/// Asks on the terminal; no terminal means no.
fn confirm(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    out!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| crate::output::failed(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
