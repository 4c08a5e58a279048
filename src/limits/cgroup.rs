//! Per-session cgroup caps through systemd: each session's program is moved
//! into its own transient scope `ccmanager-sess-<id>.scope` in
//! `ccmanager.slice` (with MemoryMax, TasksMax, CPUQuota) while the
//! exec-wrapper waits, so it never runs outside its caps. Stopping the scope
//! kills every process of the session, also ones that daemonised.
//!
//! PID 1 is driven with `busctl`/`systemctl` (one spawn per create or kill,
//! measured in docs/performance.md) rather than a D-Bus crate: two calls,
//! no long-lived bus connection to babysit.

use tokio::process::Command;

use super::Limits;

/// The slice every session scope lives in.
pub const SLICE: &str = "ccmanager.slice";

/// Scope unit name of a session.
pub fn scope_name(id: &str) -> String {
    format!("ccmanager-sess-{id}.scope")
}

/// Whether per-session scopes can be made: systemd is PID 1 and we are root.
pub fn available() -> Result<(), String> {
    if !crate::systemd::booted() {
        return Err("systemd is not the init system".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the daemon is not root (creating system scopes needs root)".into());
    }
    Ok(())
}

async fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    crate::systemd::scrub_child_env(cmd);
    let out = cmd.output().await.map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Moves `pid` into a new scope `unit` with the cgroup caps of `limits`.
pub async fn place(unit: &str, pid: u32, limits: &Limits) -> Result<(), String> {
    let mut props: Vec<String> = vec![
        "PIDs".into(), "au".into(), "1".into(), pid.to_string(),
        "Slice".into(), "s".into(), SLICE.into(),
        "CollectMode".into(), "s".into(), "inactive-or-failed".into(),
    ];
    if let Some(m) = limits.memory_max {
        props.extend(["MemoryMax".into(), "t".into(), m.0.to_string()]);
    }
    if let Some(t) = limits.tasks_max {
        props.extend(["TasksMax".into(), "t".into(), t.to_string()]);
    }
    if let Some(q) = limits.cpu_quota {
        // CPUQuota=N% is CPUQuotaPerSecUSec = N * 10000 µs per second.
        props.extend(["CPUQuotaPerSecUSec".into(), "t".into(), (u64::from(q.0) * 10_000).to_string()]);
    }
    // Every property is name, signature, value; PIDs carries one more word.
    let count = (props.len() - 1) / 3;
    let mut cmd = Command::new("busctl");
    cmd.args(["call", "--quiet", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail"])
        .arg(count.to_string())
        .args(&props)
        .arg("0");
    run(&mut cmd, &format!("creating {unit}")).await
}

/// Kills every process of the scope and stops it.
pub async fn stop(unit: &str) -> Result<(), String> {
    let _ = run(Command::new("systemctl").args(["kill", "--signal=SIGKILL", unit]), "killing").await;
    run(Command::new("systemctl").args(["stop", unit]), &format!("stopping {unit}")).await
}
