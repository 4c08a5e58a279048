//! Health: the checks behind `health.check`, the `STATUS=` line, and feeding
//! the systemd watchdog only while the daemon's own loop works.

use std::sync::Arc;

use crate::daemon::Daemon;

/// Sends `WATCHDOG=1` at half the interval systemd asked for, as long as the
/// runtime keeps scheduling this task (a stalled daemon stops feeding and is
/// restarted by systemd). Returns at once when the watchdog is off.
pub async fn feed_watchdog(daemon: Arc<Daemon>) {
    let Some(interval) = crate::systemd::watchdog_interval() else { return };
    let mut tick = tokio::time::interval(interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = daemon.shutdown.listener();
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => crate::systemd::watchdog(),
        }
    }
}
