//! `ccmanagerctl send ID [TEXT] [--key K]... [--enter]`: `session.send`;
//! silent unless `--json`.

use ccmanagerd::protocol::method::SessionSend;
use ccmanagerd::protocol::methods;

use crate::output::{Ctl, Failure};
use crate::SendArgs;

pub fn run(ctl: &mut Ctl, args: SendArgs) -> Result<(), Failure> {
    let SendArgs { id, text, keys, enter } = args;
    ctl.call::<SessionSend>(&methods::SessionSend { id, text, keys, enter })?;
    Ok(())
}
