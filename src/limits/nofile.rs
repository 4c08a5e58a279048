//! The daemon's own open-file limit. It holds one descriptor per running
//! session (the exit watch, `src/sessions/exits.rs`), so at start it raises
//! its soft `RLIMIT_NOFILE` to the hard limit (systemd's default for services
//! is 1024 soft, 524288 hard). The processes it starts get the old soft
//! limit back ([`restore_in_child`]): programs that `select()` or close every
//! descriptor up to the limit expect the usual 1024.

use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit before [`raise`]; 0 until then (nothing to restore).
static ORIGINAL_SOFT: AtomicU64 = AtomicU64::new(0);

/// Raises the soft limit to the hard limit; returns (old, new) soft limits.
pub fn raise() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)?;
        ORIGINAL_SOFT.store(soft, Ordering::Relaxed);
    }
    Ok((soft, soft.max(hard)))
}

/// In a child between fork and exec: puts the soft limit back to what it
/// was before [`raise`]. Async-signal-safe (an atomic load and two
/// syscalls); errors are ignored (the child keeps the higher limit).
pub fn restore_in_child() {
    let soft = ORIGINAL_SOFT.load(Ordering::Relaxed);
    if soft == 0 {
        return;
    }
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = soft.min(rl.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}
