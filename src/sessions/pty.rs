//! The host's ceiling on pseudo-terminals, `kernel.pty.max`: every session
//! holds one (its pane), and at the ceiling tmux can only say `fork failed:
//! No space left on device`. Creates are refused before that with an error
//! naming the sysctl, and health turns `degraded` above
//! [`DEGRADED_PERCENT`] of it and `failing` at it. The package raises it
//! (`/usr/lib/sysctl.d/ccmanagerd.conf`).

use std::path::PathBuf;

/// Where the kernel shows the ceiling (`max`) and the count (`nr`).
pub const PTY_DIR: &str = "/proc/sys/kernel/pty";
/// Above this share of the ceiling, health is `degraded`.
pub const DEGRADED_PERCENT: u64 = 90;
/// The sysctl, as messages name it.
pub const SYSCTL: &str = "kernel.pty.max";

/// Pseudo-terminals in use on the host and its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `kernel.pty.nr`.
    pub nr: u64,
    /// `kernel.pty.max`.
    pub max: u64,
}

/// The directory read: [`PTY_DIR`], or in builds with test hooks the
/// directory `CCMANAGERD_TEST_PTY_DIR` names (tests must not lower the
/// host's real ceiling: other tests run at the same time).
fn dir() -> PathBuf {
    #[cfg(feature = "test-hooks")]
    if let Some(d) = std::env::var_os("CCMANAGERD_TEST_PTY_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(PTY_DIR)
}

/// Reads the count and the ceiling.
pub fn usage() -> std::io::Result<Usage> {
    let dir = dir();
    let read = |name: &str| -> std::io::Result<u64> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)?;
        text.trim().parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
        })
    };
    Ok(Usage { nr: read("nr")?, max: read("max")? })
}

impl Usage {
    /// Whether none is left.
    pub fn full(&self) -> bool {
        self.nr >= self.max
    }

    /// Whether more than [`DEGRADED_PERCENT`] are in use.
    pub fn nearly_full(&self) -> bool {
        self.nr * 100 > self.max * DEGRADED_PERCENT
    }

    /// What to tell an operator.
    pub fn describe(&self) -> String {
        format!(
            "{} of {SYSCTL} = {} pseudo-terminals in use on this host (each session holds one)",
            self.nr, self.max
        )
    }
}

/// Ok when the host has a pseudo-terminal left for one more session; the
/// reason otherwise. Unreadable counts (no /proc) never refuse.
pub fn room_for_one() -> Result<(), String> {
    match usage() {
        Ok(u) if u.full() => Err(format!(
            "limit reached: {}; raise it (sysctl -w {SYSCTL}=65536, kept in /etc/sysctl.d/)",
            u.describe()
        )),
        _ => Ok(()),
    }
}

/// tmux's own words for an exhausted ceiling, met by a create that passed
/// [`room_for_one`] (a race, or a devpts instance with a reserve), replaced
/// by what they mean.
pub fn explain(e: crate::error::Error) -> crate::error::Error {
    match &e {
        crate::error::Error::Tmux(m) if m.contains("No space left on device") => {
            let now = usage().map(|u| u.describe()).unwrap_or_default();
            crate::error::Error::LimitReached(format!(
                "limit reached: no pseudo-terminal left on this host ({SYSCTL}; {now}); tmux said: {m}"
            ))
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let u = |nr, max| Usage { nr, max };
        assert!(!u(3686, 4096).nearly_full());
        assert!(u(3687, 4096).nearly_full());
        assert!(!u(4095, 4096).full());
        assert!(u(4096, 4096).full());
        assert!(u(4096, 4096).describe().contains("kernel.pty.max = 4096"));
        let real = usage().expect("/proc/sys/kernel/pty is readable here");
        assert!(real.max > 0);
    }
}
