//! `ccmanagerctl completions SHELL` and `ccmanagerctl manpage` (hidden):
//! the shell completions and the man page, generated from the clap
//! definitions (clap_complete, clap_mangen) so they cannot drift. The
//! package ships copies committed under packaging/ (tests/cli_generated.rs
//! fails when they are stale and says how to refresh them).

use clap::CommandFactory;

use crate::output::{failed, Failure};
use crate::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ccmanagerctl", &mut out);
    write(&out)
}

pub fn manpage() -> Result<(), Failure> {
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(Cli::command());
    man.render(&mut out).map_err(|e| failed(format!("rendering the man page: {e}")))?;
    write(&out)
}

fn write(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        crate::output::stdout_failed(e);
    }
    Ok(())
}
