//! Smoke test of the system-test harness itself: a box boots, is isolated
//! from the host, and leaves nothing behind.

mod common;

use std::path::Path;

use common::sysbox::{describe, skip_unless_root, SysBox};

fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[test]
fn box_boots_is_isolated_and_leaves_nothing_behind() {
    if skip_unless_root("box_boots_is_isolated_and_leaves_nothing_behind") {
        return;
    }
    let sb = SysBox::boot().expect("boot");
    eprintln!("sysbox booted in {:?}", sb.boot_time());

    let o = sb.run(&["systemctl", "is-system-running"]);
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(s == "running" || s == "degraded", "is-system-running: {}", describe(&o));
    // systemd is PID 1 in there, and commands run in its cgroup tree.
    assert_eq!(sb.sh_ok("cat /proc/1/comm").trim(), "systemd");
    assert!(sb.sh_ok("cat /proc/self/cgroup").contains("name=systemd:/init.scope"));

    // Writes in the box, including to paths that exist on the host, stay in the box.
    let marker = format!("/var/tmp/sysbox-marker-{}", std::process::id());
    sb.sh_ok(&format!("echo hi > {marker} && echo hi > /tmp/sysbox-marker && cat {marker}"));
    assert!(!Path::new(&marker).exists(), "{marker} leaked to the host");
    assert!(!Path::new("/tmp/sysbox-marker").exists(), "/tmp write leaked to the host");
    assert_eq!(std::fs::read_to_string(sb.root().join(&marker[1..])).unwrap(), "hi\n");

    // copy_in puts a host file in the box only.
    let src = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    std::fs::write(src.path(), "from host\n").unwrap();
    sb.copy_in(src.path(), Path::new("/opt/sysbox-copied/file")).unwrap();
    assert_eq!(sb.sh_ok("cat /opt/sysbox-copied/file"), "from host\n");
    assert!(!Path::new("/opt/sysbox-copied").exists());

    // A bounded command that hangs is killed, not waited for.
    let o = sb.sh_timeout("sleep 100", std::time::Duration::from_millis(300));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("timed out"));

    // Remember what must disappear.
    let pid1 = sb.pid1();
    let cgroups = sb.cgroups().to_vec();
    let state = sb.state_dir().to_path_buf();
    let journald_pid: i32 =
        sb.sh_ok("systemctl show -P MainPID systemd-journald").trim().parse().unwrap();
    assert!(journald_pid > 0);
    let host_pids_in_box: Vec<String> = std::fs::read_to_string(
        cgroups
            .iter()
            .find(|c| c.starts_with("/sys/fs/cgroup/systemd"))
            .unwrap_or(&cgroups[0])
            .join("system.slice/systemd-journald.service/cgroup.procs"),
    )
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    assert!(!host_pids_in_box.is_empty());
    drop(sb);

    assert!(!Path::new(&format!("/proc/{pid1}")).exists(), "box PID 1 survived");
    for p in &host_pids_in_box {
        assert!(!Path::new(&format!("/proc/{p}")).exists(), "box process {p} survived");
    }
    for c in &cgroups {
        assert!(!c.exists(), "cgroup {} left behind", c.display());
    }
    assert!(!state.exists(), "state dir {} left behind", state.display());
    assert!(!host_mounts().contains(state.to_str().unwrap()), "mounts left behind");
}

#[test]
fn boxes_run_in_parallel() {
    if skip_unless_root("boxes_run_in_parallel") {
        return;
    }
    let a = SysBox::boot().expect("boot a");
    let b = SysBox::boot().expect("boot b");
    a.sh_ok("systemd-run --unit=only-in-a sleep 300");
    assert!(a.sh_ok("systemctl is-active only-in-a || true").trim() == "active");
    assert_eq!(b.sh_ok("systemctl is-active only-in-a || true").trim(), "inactive");
    // Stopping a unit in one box does not touch the other.
    b.sh_ok("systemd-run --unit=only-in-a sleep 300");
    a.sh_ok("systemctl stop only-in-a");
    assert_eq!(b.sh_ok("systemctl is-active only-in-a").trim(), "active");
}
