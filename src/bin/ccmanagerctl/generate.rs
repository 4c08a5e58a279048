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

/// The man page: clap_mangen's sections, with the exit codes as a real
/// EXIT STATUS section (its `render` would put them under "EXTRA").
pub fn manpage() -> Result<(), Failure> {
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(Cli::command());
    let sections = (|| -> std::io::Result<()> {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        man.render_subcommands_section(&mut out)?;
        out.extend_from_slice(EXTRA_SECTIONS.as_bytes());
        man.render_version_section(&mut out)
    })();
    sections.map_err(|e| failed(format!("rendering the man page: {e}")))?;
    write(&out)
}

/// Sessions, the socket, exit status, JSON errors and files, in roff: the
/// same facts as `EXIT_CODES` in main.rs (its --help text).
const EXTRA_SECTIONS: &str = r#".SH SESSIONS
Every command that takes a session takes its id, a unique prefix of its id, or its name.
An exact id wins over a name, a name over a prefix; a name or prefix that matches several sessions is an error listing them.
.SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
The daemon answered with an error (or the command failed here).
.TP
\fB2\fR
Usage: a bad option, argument or value.
.TP
\fB3\fR
\fBattach\fR: the session ended (its exit status is in the message).
.TP
\fB69\fR
The daemon cannot be reached: no socket, connection refused, permission denied, or closed without a reply.
.TP
\fB75\fR
No connection within \fB\-\-connect\-timeout\fR, or no reply within \fB\-\-timeout\fR.
.TP
\fB128+N\fR
\fBattach\fR: ended by signal N.
.PP
With \fB\-\-json\fR an error is also printed on standard output as
{"error": {"code": ..., "message": ..., "data": {"kind": ...}}}; \fBdata.kind\fR is the daemon's
(e.g. session_not_found) or one of usage, unavailable, timeout, failed.
.SH FILES
.TP
\fI/run/ccmanagerd/ccmanagerd.sock\fR
The system daemon's socket, used when a connection to it works.
.TP
\fI$XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock\fR
The socket of a daemon run by the user, used otherwise (\fI/tmp/ccmanagerd\-UID/\fR when XDG_RUNTIME_DIR is unset).
.SH ENVIRONMENT
.TP
\fBCCMANAGERD_SOCKET\fR
The socket to use, as \fB\-\-socket\fR.
"#;

fn write(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        crate::output::stdout_failed(e);
    }
    Ok(())
}
