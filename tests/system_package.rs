//! Issue 14, item 11: the real package path. Builds two .debs with
//! cargo-deb from the binaries this `cargo test` already built (no second
//! compile: `--no-build --profile dev`), then in a booted systemd
//! (tests/common/sysbox.rs) installs the first with dpkg, upgrades to the
//! second, and purges. Proves: the service runs from the package; the CLI
//! finds the system socket without `--socket` as a member of its group
//! and says what it tried otherwise; completions and the man page are
//! installed; sessions and the tmux server survive the upgrade; an
//! ordinary kill logs no warning; what purge leaves is what
//! packaging/README.md says.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::service::{ctl, journal, main_pid, repo_root, report, tmux_pid, wait_active};
use common::sysbox::{describe, install_deb, skip, skip_unless_root, SysBox};

/// A .deb of the test-built binaries with version `version`, in `out`.
fn build_deb(out: &Path, version: &str) -> PathBuf {
    let deb = out.join(format!("ccmanagerd_{version}.deb"));
    let t0 = Instant::now();
    let o = Command::new("cargo")
        .current_dir(repo_root())
        .args(["deb", "--no-build", "--profile", "dev", "--no-strip", "--fast"])
        .args(["--deb-version", version, "--output"])
        .arg(&deb)
        .output()
        .expect("run cargo deb");
    assert!(o.status.success(), "cargo deb: {}", describe(&o));
    report(&format!("system_package: cargo deb {version} in {:?}", t0.elapsed()));
    deb
}

fn cargo_deb_available() -> bool {
    Command::new("cargo").args(["deb", "--version"]).output().is_ok_and(|o| o.status.success())
}

/// The package's version as dpkg knows it.
fn installed_version(sb: &SysBox) -> String {
    sb.sh_ok("dpkg-query -W -f '${Version}' ccmanagerd").trim().to_string()
}

/// (id, pid) of every session, sorted.
fn sessions(sb: &SysBox) -> Vec<(String, u64)> {
    let v = ctl(sb, "ls");
    let mut out: Vec<_> = v["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("ls: {v}"))
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["pid"].as_u64().unwrap_or(0)))
        .collect();
    out.sort();
    out
}

