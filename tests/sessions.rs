//! Sessions against a real tmux, through the real socket and the real CLI:
//! lifecycle, state, persistence across daemon restarts and crashes, a dead
//! tmux server, the one control-mode client, bad input, owner isolation.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ccmanagerd::protocol::method::{DaemonStatus, SessionCapture, SessionGet, SessionList};
use ccmanagerd::protocol::methods::{self, NoParams, SessionId};
use ccmanagerd::protocol::types::SessionState;
use common::daemon::{bin, TestDaemon};

/// Polls `f` until it returns Some, or panics after `secs`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create(d: &TestDaemon, params: Value) -> Value {
    d.ok("session.create", params)
}

fn capture(d: &TestDaemon, id: &str) -> String {
    d.request::<SessionCapture>(&methods::SessionCapture { id: id.into(), ..Default::default() })
        .text
}

/// How many sessions `session.list` shows in `state` (all when None).
fn count(d: &TestDaemon, state: Option<SessionState>) -> usize {
    d.request::<SessionList>(&methods::SessionList { state, fields: None }).sessions.len()
}

fn pid_alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn create_capture_send_resize_kill() {
    let d = TestDaemon::start("");
    let s = create(
        &d,
        json!({"command": ["bash", "-c", "echo ready-$GREETING; while read l; do echo \"got:$l\"; done"],
               "name": "my label", "cwd": "/", "env": {"GREETING": "hi there"}, "cols": 100, "rows": 30}),
    );
    let id = s["id"].as_str().unwrap().to_string();
    assert!(id.len() >= 4 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(s["tmux_session"], format!("ccmanager_sess_{id}"));
    assert_eq!(s["state"], "running");
    assert_eq!(s["name"], "my label");
    assert_eq!(s["owner_uid"], json!(nix::unistd::geteuid().as_raw()));
    assert!(s["created_at"].as_str().unwrap().ends_with('Z'));
    let pid = s["pid"].as_u64().expect("pid");
    eventually(10, "output", || capture(&d, &id).contains("ready-hi there").then_some(()));
    d.ok("session.send", json!({"id": id, "text": "a'b\"c $(x) ; #{pane_id}", "enter": true}));
    eventually(10, "echo of sent text", || {
        capture(&d, &id).contains("got:a'b\"c $(x) ; #{pane_id}").then_some(())
    });
    let r = d.ok("session.resize", json!({"id": id, "cols": 120, "rows": 40}));
    assert_eq!((r["cols"].clone(), r["rows"].clone()), (json!(120), json!(40)));
    let out = d.tmux(&["list-panes", "-a", "-F", "#{session_name} #{pane_width}x#{pane_height}"]);
    let panes = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(panes.contains(&format!("ccmanager_sess_{id} 120x40")), "{panes}");

    let got = d.ok("session.get", json!({"id": id}));
    assert_eq!(
        got["command"],
        json!(["bash", "-c", "echo ready-$GREETING; while read l; do echo \"got:$l\"; done"])
    );
    assert_eq!(got["cwd"], "/");
    let list = d.ok("session.list", json!({}));
    assert!(list["sessions"].as_array().unwrap().iter().any(|x| x["id"] == id.as_str()));
    // A child of the session's program must die with it.
    d.ok("session.send", json!({"id": id, "keys": ["C-c"]}));
    let s2 = create(&d, json!({"command": ["bash", "-c", "sleep 1000 & sleep 1000 & wait"]}));
    let id2 = s2["id"].as_str().unwrap();
    let pid2 = s2["pid"].as_u64().unwrap();
    let children: Vec<u64> = eventually(10, "children", || {
        let kids: Vec<u64> = std::fs::read_to_string(format!("/proc/{pid2}/task/{pid2}/children"))
            .ok()?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        (kids.len() == 2).then_some(kids)
    });
    assert_eq!(d.ok("session.kill", json!({"id": id2})), json!({"id": id2, "killed": true}));
    eventually(10, "session processes gone", || {
        (!pid_alive(pid2) && children.iter().all(|c| !pid_alive(*c))).then_some(())
    });
    let err = d.call("session.get", json!({"id": id2})).unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");
    d.ok("session.kill", json!({"id": id}));
    eventually(10, "first session gone", || (!pid_alive(pid)).then_some(()));
}

#[test]
fn exited_sessions_keep_status_and_output() {
    let d = TestDaemon::start("");
    let s = create(&d, json!({"command": ["sh", "-c", "echo last words; exit 7"]}));
    let id = s["id"].as_str().unwrap();
    let got = eventually(10, "exited state", || {
        let g = d.request::<SessionGet>(&SessionId { id: id.into() });
        (g.state == SessionState::Exited).then_some(g)
    });
    assert_eq!(got.exit_status, Some(7));
    let text = capture(&d, id);
    assert!(
        text.contains("last words"),
        "capture of the exited session: {text:?}\n{}",
        d.log_text()
    );
    let err = d.call("session.send", json!({"id": id, "text": "x"})).unwrap_err().to_string();
    assert!(err.contains("exited"), "{err}");
    assert_eq!(count(&d, Some(SessionState::Exited)), 1);
    assert_eq!(count(&d, Some(SessionState::Running)), 0);
}

#[test]
fn list_returns_only_the_fields_asked_for() {
    let d = TestDaemon::start("");
    let a = create(&d, json!({"command": ["sleep", "1000"], "name": "a"}));
    let b = create(&d, json!({"command": ["sleep", "1000"]}));
    let whole = d.ok("session.list", json!({}))["sessions"].clone();
    assert_eq!(whole.as_array().unwrap().len(), 2);
    let rows =
        d.ok("session.list", json!({"fields": ["state", "id", "name", "id"]}))["sessions"].clone();
    let expected: Vec<Value> = whole
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"state": s["state"], "id": s["id"], "name": s["name"]}))
        .collect();
    assert_eq!(rows, json!(expected));
    let ids: Vec<&Value> = rows.as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert!(ids.len() == 2 && ids.contains(&&a["id"]) && ids.contains(&&b["id"]), "{rows}");
    for (params, needle) in [
        (json!({"fields": ["id", "nope"]}), "fields[1]"),
        (json!({"fields": []}), "fields"),
        (json!({"fields": "id"}), "fields"),
    ] {
        match d.call("session.list", params.clone()) {
            Err(ccmanagerd::client::ClientError::Rpc(e)) => {
                assert_eq!(e.code, -32602, "{params}: {e:?}");
                assert!(e.message.contains(needle), "{params}: {}", e.message);
            }
            other => panic!("{params}: expected invalid params, got {other:?}"),
        }
    }
}

