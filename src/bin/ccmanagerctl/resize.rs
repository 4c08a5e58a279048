//! `ccmanagerctl resize ID COLSxROWS`: `session.resize`; silent unless
//! `--json`.

use ccmanagerd::protocol::method::SessionResize;
use ccmanagerd::protocol::methods;

use ccmanagerd::sessions::validate::{MAX_COLS, MAX_ROWS, MIN_SIZE};

use crate::output::{Ctl, Failure};

/// A pane size.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub cols: u16,
    pub rows: u16,
}

pub fn run(ctl: &mut Ctl, arg: &str, Size { cols, rows }: Size) -> Result<(), Failure> {
    let id = crate::resolve::one(ctl, arg)?;
    ctl.call::<SessionResize>(&methods::SessionResize { id, cols, rows })?;
    Ok(())
}

/// `120x40` (or `120X40`) as (cols, rows), each within the daemon's
/// bounds (the same message as its own).
/// (A clap value parser: a bad size is a usage error before connecting.)
pub fn parse_size(s: &str) -> Result<Size, String> {
    let bad = || "expected COLSxROWS, e.g. 120x40".to_string();
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let number = |what: &str, v: &str, max: u16| {
        let n: u64 = v.parse().map_err(|_| bad())?;
        match u16::try_from(n) {
            Ok(n) if (MIN_SIZE..=max).contains(&n) => Ok(n),
            _ => Err(format!("{what}: {n} is out of range ({MIN_SIZE} to {max})")),
        }
    };
    Ok(Size { cols: number("cols", c, MAX_COLS)?, rows: number("rows", r, MAX_ROWS)? })
}
