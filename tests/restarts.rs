//! Sessions that come back, through the real daemon and real tmux (no
//! systemd; the reboot is in tests/system_restore.rs): `restart` policies
//! with their delay and limit, `session.restart` (and `ccmanagerctl
//! restart`), `restore: always` after the tmux server is killed with
//! SIGKILL, one log across runs with a marker at each, and a live stream
//! that stays open across a restart.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::daemon::{kill_tmux_server, tmux_server_pid, TestDaemon};
use common::output::b64;
use common::wait::{eventually, WAIT};

/// Quick restarts and a small limit, so the tests run in seconds.
const CONFIG: &str = r#"
[sessions]
restart_delay = "300ms"
restart_burst = 3
restart_window = "1m"
"#;

/// Every byte of a session's log, read with `session.read`.
fn log_of(d: &TestDaemon, id: &str) -> String {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let r = d.ok("session.read", json!({"id": id, "offset": offset}));
        out.extend(b64(&r["data"]));
        let next = r["next_offset"].as_u64().unwrap();
        if r["end"].as_bool().unwrap() || next == offset {
            return String::from_utf8_lossy(&out).into_owned();
        }
        offset = next;
    }
}

fn get(d: &TestDaemon, id: &str) -> Value {
    d.ok("session.get", json!({"id": id}))
}

fn create(d: &TestDaemon, params: Value) -> String {
    d.ok("session.create", params)["id"].as_str().unwrap().to_string()
}

/// Waits until `id`'s log holds `needle` `times` times; the log.
fn wait_log(d: &TestDaemon, id: &str, needle: &str, times: usize) -> String {
    eventually(WAIT, &format!("{times}x {needle:?} in the log of {id}"), || {
        let log = log_of(d, id);
        (log.matches(needle).count() >= times).then_some(log)
    })
}

#[test]
fn on_failure_restarts_after_the_delay_up_to_the_limit_then_stays_exited() {
    let d = TestDaemon::start(CONFIG);
    let t0 = Instant::now();
    let id = create(
        &d,
        json!({"command": ["sh", "-c", "echo run-$((6*7)); sleep 0.2; exit 1"], "name": "flaky",
               "restart": "on_failure", "limits": {"nofile": 321}}),
    );
    let first = get(&d, &id);
    assert_eq!(first["restart"], "on_failure");
    // Three restarts (the burst), then it stays exited, with the reason.
    let s = eventually(WAIT, "the restart limit", || {
        let s = get(&d, &id);
        (s["state"] == "exited" && s["state_reason"].is_string()).then_some(s)
    });
    assert_eq!(s["restarts"], 3, "{s}");
    assert_eq!(s["restart_reason"], "exited");
    assert_eq!(s["exit_status"], 1);
    let why = s["state_reason"].as_str().unwrap();
    assert!(why.contains("restart_burst = 3"), "{why}");
    assert_eq!(
        (&s["id"], &s["name"], &s["limits"]),
        (&first["id"], &first["name"], &first["limits"])
    );
    // One log, four runs, a marker before each of the three restarts.
    let log = log_of(&d, &id);
    assert_eq!(log.matches("run-42").count(), 4, "{log}");
    let marks = log.matches("[ccmanagerd] ").count();
    assert_eq!(marks, 3, "{log}");
    assert!(log.contains("restarted after its program exited (status 1): sh -c"), "{log}");
    // Each restart waited for the delay: four runs of 0.2 s and three
    // delays of 0.3 s take at least 1.7 s (without the delay, 0.8 s).
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(1600), "four runs and three restarts took {took:?}");
    // It stays down.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(get(&d, &id)["restarts"], 3);
    // session.restart starts it again, and clears the reason.
    let again = d.ok("session.restart", json!({"id": id}));
    assert_eq!(
        (again["restarts"].as_u64(), &again["restart_reason"]),
        (Some(4), &json!("requested"))
    );
    assert_eq!(again["state_reason"], Value::Null);
    wait_log(&d, &id, "run-42", 5);
}

