//! Polling instead of fixed sleeps: a loaded machine makes any fixed sleep
//! either too short (flaky) or too long (slow).
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// How long tests wait for what must happen: generous, for two shared
/// cores with other builds running.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Some`, or panics after `within` naming `what`
/// was awaited.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Polls `f` for `within`; `Some` if it ever returned one (for things that
/// may or may not happen, such as a planted session being noticed).
pub fn maybe<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
