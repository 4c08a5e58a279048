//! Talking to the service manager: sd_notify states (READY, STATUS, RELOADING,
//! STOPPING, WATCHDOG), socket activation fds, and detecting whether we run
//! under systemd. Children must never inherit the notify or listen variables
//! ([`PRIVATE_ENV`]): every tmux process the daemon spawns goes through
//! `tmux::server::tmux_command`, which removes them, and units are started by
//! PID 1 with an environment of their own.
//! Units are created, killed and stopped over one kept D-Bus connection:
//! [`bus`].

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use sd_notify::NotifyState;

pub mod bus;
mod error;
mod private;
mod unit;

pub use bus::{Bus, BusError, Property};

/// Environment variables that belong to this process alone.
pub const PRIVATE_ENV: [&str; 7] = [
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "INVOCATION_ID",
];

/// Whether systemd is the init system (`/run/systemd/system` exists).
pub fn booted() -> bool {
    sd_notify::booted().unwrap_or(false)
}

/// Whether this process was started by systemd as a service (or its stderr is
/// the journal), which selects journald logging.
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || stderr_is_journal()
}

/// Whether `JOURNAL_STREAM` names our stderr (device:inode match).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    let Ok(stat) = rustix::fs::fstat(rustix::stdio::stderr()) else { return false };
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}

/// Takes the first socket passed by systemd socket activation, if any, and
/// clears `LISTEN_*` so children never see them. Call before any thread starts.
pub fn take_listen_fd() -> std::io::Result<Option<OwnedFd>> {
    let mut fds = sd_notify::listen_fds()?;
    let first = fds.next();
    // Extra fds (if a unit passes more than one socket) are closed: we serve one.
    for extra in fds {
        // SAFETY: systemd passed us this fd and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(extra) });
    }
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        // SAFETY: called from main before the runtime or any thread starts.
        unsafe { std::env::remove_var(var) };
    }
    // SAFETY: as above, the fd is ours alone.
    Ok(first.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The watchdog interval systemd asked for, if the watchdog is on.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Sends states to the service manager; a no-op without `NOTIFY_SOCKET`.
/// Failures are logged, never fatal: the daemon serves either way.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` plus a status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STATUS=...`.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` with `MONOTONIC_USEC` (as systemd requires for notify-reload).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now, NotifyState::Status("reloading")]),
        Err(_) => notify(&[NotifyState::Reloading, NotifyState::Status("reloading")]),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}
