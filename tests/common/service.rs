//! The installed service in a booted box, shared by the system tests: boot a
//! [`SysBox`] with the test-built binaries and the package's files, and the
//! small probes every system test uses (journal, waits, pids, the CLI).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sysbox::{describe, install_files, skip, skip_unless_root, SysBox};

/// How long the service may take to become active after install.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The repository checkout.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prints on the real stderr (libtest captures `eprintln!` of passing tests).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Boots a box and installs the test-built binaries with the package's files
/// (postinst starts the socket and the service). `None`: skipped.
pub fn setup(test: &str) -> Option<SysBox> {
    setup_keeping(test, &[])
}

/// [`setup`] in a box that keeps `keep` (see [`SysBox::boot_keeping`]).
pub fn setup_keeping(test: &str, keep: &[(&Path, &Path)]) -> Option<SysBox> {
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
    let sb = SysBox::boot_keeping(keep).expect("boot");
    install_files(&sb, &repo_root(), &bin_dir).expect("install_files");
    wait_active(&sb);
    // A failed first start is reported, not hidden (systemd restarts it and
    // the next start adopts the running tmux server).
    let restarts = sb.sh_ok("systemctl show -P NRestarts ccmanagerd.service").trim().to_string();
    if restarts != "0" {
        report(&format!(
            "{test}: the daemon failed {restarts} start(s) during install:\n{}",
            journal(&sb)
        ));
    }
    Some(sb)
}

/// The last lines of the daemon's and the tmux unit's journal.
pub fn journal(sb: &SysBox) -> String {
    String::from_utf8_lossy(
        &sb.sh("journalctl -b --no-pager -o short-monotonic -u ccmanagerd -u 'ccmanagerd-tmux-*' | tail -60").stdout,
    )
    .into_owned()
}

/// Polls `ok` every 100 ms; fails with the journal after `within`.
pub fn wait_for(sb: &SysBox, what: &str, within: Duration, mut ok: impl FnMut(&SysBox) -> bool) {
    let t0 = Instant::now();
    while !ok(sb) {
        assert!(t0.elapsed() < within, "not {what} after {within:?}\n{}", journal(sb));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until ccmanagerd.service is active.
pub fn wait_active(sb: &SysBox) {
    wait_for(sb, "ccmanagerd.service active", ACTIVE_TIMEOUT, |sb| {
        sb.sh("systemctl is-active ccmanagerd.service").status.success()
    });
}

/// MainPID of ccmanagerd.service.
pub fn main_pid(sb: &SysBox) -> String {
    sb.sh_ok("systemctl show -P MainPID ccmanagerd.service").trim().to_string()
}

/// The unit of the tmux server that root's sessions run in (the session
/// user's, `ccmanager`).
pub fn tmux_unit(sb: &SysBox) -> String {
    format!("ccmanagerd-tmux-{}.service", sb.sh_ok("id -u ccmanager").trim())
}

/// MainPID of that unit.
pub fn tmux_pid(sb: &SysBox) -> String {
    sb.sh_ok(&format!("systemctl show -P MainPID {}", tmux_unit(sb))).trim().to_string()
}

/// The socket of that server.
pub fn tmux_socket(sb: &SysBox) -> String {
    format!("/run/ccmanagerd-tmux/{}/tmux.sock", sb.sh_ok("id -u ccmanager").trim())
}

/// `ccmanagerctl --json ARGS` in the box, parsed.
pub fn ctl(sb: &SysBox, args: &str) -> Value {
    let o = sb.sh(&format!("ccmanagerctl --json {args}"));
    assert!(o.status.success(), "ccmanagerctl {args}: {}\n{}", describe(&o), journal(sb));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("ccmanagerctl {args}: {e}: {}", describe(&o)))
}
