//! `ccmanagerctl send ID [TEXT] [--key K]... [--enter]`: `session.send`;
//! silent unless `--json`.

use ccmanagerd::protocol::method::SessionSend;
use ccmanagerd::protocol::methods;

use crate::output::{usage, Ctl, Failure};
use crate::SendArgs;

/// `send ID` alone is a mistake, not a no-op.
pub fn check(args: &SendArgs) -> Result<(), Failure> {
    if args.text.as_deref().is_none_or(str::is_empty) && args.keys.is_empty() && !args.enter {
        return Err(usage("nothing to send: give TEXT, --key KEY or --enter"));
    }
    Ok(())
}

pub fn run(ctl: &mut Ctl, args: SendArgs) -> Result<(), Failure> {
    check(&args)?;
    let SendArgs { id, text, keys, enter } = args;
    let id = crate::resolve::one(ctl, &id)?;
    ctl.call::<SessionSend>(&methods::SessionSend { id, text, keys, enter })?;
    Ok(())
}
