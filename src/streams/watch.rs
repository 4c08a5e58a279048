//! Wake-ups when a log directory changes: one inotify instance for the
//! daemon, one [`Watch`] per followed log directory, shared by every
//! subscription that follows that session ([`Watcher::watch`] hands out the
//! same one while it is alive).
//!
//! A watch is armed only while a subscription waits at the end of its log
//! ([`Watch::arm`]): an `IN_ONESHOT` inotify mark, which the kernel removes
//! after its first event. A log grows with every write of its logger (a few
//! KiB each): a permanent mark cost a daemon 4.8 s of CPU (debug build)
//! while a pane printed 500 MiB to a viewer that had stopped acknowledging
//! and read nothing; armed on demand it costs one event per wait of a
//! viewer at the end, and nothing for a viewer that is behind or paused.
//! It also holds a mark (of `fs.inotify.max_user_watches`) only while
//! someone waits.
//!
//! A wake-up says only "look again": the subscription reads the log
//! itself. It is a version bump on a `tokio::sync::watch` channel: a
//! subscription takes its receiver, arms, then looks at the log once more
//! before it waits, so a write at any point is either seen by that look or
//! wakes it.
//!
//! When inotify cannot be had (no instance, or no mark: ENOSPC at
//! `max_user_watches`), [`Watch::arm`] says so and the subscription runs on
//! its periodic look (`streams.poll_interval`). A queue overflow wakes and
//! disarms every watch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::sync::watch;

/// Bytes of the buffer events are read into (an event with a segment's
/// 24-byte name takes 16 + 32).
const EVENT_BUFFER: usize = 4096;

/// What makes a log "change": a segment written or closed, a segment or
/// index made, renamed or removed, the directory itself removed; one event
/// only.
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW
        | WatchMask::ONESHOT
}

#[derive(Default)]
struct State {
    /// Live watches by directory.
    by_dir: HashMap<PathBuf, Weak<Watch>>,
    /// Armed watches by inotify descriptor.
    by_wd: HashMap<WatchDescriptor, Weak<Watch>>,
    /// Whether arming failed once (warned about once).
    warned: bool,
}

struct Inner {
    /// `None` when inotify is unavailable.
    watches: Option<Mutex<Watches>>,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove_mark(&self, wd: WatchDescriptor) {
        if let Some(watches) = &self.watches {
            // Fails harmlessly when the mark is gone already (it fired, or
            // its directory was removed).
            let _ = watches.lock().unwrap_or_else(|e| e.into_inner()).remove(wd);
        }
    }
}

/// The daemon's inotify instance and its watches (a cheap handle).
#[derive(Clone)]
pub struct Watcher {
    inner: Arc<Inner>,
}

/// One followed log directory; wakes its subscribers when it changes.
pub struct Watch {
    dir: PathBuf,
    wake: watch::Sender<()>,
    /// The mark while armed; only touched under the watcher's state lock.
    armed: Mutex<Option<WatchDescriptor>>,
    owner: Weak<Inner>,
}

fn armed(w: &Watch) -> MutexGuard<'_, Option<WatchDescriptor>> {
    w.armed.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watch {
    /// A receiver that sees the next change (not the earlier ones).
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.wake.subscribe()
    }

    /// Asks for a wake-up at the next change of the directory: true when
    /// inotify will give one (false: poll).
    pub fn arm(self: &Arc<Self>) -> bool {
        let Some(inner) = self.owner.upgrade() else { return false };
        let Some(watches) = &inner.watches else { return false };
        let mut state = inner.state();
        let mut armed = armed(self);
        if armed.is_some() {
            return true;
        }
        let added = watches.lock().unwrap_or_else(|e| e.into_inner()).add(&self.dir, mask());
        match added {
            Ok(wd) => {
                state.by_wd.insert(wd.clone(), Arc::downgrade(self));
                *armed = Some(wd);
                true
            }
            Err(e) => {
                if !std::mem::replace(&mut state.warned, true) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot watch a log with inotify (fs.inotify.max_user_watches?); subscribers poll (streams.poll_interval)");
                }
                false
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(inner) = self.owner.upgrade() else { return };
        let mut state = inner.state();
        if state.by_dir.get(&self.dir).is_some_and(|w| w.strong_count() == 0) {
            state.by_dir.remove(&self.dir);
        }
        let me = self as *const Watch;
        let wd = self.armed.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(wd) = wd {
            // A new watch of the same directory may have armed meanwhile:
            // the kernel gave it this same mark (one per inode), it keeps it.
            if state.by_wd.get(&wd).is_some_and(|w| std::ptr::eq(w.as_ptr(), me)) {
                state.by_wd.remove(&wd);
                inner.remove_mark(wd);
            }
        }
    }
}

