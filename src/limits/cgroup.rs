//! Per-session cgroup caps through systemd: each session's program is moved
//! into its own transient scope `ccmanager-sess-<id>.scope` in
//! `ccmanager.slice` (with MemoryMax, TasksMax, CPUQuota) while the
//! exec-wrapper waits, so it never runs outside its caps. Stopping the scope
//! kills every process of the session, also ones that daemonised.
//!
//! PID 1 is driven over the daemon's one kept D-Bus connection
//! ([`crate::systemd::Bus`]): spawning `busctl`/`systemctl` per create and
//! kill cost +3 ms and +5 ms (docs/performance.md).

use crate::systemd::bus::{Bus, BusError, CollectMode, Property};

use super::Limits;

/// The slice every session scope lives in.
pub const SLICE: &str = "ccmanager.slice";

/// Scope unit name of a session.
pub fn scope_name(id: &str) -> String {
    format!("ccmanager-sess-{id}.scope")
}

/// Scope unit name of a session's program after `restarts` restarts: each
/// run has its own, so a new one never waits for systemd to unload the old
/// (ids are `[a-z0-9]`, so the `-` cannot be confused with one).
pub fn scope_name_of_run(id: &str, restarts: u32) -> String {
    match restarts {
        0 => scope_name(id),
        n => format!("ccmanager-sess-{id}-{n}.scope"),
    }
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

/// The systemd properties of a session scope with the caps of `limits`.
pub fn scope_properties(limits: &Limits) -> Vec<Property> {
    // Unloaded once inactive, also after an OOM kill made it `failed`.
    let mut props = vec![Property::CollectMode(CollectMode::InactiveOrFailed)];
    if let Some(m) = limits.memory_max {
        props.push(Property::MemoryMax(m.0));
    }
    if let Some(t) = limits.tasks_max {
        props.push(Property::TasksMax(t));
    }
    if let Some(q) = limits.cpu_quota {
        // CPUQuota=N% is CPUQuotaPerSecUSec = N * 10000 µs per second.
        props.push(Property::CpuQuotaPerSecUSec(u64::from(q.0) * 10_000));
    }
    props
}

/// Moves `pid` into a new scope `unit` (in [`SLICE`]) with the cgroup caps
/// of `limits`; returns once systemd's start job has ended.
pub async fn place(bus: &Bus, unit: &str, pid: u32, limits: &Limits) -> Result<(), BusError> {
    bus.start_scope(unit, &[pid], SLICE, &scope_properties(limits)).await
}

/// Kills every process of the scope and stops it; a scope already gone is
/// fine. SIGKILL first: a plain stop sends SIGTERM and waits up to the
/// scope's TimeoutStopSec (90 s) for a program that ignores it.
pub async fn stop(bus: &Bus, unit: &str) -> Result<(), BusError> {
    match bus.kill_unit(unit, libc::SIGKILL).await {
        Ok(()) => {}
        Err(e) if e.is_no_such_unit() => return Ok(()),
        // E.g. nothing left to kill; the stop below decides.
        Err(e) => tracing::debug!(unit, error = %e, "killing the scope"),
    }
    bus.stop_unit(unit).await
}
