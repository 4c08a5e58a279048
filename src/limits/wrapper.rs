//! The exec-wrapper: `ccmanagerd __exec [--rlimit NAME=VALUE]... [--wait-scope UNIT] -- ARGV...`.
//!
//! tmux forks every pane from its server, so limits set in the daemon never
//! reach the session's program. Each pane therefore runs this small mode of
//! the daemon's own binary: it sets the rlimits on itself, waits (bounded)
//! until the daemon has moved it into its systemd scope, drops the daemon's
//! private environment, and execs the argv (never through a shell). The pid
//! stays the same, so the pane pid is the program's pid.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};

use super::{Limits, Rlim};

/// The first argument that selects this mode.
pub const MODE: &str = "__exec";
/// How long the wrapper waits to be placed in its scope.
pub const SCOPE_WAIT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for the scope.
const SCOPE_POLL: Duration = Duration::from_millis(2);
/// Exit code when the wrapper itself fails (like a shell's "cannot execute").
const EXIT_SETUP_FAILED: i32 = 126;
/// Exit code when the program cannot be found or run.
const EXIT_EXEC_FAILED: i32 = 127;

/// The rlimits of `limits` as `(name, value)` pairs for the command line.
pub fn rlimit_args(limits: &Limits) -> Vec<(&'static str, String)> {
    let pairs = [
        ("nofile", limits.nofile),
        ("nproc", limits.nproc),
        ("core", limits.core),
        ("as", limits.address_space),
        ("data", limits.data),
        ("cpu", limits.cpu),
        ("fsize", limits.fsize),
    ];
    pairs
        .into_iter()
        .filter_map(|(name, v)| {
            v.map(|v| {
                (name, match v {
                    Rlim::Value(n) => n.to_string(),
                    Rlim::Unlimited => "unlimited".to_string(),
                })
            })
        })
        .collect()
}

fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "core" => Resource::RLIMIT_CORE,
        "as" => Resource::RLIMIT_AS,
        "data" => Resource::RLIMIT_DATA,
        "cpu" => Resource::RLIMIT_CPU,
        "fsize" => Resource::RLIMIT_FSIZE,
        _ => return None,
    })
}

fn fail(code: i32, msg: &str) -> ! {
    eprintln!("ccmanagerd: {msg}");
    std::process::exit(code)
}

/// Runs the wrapper; `args` are the arguments after [`MODE`]. Never returns.
pub fn main(args: Vec<OsString>) -> ! {
    let mut it = args.into_iter();
    let mut scope = None;
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--") => break,
            Some("--rlimit") => {
                let spec = it.next().unwrap_or_default();
                let spec = spec.to_string_lossy();
                let (name, value) = spec.split_once('=').unwrap_or((&spec, ""));
                let res = resource(name).unwrap_or_else(|| fail(EXIT_SETUP_FAILED, &format!("unknown rlimit {name:?}")));
                let v = match value {
                    "unlimited" => RLIM_INFINITY,
                    n => n.parse().unwrap_or_else(|_| fail(EXIT_SETUP_FAILED, &format!("bad rlimit value {spec:?}"))),
                };
                if let Err(e) = setrlimit(res, v, v) {
                    fail(EXIT_SETUP_FAILED, &format!("cannot set rlimit {name} to {value}: {e}"));
                }
            }
            Some("--wait-scope") => scope = it.next(),
            _ => fail(EXIT_SETUP_FAILED, &format!("{MODE}: unexpected argument {arg:?}")),
        }
    }
    if let Some(unit) = scope {
        let needle = format!("/{}", unit.to_string_lossy());
        let deadline = Instant::now() + SCOPE_WAIT;
        loop {
            let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            if cg.lines().any(|l| l.ends_with(&needle) || l.contains(&format!("{needle}/"))) {
                break;
            }
            if Instant::now() > deadline {
                fail(EXIT_SETUP_FAILED, &format!("not placed in {} within {:?}; refusing to run uncapped", unit.to_string_lossy(), SCOPE_WAIT));
            }
            std::thread::sleep(SCOPE_POLL);
        }
    }
    let argv: Vec<CString> = it
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| fail(EXIT_SETUP_FAILED, "argument contains NUL")))
        .collect();
    let Some(program) = argv.first() else { fail(EXIT_SETUP_FAILED, "no command given") };
    for var in crate::systemd::PRIVATE_ENV {
        // SAFETY: this mode is single-threaded.
        unsafe { std::env::remove_var(var) };
    }
    let err = nix::unistd::execvp(program, &argv).unwrap_err();
    fail(EXIT_EXEC_FAILED, &format!("cannot run {}: {err}", program.to_string_lossy()))
}
