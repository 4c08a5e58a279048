//! The exec-wrapper's command line, both ends of it: [`wrapper_argv`] and
//! [`env_args`], which the daemon calls to build a pane's command, and
//! [`parse`], which the wrapper runs on it. They live side by side so that the
//! two cannot drift apart (the tests build a command line and parse it back).
//!
//! ```text
//! ccmanagerd __exec [--rlimit NAME=VALUE]... [--wait-scope UNIT [--scope-controllers LIST]]
//!                   [--cwd DIR] [--status FIFO] [--banner TEXT] -- ARGV...
//! ```
//! The request's environment does not travel on this command line: it comes
//! as `CCMANAGERD_ENV_<NAME>=<value>` variables (tmux `new-session -e`, whose
//! values tmux does not format-expand), see [`ENV_PREFIX`].

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, RLIM_INFINITY};

use super::{Limits, Rlim};

/// The first argument that selects the wrapper mode.
pub const MODE: &str = "__exec";
/// Prefix of the variables that carry the request's environment to the
/// wrapper. The dynamic loader and libc ignore these names, so a request's
/// `LD_PRELOAD` does nothing until the wrapper renames it, right before exec.
pub const ENV_PREFIX: &str = "CCMANAGERD_ENV_";

const RLIMIT: &str = "--rlimit";
const WAIT_SCOPE: &str = "--wait-scope";
const SCOPE_CONTROLLERS: &str = "--scope-controllers";
const CWD: &str = "--cwd";
const STATUS: &str = "--status";
const BANNER: &str = "--banner";
/// Longest `--banner` (bytes).
pub const MAX_BANNER: usize = 1024;
const END: &str = "--";

/// The cgroup v1 controllers that enforce the cgroup caps of `limits`
/// (`memory`, `pids`, `cpu`): on a v1 host systemd moves a pid into a scope
/// one hierarchy at a time, so the wrapper waits for each of these, not only
/// for systemd's own.
pub fn cap_controllers(limits: &Limits) -> Vec<&'static str> {
    let caps = [
        ("memory", limits.memory_max.is_some()),
        ("pids", limits.tasks_max.is_some()),
        ("cpu", limits.cpu_quota.is_some()),
    ];
    caps.into_iter().filter(|(_, on)| *on).map(|(name, _)| name).collect()
}

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
                let value = match v {
                    Rlim::Value(n) => n.to_string(),
                    Rlim::Unlimited => "unlimited".to_string(),
                };
                (name, value)
            })
        })
        .collect()
}

/// The pane command that runs `command` through the wrapper: `exe` is the
/// daemon's own binary. Paths are passed as UTF-8 (tmux commands are text; a
/// cwd comes from JSON), lossily if they are not. Always several arguments, so
/// tmux execs it directly, never through a shell.
pub fn wrapper_argv(
    exe: &Path,
    limits: &Limits,
    scope: Option<&str>,
    cwd: Option<&Path>,
    status: Option<&Path>,
    banner: Option<&str>,
    command: &[String],
) -> Vec<String> {
    let mut argv = vec![exe.to_string_lossy().into_owned(), MODE.to_string()];
    for (name, value) in rlimit_args(limits) {
        argv.push(RLIMIT.into());
        argv.push(format!("{name}={value}"));
    }
    if let Some(unit) = scope {
        argv.push(WAIT_SCOPE.into());
        argv.push(unit.to_string());
        let controllers = cap_controllers(limits);
        if !controllers.is_empty() {
            argv.push(SCOPE_CONTROLLERS.into());
            argv.push(controllers.join(","));
        }
    }
    if let Some(dir) = cwd {
        argv.push(CWD.into());
        argv.push(dir.to_string_lossy().into_owned());
    }
    if let Some(fifo) = status {
        argv.push(STATUS.into());
        argv.push(fifo.to_string_lossy().into_owned());
    }
    if let Some(text) = banner {
        argv.push(BANNER.into());
        argv.push(text.to_string());
    }
    argv.push(END.into());
    argv.extend(command.iter().cloned());
    argv
}

