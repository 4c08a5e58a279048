//! `ccmanagerctl logs`: `--raw` is the log byte for byte, the default is
//! safe on a terminal (no escape sequence, no control but tab and
//! newline, always UTF-8), `--from` / `--tail` start where asked, and `-f`
//! follows new output until the session exits. Real daemon, real tmux.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use common::daemon::{bin, TestDaemon};
use common::output::{cat_raw, create};
use common::wait::{eventually, WAIT};

/// Bytes no terminal should get from a log viewer unescaped, between
/// text that must survive: OSC title and clipboard, a title report query
/// (the terminal would type its answer at the operator's prompt), DCS,
/// colours, C1 CSI in UTF-8 and as a raw byte, SO (line drawing), BEL.
const HOSTILE: &[u8] = b"start\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x1b\\\x1b[21t\x1bP$q\"p\x1b\\\x1b[1;31mred\x1b[0m \xc2\x9b6n\x9b6n\x0e\x07end\n";

/// `ccmanagerctl logs ARGS` stdout, once it is at least `len` bytes.
fn logs_when(d: &TestDaemon, args: &[&str], len: usize) -> Vec<u8> {
    eventually(WAIT, &format!("logs {args:?} to have {len} bytes"), || {
        let out = d.ctl(&[&["logs"], args].concat());
        assert!(out.status.success(), "logs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (out.stdout.len() >= len).then_some(out.stdout)
    })
}

#[test]
fn raw_is_byte_exact_and_from_starts_there() {
    let d = TestDaemon::start("");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(HOSTILE);
    bytes.extend_from_slice("split é€ 😀\r\n".as_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let id = create(&d, cat_raw(&file, "exec sleep 1000"));
    let got = logs_when(&d, &[&id, "--raw"], bytes.len());
    assert_eq!(got, bytes, "--raw is not the bytes the program printed");
    let from = logs_when(&d, &[&id, "--raw", "--from", "200"], bytes.len() - 200);
    assert_eq!(from, bytes[200..]);
}

#[test]
fn default_output_is_safe_on_a_terminal() {
    let d = TestDaemon::start("");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile");
    std::fs::write(&file, HOSTILE).unwrap();
    let id = create(&d, cat_raw(&file, "exec sleep 1000"));
    let out = eventually(WAIT, "the log to reach the end marker", || {
        let out = d.ctl(&["logs", &id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).contains("end").then_some(out.stdout)
    });
    let text = String::from_utf8(out.clone()).expect("the sanitized log is UTF-8");
    let bad: Vec<char> =
        text.chars().filter(|c| c.is_control() && *c != '\n' && *c != '\t').collect();
    assert!(bad.is_empty(), "controls left in {text:?}: {bad:?}");
    assert!(!out.contains(&0x1b), "ESC left in {text:?}");
    assert!(text.starts_with("startred ") && text.contains("end\n"), "{text:?}");
    assert!(!text.contains("pwned") && !text.contains("cHduZWQ"), "{text:?}");
}

#[test]
fn tail_prints_the_last_lines() {
    let d = TestDaemon::start("");
    let script = "printf 'l1\\nl2\\nl3\\nl4'; exec sleep 1000";
    let s = d.ok("session.create", json!({"command": ["/bin/sh", "-c", script]}));
    let id = s["id"].as_str().unwrap();
    let all = logs_when(&d, &[id], "l1\nl2\nl3\nl4".len());
    assert_eq!(String::from_utf8_lossy(&all), "l1\nl2\nl3\nl4");
    let out = d.ctl(&["logs", id, "--tail", "2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "l3\nl4");
    let out = d.ctl(&["logs", id, "-n", "9"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "l1\nl2\nl3\nl4");
}

/// A child's stdout, read by a thread.
/// `ccmanagerctl logs -f ID`, running, and what it has printed so far.
fn follow_logs(d: &TestDaemon, id: &str, stderr: Stdio) -> (Child, Arc<Mutex<Vec<u8>>>) {
    let mut child = Command::new(bin("ccmanagerctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["logs", "-f", id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let seen = collect(&mut child);
    (child, seen)
}

fn collect(child: &mut Child) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            s.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    seen
}

#[test]
fn follow_prints_new_output_once_until_the_session_exits() {
    let d = TestDaemon::start("");
    let script = "echo before; while read l; do echo \"line:$l\"; done; exit 3";
    let s = d.ok("session.create", json!({"command": ["/bin/sh", "-c", script]}));
    let id = s["id"].as_str().unwrap().to_string();
    let (mut child, seen) = follow_logs(&d, &id, Stdio::piped());
    let shows = |needle: &str| String::from_utf8_lossy(&seen.lock().unwrap()).contains(needle);
    eventually(WAIT, "logs -f to print what was there", || shows("before\n").then_some(()));
    for word in ["one", "two"] {
        d.ok("session.send", json!({"id": id, "text": word, "enter": true}));
        eventually(WAIT, &format!("logs -f to follow {word}"), || {
            shows(&format!("line:{word}\n")).then_some(())
        });
    }
    d.ok("session.send", json!({"id": id, "keys": ["C-d"]}));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "logs -f did not end with the session");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains(&format!("session {id} exited with status 3")), "{err}");
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    for line in ["before\n", "line:one\n", "line:two\n"] {
        assert_eq!(text.matches(line).count(), 1, "{line:?} not exactly once in {text:?}");
    }
}

#[test]
fn follow_rides_out_a_daemon_restart() {
    let mut d = TestDaemon::start("");
    let script = "echo before; while read l; do sleep 1; echo \"late:$l\"; done";
    let s = d.ok("session.create", json!({"command": ["/bin/sh", "-c", script]}));
    let id = s["id"].as_str().unwrap().to_string();
    let (mut child, seen) = follow_logs(&d, &id, Stdio::null());
    let shows = |needle: &str| String::from_utf8_lossy(&seen.lock().unwrap()).contains(needle);
    eventually(WAIT, "logs -f to print what was there", || shows("before\n").then_some(()));
    // Printed a second later, while the daemon is down.
    d.ok("session.send", json!({"id": id, "text": "one", "enter": true}));
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.child.as_mut().unwrap().wait();
    std::thread::sleep(Duration::from_millis(1500));
    d.restart();
    eventually(WAIT, "logs -f to show what was printed while the daemon was down", || {
        shows("late:one\n").then_some(())
    });
    d.ok("session.send", json!({"id": id, "text": "two", "enter": true}));
    eventually(WAIT, "logs -f to go on after the restart", || shows("late:two\n").then_some(()));
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    for line in ["before\n", "late:one\n", "late:two\n"] {
        assert_eq!(text.matches(line).count(), 1, "{line:?} not exactly once in {text:?}");
    }
}