#[test]
fn install_upgrade_and_purge_with_dpkg() {
    let name = "install_upgrade_and_purge_with_dpkg";
    if skip_unless_root(name) {
        return;
    }
    if !Path::new("/usr/bin/tmux").exists() || !cargo_deb_available() {
        skip(name, "needs /usr/bin/tmux and cargo-deb (.ci/run installs it)");
        return;
    }
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_ccmanagerd")).parent().unwrap().to_owned();
    assert!(bin_dir.ends_with("debug"), "cargo deb --profile dev packages target/debug");
    let out = tempfile::tempdir().unwrap();
    let first = build_deb(out.path(), "0.1.0+test1");
    let second = build_deb(out.path(), "0.1.0+test2");

    let sb = SysBox::boot().expect("boot");
    install_deb(&sb, &first).expect("dpkg -i (install)");
    wait_active(&sb);
    assert_eq!(installed_version(&sb), "0.1.0+test1");

    // Completions and the man page, where the shells and man look.
    for f in [
        "/usr/share/bash-completion/completions/ccmanagerctl",
        "/usr/share/zsh/vendor-completions/_ccmanagerctl",
        "/usr/share/fish/vendor_completions.d/ccmanagerctl.fish",
        "/usr/share/man/man1/ccmanagerctl.1.gz",
    ] {
        sb.sh_ok(&format!("test -s {f}"));
    }
    let man = sb.sh_ok("zcat /usr/share/man/man1/ccmanagerctl.1.gz");
    assert!(man.contains("EXIT STATUS") && man.contains("ccmanagerctl"), "{man}");
    let complete = sb.sh_ok(
        "bash -c '. /usr/share/bash-completion/completions/ccmanagerctl && complete -p ccmanagerctl'",
    );
    assert!(complete.contains("_ccmanagerctl"), "{complete}");

    // Item 4: no --socket. Root and a member of the socket's group reach
    // the system socket; anyone else is told every path it tried.
    sb.sh_ok("useradd -M -G ccmanager opsmember && useradd -M opsother");
    let st = sb.sh_ok("ccmanagerctl status");
    assert!(st.contains("socket:   /run/ccmanagerd/ccmanagerd.sock"), "{st}");
    let o = sb.sh("runuser -u opsmember -- ccmanagerctl --json status");
    assert!(o.status.success(), "a group member: {}\n{}", describe(&o), journal(&sb));
    let o = sb.sh("runuser -u opsother -- env XDG_RUNTIME_DIR=/tmp ccmanagerctl status");
    assert_eq!(o.status.code(), Some(69), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/run/ccmanagerd/ccmanagerd.sock (Permission denied")
            && err.contains("/tmp/ccmanagerd/ccmanagerd.sock (No such file"),
        "{err}"
    );

    // Sessions, then an ordinary kill: a message that says so, no warning.
    let a = ctl(&sb, "new --name keep -- sleep 1000")["id"].as_str().unwrap().to_string();
    let b = ctl(&sb, "new --name gone -- sleep 1000")["id"].as_str().unwrap().to_string();
    sb.sh_ok(&format!("ccmanagerctl kill gone && ccmanagerctl show {a} >/dev/null"));
    let said = sb.sh_ok("journalctl -b --no-pager -o cat -u ccmanagerd.service");
    assert!(said.contains(&format!("created session {a} (keep) for uid")), "{said}");
    assert!(said.contains(&format!("removed session {b} (killed)")), "{said}");
    let warned = sb.sh_ok(&format!(
        "journalctl -b --no-pager -o cat -p warning -u ccmanagerd.service | grep -F {b} || true"
    ));
    assert!(warned.trim().is_empty(), "an ordinary kill warned:\n{warned}");

    // The upgrade: a new daemon, the same tmux server and sessions.
    let before = sessions(&sb);
    let (tmux, daemon) = (tmux_pid(&sb), main_pid(&sb));
    let t0 = Instant::now();
    install_deb(&sb, &second).expect("dpkg -i (upgrade)");
    wait_active(&sb);
    report(&format!("system_package: dpkg -i upgrade -> active in {:?}", t0.elapsed()));
    assert_eq!(installed_version(&sb), "0.1.0+test2");
    assert_ne!(main_pid(&sb), daemon, "the upgrade did not restart the daemon");
    assert_eq!(tmux_pid(&sb), tmux, "the upgrade restarted the tmux server\n{}", journal(&sb));
    assert_eq!(sessions(&sb), before, "sessions changed across the upgrade");
    let pane = before[0].1;
    sb.sh_ok(&format!("kill -0 {pane}"));

    // Purge: what packaging/README.md says stays, stays; the rest is gone.
    let o = sb.run(&["dpkg", "--purge", "ccmanagerd"]);
    assert!(o.status.success(), "dpkg --purge: {}", describe(&o));
    for gone in [
        "/usr/bin/ccmanagerd",
        "/usr/bin/ccmanagerctl",
        "/lib/systemd/system/ccmanagerd.service",
        "/etc/ccmanagerd",
        "/var/lib/ccmanagerd",
        "/usr/share/man/man1/ccmanagerctl.1.gz",
        "/usr/share/bash-completion/completions/ccmanagerctl",
    ] {
        assert!(!sb.root().join(&gone[1..]).exists(), "{gone} survived the purge");
    }
    let o = sb.sh("systemctl is-active ccmanagerd.service ccmanagerd.socket");
    assert!(!o.status.success(), "the service still runs: {}", describe(&o));
    // Kept: the system user and its home, and the tmux server with the
    // sessions (the operator's now; `systemctl stop 'ccmanagerd-tmux-*'`).
    sb.sh_ok("getent passwd ccmanager && test -d /var/lib/ccmanager");
    sb.sh_ok(&format!("kill -0 {tmux} && kill -0 {pane}"));
    sb.sh_ok("systemctl stop 'ccmanagerd-tmux-*'");
    assert!(!sb.sh(&format!("kill -0 {pane}")).status.success(), "the session outlived its server");
}