#[test]
fn shell_metacharacters_reach_the_program_literally() {
    let d = TestDaemon::start("");
    let marker = d.dir.path().join("pwned");
    let evil = format!("$(touch {})", marker.display());
    let s = create(&d, json!({"command": ["echo", evil, "`id`", ";", "|", "&&"]}));
    let id = s["id"].as_str().unwrap();
    eventually(10, "echo output", || capture(&d, id).contains("$(touch").then_some(()));
    assert!(capture(&d, id).contains("`id` ; | &&"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "a shell ran the argv");
    // A single-element argv is exec'd too, never handed to a shell: there is
    // no program named "touch <path>", and the create says so.
    let program = format!("touch {}", marker.display());
    let err = d.call("session.create", json!({"command": [program]})).unwrap_err().to_string();
    assert!(err.contains("command[0]") && err.contains(&program), "{err}");
    assert_eq!(d.ok("session.list", json!({}))["sessions"].as_array().unwrap().len(), 1);
    assert!(!marker.exists());
}

#[test]
fn bad_input_names_the_field_and_creates_nothing() {
    let d = TestDaemon::start("");
    let cases = [
        (json!({"command": []}), "command"),
        (json!({"command": "ls -l"}), "command"),
        (json!({"command": ["ls", 5]}), "command[1]"),
        (json!({"command": ["ls"], "cwd": "relative/dir"}), "cwd"),
        (json!({"command": ["ls"], "cwd": "/no/such/dir"}), "cwd"),
        (json!({"command": ["ls"], "env": {"A=B": "x"}}), "env"),
        (json!({"command": ["ls"], "env": {"A\u{0}": "x"}}), "env"),
        (json!({"command": ["ls"], "cols": 0}), "cols"),
        (json!({"command": ["ls"], "cols": 100000}), "cols"),
        (json!({"command": ["ls"], "rows": 0}), "rows"),
        (json!({"command": ["ls"], "name": "#{pane_pid}"}), "name"),
        (json!({"command": ["ls"], "bogus": 1}), "bogus"),
    ];
    for (params, field) in cases {
        let err = d.call("session.create", params.clone()).unwrap_err();
        let ccmanagerd::client::ClientError::Rpc(e) = err else { panic!("{params}: {err}") };
        assert_eq!(e.code, -32602, "{params}: {e:?}");
        assert!(e.message.contains(field), "{params}: {} does not name {field}", e.message);
    }
    for id in ["../etc", "a b", "A", "$(x)", "x;y", ""] {
        let e = d.call("session.get", json!({"id": id})).unwrap_err().to_string();
        assert!(e.contains("id"), "{id:?}: {e}");
    }
    let e = d.call("session.get", json!({"id": "nosuchid"})).unwrap_err();
    let ccmanagerd::client::ClientError::Rpc(e) = e else { panic!() };
    assert_eq!(e.kind(), Some("session_not_found"));
    let s = create(&d, json!({"command": ["cat"]}));
    let id = s["id"].as_str().unwrap();
    for text in ["a\nb", "\u{1b}[A", "\u{7f}"] {
        let e = d.call("session.send", json!({"id": id, "text": text})).unwrap_err().to_string();
        assert!(e.contains("text"), "{e}");
    }
    let e = d.call("session.send", json!({"id": id, "keys": ["a b"]})).unwrap_err().to_string();
    assert!(e.contains("keys[0]"), "{e}");
    assert_eq!(count(&d, None), 1, "nothing half-created");
    let out = d.tmux(&["list-sessions", "-F", "#{session_name}"]);
    let names = String::from_utf8_lossy(&out.stdout);
    assert_eq!(names.lines().filter(|n| n.starts_with("ccmanager_sess_")).count(), 1, "{names}");
}

fn tmux_pid(d: &TestDaemon) -> u32 {
    let status = d.request::<DaemonStatus>(&NoParams {});
    status.tmux.servers.first().and_then(|s| s.pid).expect("tmux pid")
}

#[test]
fn sessions_survive_sigterm_and_sigkill_of_the_daemon() {
    let mut d = TestDaemon::start("");
    let ids: Vec<Value> = (0..3)
        .map(|i| create(&d, json!({"command": ["sleep", "1000"], "name": format!("s{i}")})))
        .collect();
    let server = tmux_pid(&d);
    let key =
        |s: &Value| (s["id"].clone(), s["created_at"].clone(), s["pid"].clone(), s["name"].clone());
    let before: Vec<_> = ids.iter().map(key).collect();
    for crash in [false, true] {
        if crash {
            d.kill9();
        } else {
            assert!(d.stop().success());
        }
        d.restart();
        assert_eq!(tmux_pid(&d), server, "the tmux server must be adopted, not restarted");
        let list = d.ok("session.list", json!({}));
        let after: Vec<_> = list["sessions"].as_array().unwrap().iter().map(key).collect();
        for b in &before {
            assert!(
                after.contains(b),
                "lost {b:?} after {} : {after:?}",
                if crash { "SIGKILL" } else { "SIGTERM" }
            );
        }
        assert!(list["sessions"].as_array().unwrap().iter().all(|s| s["state"] == "running"));
    }
}

#[test]
fn sessions_are_readopted_from_tmux_without_the_state_file() {
    let mut d = TestDaemon::start("");
    let s = create(&d, json!({"command": ["sleep", "1000"], "name": "meta"}));
    assert!(d.stop().success());
    std::fs::remove_dir_all(d.dir.path().join("state")).unwrap();
    d.restart();
    let g = d.ok("session.get", json!({"id": s["id"]}));
    assert_eq!(
        (g["name"].clone(), g["created_at"].clone(), g["pid"].clone()),
        (s["name"].clone(), s["created_at"].clone(), s["pid"].clone())
    );
}

#[test]
fn a_killed_tmux_server_loses_its_sessions_and_the_next_create_starts_a_new_one() {
    let d = TestDaemon::start("");
    let s = create(&d, json!({"command": ["sleep", "1000"]}));
    let old = tmux_pid(&d);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually(15, "the session to be lost", || {
        (d.ok("session.get", json!({"id": s["id"]}))["state"] == "lost").then_some(())
    });
    assert!(d.log_text().contains("tmux server died"));
    let s2 = create(&d, json!({"command": ["cat"]}));
    assert_eq!(d.ok("session.get", json!({"id": s2["id"]}))["state"], "running");
    let new = tmux_pid(&d);
    assert_ne!(new, old, "a new server");
    d.ok("session.kill", json!({"id": s["id"]}));
}

#[test]
fn one_control_client_and_no_tmux_process_per_request() {
    let d = TestDaemon::start("");
    let s = create(&d, json!({"command": ["cat"]}));
    let id = s["id"].as_str().unwrap().to_string();
    let socket = d.socket.clone();
    let worker = std::thread::spawn(move || {
        let mut c =
            ccmanagerd::client::Client::connect(&socket, Some(Duration::from_secs(30))).unwrap();
        for _ in 0..300 {
            c.call("session.capture", json!({"id": id})).unwrap();
            c.call("session.send", json!({"id": id, "text": "x"})).unwrap();
        }
    });
    let mut max_tmux_children = 0;
    while !worker.is_finished() {
        // Children of every thread: a tokio worker may have spawned them.
        let children: String = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let tmux_kids: Vec<String> = children
            .split_whitespace()
            .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("tmux"))
            .collect();
        // The server itself (`tmux -D`, detached launcher) may be our child too.
        let clients: Vec<&String> = tmux_kids.iter().filter(|c| !c.contains(" -D ")).collect();
        assert!(
            clients.iter().all(|c| c.contains(" -C ")),
            "per-request tmux process: {clients:?}"
        );
        max_tmux_children = max_tmux_children.max(clients.len());
        std::thread::sleep(Duration::from_millis(5));
    }
    worker.join().unwrap();
    assert_eq!(max_tmux_children, 1, "exactly one long-lived tmux -C client");
}

