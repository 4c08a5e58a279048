//! `ccmanagerctl restart ID [--resume]`: `session.restart {id, resume}`
//! (PROTOCOL.md), then the session as `show` prints it.

use serde_json::json;

use crate::output::{print_json, Ctl, Failure};

pub fn run(ctl: &mut Ctl, arg: &str, resume: bool) -> Result<(), Failure> {
    let id = crate::resolve::one(ctl, arg)?;
    let session = ctl.client.call("session.restart", json!({ "id": id, "resume": resume }))?;
    if ctl.json {
        print_json(&session);
    } else {
        crate::show::print_session(&session);
    }
    Ok(())
}
