//! `ccmanagerctl capture ID [--lines N] [--escapes]`: `session.capture`,
//! the screen text as is.

use ccmanagerd::protocol::method::SessionCapture;
use ccmanagerd::protocol::methods;

use crate::output::{Ctl, Failure};
use crate::CaptureArgs;

pub fn run(ctl: &mut Ctl, args: CaptureArgs) -> Result<(), Failure> {
    let CaptureArgs { id, lines, escapes } = args;
    let id = crate::resolve::one(ctl, &id)?;
    if let Some(captured) =
        ctl.call::<SessionCapture>(&methods::SessionCapture { id, lines, escapes })?
    {
        out!("{}", captured.text);
    }
    Ok(())
}
