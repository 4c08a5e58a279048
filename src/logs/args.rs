//! The logger's command line, `ccmanagerd __log --dir DIR --cap BYTES
//! [--adopted]`, both ways: the daemon builds it as the shell command of
//! `pipe-pane`, the logger parses it.
//!
//! `pipe-pane` hands its argument to `format_expand_time` (strftime, then
//! `#{}` formats) and runs the result with `/bin/sh -c` (tmux 3.3a
//! cmd-pipe-pane.c). So every word is single-quoted for the shell, then `%`
//! becomes `%%` and `#` becomes `##`; the logger is `exec`'d, so no shell
//! stays behind (a shell costs memory per session). Flags are ours only and
//! checked strictly: an unknown or repeated one is refused.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::MIN_LOG_BYTES_PER_SESSION;

/// The first argument that selects this mode.
pub const MODE: &str = "__log";
/// Largest `--cap` accepted (1 TiB).
pub const MAX_CAP: u64 = 1 << 40;

/// What the logger was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogArgs {
    /// The session's log directory (made by the daemon).
    pub dir: PathBuf,
    /// Most bytes on disk for this log.
    pub cap: u64,
    /// Started on a pane that already ran (adoption, a logger restarted):
    /// its first bytes follow a gap.
    pub adopted: bool,
}

/// Parses the arguments after [`MODE`].
pub fn parse(args: Vec<OsString>) -> Result<LogArgs, String> {
    let mut dir = None;
    let mut cap = None;
    let mut adopted = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.into_string().map_err(|a| format!("unexpected argument {a:?}"))?;
        match a.as_str() {
            "--dir" if dir.is_none() => {
                let v = PathBuf::from(it.next().ok_or("--dir needs a value")?);
                if !v.is_absolute() {
                    return Err(format!("--dir {}: not an absolute path", v.display()));
                }
                dir = Some(v);
            }
            "--cap" if cap.is_none() => {
                let v = it.next().ok_or("--cap needs a value")?;
                let v = v.to_str().and_then(|s| s.parse::<u64>().ok());
                match v {
                    Some(n) if (MIN_LOG_BYTES_PER_SESSION..=MAX_CAP).contains(&n) => cap = Some(n),
                    _ => {
                        return Err(format!(
                            "--cap: expected bytes from {MIN_LOG_BYTES_PER_SESSION} to {MAX_CAP}"
                        ))
                    }
                }
            }
            "--adopted" if !adopted => adopted = true,
            other => return Err(format!("unexpected or repeated argument {other:?}")),
        }
    }
    Ok(LogArgs {
        dir: dir.ok_or("--dir is required")?,
        cap: cap.ok_or("--cap is required")?,
        adopted,
    })
}

/// The program that logs: the small `ccmanagerd-log` when it is installed
/// beside the daemon, else the daemon's own binary in its `__log` mode.
/// Both run the same code; the small binary costs half the memory per
/// session (measured, 20 idle loggers, release build: 231 KiB PSS each
/// against 490 KiB for `ccmanagerd __log`, whose relocated data alone, 180
/// KiB, is private to each process; docs/performance.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The binary.
    pub path: PathBuf,
    /// Whether it needs [`MODE`] as its first argument.
    pub mode: bool,
}

/// The small logger's file name.
pub const SMALL_BINARY: &str = "ccmanagerd-log";

impl Program {
    /// The logger for a daemon whose binary is `daemon_exe`.
    pub fn beside(daemon_exe: &Path) -> Program {
        let small = daemon_exe.with_file_name(SMALL_BINARY);
        match std::fs::metadata(&small) {
            Ok(m) if m.is_file() => Program { path: small, mode: false },
            _ => Program { path: daemon_exe.to_owned(), mode: true },
        }
    }
}

/// The `pipe-pane` shell command that runs the logger `exe` with `args`,
/// escaped for tmux's format expansion; `None` when a path holds a
/// character that cannot go through a tmux command line (a control
/// character) or is not valid UTF-8.
pub fn pipe_command(exe: &Program, args: &LogArgs) -> Option<String> {
    let mut words = vec![exe.path.to_str()?.to_string()];
    if exe.mode {
        words.push(MODE.into());
    }
    words.push("--dir".into());
    words.push(args.dir.to_str()?.to_string());
    words.push("--cap".into());
    words.push(args.cap.to_string());
    if args.adopted {
        words.push("--adopted".into());
    }
    if words.iter().any(|w| w.chars().any(char::is_control)) {
        return None;
    }
    let mut line = String::from("exec");
    for w in &words {
        line.push_str(" '");
        line.push_str(&w.replace('\'', "'\\''"));
        line.push('\'');
    }
    Some(line.replace('%', "%%").replace('#', "##"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_strictly() {
        let a = parse(os(&["--dir", "/l/a1", "--cap", "1048576", "--adopted"])).unwrap();
        assert_eq!(a, LogArgs { dir: "/l/a1".into(), cap: 1 << 20, adopted: true });
        for (bad, why) in [
            (&["--dir", "l/a1", "--cap", "1048576"][..], "absolute"),
            (&["--dir", "/l", "--cap", "10"], "--cap"),
            (&["--dir", "/l", "--cap", "-1"], "--cap"),
            (&["--dir", "/l"], "--cap is required"),
            (&["--cap", "1048576"], "--dir is required"),
            (&["--dir", "/l", "--dir", "/m", "--cap", "1048576"], "repeated"),
            (&["--dir", "/l", "--cap", "1048576", "--adopted", "--adopted"], "repeated"),
            (&["--dir", "/l", "--cap", "1048576", "x"], "unexpected"),
            (&["--dir"], "needs a value"),
        ] {
            let e = parse(os(bad)).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn pipe_command_quotes_for_sh_and_escapes_formats() {
        let args = LogArgs { dir: "/st#{pane_id}%H/it's".into(), cap: 1 << 20, adopted: false };
        let exe = Program { path: "/usr/bin/ccmanagerd".into(), mode: true };
        let line = pipe_command(&exe, &args).unwrap();
        assert_eq!(
            line,
            "exec '/usr/bin/ccmanagerd' '__log' '--dir' '/st##{pane_id}%%H/it'\\''s' '--cap' '1048576'"
        );
        let bad = LogArgs { dir: "/a\u{1b}b".into(), ..args.clone() };
        assert_eq!(pipe_command(&exe, &bad), None);
        let small = Program { path: "/usr/bin/ccmanagerd-log".into(), mode: false };
        assert!(pipe_command(&small, &args)
            .unwrap()
            .starts_with("exec '/usr/bin/ccmanagerd-log' '--dir'"));
    }
}
