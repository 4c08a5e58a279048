//! Issue 13 under a booted systemd: a real "reboot". The daemon's state
//! directory (/var/lib/ccmanagerd, with the session logs) is a host
//! directory kept across two throwaway systems: the first is torn down with
//! its tmux servers, a second boots on the same state with a new boot id
//! (tests/common/sysbox.rs). Sessions with `restore: on_boot` run again with
//! the same ids, owners, cwd and limits (`resume_command` where given);
//! `never` ones are `lost` with their logs readable; a restored log holds
//! the output from before, a marker, and the new output. Then 500 sessions:
//! READY and all running again, timed in the box.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use common::service::{ctl, journal, report, setup_keeping, wait_for};
use common::sysbox::SysBox;

/// A host directory for the kept state, removed when dropped.
struct Kept(std::path::PathBuf);

impl Kept {
    fn new(test: &str) -> Kept {
        let dir =
            Path::new("/var/tmp").join(format!("ccmanagerd-kept-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Kept(dir)
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const STATE: &str = "/var/lib/ccmanagerd";

fn boot(test: &str, kept: &Kept) -> Option<SysBox> {
    setup_keeping(test, &[(kept.0.as_path(), Path::new(STATE))])
}

fn show(sb: &SysBox, id: &str) -> Value {
    let v = ctl(sb, &format!("show {id}"));
    v.get("session").cloned().unwrap_or(v)
}

fn new(sb: &SysBox, args: &str) -> String {
    let v = ctl(sb, &format!("new {args}"));
    v.get("session").unwrap_or(&v)["id"].as_str().unwrap_or_else(|| panic!("new: {v}")).to_string()
}

/// The session's whole log as text (`ccmanagerctl logs --raw`).
fn log(sb: &SysBox, id: &str) -> String {
    let o = sb.sh(&format!("ccmanagerctl logs --raw {id}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A reboot's end of the first system: its services are stopped (the
/// daemon writes its last snapshot), then everything goes with the box.
fn shut_down(sb: SysBox) {
    sb.sh_ok("systemctl stop ccmanagerd.service");
    drop(sb);
}

fn boot_id(sb: &SysBox) -> String {
    sb.sh_ok("cat /proc/sys/kernel/random/boot_id").trim().to_string()
}

#[test]
fn sessions_come_back_after_a_reboot_as_their_policy_says() {
    let name = "sessions_come_back_after_a_reboot_as_their_policy_says";
    let kept = Kept::new("reboot");
    let Some(sb) = boot(name, &kept) else { return };
    let first_boot = boot_id(&sb);
    // As root: sessions run as the package's session user; one as nobody.
    let resumed = new(
        &sb,
        r#"--name agent --cwd /tmp --restore on_boot --limit nofile=777 --resume-command '["sh","-c","echo resumed-$((1+1)) $PWD; ulimit -n; exec sleep 1000"]' -- sh -c 'echo first-$((1+1)); exec sleep 1000'"#,
    );
    let plain = new(
        &sb,
        "--cwd /tmp --user nobody --restore on_boot -- sh -c 'echo plain-$((1+1)); exec sleep 1000'",
    );
    let never = new(&sb, "--cwd /tmp -- sh -c 'echo never-$((1+1)); exec sleep 1000'");
    for (id, needle) in [(&resumed, "first-2"), (&plain, "plain-2"), (&never, "never-2")] {
        wait_for(&sb, "first output", Duration::from_secs(20), |sb| log(sb, id).contains(needle));
    }
    let before: Vec<Value> = [&resumed, &plain, &never].iter().map(|id| show(&sb, id)).collect();
    shut_down(sb);

    // The second boot: same state directory, new boot id, no tmux server.
    let Some(sb) = boot(name, &kept) else { return };
    assert_ne!(boot_id(&sb), first_boot, "the second box is not a new boot");
    wait_for(&sb, "the on_boot sessions running again", Duration::from_secs(30), |sb| {
        [&resumed, &plain].iter().all(|id| show(sb, id)["state"] == "running")
    });
    for (old, id) in before.iter().zip([&resumed, &plain]) {
        let s = show(&sb, id);
        for field in ["id", "name", "cwd", "limits", "uid", "user", "owner_uid", "command"] {
            assert_eq!(s[field], old[field], "{id}: {field} changed across the reboot");
        }
        assert_eq!(
            (&s["restarts"], &s["restart_reason"]),
            (&Value::from(1), &Value::from("reboot")),
            "{s}"
        );
        assert!(s["restored_at"].is_string(), "{s}");
        // Running as its owner.
        let pid = s["pid"].as_u64().unwrap();
        let uid = sb.sh_ok(&format!("stat -c %u /proc/{pid}")).trim().to_string();
        assert_eq!(uid, s["uid"].to_string(), "{id} runs as uid {uid}");
    }
    // resume_command was used, in the same cwd, with the same limits.
    wait_for(&sb, "the resumed output", Duration::from_secs(20), |sb| {
        log(sb, &resumed).contains("resumed-2 /tmp")
    });
    let text = log(&sb, &resumed);
    let (a, m, b) = (
        text.find("first-2").unwrap(),
        text.find("restored after a reboot").expect("a marker"),
        text.find("resumed-2 /tmp").unwrap(),
    );
    assert!(a < m && m < b, "before, marker, after: {text:?}");
    assert!(text[b..].contains("777"), "nofile=777 after the restore: {text:?}");
    // Without resume_command, command runs again.
    wait_for(&sb, "the plain session's second run", Duration::from_secs(20), |sb| {
        log(sb, &plain).matches("plain-2").count() == 2
    });
    // `never` is lost, its log readable.
    let n = show(&sb, &never);
    assert_eq!((&n["state"], &n["restarts"]), (&Value::from("lost"), &Value::from(0)), "{n}");
    assert!(log(&sb, &never).contains("never-2"), "the lost session's log:\n{}", journal(&sb));
    report(&format!("system_restore: reboot restored {resumed} and {plain}; {never} is lost"));
}

#[test]
fn five_hundred_sessions_restored_after_a_reboot() {
    let name = "five_hundred_sessions_restored_after_a_reboot";
    const N: usize = 500;
    let kept = Kept::new("five-hundred");
    // The admin's configuration outlives the reboot too: a drop-in (and the
    // config file it names) in a directory kept like the state.
    let etc = Kept::new("five-hundred-etc");
    std::fs::write(
        etc.0.join("test.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/bin/ccmanagerd --config /etc/systemd/system/ccmanagerd.service.d/test.toml\n",
    )
    .unwrap();
    std::fs::write(
        etc.0.join("test.toml"),
        "[limits]\nmax_sessions = 1000\nmax_sessions_per_owner = 1000\n\n[sessions]\nrestore = \"on_boot\"\n",
    )
    .unwrap();
    let dropin = Path::new("/etc/systemd/system/ccmanagerd.service.d");
    let keep = [(kept.0.as_path(), Path::new(STATE)), (etc.0.as_path(), dropin)];
    let Some(sb) = setup_keeping(name, &keep) else { return };
    // Created in parallel, 8 at a time.
    let made = sb.sh_timeout(
        &format!("seq {N} | xargs -P 8 -I{{}} ccmanagerctl new --cwd /tmp -- sleep 100000 >/dev/null && ccmanagerctl --json status"),
        Duration::from_secs(600),
    );
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let status: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(status["sessions"]["running"], N, "{status}");
    shut_down(sb);

    let Some(sb) = setup_keeping(name, &keep) else { return };
    let running = || -> u64 {
        let v: Value =
            serde_json::from_slice(&sb.sh("ccmanagerctl --json status").stdout).unwrap_or_default();
        v["sessions"]["running"].as_u64().unwrap_or(0)
    };
    wait_for(&sb, "500 sessions running", Duration::from_secs(120), |_| running() == N as u64);
    // Both from the box's own clock: when the unit started, when it was
    // ready, and now (all running was seen just before).
    let show = sb.sh_ok(
        "systemctl show -P InactiveExitTimestampMonotonic ccmanagerd; systemctl show -P ActiveEnterTimestampMonotonic ccmanagerd; cat /proc/uptime",
    );
    let v: Vec<f64> = show.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (start, ready, now) = (v[0] / 1e6, v[1] / 1e6, v[2]);
    let restored: Vec<Value> = {
        let v = ctl(&sb, "ls");
        v.get("sessions").unwrap_or(&v).as_array().cloned().unwrap()
    };
    let last = restored
        .iter()
        .filter_map(|s| s["restored_at"].as_str())
        .max()
        .unwrap_or_default()
        .to_string();
    report(&format!(
        "system_restore: {N} sessions after a reboot: READY {:.2} s after start, all running by {:.2} s after start (seen; last restored_at {last})",
        ready - start,
        now - start
    ));
    assert_eq!(restored.iter().filter(|s| s["restart_reason"] == "reboot").count(), N);
    // READY does not wait for the restores (docs/design.md): a loose bound,
    // the figures above are what the issue's targets are read from.
    assert!(ready - start < 30.0, "READY took {:.1} s", ready - start);
}