#[test]
fn owners_only_see_their_own_sessions() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP owners_only_see_their_own_sessions: needs root to connect as another uid");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let d = TestDaemon::start("[daemon]\nsocket_mode = \"0666\"\nallowed_uids = [65534]\n");
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = create(&d, json!({"command": ["cat"]}));
    let as_nobody = |args: &[&str]| {
        Command::new(bin("ccmanagerctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = as_nobody(&["--json", "ls"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions"], json!([]));
    let out = as_nobody(&["show", s["id"].as_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = as_nobody(&["kill", s["id"].as_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(d.ok("session.get", json!({"id": s["id"]}))["state"], "running");
}

#[test]
fn session_programs_never_inherit_the_daemons_private_environment() {
    let dir = tempfile::tempdir().unwrap();
    let notify = std::os::unix::net::UnixDatagram::bind(dir.path().join("n.sock")).unwrap();
    let np = dir.path().join("n.sock");
    let d = TestDaemon::start_with("", move |c| {
        c.env("NOTIFY_SOCKET", &np).env("LISTEN_FDNAMES", "x").env("INVOCATION_ID", "abc");
    });
    drop(notify);
    let s = create(&d, json!({"command": ["sleep", "1000"]}));
    // Wait until the exec-wrapper has exec'd the program.
    eventually(10, "exec", || {
        let cmd = std::fs::read(format!("/proc/{}/cmdline", s["pid"])).ok()?;
        cmd.starts_with(b"sleep").then_some(())
    });
    let env = std::fs::read(format!("/proc/{}/environ", s["pid"])).unwrap();
    let env = String::from_utf8_lossy(&env);
    for var in ["NOTIFY_SOCKET", "LISTEN_", "INVOCATION_ID", "WATCHDOG_"] {
        assert!(!env.contains(var), "{var} leaked into the session: {env}");
    }
}

#[test]
fn ctl_session_commands() {
    let d = TestDaemon::start("");
    let out = d.ctl(&[
        "new",
        "--name",
        "cli",
        "--env",
        "X=1",
        "--size",
        "90x20",
        "--",
        "sh",
        "-c",
        "echo from-cli; cat",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = d.ctl(&["ls"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&id) && table.contains("cli") && table.contains("running"), "{table}");
    let out = d.ctl(&["--json", "ls"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions"][0]["id"], id.as_str());
    eventually(10, "cli output", || {
        String::from_utf8_lossy(&d.ctl(&["capture", &id]).stdout).contains("from-cli").then_some(())
    });
    assert!(d.ctl(&["send", &id, "typed", "--enter"]).status.success());
    eventually(10, "echo", || {
        String::from_utf8_lossy(&d.ctl(&["capture", &id, "--lines", "10"]).stdout)
            .contains("typed")
            .then_some(())
    });
    assert!(d.ctl(&["resize", &id, "100x30"]).status.success());
    let show = String::from_utf8_lossy(&d.ctl(&["show", &id]).stdout).to_string();
    assert!(show.contains(&format!("ccmanager_sess_{id}")), "{show}");
    let out = d.ctl(&["--json", "attach", "--tmux", &id]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let argv: Vec<String> = serde_json::from_value(v["argv"].clone()).unwrap();
    assert!(
        argv.contains(&d.tmux_socket.display().to_string())
            && argv.contains(&format!("=ccmanager_sess_{id}")),
        "{argv:?}"
    );
    assert_eq!(d.ctl(&["resize", &id, "huge"]).status.code(), Some(2), "usage");
    assert_eq!(d.ctl(&["show", "nosuch"]).status.code(), Some(1));
    let id2 = String::from_utf8_lossy(&d.ctl(&["new", "--", "cat"]).stdout).trim().to_string();
    let out = d.ctl(&["kill", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--all without --yes and without a terminal must not kill"
    );
    assert_eq!(count(&d, None), 2);
    let out = d.ctl(&["kill", &id2]);
    assert!(out.status.success());
    let out = d.ctl(&["kill", "--all", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.ok("session.list", json!({}))["sessions"], json!([]));
}

/// A stalled server is not a dead one: with the server SIGSTOPped and the
/// daemon's control client killed, requests fail with `tmux_unavailable`
/// (tmux 3.3a: the stopped server still holds the client's stdout, so the
/// daemon sees no EOF until it resumes), the server's sessions stay
/// `running` and no second server is started; after SIGCONT the daemon
/// reconnects to the same server and its sessions answer again.
#[test]
fn a_stalled_tmux_server_keeps_its_sessions() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    /// SIGCONT on the way out, whatever happens: a stopped server would
    /// hang the fixture's cleanup.
    struct Resume(Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let d = TestDaemon::start("");
    let s = create(&d, json!({"command": ["cat"]}));
    let server = tmux_pid(&d);
    let client = Command::new("pgrep")
        .args(["-f", "--", &format!("-C -S {}", d.tmux_socket.display())])
        .output()
        .unwrap();
    let client: i32 = String::from_utf8_lossy(&client.stdout).trim().parse().expect("one tmux -C");
    let stopped = Resume(Pid::from_raw(server as i32));
    kill(stopped.0, Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(client), Signal::SIGKILL).unwrap();
    let e = d.call("session.capture", json!({"id": s["id"]})).unwrap_err().to_string();
    assert!(e.contains("tmux"), "{e}");
    eventually(30, "a refresh to fail", || {
        d.log_text().contains("refreshing sessions from tmux failed").then_some(())
    });
    assert_eq!(d.ok("session.get", json!({"id": s["id"]}))["state"], "running");
    drop(stopped);
    eventually(60, "the session to answer again", || {
        d.call("session.capture", json!({"id": s["id"]})).ok()
    });
    assert_eq!(tmux_pid(&d), server, "the same server, no second one");
    assert_eq!(d.ok("session.get", json!({"id": s["id"]}))["state"], "running");
    assert!(!d.log_text().contains("the tmux server died"), "{}", d.log_text());
}
