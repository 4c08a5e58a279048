//! Caps, cleanup, health and metrics through the real socket: rlimits in
//! `/proc/<pid>/limits`, the ceiling and `max_sessions` refusals, the
//! periodic reaper (age, idle vs busy, exited grace, keep), `health.check`
//! across a tmux server death, and `daemon.metrics` as Prometheus text.
//! (cgroup caps are proved in the booted-systemd tests, tests/system_*.rs.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ccmanagerd::client::ClientError;
use ccmanagerd::protocol::method::DaemonMetrics;
use ccmanagerd::protocol::methods::NoParams;
use common::daemon::TestDaemon;

/// How long a periodic action (reaper, health recovery) may take in a test.
const EVENTUALLY: Duration = Duration::from_secs(15);
/// Poll step.
const STEP: Duration = Duration::from_millis(50);

fn wait_for<T>(what: &str, d: &TestDaemon, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", d.log_text());
        std::thread::sleep(STEP);
    }
}

fn create(d: &TestDaemon, params: Value) -> Value {
    d.ok("session.create", params)
}

fn error_kind(r: Result<Value, ClientError>) -> String {
    match r {
        Err(ClientError::Rpc(e)) => {
            e.data.and_then(|d| d["kind"].as_str().map(String::from)).unwrap_or_default()
        }
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn exists(d: &TestDaemon, id: &str) -> bool {
    match d.call("session.get", json!({"id": id})) {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(error_kind(Err(e)), "session_not_found");
            false
        }
    }
}

/// (soft, hard) of the `/proc/<pid>/limits` line starting with `label`.
fn proc_limit(pid: u64, label: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let rest = text.lines().find(|l| l.starts_with(label))?[label.len()..].to_string();
    let mut f = rest.split_whitespace();
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

fn wait_limit(d: &TestDaemon, id: &str, label: &str, want: &str) {
    let pid = d.ok("session.get", json!({"id": id}))["pid"].as_u64().expect("pid");
    wait_for(&format!("{label} = {want} in /proc/{pid}/limits"), d, || {
        // The exec-wrapper sets the limits, then execs the program (same pid).
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let lim = proc_limit(pid, label)?;
        (comm.trim() == "sleep" && lim == (want.to_string(), want.to_string())).then_some(())
    });
}

#[test]
fn rlimits_from_config_and_request_and_ceiling() {
    let d = TestDaemon::start(
        "[limits.default]\nnofile = 1000\ncore = 0\n[limits.ceiling]\nnofile = 4096\nfsize = 1048576\n",
    );
    let a = create(&d, json!({"command": ["sleep", "600"]}));
    let id = a["id"].as_str().unwrap();
    wait_limit(&d, id, "Max open files", "1000");
    wait_limit(&d, id, "Max core file size", "0");
    let b = create(
        &d,
        json!({"command": ["sleep", "600"], "limits": {"nofile": 2048, "fsize": 65536}}),
    );
    let id = b["id"].as_str().unwrap();
    wait_limit(&d, id, "Max open files", "2048");
    wait_limit(&d, id, "Max file size", "65536");
    let refused = d
        .call("session.create", json!({"command": ["sleep", "600"], "limits": {"nofile": 100000}}));
    assert_eq!(error_kind(refused), "limit_reached");
    let list = d.ok("session.list", json!({}));
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "a refused create leaves nothing");
}

#[test]
fn max_sessions_refuses_the_next_create() {
    let d = TestDaemon::start("[limits]\nmax_sessions = 2\n");
    for _ in 0..2 {
        create(&d, json!({"command": ["sleep", "600"]}));
    }
    let r = d.call("session.create", json!({"command": ["sleep", "600"]}));
    assert_eq!(error_kind(r), "limit_reached");
    let health = d.ok("health.check", json!({}));
    let sessions = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sessions")
        .unwrap()
        .clone();
    assert_eq!(sessions["status"], "degraded", "{health}");
    let text = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    assert!(text.contains("ccmanagerd_limit_rejections_total{limit=\"max_sessions\"} 1"), "{text}");
}

#[test]
fn reaper_removes_old_sessions_and_honours_keep() {
    let d = TestDaemon::start("[cleanup]\ninterval = \"1s\"\nmax_age = \"3s\"\n");
    let started = Instant::now();
    let old = create(&d, json!({"command": ["sleep", "600"]}))["id"].as_str().unwrap().to_string();
    let kept = create(&d, json!({"command": ["sleep", "600"], "keep": true}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let labelled = create(&d, json!({"command": ["sleep", "600"], "name": "keep-me"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the old session to be reaped", &d, || (!exists(&d, &old)).then_some(()));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "reaped before max_age: {took:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!exists(&d, &old), "a reaped session must not come back (refresh race)");
    assert!(exists(&d, &kept), "keep: true must stay");
    assert!(exists(&d, &labelled), "keep_label_prefix must stay");
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&old) && l.contains("removed session") && l.contains("max_age")),
        "no removal with reason max_age in the log:\n{log}"
    );
    let out = d.tmux(&["has-session", "-t", &format!("=ccmanager_sess_{old}")]);
    assert!(!out.status.success(), "the tmux session must be gone");
}

#[test]
fn dry_run_lists_without_removing() {
    // The first periodic run comes 10 s after start: the test is done by then.
    let d = TestDaemon::start("[cleanup]\ninterval = \"1h\"\nmax_age = \"2s\"\n");
    let old = create(&d, json!({"command": ["sleep", "600"]}))["id"].as_str().unwrap().to_string();
    let kept = create(&d, json!({"command": ["sleep", "600"], "keep": true}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.ok("cleanup.run", json!({"dry_run": true}))["removed"], json!([]));
    std::thread::sleep(Duration::from_millis(2500));
    let dry = d.ok("cleanup.run", json!({"dry_run": true}));
    assert_eq!(dry["removed"], json!([{"id": old, "reason": "max_age"}]), "{dry}");
    assert_eq!(dry["dry_run"], json!(true));
    assert!(exists(&d, &old), "a dry run removes nothing");
    let out = d.ctl(&["cleanup", "--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&old));
    assert!(exists(&d, &old));
    let real = d.ok("cleanup.run", json!({}));
    assert_eq!(real["removed"], json!([{"id": old, "reason": "max_age"}]), "{real}");
    assert!(!exists(&d, &old));
    assert!(exists(&d, &kept));
    let text = d.request::<DaemonMetrics>(&NoParams {}).text;
    assert!(text.contains("ccmanagerd_sessions_reaped_total{reason=\"max_age\"} 1"), "{text}");
}

#[test]
fn exited_sessions_go_after_their_grace() {
    let d = TestDaemon::start("[cleanup]\ninterval = \"1s\"\nexited_grace = \"3s\"\n");
    let id =
        create(&d, json!({"command": ["sh", "-c", "exit 3"]}))["id"].as_str().unwrap().to_string();
    let exited_at = wait_for("the session to exit", &d, || {
        let s = d.call("session.get", json!({"id": id})).ok()?;
        (s["state"] == "exited").then(Instant::now)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(exists(&d, &id), "still readable within the grace");
    wait_for("the exited session to be reaped", &d, || (!exists(&d, &id)).then_some(()));
    assert!(exited_at.elapsed() >= Duration::from_secs(2), "reaped too early");
    assert!(d
        .log_text()
        .lines()
        .any(|l| l.contains(&id) && l.contains("removed session") && l.contains("exited")));
}

#[test]
fn idle_sessions_go_but_busy_ones_stay() {
    let d = TestDaemon::start("[cleanup]\ninterval = \"1s\"\nmax_idle = \"2s\"\n");
    let idle = create(&d, json!({"command": ["sleep", "600"]}))["id"].as_str().unwrap().to_string();
    // Busy on the CPU but silent: no pane output, no input.
    let busy = create(&d, json!({"command": ["sh", "-c", "while :; do :; done"]}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the idle session to be reaped", &d, || (!exists(&d, &idle)).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    assert!(exists(&d, &busy), "a session whose processes use CPU is not idle\n{}", d.log_text());
    assert!(!exists(&d, &idle), "a reaped session must not come back (refresh race)");
    assert!(d
        .log_text()
        .lines()
        .any(|l| l.contains(&idle) && l.contains("removed session") && l.contains("idle")));
}

fn check_status(h: &Value, name: &str) -> String {
    h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn health_fails_while_tmux_is_down_and_recovers() {
    // A tmux binary we can make fail, so the daemon cannot restart the
    // server until the test allows it.
    let tools = tempfile::tempdir().unwrap();
    let block = tools.path().join("block");
    let real = String::from_utf8(
        std::process::Command::new("sh").args(["-c", "command -v tmux"]).output().unwrap().stdout,
    )
    .unwrap();
    let script = tools.path().join("tmux");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -e '{}' ] && exit 1\nexec '{}' \"$@\"\n",
            block.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = TestDaemon::start(&format!("[tmux]\nbinary = \"{}\"\n", script.display()));
    // Servers start with their uid's first session.
    let first = create(&d, json!({"command": ["sleep", "600"]}));
    let h = d.ok("health.check", json!({}));
    assert_eq!(check_status(&h, "tmux_server"), "ok", "{h}");
    assert!(h["checks"][0]["latency_ms"].as_f64().is_some(), "{h}");
    for name in ["control_connection", "socket", "disk", "sessions", "cgroups"] {
        assert!(!check_status(&h, name).is_empty(), "missing check {name}: {h}");
    }
    std::fs::write(&block, "").unwrap();
    assert!(d.tmux(&["kill-server"]).status.success());
    wait_for("the session to be lost with its server", &d, || {
        (d.ok("session.get", json!({"id": first["id"]}))["state"] == "lost").then_some(())
    });
    // The server cannot be started again while tmux fails.
    let err = d.call("session.create", json!({"command": ["sleep", "600"]})).unwrap_err();
    assert!(err.to_string().contains("cannot start the tmux server"), "{err}");
    let down = wait_for("health to turn failing", &d, || {
        let h = d.ok("health.check", json!({}));
        (h["status"] == "failing").then_some(h)
    });
    assert_eq!(check_status(&down, "tmux_server"), "failing", "{down}");
    assert_eq!(d.ok("daemon.status", json!({}))["health"], "failing");
    std::fs::remove_file(&block).unwrap();
    create(&d, json!({"command": ["sleep", "600"]}));
    wait_for("health to be ok again", &d, || {
        let h = d.ok("health.check", json!({}));
        (check_status(&h, "tmux_server") == "ok" && check_status(&h, "control_connection") == "ok")
            .then_some(())
    });
}

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"));
    match s.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_textfile_is_written() {
    let files = tempfile::tempdir().unwrap();
    let textfile = files.path().join("ccmanagerd.prom");
    let d = TestDaemon::start(&format!("[metrics]\ntextfile = \"{}\"\n", textfile.display()));
    create(&d, json!({"command": ["sleep", "600"]}));
    let _ = d.call("session.get", json!({"id": "nosuch"}));
    let text = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    let scrape = parse_metrics(&text);
    assert_eq!(value(&scrape, "ccmanagerd_sessions", Some(("state", "running"))), 1.0);
    assert_eq!(value(&scrape, "ccmanagerd_sessions", Some(("state", "exited"))), 0.0);
    assert!(value(&scrape, "ccmanagerd_tmux_server_pid", None) > 0.0);
    assert!(value(&scrape, "ccmanagerd_tmux_server_rss_bytes", None) > 0.0);
    assert_eq!(value(&scrape, "ccmanagerd_health_status", None), 0.0, "{text}");
    assert!(value(&scrape, "ccmanagerd_oldest_session_age_seconds", None) >= 0.0);
    assert_eq!(
        value(&scrape, "ccmanagerd_rpc_requests_total", Some(("method", "session.create"))),
        1.0
    );
    assert_eq!(value(&scrape, "ccmanagerd_rpc_errors_total", Some(("method", "session.get"))), 1.0);
    assert!(scrape.samples.iter().any(|s| s.metric == "ccmanagerd_rpc_duration_seconds"), "{text}");
    assert_eq!(
        value(&scrape, "ccmanagerd_sessions_reaped_total", Some(("reason", "max_age"))),
        0.0
    );
    wait_for("the metrics textfile", &d, || textfile_ok(&textfile));
}

fn textfile_ok(path: &Path) -> Option<()> {
    let text = std::fs::read_to_string(path).ok()?;
    let scrape = parse_metrics(&text);
    (value(&scrape, "ccmanagerd_sessions", Some(("state", "running"))) == 1.0).then_some(())
}

/// Prints what a create costs with rlimits (the exec-wrapper) against a bare
/// `tmux new-session` on the same server; run with `--nocapture` to see it.
#[test]
fn measure_create_cost() {
    const N: u32 = 20;
    let d = TestDaemon::start("[limits]\nmax_sessions = 100\nmax_sessions_per_owner = 100\n[limits.default]\nnofile = 1024\nnproc = 4096\ncore = 0\n");
    let t = Instant::now();
    for _ in 0..N {
        create(&d, json!({"command": ["sleep", "600"]}));
    }
    let capped = t.elapsed() / N;
    let t = Instant::now();
    for i in 0..N {
        assert!(d
            .tmux(&["new-session", "-d", "-s", &format!("bare{i}"), "sleep", "600"])
            .status
            .success());
    }
    let bare = t.elapsed() / N;
    eprintln!("session.create with rlimits (RPC + wrapper): {capped:?} per session; bare tmux new-session (separate client process): {bare:?}");
    assert!(capped < Duration::from_secs(2));
}
