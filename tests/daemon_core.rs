//! The daemon core through the real socket and the real binaries: lifecycle,
//! signals, sd_notify, socket ownership and activation, JSON-RPC behaviour,
//! bounds, bad input, access control, and the CLI's exit codes.

mod common;

use std::io::Read;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use ccmanagerd::protocol::method::DaemonReload;
use ccmanagerd::protocol::methods::NoParams;
use common::daemon::{bin, Raw, TestDaemon};

#[test]
fn ping_status_sighup_and_sigterm() {
    let mut d = TestDaemon::start("");
    let started = Instant::now();
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
    assert!(started.elapsed() < Duration::from_secs(1));
    let out = d.ctl(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ccmanagerd"));
    let status = d.ok("daemon.status", json!({}));
    assert_eq!(status["pid"], json!(d.pid()));
    for key in ["version", "uptime_s", "tmux", "sessions", "health"] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    d.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
    let socket = d.socket.clone();
    let status = d.stop();
    assert!(status.success(), "exit status {status}");
    assert!(!socket.exists(), "socket not removed on SIGTERM");
}

#[test]
fn second_daemon_refuses_and_stale_socket_is_replaced() {
    let mut d = TestDaemon::start("");
    let out = Command::new(bin("ccmanagerd"))
        .arg("--config")
        .arg(&d.config)
        .arg("--socket")
        .arg(&d.socket)
        .arg("--tmux-dir")
        .arg(&d.tmux_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"), "first daemon must keep serving");
    // A stale socket file (nobody listening) is replaced.
    d.kill9();
    assert!(d.socket.exists(), "SIGKILL leaves the socket file behind");
    d.restart();
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
}

#[test]
fn refuses_to_replace_a_non_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-socket");
    std::fs::write(&path, "precious").unwrap();
    let out = Command::new(bin("ccmanagerd")).arg("--socket").arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn socket_mode_is_applied() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDaemon::start("[daemon]\nsocket_mode = \"0600\"\n");
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn bad_input_gets_the_right_errors_and_the_daemon_keeps_serving() {
    let d = TestDaemon::start("");
    let cases: &[(&[u8], i64)] = &[
        (b"{not json", -32700),
        (b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":\"\xff\xfe\"}", -32700),
        (b"42", -32600),
        (b"\"a string\"", -32600),
        (b"{\"method\":\"daemon.ping\",\"id\":1}", -32600),
        (b"{\"jsonrpc\":\"1.0\",\"method\":\"daemon.ping\",\"id\":1}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":1}", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"params\":5,\"id\":1}", -32600),
        (b"[]", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"method\":\"no.such\",\"id\":1}", -32601),
        (
            b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"params\":{\"bogus\":1},\"id\":1}",
            -32602,
        ),
        (b"{\"jsonrpc\":\"2.0\",\"method\":\"debug.fail\",\"id\":1}", -32603),
    ];
    let mut raw = Raw::connect(&d.socket);
    for (line, code) in cases {
        let mut msg = line.to_vec();
        msg.push(b'\n');
        raw.send(&msg);
        let reply = raw.recv().expect("reply");
        assert_eq!(
            reply["error"]["code"],
            json!(code),
            "{} -> {reply}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(reply["jsonrpc"], "2.0");
    }
    // -32602 names the bad field.
    let reply = raw.roundtrip(
        r#"{"jsonrpc":"2.0","method":"session.create","params":{"command":["a",3]},"id":9}"#,
    );
    assert_eq!(reply["error"]["code"], -32602);
    assert!(reply["error"]["message"].as_str().unwrap().contains("command[1]"), "{reply}");
    // A batch of junk: one error per element.
    let reply = raw.roundtrip("[1, \"x\", {}]");
    let arr = reply.as_array().expect("batch reply is an array");
    assert_eq!(arr.len(), 3);
    assert!(arr.iter().all(|r| r["error"]["code"] == -32600));
    assert_eq!(
        raw.roundtrip(r#"{"jsonrpc":"2.0","method":"daemon.ping","id":1}"#)["result"],
        "pong"
    );
}

#[test]
fn ids_are_echoed_and_notifications_get_no_reply() {
    let d = TestDaemon::start("");
    let mut raw = Raw::connect(&d.socket);
    for id in [json!(1), json!("abc"), json!(null), json!(1.5)] {
        let req = json!({"jsonrpc": "2.0", "method": "daemon.ping", "id": id});
        let reply = raw.roundtrip(&req.to_string());
        assert_eq!(reply["id"], id);
        assert_eq!(reply["result"], "pong");
    }
    // The spec allows only a string, a number or null (tests/protocol_edges.rs).
    for id in [json!({"k": [1]}), json!([1, 2]), json!(true)] {
        let req = json!({"jsonrpc": "2.0", "method": "daemon.ping", "id": id});
        let reply = raw.roundtrip(&req.to_string());
        assert_eq!((&reply["id"], &reply["error"]["code"]), (&json!(null), &json!(-32600)));
    }
    // A notification, then a request: only the request is answered.
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\"}\n");
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"no.such.method\"}\n");
    let reply = raw.roundtrip(r#"{"jsonrpc":"2.0","method":"daemon.ping","id":"after"}"#);
    assert_eq!(reply["id"], "after");
    // A batch mixing requests and notifications: replies for requests only.
    let reply = raw.roundtrip(
        r#"[{"jsonrpc":"2.0","method":"daemon.ping","id":1},{"jsonrpc":"2.0","method":"daemon.ping"},{"jsonrpc":"2.0","method":"nope","id":2}]"#,
    );
    let arr = reply.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let ids: Vec<&Value> = arr.iter().map(|r| &r["id"]).collect();
    assert!(ids.contains(&&json!(1)) && ids.contains(&&json!(2)));
    // A batch of notifications only: no reply at all; the next request's
    // reply is the next line.
    raw.send(b"[{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\"}]\n");
    assert_eq!(raw.roundtrip(r#"{"jsonrpc":"2.0","method":"daemon.ping","id":"x"}"#)["id"], "x");
}

#[test]
fn requests_on_one_connection_are_served_concurrently() {
    let d = TestDaemon::start("");
    let mut raw = Raw::connect(&d.socket);
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"debug.sleep\",\"params\":{\"ms\":1500},\"id\":\"slow\"}\n");
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":\"fast\"}\n");
    assert_eq!(
        raw.recv().unwrap()["id"],
        "fast",
        "the fast reply must not wait behind the slow one"
    );
    assert_eq!(raw.recv().unwrap()["id"], "slow");
}

#[test]
fn oversized_message_is_refused_and_others_keep_being_served() {
    let d = TestDaemon::start("[daemon]\nmax_message_bytes = 1024\n");
    let mut other = Raw::connect(&d.socket);
    let mut raw = Raw::connect(&d.socket);
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":\"{}\"}}\n",
        "x".repeat(4096)
    );
    raw.send(big.as_bytes());
    let reply = raw.recv().expect("an error reply before the close");
    assert_eq!(reply["error"]["code"], -32600);
    assert!(reply["error"]["message"].as_str().unwrap().contains("1024"));
    assert!(raw.recv().is_none(), "connection must be closed");
    assert_eq!(
        other.roundtrip(r#"{"jsonrpc":"2.0","method":"daemon.ping","id":1}"#)["result"],
        "pong"
    );
}

#[test]
fn silent_and_half_written_clients_do_not_hurt() {
    let d = TestDaemon::start("[daemon]\nidle_timeout = \"1s\"\n");
    // Connects and sends nothing: closed after the idle timeout.
    let mut silent = UnixStream::connect(&d.socket).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap(), 0, "idle connection should be closed");
    assert!(t.elapsed() >= Duration::from_millis(900));
    // Disconnects mid-line.
    {
        let mut half = Raw::connect(&d.socket);
        half.send(b"{\"jsonrpc\":\"2.0\",\"meth");
    }
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
}

#[test]
fn two_hundred_clients_at_once() {
    let d = TestDaemon::start("");
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let path = d.socket.clone();
            std::thread::spawn(move || {
                let mut raw = Raw::connect(&path);
                let reply = raw.roundtrip(
                    &json!({"jsonrpc": "2.0", "method": "daemon.ping", "id": i}).to_string(),
                );
                assert_eq!(reply["id"], json!(i));
                assert_eq!(reply["result"], "pong");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
}

#[test]
fn connection_cap_replies_then_closes() {
    let d = TestDaemon::start("[daemon]\nmax_connections = 2\nreserved_admin_connections = 0\n");
    // Let the daemon see the readiness probe's connection close.
    std::thread::sleep(Duration::from_millis(500));
    let mut a = Raw::connect(&d.socket);
    let mut b = Raw::connect(&d.socket);
    assert_eq!(a.roundtrip(r#"{"jsonrpc":"2.0","method":"daemon.ping","id":1}"#)["result"], "pong");
    assert_eq!(b.roundtrip(r#"{"jsonrpc":"2.0","method":"daemon.ping","id":1}"#)["result"], "pong");
    let mut c = Raw::connect(&d.socket);
    let reply = c.recv().expect("refusal reply");
    assert_eq!(reply["error"]["data"]["kind"], "too_many_connections");
    assert!(c.recv().is_none());
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
}

#[test]
fn peers_outside_the_allowed_set_are_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIP peers_outside_the_allowed_set_are_refused: needs root to connect as another uid"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let open_dir = |d: &TestDaemon| {
        std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap()
    };
    let d = TestDaemon::start("[daemon]\nsocket_mode = \"0666\"\n");
    open_dir(&d);
    let run_as = |uid: u32| {
        use std::os::unix::process::CommandExt;
        Command::new(bin("ccmanagerctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("ping")
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap()
    };
    let out = run_as(65534);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"), "{out:?}");
    assert!(d.log_text().contains("permission denied"));
    drop(d);
    let d = TestDaemon::start("[daemon]\nsocket_mode = \"0666\"\nallowed_uids = [65534]\n");
    open_dir(&d);
    let out = Command::new(bin("ccmanagerctl"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("ping")
        .uid_gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

trait UidGid {
    fn uid_gid(&mut self, id: u32) -> &mut Self;
}

impl UidGid for Command {
    fn uid_gid(&mut self, id: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.uid(id).gid(id)
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut d = TestDaemon::start("");
    let mut raw = Raw::connect(&d.socket);
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"debug.sleep\",\"params\":{\"ms\":800},\"id\":\"inflight\"}\n");
    std::thread::sleep(Duration::from_millis(200));
    d.signal(Signal::SIGTERM);
    let reply = raw.recv().expect("in-flight request must be answered");
    assert_eq!(reply["result"], "slept");
    assert!(d.wait_exit().success());
}

#[test]
fn reload_applies_and_rejects_invalid_config() {
    let d = TestDaemon::start("");
    let original = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{original}\n[cleanup]\nmax_age = \"2d\"\n")).unwrap();
    let r = d.request::<DaemonReload>(&NoParams {});
    assert!(r.reloaded);
    assert!(r.applied.iter().any(|k| k == "cleanup.max_age"), "{r:?}");
    std::fs::write(&d.config, format!("{original}\n[cleanup]\nmax_age = \"forever\"\n")).unwrap();
    let err = d.call("daemon.reload", json!({})).unwrap_err().to_string();
    assert!(err.contains("keeping the running config") && err.contains("cleanup.max_age"), "{err}");
    assert!(d.log_text().contains("reload rejected"));
    // Same through SIGHUP: logged, still serving.
    d.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.ok("daemon.ping", json!({})), json!("pong"));
    // A change that needs a restart is reported as such.
    let mut table: toml::Table = toml::from_str(&original).unwrap();
    let tmux = table.entry("tmux").or_insert(toml::Table::new().into());
    tmux.as_table_mut().unwrap().insert("history_limit".into(), 5.into());
    tmux.as_table_mut().unwrap().insert("unit_prefix".into(), "other".into());
    std::fs::write(&d.config, toml::to_string(&table).unwrap()).unwrap();
    let r = d.ok("daemon.reload", json!({}));
    assert!(r["needs_restart"].as_array().unwrap().contains(&json!("tmux.unit_prefix")), "{r}");
    assert!(r["applied"].as_array().unwrap().contains(&json!("tmux.history_limit")), "{r}");
}

#[test]
fn sd_notify_ready_reload_watchdog_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let np = notify_path.clone();
    let mut d = TestDaemon::start_with("", move |cmd| {
        cmd.env("NOTIFY_SOCKET", &np).env("WATCHDOG_USEC", "400000");
    });
    let mut seen = String::new();
    let read_until = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle} in {seen:?}");
            let mut buf = [0u8; 4096];
            let n = notify.recv(&mut buf).expect("notify message");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('|');
        }
    };
    read_until("READY=1", &mut seen);
    assert!(seen.contains("STATUS="), "{seen}");
    read_until("WATCHDOG=1", &mut seen);
    seen.clear();
    d.signal(Signal::SIGHUP);
    read_until("RELOADING=1", &mut seen);
    assert!(seen.contains("MONOTONIC_USEC="), "{seen}");
    read_until("READY=1", &mut seen);
    d.signal(Signal::SIGTERM);
    read_until("STOPPING=1", &mut seen);
    assert!(d.wait_exit().success());
}

#[test]
fn socket_activation_is_used_and_never_unlinked() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    // Its own state directory: never the host's /var/lib/ccmanagerd.
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state");
    std::fs::write(&config, format!("[daemon]\nstate_dir = {:?}\n", state.display().to_string()))
        .unwrap();
    let mut cmd = Command::new("/bin/sh");
    // LISTEN_PID must be the daemon's pid: the shell's $$ survives its exec.
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(bin("ccmanagerd"))
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("unused.sock"))
        .arg("--tmux-dir")
        .arg(dir.path().join("tmux"))
        .env_remove("NOTIFY_SOCKET");
    // SAFETY: dup2 is async-signal-safe; the fd stays open in the parent.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC, so clear it explicitly then.
            let rc = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener); // the daemon holds its own copy now
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        if let Ok(mut c) = ccmanagerd::client::Client::connect(&path, Some(Duration::from_secs(5)))
        {
            if let Ok(v) = c.call("daemon.status", json!({})) {
                break v;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "activated daemon exited early");
        assert!(Instant::now() < deadline, "activated daemon did not answer");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(reply["socket"], json!(path));
    assert!(
        !dir.path().join("unused.sock").exists(),
        "must not bind its own socket when activated"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(path.exists(), "an activated socket must never be unlinked");
    assert!(state.join("sessions.json").exists(), "the state file went elsewhere");
    let _ =
        Command::new("tmux").arg("-S").arg(dir.path().join("t.sock")).arg("kill-server").output();
}

#[test]
fn check_config_validates_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"), &good).unwrap();
    let out = Command::new(bin("ccmanagerd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_sessions = 10\nmax_sesions = 3\n").unwrap();
    let out = Command::new(bin("ccmanagerd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3: limits.max_sesions", bad.display())), "{err}");
    let missing = dir.path().join("missing.toml");
    let out = Command::new(bin("ccmanagerd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ctl_exit_codes_and_raw_call() {
    let d = TestDaemon::start("");
    let out = d.ctl(&["ping"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pong");
    let out = d.ctl(&["--json", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pid"], json!(d.pid()));
    let out = d.ctl(&["call", "daemon.ping"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"pong\"");
    let out = d.ctl(&["call", "no.such.method", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("method not found"));
    assert!(out.stdout.is_empty(), "without --json an error prints nothing on stdout");
    let out = d.ctl(&["--json", "call", "session.get", r#"{"id":"nosuch"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], json!(-32000), "{v}");
    assert_eq!(v["error"]["data"]["kind"], "session_not_found", "{v}");
    let out = d.ctl(&["reload"]);
    assert!(out.status.success());
    let out = Command::new(bin("ccmanagerctl"))
        .args(["--socket", "/nonexistent/ccm.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "cannot connect: EX_UNAVAILABLE");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/ccm.sock") && err.contains("systemctl start ccmanagerd"),
        "{err}"
    );
    let out = Command::new(bin("ccmanagerctl"))
        .env("CCMANAGERD_SOCKET", &d.socket)
        .arg("ping")
        .output()
        .unwrap();
    assert!(out.status.success(), "CCMANAGERD_SOCKET must be honoured");
}
