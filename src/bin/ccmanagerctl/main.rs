//! `ccmanagerctl`: the operators' command-line client. Human output by
//! default, `--json` for scripts (the daemon's result as it came; errors as
//! `{"error": {code, message, data: {kind}}}` on stdout). Exit codes (the
//! constants in output.rs, and `EXIT_CODES` below for --help and the man
//! page): 0 success, 1 the daemon answered an error (or the command failed
//! here), 2 usage, 69 the daemon cannot be reached (no socket, refused,
//! closed without a reply), 75 no connection within `--connect-timeout` or
//! no reply within `--timeout`; `attach` adds 3 (the session ended) and
//! 128 + N (ended by signal N). It never waits longer than its two
//! timeouts, except where it follows a stream (`attach`, `logs -f`).
//!
//! Without `--socket` it finds the daemon itself (client/discover.rs): the
//! system socket, else the per-user one. Every command that takes a session
//! takes its id, a unique id prefix or its name (resolve.rs).
//!
//! This file holds the command line and the dispatch; each command is one
//! file of the same name, calling the daemon through the typed method table.

/// `print!` to stdout, ending quietly when stdout is a closed pipe
/// (`ccmanagerctl ls | head -1`): see `output::write_out`.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// `println!` to stdout, ending quietly on a closed pipe (see `out!`).
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

mod attach;
mod call;
mod capture;
mod cleanup;
mod generate;
mod health;
mod kill;
mod logs;
mod ls;
mod metrics;
mod new;
mod output;
mod ping;
mod reload;
mod resize;
mod resolve;
mod restart;
mod sanitize;
mod send;
mod show;
mod status;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use ccmanagerd::client::{default_sockets, Client};
use output::{Ctl, Failure};

/// Default of `--connect-timeout`: a daemon that accepts at all does so at
/// once; waiting means the socket's backlog is full.
const CONNECT_TIMEOUT: &str = "5s";
/// Default of `--timeout`: the slowest requests (a create that waits for its
/// program to start, a large capture) take a few seconds on a loaded host.
const REPLY_TIMEOUT: &str = "30s";

/// What `--help` and the man page say after the options.
const EXIT_CODES: &str = "\
Sessions are named by id, a unique prefix of an id, or name.

Exit status:
  0    success
  1    the daemon answered with an error (or the command failed here)
  2    usage: a bad option, argument or value
  3    attach: the session ended (its exit status is in the message)
  69   the daemon cannot be reached: no socket, refused, permission denied, closed
  75   no connection within --connect-timeout, or no reply within --timeout
  128+N  attach: ended by signal N