/// The request's environment as `CCMANAGERD_ENV_<NAME>=<value>` strings, one
/// per `new-session -e`. Names are validated by the caller.
pub fn env_args(env: &BTreeMap<String, String>) -> impl Iterator<Item = String> + '_ {
    env.iter().map(|(k, v)| format!("{ENV_PREFIX}{k}={v}"))
}

/// One rlimit to set: soft and hard limit alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlimitArg {
    /// The name on the command line (`nofile`), for messages.
    pub name: &'static str,
    /// The resource.
    pub resource: Resource,
    /// The value (`RLIM_INFINITY` for `unlimited`).
    pub value: u64,
}

/// The wrapper's parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `--rlimit`, in command-line order.
    pub rlimits: Vec<RlimitArg>,
    /// `--wait-scope`: the systemd scope unit to wait for.
    pub scope: Option<String>,
    /// `--scope-controllers`: the cgroup controllers whose hierarchies must
    /// show the scope too (see [`cap_controllers`]).
    pub controllers: Vec<String>,
    /// `--cwd`: an absolute directory.
    pub cwd: Option<PathBuf>,
    /// `--status`: the FIFO to report on.
    pub status: Option<PathBuf>,
    /// `--banner`: a line the wrapper prints on the terminal before the
    /// program starts (the marker of a restart in the session's log).
    pub banner: Option<String>,
    /// The program and its arguments (never empty).
    pub argv: Vec<CString>,
}

/// A command line the wrapper refuses; the message names the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgError(String);

const RESOURCES: [(&str, Resource); 7] = [
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("core", Resource::RLIMIT_CORE),
    ("as", Resource::RLIMIT_AS),
    ("data", Resource::RLIMIT_DATA),
    ("cpu", Resource::RLIMIT_CPU),
    ("fsize", Resource::RLIMIT_FSIZE),
];

fn rlimit(spec: &OsStr) -> Result<RlimitArg, ArgError> {
    let text = spec.to_str().ok_or_else(|| ArgError(format!("{RLIMIT} {spec:?}: not UTF-8")))?;
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| ArgError(format!("{RLIMIT} {text:?}: expected NAME=VALUE")))?;
    let (name, resource) = RESOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .copied()
        .ok_or_else(|| ArgError(format!("{RLIMIT} {text:?}: unknown rlimit {name:?}")))?;
    let value = match value {
        "unlimited" => RLIM_INFINITY,
        n => n.parse().map_err(|_| {
            ArgError(format!(
                "{RLIMIT} {text:?}: the value must be a non-negative integer or \"unlimited\""
            ))
        })?,
    };
    Ok(RlimitArg { name, resource, value })
}

fn controllers(value: &OsStr) -> Result<Vec<String>, ArgError> {
    let text = value
        .to_str()
        .ok_or_else(|| ArgError(format!("{SCOPE_CONTROLLERS} {value:?}: not UTF-8")))?;
    text.split(',')
        .map(|name| match name {
            "memory" | "pids" | "cpu" => Ok(name.to_string()),
            _ => Err(ArgError(format!(
                "{SCOPE_CONTROLLERS} {text:?}: unknown controller {name:?} (memory, pids, cpu)"
            ))),
        })
        .collect()
}

/// Where `--status` points, if anywhere before `--`: read before the full
/// parse, so that a command line the wrapper refuses is still reported.
pub fn status_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().take_while(|a| *a != END);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some(STATUS) => return it.next().map(PathBuf::from),
            // Skip every flag's value, so a value that reads "--status" is not taken for the flag.
            Some(RLIMIT | WAIT_SCOPE | SCOPE_CONTROLLERS | CWD | BANNER) => {
                it.next();
            }
            _ => {}
        }
    }
    None
}

