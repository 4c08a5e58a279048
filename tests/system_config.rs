//! Issue 11 (item 9) under a booted systemd (tests/common/sysbox.rs): an
//! invalid config makes the installed unit end `failed` within seconds with
//! the reason in `systemctl status`, with no restart loop, and
//! `ccmanagerctl status` fails within its timeout saying what to check.
//! Before: the unit restarted ~14 times per 10 s (never reaching
//! StartLimitBurst), stayed `activating`, and every `ccmanagerctl` call hung
//! ~61 s, then printed `Resource temporarily unavailable (os error 11)`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::service::{ctl, journal, report, setup, wait_active, wait_for};
use common::sysbox::{describe, SysBox};

const BAD_CONFIG: &[u8] = b"[limits]\nmax_sessions = 10\nmax_sesions = 3\n";

fn show(sb: &SysBox, unit: &str, prop: &str) -> String {
    sb.sh_ok(&format!("systemctl show -P {prop} {unit}")).trim().to_string()
}

fn is_failed(sb: &SysBox) -> bool {
    sb.sh("systemctl is-failed --quiet ccmanagerd.service").status.success()
}

#[test]
fn a_bad_config_fails_the_unit_without_a_restart_loop() {
    let name = "a_bad_config_fails_the_unit_without_a_restart_loop";
    let Some(sb) = setup(name) else { return };
    let conf = Path::new("/etc/ccmanagerd/config.toml");
    let unit = "ccmanagerd.service";
    sb.write_file(conf, BAD_CONFIG, 0o644).unwrap();

    let t0 = Instant::now();
    let o = sb.sh_timeout("systemctl restart ccmanagerd.service", Duration::from_secs(90));
    let restart_took = t0.elapsed();
    assert!(!o.status.success(), "a restart with a bad config succeeded: {}", describe(&o));
    wait_for(&sb, "ccmanagerd.service failed", Duration::from_secs(10), is_failed);
    let failed_after = t0.elapsed();
    assert_eq!(show(&sb, unit, "ExecMainStatus"), "78", "{}", journal(&sb));
    assert_eq!(show(&sb, unit, "Result"), "exit-code");
    let restarts = show(&sb, unit, "NRestarts");
    assert_eq!(restarts, "0", "restarted although the config cannot change by itself");
    // And it stays so: RestartSec=500ms would have restarted it several times.
    std::thread::sleep(Duration::from_secs(3));
    assert!(is_failed(&sb), "not failed any more: {}", journal(&sb));
    assert_eq!(show(&sb, unit, "NRestarts"), "0", "{}", journal(&sb));

    // The reason, with file, line and key, in `systemctl status`.
    let status = sb.sh("systemctl status --no-pager --full --lines=20 ccmanagerd.service");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("/etc/ccmanagerd/config.toml:3: limits.max_sesions")
            && text.contains("status=78"),
        "systemctl status does not say why:\n{text}"
    );

    // ccmanagerctl: its connection starts the service once through the socket
    // (still listening); the daemon tells it why it cannot start.
    assert_eq!(show(&sb, "ccmanagerd.socket", "ActiveState"), "active");
    let t1 = Instant::now();
    let o = sb.sh_timeout("ccmanagerctl --timeout 10s status", Duration::from_secs(60));
    let ctl_took = t1.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        err.contains("configuration is invalid") && err.contains("systemctl status ccmanagerd"),
        "unclear message: {}",
        describe(&o)
    );
    assert!(ctl_took < Duration::from_secs(10), "ccmanagerctl took {ctl_took:?}");
    wait_for(&sb, "ccmanagerd.service failed again", Duration::from_secs(10), is_failed);
    assert_eq!(show(&sb, unit, "NRestarts"), "0", "{}", journal(&sb));
    assert_eq!(show(&sb, "ccmanagerd.socket", "ActiveState"), "active");

    // Fixed config: back at the next restart.
    sb.write_file(conf, b"", 0o644).unwrap();
    sb.sh_ok("systemctl restart ccmanagerd.service");
    wait_active(&sb);
    ctl(&sb, "status");
    report(&format!(
        "system_config: bad config -> systemctl restart returned after {restart_took:?}, unit failed \
         after {failed_after:?} (ExecMainStatus=78, NRestarts=0); ccmanagerctl status failed in \
         {ctl_took:?}: {}",
        err.lines().next().unwrap_or("")
    ));
}
