//! The shipped units, sysusers/tmpfiles files and maintainer scripts, checked
//! in a booted systemd with a *stand-in* daemon (a small Python program that
//! does what the unit's sandbox must allow: start the tmux server as the
//! transient unit ccmanagerd-tmux-<uid>.service with systemd-run, which as
//! root talks to PID 1 on /run/systemd/private like the daemon's own D-Bus
//! connection, connect to its socket, notify READY and feed the watchdog,
//! answer on the activated socket). It proves the units, not the daemon:
//! the real end-to-end proofs run the real binary.

mod common;

use std::path::{Path, PathBuf};

use common::sysbox::{describe, install_files, skip, skip_unless_root, SysBox, BOX_PKG_SCRIPTS};

const STANDIN: &str = r##"#!/usr/bin/python3
# Stand-in for ccmanagerd (unit tests only).
import os, socket, subprocess, sys, threading, time
def notify(msg):
    a = os.environ["NOTIFY_SOCKET"]
    if a[0] == "@": a = "\0" + a[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect(a); s.send(msg.encode()); s.close()
def log(*a): print(*a, flush=True)
import pwd
pw = pwd.getpwnam("ccmanager")
d = "/run/ccmanagerd-tmux/%d" % pw.pw_uid
os.makedirs(d, mode=0o700, exist_ok=True); os.chown(d, pw.pw_uid, pw.pw_gid)
sock = d + "/tmux.sock"
unit = "ccmanagerd-tmux-%d" % pw.pw_uid
open("/run/ccmanagerd/standin.tmux-unit", "w").write(unit + ".service")
active = subprocess.run(["systemctl", "is-active", unit + ".service"], capture_output=True, text=True).stdout.strip()
if active != "active":
    r = subprocess.run(["systemd-run", "--unit=" + unit, "--uid=ccmanager", "--gid=ccmanager",
                        "-p", "TasksMax=4096", "-p", "MemoryMax=8G", "-p", "Delegate=yes",
                        "--", "/usr/bin/tmux", "-D", "-S", sock], capture_output=True, text=True)
    log("systemd-run rc=%d %s %s" % (r.returncode, r.stdout.strip(), r.stderr.strip()))
for _ in range(100):
    r = subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-s", "keeper", "sleep", "infinity"], capture_output=True, text=True)
    if r.returncode == 0 or "duplicate session" in r.stderr: break
    time.sleep(0.05)
r = subprocess.run(["tmux", "-S", sock, "display", "-p", "-t", "keeper", "#{pid}"], capture_output=True, text=True)
log("tmux-server-pid rc=%d %s %s" % (r.returncode, r.stdout.strip(), r.stderr.strip()))
open("/run/ccmanagerd/standin.tmux-pid", "w").write(r.stdout)
listener = socket.socket(fileno=3)
def serve():
    while True:
        c, _ = listener.accept()
        c.recv(100); c.sendall(b"pong\n"); c.close()
threading.Thread(target=serve, daemon=True).start()
notify("READY=1\nSTATUS=stand-in ready")
while True:
    notify("WATCHDOG=1"); time.sleep(5)
"##;

const CLIENT: &str = r#"#!/usr/bin/python3
import socket
s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect("/run/ccmanagerd/ccmanagerd.sock")
s.sendall(b"ping\n"); print(s.recv(100).decode().strip())
"#;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn units_install_verify_and_keep_the_tmux_server_outside() {
    let name = "units_install_verify_and_keep_the_tmux_server_outside";
    if skip_unless_root(name) {
        return;
    }
    if !Path::new("/usr/bin/python3").exists() || !Path::new("/usr/bin/tmux").exists() {
        skip(name, "needs /usr/bin/python3 and /usr/bin/tmux for the stand-in daemon");
        return;
    }
    let bins = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(bins.path().join("ccmanagerd"), STANDIN).unwrap();
    std::fs::write(bins.path().join("ccmanagerctl"), CLIENT).unwrap();
    // The real logger: the stand-in daemon starts no session to log.
    std::fs::copy(env!("CARGO_BIN_EXE_ccmanagerd-log"), bins.path().join("ccmanagerd-log"))
        .unwrap();
    let sb = SysBox::boot().expect("boot");
    install_files(&sb, &repo_root(), bins.path()).expect("install_files");

    // The units load cleanly.
    let o = sb.run(&[
        "systemd-analyze",
        "verify",
        "/lib/systemd/system/ccmanagerd.service",
        "/lib/systemd/system/ccmanagerd.socket",
    ]);
    assert!(o.status.success() && o.stderr.is_empty(), "verify: {}", describe(&o));
    let sec = sb.sh("systemd-analyze security --no-pager ccmanagerd.service");
    let sec_out = String::from_utf8_lossy(&sec.stdout);
    let overall = sec_out.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("");
    eprintln!("systemd-analyze security ccmanagerd.service: {overall}");
    assert!(overall.contains("OK") || overall.contains("SAFE"), "{sec_out}");

    // postinst created the user, the directories and the socket, and started
    // the service. The state directory is 0711: owners pass through it to
    // their own session logs (<state>/logs/<id>, 0700), and list nothing.
    let pw = sb.sh_ok("getent passwd ccmanager");
    assert!(pw.contains(":/var/lib/ccmanager:"), "{pw}");
    assert_eq!(
        sb.sh_ok("stat -c '%a %U %G' /run/ccmanagerd/ccmanagerd.sock /run/ccmanagerd-tmux /var/lib/ccmanagerd /var/lib/ccmanager"),
        "660 root ccmanager\n711 root root\n711 root root\n750 ccmanager ccmanager\n"
    );
    let show = sb.sh_ok("systemctl show -p ActiveState,Type,StatusText ccmanagerd.service");
    assert!(
        show.contains("ActiveState=active") && show.contains("StatusText=stand-in ready"),
        "{show}\n{}",
        sb.sh_ok("journalctl -b --no-pager -u ccmanagerd | tail -30")
    );
    assert_eq!(sb.sh_ok("ccmanagerctl").trim(), "pong");

    // From inside the sandbox, systemd-run started the tmux server as its own unit,
    // as the session user, outside ccmanagerd.service's cgroup.
    let journal = sb.sh_ok("journalctl -b --no-pager -u ccmanagerd.service");
    assert!(journal.contains("systemd-run rc=0"), "{journal}");
    assert!(journal.contains("tmux-server-pid rc=0"), "{journal}");
    let unit = format!("ccmanagerd-tmux-{}.service", sb.sh_ok("id -u ccmanager").trim());
    let tmux_pid = sb.sh_ok(&format!("systemctl show -P MainPID {unit}")).trim().to_string();
    assert_ne!(tmux_pid, "0");
    assert_eq!(sb.sh_ok(&format!("ps -o user= -p {tmux_pid}")).trim(), "ccmanager");
    let cg = sb.sh_ok(&format!("cat /proc/{tmux_pid}/cgroup"));
    assert!(
        cg.contains(&format!("/system.slice/{unit}")) && !cg.contains("ccmanagerd.service"),
        "{cg}"
    );
    eprintln!(
        "tmux unit limits: {}",
        sb.sh_ok(&format!("systemctl show -p MemoryMax,TasksMax,Delegate {unit}; cg=$(systemctl show -P ControlGroup {unit}); cat /sys/fs/cgroup/memory$cg/memory.limit_in_bytes /sys/fs/cgroup/pids$cg/pids.max")).replace('\n', " ")
    );

    // Restart and stop+start of the daemon: the tmux server stays, the socket file stays.
    sb.sh_ok("systemctl restart ccmanagerd.service");
    assert_eq!(sb.sh_ok(&format!("systemctl show -P MainPID {unit}")).trim(), tmux_pid);
    sb.sh_ok("systemctl stop ccmanagerd.service");
    assert!(
        sb.sh("test -S /run/ccmanagerd/ccmanagerd.sock").status.success(),
        "socket gone after stop"
    );
    assert_eq!(sb.sh_ok(&format!("systemctl is-active {unit}")).trim(), "active");
    // Socket activation: a client connecting to the stopped service starts it.
    assert_eq!(sb.sh_ok("ccmanagerctl").trim(), "pong");
    assert_eq!(sb.sh_ok("systemctl is-active ccmanagerd.service").trim(), "active");

    // An upgrade (postinst configure <old>) restarts the daemon only.
    let before = sb.sh_ok("systemctl show -P MainPID ccmanagerd.service");
    sb.sh_ok(&format!("sh {BOX_PKG_SCRIPTS}/postinst configure 0.0.1"));
    assert_ne!(sb.sh_ok("systemctl show -P MainPID ccmanagerd.service"), before);
    assert_eq!(sb.sh_ok(&format!("systemctl show -P MainPID {unit}")).trim(), tmux_pid);
    assert_eq!(sb.sh_ok("systemctl is-active ccmanagerd.socket").trim(), "active");

    // Removal stops and disables the daemon and its socket; the sessions stay.
    sb.sh_ok(&format!("sh {BOX_PKG_SCRIPTS}/prerm remove"));
    assert_eq!(
        sb.sh("systemctl is-active ccmanagerd.service ccmanagerd.socket").stdout,
        b"inactive\ninactive\n"
    );
    assert_eq!(
        sb.sh("systemctl is-enabled ccmanagerd.service ccmanagerd.socket").stdout,
        b"disabled\ndisabled\n"
    );
    assert_eq!(sb.sh_ok(&format!("systemctl show -P MainPID {unit}")).trim(), tmux_pid);
}