/// Parses the arguments after [`MODE`].
pub fn parse(args: Vec<OsString>) -> Result<Spec, ArgError> {
    let mut spec = Spec {
        rlimits: Vec::new(),
        scope: None,
        controllers: Vec::new(),
        cwd: None,
        status: None,
        banner: None,
        argv: vec![],
    };
    let mut it = args.into_iter();
    loop {
        let Some(arg) = it.next() else {
            return Err(ArgError(format!("expected {END} before the command")));
        };
        let flag = match arg.to_str() {
            Some(END) => break,
            Some(f @ (RLIMIT | WAIT_SCOPE | SCOPE_CONTROLLERS | CWD | STATUS | BANNER)) => f,
            _ => return Err(ArgError(format!("unexpected argument {arg:?}"))),
        };
        let value = it.next().ok_or_else(|| ArgError(format!("{flag}: missing value")))?;
        let once = |slot_taken: bool| {
            if slot_taken {
                Err(ArgError(format!("{flag}: given twice")))
            } else {
                Ok(())
            }
        };
        match flag {
            RLIMIT => spec.rlimits.push(rlimit(&value)?),
            WAIT_SCOPE => {
                once(spec.scope.is_some())?;
                let unit = value
                    .into_string()
                    .map_err(|v| ArgError(format!("{WAIT_SCOPE} {v:?}: not UTF-8")))?;
                if unit.is_empty() || unit.contains('/') {
                    return Err(ArgError(format!("{WAIT_SCOPE} {unit:?}: not a unit name")));
                }
                spec.scope = Some(unit);
            }
            SCOPE_CONTROLLERS => {
                once(!spec.controllers.is_empty())?;
                spec.controllers = controllers(&value)?;
            }
            CWD => {
                once(spec.cwd.is_some())?;
                let dir = PathBuf::from(value);
                if !dir.is_absolute() {
                    return Err(ArgError(format!("{CWD} {dir:?}: not an absolute path")));
                }
                spec.cwd = Some(dir);
            }
            BANNER => {
                once(spec.banner.is_some())?;
                let text = value
                    .into_string()
                    .map_err(|v| ArgError(format!("{BANNER} {v:?}: not UTF-8")))?;
                if text.len() > MAX_BANNER || text.chars().any(char::is_control) {
                    return Err(ArgError(format!(
                        "{BANNER}: longer than {MAX_BANNER} bytes or holds a control character"
                    )));
                }
                spec.banner = Some(text);
            }
            _ => {
                once(spec.status.is_some())?;
                spec.status = Some(PathBuf::from(value));
            }
        }
    }
    if spec.scope.is_none() && !spec.controllers.is_empty() {
        return Err(ArgError(format!("{SCOPE_CONTROLLERS} needs {WAIT_SCOPE}")));
    }
    for a in it {
        // An argument from the OS never holds a NUL; this only guards the conversion.
        let a = CString::new(a.into_vec())
            .map_err(|_| ArgError("the command has an argument with a NUL byte".into()))?;
        spec.argv.push(a);
    }
    if spec.argv.is_empty() {
        return Err(ArgError(format!("no command after {END}")));
    }
    Ok(spec)
}

