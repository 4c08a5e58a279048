//! `ccmanagerctl attach ID`: `session.attach`, then exec the command it
//! names (this process becomes the tmux client).

use std::os::unix::process::CommandExt;

use ccmanagerd::protocol::method::SessionAttach;
use ccmanagerd::protocol::methods::SessionId;

use crate::output::{usage, Ctl, Failure};

pub fn run(ctl: &mut Ctl, id: String) -> Result<(), Failure> {
    let Some(attach) = ctl.call::<SessionAttach>(&SessionId { id })? else { return Ok(()) };
    let (program, args) = attach
        .argv
        .split_first()
        .ok_or_else(|| usage("the daemon sent an empty attach command"))?;
    let err = std::process::Command::new(program).args(args).exec();
    Err(usage(format!("cannot run {program}: {err}")))
}