With --json an error is also printed on stdout as
{\"error\": {\"code\": ..., \"message\": ..., \"data\": {\"kind\": ...}}}.";

/// Control ccmanagerd, the tmux session manager daemon.
#[derive(Parser, Debug)]
#[command(name = "ccmanagerctl", version, about, after_long_help = EXIT_CODES)]
struct Cli {
    /// The daemon's control socket [default: /run/ccmanagerd/ccmanagerd.sock
    /// when a connect to it works, else
    /// $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock].
    #[arg(long, global = true, env = "CCMANAGERD_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the raw JSON result instead of a human summary.
    #[arg(long, global = true)]
    json: bool,
    /// Give up when the daemon has not answered a request within this long
    /// (e.g. 30s, 2m).
    #[arg(long, global = true, value_name = "DURATION", default_value = REPLY_TIMEOUT, value_parser = positive_duration)]
    timeout: Duration,
    /// Give up when the connection is not accepted within this long.
    #[arg(long, global = true, value_name = "DURATION", default_value = CONNECT_TIMEOUT, value_parser = positive_duration)]
    connect_timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Daemon version, uptime, tmux server and session counts.
    Status,
    /// Check that the daemon answers.
    Ping,
    /// Re-read the config file (same as `systemctl reload ccmanagerd`).
    Reload,
    /// Health checks.
    Health,
    /// Prometheus metrics text.
    Metrics,
    /// List sessions.
    Ls {
        /// Only sessions in this state (running, exited, lost).
        #[arg(long)]
        state: Option<String>,
    },
    /// Create a session running CMD (an argv, never a shell string).
    New(NewArgs),
    /// Show one session (every field the daemon returns).
    Show {
        /// Session id, id prefix or name.
        id: String,
    },
    /// Restart a session's program in the same session (same id, name,
    /// size and log).
    Restart {
        /// Session id, id prefix or name.
        id: String,
        /// Start the session's resume command instead of its command.
        #[arg(long)]
        resume: bool,
    },
    /// Kill sessions (the whole process tree of each).
    Kill(KillArgs),
    /// Type text into a session.
    Send(SendArgs),
    /// Print a session's screen (and scrollback with --lines).
    Capture(CaptureArgs),
    /// Resize a session's pane, e.g. `resize ID 120x40`.
    Resize {
        /// Session id, id prefix or name.
        id: String,
        /// COLSxROWS.
        #[arg(value_parser = resize::parse_size)]
        size: resize::Size,
    },
    /// Attach this terminal to a session through the daemon (detach with
    /// Ctrl-], or --detach-key).
    Attach(AttachArgs),
    /// Print a session's output log (-f: and follow it).
    Logs(LogsArgs),
    /// Remove old, idle and dead sessions now.
    Cleanup {
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send a raw JSON-RPC request and print the result.
    Call {
        /// Method name, e.g. daemon.status.
        method: String,
        /// Params as JSON (an object), e.g. '{"id":"abc"}'.
        params: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(hide = true)]
    Manpage,
}

// The arguments of the commands that take more than two. (No `///` here: a
// doc comment would replace the command's own in `--help`.)

#[derive(Args, Debug)]
struct NewArgs {
    /// A label.
    #[arg(long)]
    name: Option<String>,
    /// Working directory (absolute; default: the user's home). Entered as
    /// the session's user.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Run as this user (name or uid; root and admins only).
    #[arg(long)]
    user: Option<String>,
    /// Environment variable, K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Size as COLSxROWS, e.g. 120x40.
    #[arg(long, value_name = "COLSxROWS")]
    #[arg(value_parser = resize::parse_size)]
    size: Option<resize::Size>,
    /// Exempt from cleanup.
    #[arg(long)]
    keep: bool,
    /// A limit, NAME=VALUE (e.g. nofile=1024, memory_max=2G; repeatable).
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    limits: Vec<String>,
    /// Re-create it after a reboot (on_boot) or also after its tmux server
    /// died (always). Default: the daemon's sessions.restore.
    #[arg(long, value_name = "never|on_boot|always")]
    restore: Option<String>,
    /// What a restore runs instead of CMD, as a JSON array (an argv, never a
    /// shell string), e.g. '["claude","--continue"]'.
    #[arg(long, value_name = "JSON_ARGV")]
    resume_command: Option<String>,
    /// Run the program again when it exits. Default: the daemon's
    /// sessions.restart.
    #[arg(long, value_name = "never|on_failure|always")]
    restart: Option<String>,
    /// The program and its arguments: everything from the first word that
    /// is not an option of `new` on (`new bash -l`, as `docker run` takes
    /// it), or after `--` (`new -- -weird-program`).
    #[arg(required = true, trailing_var_arg = true, num_args = 1.., value_name = "CMD")]
    argv: Vec<String>,
}

#[derive(Args, Debug)]
struct KillArgs {
    /// Session ids, id prefixes or names.
    ids: Vec<String>,
    /// Kill every session you can see.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    /// Do not ask for confirmation with --all.
    #[arg(long, short)]
    yes: bool,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// Session id, id prefix or name.
    id: String,
    /// Literal text.
    text: Option<String>,
    /// Named keys sent after the text (e.g. C-c, Up; repeatable).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Press Enter at the end.
    #[arg(long)]
    enter: bool,
}

#[derive(Args, Debug)]
struct AttachArgs {
    /// Session id, id prefix or name.
    id: String,
    /// The key that detaches (a control key: ctrl-], ctrl-a, ^A, C-q). It
    /// is never sent to the session: pick another one if its program needs
    /// that key.
    #[arg(long, value_name = "KEY", default_value = "ctrl-]", value_parser = terminal::parse_key)]
    detach_key: u8,
    /// Exec a tmux client on the session's own tmux server instead (the
    /// session's user or root only; detach with its prefix, C-b d). With
    /// --json, print that command.
    #[arg(long, conflicts_with = "detach_key")]
    tmux: bool,
}

#[derive(Args, Debug)]
struct LogsArgs {
    /// Session id, id prefix or name.
    id: String,
    /// Keep printing new output until the session ends (or Ctrl-C).
    #[arg(long, short)]
    follow: bool,
    /// Start at this byte offset of the session's output.
    #[arg(long, value_name = "OFFSET", conflicts_with = "tail", value_parser = output::ranged::<u64>(0, u64::MAX.into()))]
    from: Option<u64>,
    /// Start at the last LINES lines.
    #[arg(long, short = 'n', value_name = "LINES", value_parser = output::ranged::<usize>(0, MAX_TAIL_LINES.into()))]
    tail: Option<usize>,
    /// Write the bytes exactly, escape sequences included (the default
    /// strips them: a session's output must not drive your terminal).
    #[arg(long)]
    raw: bool,
}

#[derive(Args, Debug)]
struct CaptureArgs {
    /// Session id, id prefix or name.
    id: String,
    /// Scrollback lines above the visible screen.
    #[arg(long, default_value_t = 0, value_parser = output::ranged::<u32>(0, u32::MAX.into()))]
    lines: u32,
    /// Keep colour escape sequences.
    #[arg(long)]
    escapes: bool,
}

/// The most lines `logs --tail` looks back for (it reads the log backwards
/// in blocks until it has them: a bound on that work).
const MAX_TAIL_LINES: u32 = 10_000_000;

fn main() -> ExitCode {
    let json_out = wants_json();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version: exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            if json_out {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid command line");
                let f = output::usage(first.trim_start_matches("error: "));
                output::print_json(&f.to_json());
            }
            let _ = e.print();
            return ExitCode::from(output::USAGE);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json_out {
                output::print_json(&f.to_json());
            }
            eprintln!("ccmanagerctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Whether `--json` is among our own arguments (before a `--`): known
/// before clap parses, so that its errors are JSON too.
fn wants_json() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(format!("{e} (expected e.g. 5s, 500ms, 2m)")),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Completions { shell } => return generate::completions(shell),
        Command::Manpage => return generate::manpage(),
        _ => {}
    }
    // Mistakes that need no daemon are said without connecting.
    if let Command::Send(args) = &cli.command {
        send::check(args)?;
    }
    let timeouts = (Some(cli.connect_timeout), Some(cli.timeout));
    let client = match &cli.socket {
        Some(path) => Client::connect_within(path, timeouts.0, timeouts.1)?,
        None => Client::connect_first(&default_sockets(), timeouts.0, timeouts.1)?,
    };
    let ctl = &mut Ctl {
        client,
        json: cli.json,
        timeout: cli.timeout,
        connect_timeout: cli.connect_timeout,
    };
    match cli.command {
        Command::Status => status::run(ctl),
        Command::Ping => ping::run(ctl),
        Command::Reload => reload::run(ctl),
        Command::Health => health::run(ctl),
        Command::Metrics => metrics::run(ctl),
        Command::Ls { state } => ls::run(ctl, state),
        Command::New(args) => new::run(ctl, args),
        Command::Show { id } => show::run(ctl, &id),
        Command::Restart { id, resume } => restart::run(ctl, &id, resume),
        Command::Kill(args) => kill::run(ctl, args),
        Command::Send(args) => send::run(ctl, args),
        Command::Capture(args) => capture::run(ctl, args),
        Command::Resize { id, size } => resize::run(ctl, &id, size),
        Command::Attach(args) => attach::run(ctl, args),
        Command::Logs(args) => logs::run(ctl, args),
        Command::Cleanup { dry_run } => cleanup::run(ctl, dry_run),
        Command::Call { method, params } => call::run(ctl, &method, params.as_deref()),
        Command::Completions { .. } | Command::Manpage => unreachable!("answered above"),
    }
}
