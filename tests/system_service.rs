//! Issue 4, end to end: the real ccmanagerd and ccmanagerctl (the binaries
//! this `cargo test` built) installed with the shipped units in a booted
//! systemd (tests/common/sysbox.rs), proving what users rely on: the unit
//! starts and notifies READY, sessions and the tmux server survive restart,
//! stop+start, kill -9, a hung daemon (watchdog) and an upgrade; clients never
//! see a failed request; socket activation, journald fields and reload work.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::sysbox::{describe, install_files, skip, skip_unless_root, SysBox};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prints on the real stderr (libtest captures `eprintln!` of passing tests).
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Boots a box and installs the test-built binaries with the package's files
/// (postinst starts the socket and the service). `None`: skipped.
fn setup(test: &str) -> Option<SysBox> {
    if skip_unless_root(test) {
        return None;
    }
    if !Path::new("/usr/bin/tmux").exists() {
        skip(test, "needs /usr/bin/tmux");
        return None;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ccmanagerd"));
    let bin_dir = bin.parent().unwrap().to_path_buf();
    assert!(bin_dir.join("ccmanagerctl").exists(), "ccmanagerctl not built next to ccmanagerd");
    let sb = SysBox::boot().expect("boot");
    install_files(&sb, &repo_root(), &bin_dir).expect("install_files");
    wait_active(&sb);
    Some(sb)
}

fn journal(sb: &SysBox) -> String {
    String::from_utf8_lossy(
        &sb.sh("journalctl -b --no-pager -o short-monotonic -u ccmanagerd -u ccmanagerd-tmux | tail -60").stdout,
    )
    .into_owned()
}

/// Waits (10 s at most) until ccmanagerd.service is active.
fn wait_active(sb: &SysBox) {
    let t0 = Instant::now();
    loop {
        let s = String::from_utf8_lossy(&sb.sh("systemctl is-active ccmanagerd.service").stdout).trim().to_string();
        if s == "active" {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "ccmanagerd.service is {s}\n{}", journal(sb));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main_pid(sb: &SysBox) -> String {
    sb.sh_ok("systemctl show -P MainPID ccmanagerd.service").trim().to_string()
}

fn tmux_pid(sb: &SysBox) -> String {
    sb.sh_ok("systemctl show -P MainPID ccmanagerd-tmux.service").trim().to_string()
}

/// `ccmanagerctl --json ARGS` in the box, parsed.
fn ctl(sb: &SysBox, args: &str) -> Value {
    let o = sb.sh(&format!("ccmanagerctl --json {args}"));
    assert!(o.status.success(), "ccmanagerctl {args}: {}\n{}", describe(&o), journal(sb));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("ccmanagerctl {args}: {e}: {}", describe(&o)))
}

/// (id, created_at, pid) of every session, sorted.
fn sessions(sb: &SysBox) -> Vec<(String, String, u64)> {
    let v = ctl(sb, "ls");
    let list = v.get("sessions").unwrap_or(&v).as_array().cloned().unwrap_or_else(|| panic!("ls: {v}"));
    let mut out: Vec<_> = list
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["created_at"].as_str().unwrap().to_string(),
                s["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    out
}

fn new_session(sb: &SysBox) -> String {
    let v = ctl(sb, "new -- sleep 1000");
    v.get("session").unwrap_or(&v)["id"].as_str().unwrap_or_else(|| panic!("new: {v}")).to_string()
}

/// Proof 1 and 8: start → active, READY from the daemon, status over the
/// activated socket; sessions run as the session user, the tmux server
/// outside ccmanagerd.service's cgroup.
#[test]
fn start_notifies_ready_and_sessions_run_outside_as_session_user() {
    let name = "start_notifies_ready_and_sessions_run_outside_as_session_user";
    let Some(sb) = setup(name) else { return };
    sb.sh_ok("systemctl stop ccmanagerd.service");
    let t0 = Instant::now();
    sb.sh_ok("systemctl start ccmanagerd.service");
    let ready = t0.elapsed();
    report(&format!("system_service: systemctl start ccmanagerd -> READY in {ready:?}"));
    let show = sb.sh_ok("systemctl show -p Type,StatusText,MainPID,ActiveState,NRestarts ccmanagerd.service");
    assert!(show.contains("ActiveState=active") && show.contains("Type=notify"), "{show}");
    let status_text = show.lines().find_map(|l| l.strip_prefix("StatusText=")).unwrap_or("");
    assert!(status_text.contains("sessions"), "READY/STATUS did not come from the daemon: {show}");
    let pid = main_pid(&sb);
    assert_eq!(sb.sh_ok(&format!("cat /proc/{pid}/comm")).trim(), "ccmanagerd");
    let st = ctl(&sb, "status");
    assert_eq!(st["pid"].as_u64().map(|p| p.to_string()), Some(pid.clone()), "status: {st}");

    let sec = sb.sh("systemd-analyze security --no-pager ccmanagerd.service");
    let sec_out = String::from_utf8_lossy(&sec.stdout);
    let overall = sec_out.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("");
    report(&format!("system_service: systemd-analyze security ccmanagerd.service: {overall}"));

    let id = new_session(&sb);
    let list = sessions(&sb);
    let pane = list.iter().find(|s| s.0 == id).unwrap().2;
    assert!(pane > 0, "{list:?}");
    let uid = sb.sh_ok("id -u ccmanager").trim().to_string();
    let status = sb.sh_ok(&format!("cat /proc/{pane}/status"));
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(line.split_whitespace().skip(1).all(|u| u == uid), "pane runs as {line}, want {uid}");
    let tmux = tmux_pid(&sb);
    assert_ne!(tmux, "0");
    let cg = sb.sh_ok(&format!("cat /proc/{tmux}/cgroup"));
    assert!(cg.contains("ccmanagerd-tmux.service") && !cg.contains("ccmanagerd.service"), "{cg}");
    let cg = sb.sh_ok(&format!("cat /proc/{pane}/cgroup"));
    assert!(!cg.contains("ccmanagerd.service"), "pane cgroup: {cg}");
}
