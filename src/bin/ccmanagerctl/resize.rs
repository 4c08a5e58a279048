//! `ccmanagerctl resize ID COLSxROWS`: `session.resize`; silent unless
//! `--json`.

use ccmanagerd::protocol::method::SessionResize;
use ccmanagerd::protocol::methods;

use crate::output::{usage, Ctl, Failure};

pub fn run(ctl: &mut Ctl, id: String, size: &str) -> Result<(), Failure> {
    let (cols, rows) = parse_size(size)?;
    ctl.call::<SessionResize>(&methods::SessionResize { id, cols, rows })?;
    Ok(())
}

/// `120x40` (or `120X40`) as (cols, rows).
pub fn parse_size(s: &str) -> Result<(u16, u16), Failure> {
    let bad = || usage(format!("size {s:?}: expected COLSxROWS, e.g. 120x40"));
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((c.parse().map_err(|_| bad())?, r.parse().map_err(|_| bad())?))
}