/// Splits `CCMANAGERD_ENV_<NAME>` into `<NAME>`; `None` for other names.
pub fn request_var(name: &OsStr) -> Option<&OsStr> {
    name.as_bytes().strip_prefix(ENV_PREFIX.as_bytes()).map(OsStr::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn err(args: &[&str]) -> String {
        parse(os(args)).unwrap_err().to_string()
    }

    #[test]
    fn the_built_command_line_parses_back() {
        let limits = Limits {
            nofile: Some(Rlim::Value(123)),
            cpu: Some(Rlim::Unlimited),
            tasks_max: Some(32),
            ..Default::default()
        };
        let command = vec!["sh".to_string(), "-c".to_string(), "echo '--cwd' -- $HOME".to_string()];
        let argv = wrapper_argv(
            Path::new("/usr/bin/ccmanagerd"),
            &limits,
            Some("ccm-s1.scope"),
            Some(Path::new("/home/a b")),
            Some(Path::new("/run/ccmanagerd/spawn/s1")),
            Some("restarted"),
            &command,
        );
        assert_eq!(argv[..2], ["/usr/bin/ccmanagerd", MODE]);
        let args: Vec<OsString> = argv[2..].iter().map(OsString::from).collect();
        assert_eq!(status_path(&args), Some(PathBuf::from("/run/ccmanagerd/spawn/s1")));
        let spec = parse(args).unwrap();
        assert_eq!(
            spec.rlimits,
            [
                RlimitArg { name: "nofile", resource: Resource::RLIMIT_NOFILE, value: 123 },
                RlimitArg { name: "cpu", resource: Resource::RLIMIT_CPU, value: RLIM_INFINITY },
            ]
        );
        assert_eq!(spec.scope.as_deref(), Some("ccm-s1.scope"));
        assert_eq!(spec.controllers, ["pids"]);
        assert_eq!(spec.banner.as_deref(), Some("restarted"));
        assert_eq!(spec.cwd, Some(PathBuf::from("/home/a b")));
        let got: Vec<&str> = spec.argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(got, command);
    }

    #[test]
    fn the_old_command_line_still_parses() {
        // What src/sessions builds today: rlimits, a scope, the command.
        let spec = parse(os(&["--rlimit", "nofile=10", "--wait-scope", "x.scope", "--", "ls"]));
        let spec = spec.unwrap();
        assert_eq!(spec.rlimits.len(), 1);
        assert_eq!((spec.cwd, spec.status), (None, None));
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            err(&["--rlimit", "bogus=1", "--", "ls"]),
            r#"--rlimit "bogus=1": unknown rlimit "bogus""#
        );
        assert!(err(&["--rlimit", "nofile=-1", "--", "ls"])
            .starts_with(r#"--rlimit "nofile=-1": the value"#));
        assert_eq!(
            err(&["--rlimit", "nofile", "--", "ls"]),
            r#"--rlimit "nofile": expected NAME=VALUE"#
        );
        assert_eq!(err(&["--cwd"]), "--cwd: missing value");
        assert_eq!(err(&["--cwd", "rel", "--", "ls"]), r#"--cwd "rel": not an absolute path"#);
        assert_eq!(err(&["--cwd", "/a", "--cwd", "/b", "--", "ls"]), "--cwd: given twice");
        assert_eq!(err(&["--status", "/a", "--status", "/b", "--", "ls"]), "--status: given twice");
        assert_eq!(
            err(&["--wait-scope", "a/b", "--", "ls"]),
            r#"--wait-scope "a/b": not a unit name"#
        );
        assert_eq!(
            err(&["--wait-scope", "a", "--scope-controllers", "pids,io", "--", "ls"]),
            r#"--scope-controllers "pids,io": unknown controller "io" (memory, pids, cpu)"#
        );
        assert_eq!(
            err(&["--scope-controllers", "pids", "--", "ls"]),
            "--scope-controllers needs --wait-scope"
        );
        assert_eq!(
            err(&["--banner", "a\u{1b}[2J", "--", "ls"]),
            "--banner: longer than 1024 bytes or holds a control character"
        );
        assert_eq!(err(&["--frob", "--", "ls"]), r#"unexpected argument "--frob""#);
        assert_eq!(err(&["ls"]), r#"unexpected argument "ls""#);
        assert_eq!(err(&["--cwd", "/"]), "expected -- before the command");
        assert_eq!(err(&["--"]), "no command after --");
    }

    #[test]
    fn everything_after_the_separator_is_the_command() {
        let spec = parse(os(&["--", "--cwd", "--status", "--"])).unwrap();
        assert_eq!(spec.argv.len(), 3);
        assert_eq!(spec.cwd, None);
        assert_eq!(status_path(&os(&["--", "--status", "/x"])), None);
        assert_eq!(status_path(&os(&["--cwd", "--status", "--", "ls"])), None);
    }

    #[test]
    fn request_variables_carry_the_prefix() {
        let env = BTreeMap::from([
            ("LD_PRELOAD".to_string(), "/x.so".to_string()),
            ("A".to_string(), "b=c #{d}".to_string()),
        ]);
        let args: Vec<String> = env_args(&env).collect();
        assert_eq!(args, ["CCMANAGERD_ENV_A=b=c #{d}", "CCMANAGERD_ENV_LD_PRELOAD=/x.so"]);
        assert_eq!(
            request_var(OsStr::new("CCMANAGERD_ENV_LD_PRELOAD")),
            Some(OsStr::new("LD_PRELOAD"))
        );
        assert_eq!(request_var(OsStr::new("CCMANAGERD_ENV_")), Some(OsStr::new("")));
        assert_eq!(request_var(OsStr::new("LD_PRELOAD")), None);
    }
}