#[test]
fn exit_zero_is_not_restarted_on_failure_and_always_restarts_it() {
    let d = TestDaemon::start(CONFIG);
    let clean =
        create(&d, json!({"command": ["sh", "-c", "echo ok-$((1+1))"], "restart": "on_failure"}));
    let always =
        create(&d, json!({"command": ["sh", "-c", "echo again-$((1+1))"], "restart": "always"}));
    let never = create(&d, json!({"command": ["sh", "-c", "exit 3"]}));
    wait_log(&d, &always, "again-2", 3);
    std::thread::sleep(Duration::from_secs(1));
    let c = get(&d, &clean);
    assert_eq!(
        (&c["state"], &c["exit_status"], &c["restarts"]),
        (&json!("exited"), &json!(0), &json!(0))
    );
    assert_eq!(c["state_reason"], Value::Null, "nothing was given up on");
    let n = get(&d, &never);
    assert_eq!(
        (&n["restart"], &n["restarts"]),
        (&json!("never"), &json!(0)),
        "the default is never"
    );
}

#[test]
fn session_restart_keeps_id_name_log_and_limits_and_can_resume() {
    let d = TestDaemon::start(CONFIG);
    let id = create(
        &d,
        json!({"command": ["sh", "-c", "echo first-$((1+1)); ulimit -n; exec sleep 600"], "name": "agent",
               "resume_command": ["sh", "-c", "echo resumed-$((1+1)); ulimit -n; exec sleep 600"],
               "limits": {"nofile": 555}, "cwd": "/tmp"}),
    );
    wait_log(&d, &id, "first-2", 1);
    let before = get(&d, &id);
    let s = d.ok("session.restart", json!({"id": id}));
    assert_eq!((&s["id"], &s["name"], &s["cwd"]), (&before["id"], &before["name"], &before["cwd"]));
    assert_ne!(s["pid"], before["pid"], "a new program");
    assert_eq!(s["state"], "running");
    assert_eq!(s["restarts"], 1);
    let log = wait_log(&d, &id, "first-2", 2);
    assert_eq!(log.matches("555").count(), 2, "the same limits: {log}");
    assert!(log.contains("restarted on request: sh -c"), "{log}");
    // The old program is gone: a restart ends the running one first.
    let old = before["pid"].as_u64().unwrap();
    eventually(WAIT, "the old program to be gone", || {
        (!std::path::Path::new(&format!("/proc/{old}")).exists()).then_some(())
    });
    // `ccmanagerctl restart --resume` runs resume_command.
    let out = d.ctl(&["restart", "--resume", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = wait_log(&d, &id, "resumed-2", 1);
    let first = log.find("first-2").unwrap();
    let mark = log.rfind("[ccmanagerd] ").unwrap();
    assert!(
        first < mark && mark < log.find("resumed-2").unwrap(),
        "old output, marker, new: {log}"
    );
    assert_eq!(get(&d, &id)["restarts"], 2);
    // Bad input names what was wrong.
    let e = d.call("session.restart", json!({"id": "nosuchid"})).unwrap_err();
    assert!(e.to_string().contains("nosuchid"), "{e}");
    let e = d.call("session.create", json!({"command": ["sh"], "resume_command": []})).unwrap_err();
    assert!(e.to_string().contains("resume_command"), "{e}");
    let e =
        d.call("session.create", json!({"command": ["sh"], "restore": "sometimes"})).unwrap_err();
    assert!(e.to_string().contains("restore"), "{e}");
}

#[test]
fn always_sessions_come_back_after_the_tmux_server_is_killed_others_are_lost() {
    // A health interval much longer than the comeback, to tell them apart.
    let d = TestDaemon::start(&format!("{CONFIG}\n[health]\ninterval = \"10s\"\n"));
    let back = create(
        &d,
        json!({"command": ["sh", "-c", "echo before-$((1+1)); exec sleep 600"], "restore": "always",
               "resume_command": ["sh", "-c", "echo after-$((1+1)); exec sleep 600"]}),
    );
    let gone = create(&d, json!({"command": ["sleep", "600"], "restore": "on_boot"}));
    wait_log(&d, &back, "before-2", 1);
    let pid = tmux_server_pid(&d.tmux_socket).expect("the tmux server");
    let t0 = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let s = eventually(WAIT, "the always session to come back", || {
        let s = get(&d, &back);
        (s["state"] == "running" && s["restarts"] == 1).then_some(s)
    });
    let took = t0.elapsed();
    eprintln!("restarts: restore after the tmux server's SIGKILL took {took:?}");
    assert!(took < Duration::from_secs(10), "not within one health interval: {took:?}");
    assert_eq!(s["restart_reason"], "server_died");
    assert!(s["restored_at"].is_string());
    let log = wait_log(&d, &back, "after-2", 1);
    assert!(log.contains("restored after its tmux server died: sh -c"), "{log}");
    assert!(log.find("before-2").unwrap() < log.find("after-2").unwrap());
    let g = get(&d, &gone);
    assert_eq!(
        (&g["state"], &g["restarts"]),
        (&json!("lost"), &json!(0)),
        "on_boot waits for a reboot"
    );
    kill_tmux_server(&d.tmux_socket);
}

#[test]
fn a_live_stream_stays_open_across_a_restart() {
    use std::io::{BufRead, BufReader, Write};
    let d = TestDaemon::start(CONFIG);
    let id = create(
        &d,
        json!({"command": ["sh", "-c", "echo tick-$((1+1)); sleep 0.5; exit 2"], "restart": "always"}),
    );
    let stream = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    writeln!(w, r#"{{"jsonrpc":"2.0","id":1,"method":"session.subscribe","params":{{"id":"{id}","from":0}}}}"#).unwrap();
    let mut seen = Vec::new();
    let mut line = String::new();
    let t0 = Instant::now();
    // Three runs' output on the one subscription, and no session.exit between.
    while String::from_utf8_lossy(&seen).matches("tick-2").count() < 3 {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "the stream closed");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_ne!(v["method"], "session.exit", "the stream ended at a restart: {v}");
        if v["method"] == "session.output" {
            seen.extend(b64(&v["params"]["data"]));
            let off =
                v["params"]["offset"].as_u64().unwrap() + b64(&v["params"]["data"]).len() as u64;
            writeln!(w, r#"{{"jsonrpc":"2.0","id":2,"method":"session.ack","params":{{"subscription":{},"offset":{off}}}}}"#, v["params"]["subscription"]).unwrap();
        }
        assert!(t0.elapsed() < WAIT, "{}", String::from_utf8_lossy(&seen));
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.matches("[ccmanagerd] ").count() >= 2, "{text}");
}

#[test]
fn a_lost_session_runs_again_only_within_the_caps() {
    // Killing one's own tmux server must not let one run more than the cap.
    let d = TestDaemon::start(&format!("{CONFIG}\n[limits]\nmax_sessions_per_owner = 1\n"));
    let a = create(&d, json!({"command": ["sleep", "600"]}));
    kill_tmux_server(&d.tmux_socket);
    eventually(WAIT, "the session to be lost", || (get(&d, &a)["state"] == "lost").then_some(()));
    let b = create(&d, json!({"command": ["sleep", "600"]}));
    let e = d.call("session.restart", json!({"id": a})).unwrap_err();
    assert!(e.to_string().contains("max_sessions_per_owner = 1"), "{e}");
    assert_eq!(get(&d, &a)["state"], "lost");
    assert_eq!(get(&d, &b)["state"], "running");
    d.ok("session.kill", json!({"id": b}));
    let s = d.ok("session.restart", json!({"id": a}));
    assert_eq!(s["state"], "running", "room again once the other one is gone");
}
