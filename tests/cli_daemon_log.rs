//! The daemon's log for an operator (issue 14, item 8): messages that say
//! what happened with the ids in the text, no ANSI colours when stderr is
//! not a terminal, no warning for an ordinary kill, and a bad
//! `--log-level` refused like a bad config value.

mod common;

use std::process::Command;

use common::daemon::{bin, TestDaemon};
use common::wait::{eventually, WAIT};

#[test]
fn messages_say_what_happened_without_colours_or_warnings() {
    let d = TestDaemon::start("");
    let out = d.ctl(&["new", "--name", "agent", "sh", "-c", "sleep 100"]);
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(d.ctl(&["kill", &id]).status.success());
    let log = eventually(WAIT, "the removal in the log", || {
        let log = d.log_text();
        log.contains(&format!("removed session {id} (killed)")).then_some(log)
    });
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log that is not a terminal:\n{log}");
    let uid = nix::unistd::geteuid().as_raw();
    let created = format!("created session {id} (agent) for uid {uid}: sh -c 'sleep 100'");
    assert!(log.contains(&created), "no {created:?} in:\n{log}");
    assert!(log.contains(&format!("asked to kill session {id}")), "{log}");
    // Structured fields stay.
    assert!(log.contains(&format!("session_id={id}")), "{log}");
    let warned: Vec<&str> =
        log.lines().filter(|l| l.contains(" WARN ") && l.contains(&id)).collect();
    assert!(warned.is_empty(), "an ordinary kill warned: {warned:#?}");
}

#[test]
fn a_bad_log_level_is_refused_like_a_bad_config_value() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let run = |args: &[&str]| {
        Command::new(bin("ccmanagerd"))
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap()
    };
    let out = run(&["--log-level", "verbose", "--check-config"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid --log-level") && err.contains("\"verbose\""), "{err}");
    let out = run(&["--log-level", "info,ccmanagerd=loud"]);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG, as an invalid config: {out:?}");
    assert!(!socket.exists(), "it served anyway");
    let out = run(&["--log-level", "debug", "--check-config"]);
    assert!(out.status.success(), "{out:?}");
}