impl Watcher {
    /// Starts the inotify instance and the task that reads its events (on
    /// the current tokio runtime); without inotify, a watcher whose watches
    /// never arm (a warning says so).
    pub fn start() -> Watcher {
        let (watches, stream) = match Inotify::init()
            .and_then(|i| Ok((i.watches(), i.into_event_stream([0u8; EVENT_BUFFER])?)))
        {
            Ok((w, s)) => (Some(Mutex::new(w)), Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "no inotify: live output is polled (streams.poll_interval)");
                (None, None)
            }
        };
        let inner = Arc::new(Inner { watches, state: Mutex::new(State::default()) });
        if let Some(mut stream) = stream {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                while let Some(event) = stream.next().await {
                    let Some(inner) = weak.upgrade() else { return };
                    match event {
                        Ok(ev) => inner.event(&ev.wd, ev.mask),
                        Err(e) => {
                            tracing::warn!(error = %e, "reading inotify events failed; live output is polled from now on");
                            return;
                        }
                    }
                }
            });
        }
        Watcher { inner }
    }

    /// The watch of log directory `dir`, shared with every other holder.
    pub fn watch(&self, dir: &Path) -> Arc<Watch> {
        let mut state = self.inner.state();
        if let Some(w) = state.by_dir.get(dir).and_then(Weak::upgrade) {
            return w;
        }
        let w = Arc::new(Watch {
            dir: dir.to_owned(),
            wake: watch::channel(()).0,
            armed: Mutex::new(None),
            owner: Arc::downgrade(&self.inner),
        });
        state.by_dir.insert(dir.to_owned(), Arc::downgrade(&w));
        w
    }

    /// Directories followed now, and how many of them are armed.
    pub fn watched(&self) -> (usize, usize) {
        let state = self.inner.state();
        let live = state.by_dir.values().filter(|w| w.strong_count() > 0).count();
        (live, state.by_wd.len())
    }
}

impl Inner {
    fn event(&self, wd: &WatchDescriptor, mask: EventMask) {
        let mut state = self.state();
        if mask.contains(EventMask::Q_OVERFLOW) {
            // Events were lost, fired marks among them: disarm everything
            // and wake everyone; waiting subscribers arm again.
            for (wd, w) in std::mem::take(&mut state.by_wd) {
                self.remove_mark(wd);
                if let Some(w) = w.upgrade() {
                    *armed(&w) = None;
                    w.wake.send_replace(());
                }
            }
            return;
        }
        // A one-shot mark fires once (its IN_IGNORED follows, for a
        // descriptor no longer in the map).
        if let Some(w) = state.by_wd.remove(wd).and_then(|w| w.upgrade()) {
            let mut armed = armed(&w);
            if armed.as_ref() == Some(wd) {
                *armed = None;
            }
            drop(armed);
            w.wake.send_replace(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_watch_per_directory_armed_while_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = Watcher::start();
        let a = watcher.watch(dir.path());
        let b = watcher.watch(dir.path());
        assert!(Arc::ptr_eq(&a, &b), "shared");
        assert_eq!(watcher.watched(), (1, 0), "not armed until waited for");
        let mut rx = a.subscribe();
        assert!(a.arm() && b.arm());
        assert_eq!(watcher.watched(), (1, 1), "one mark");
        std::fs::write(dir.path().join("00000000000000000000.log"), b"x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
        assert_eq!(watcher.watched(), (1, 0), "a mark fires once");
        // Not armed: a write wakes nobody.
        std::fs::write(dir.path().join("00000000000000000000.log"), b"xy").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
        assert!(quiet.is_err(), "a disarmed watch stays quiet");
        assert!(a.arm());
        drop((a, b));
        assert_eq!(watcher.watched(), (0, 0), "the last holder takes the mark away");
    }
}
