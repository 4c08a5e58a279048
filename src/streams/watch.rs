//! Wake-ups when a log directory changes: one inotify instance for the
//! daemon, one watch per watched log directory, shared by every
//! subscription that follows that session ([`Watcher::watch`] hands out the
//! same [`Watch`] while one is alive; the inotify watch goes with the last).
//!
//! A wake-up says only "look again": the subscription reads the log
//! itself. It is a version bump on a `tokio::sync::watch` channel, so a
//! subscription busy reading when the log grows still sees it on its next
//! wait, and a burst of writes costs one look.
//!
//! When inotify cannot be had (no instance, or `fs.inotify.max_user_watches`
//! exhausted: adding the watch fails with ENOSPC), a [`Watch`] is still
//! handed out and never fires: its subscriptions run on their periodic look
//! (`streams.poll_interval`). A queue overflow wakes every watch.

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
/// index made, renamed or removed, the directory itself removed.
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
}

#[derive(Default)]
struct State {
    /// Live watches by directory.
    by_dir: HashMap<PathBuf, Weak<Watch>>,
    /// Their wake-up channels by inotify descriptor.
    by_wd: HashMap<WatchDescriptor, watch::Sender<()>>,
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
}

/// The daemon's inotify instance and its watches (a cheap handle).
#[derive(Clone)]
pub struct Watcher {
    inner: Arc<Inner>,
}

/// One watched log directory; wakes its subscribers when it changes.
pub struct Watch {
    dir: PathBuf,
    wake: watch::Sender<()>,
    wd: Option<WatchDescriptor>,
    owner: Weak<Inner>,
}

impl Watch {
    /// A receiver that sees the next change (not the earlier ones).
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.wake.subscribe()
    }

    /// Whether inotify wakes this watch (else only the periodic look does).
    pub fn is_live(&self) -> bool {
        self.wd.is_some()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(inner) = self.owner.upgrade() else { return };
        // All under the state lock: a new watch of the same directory made
        // meanwhile got the same descriptor from the kernel (one watch per
        // inode) and must keep it.
        let mut state = inner.state();
        if state.by_dir.get(&self.dir).is_some_and(|w| w.strong_count() > 0) {
            return;
        }
        state.by_dir.remove(&self.dir);
        if let Some(wd) = self.wd.take() {
            state.by_wd.remove(&wd);
            if let Some(watches) = &inner.watches {
                // Fails harmlessly when the directory is gone (the kernel
                // dropped the watch with it).
                let _ = watches.lock().unwrap_or_else(|e| e.into_inner()).remove(wd);
            }
        }
    }
}

impl Watcher {
    /// Starts the inotify instance and the task that reads its events (on
    /// the current tokio runtime); without inotify, a watcher whose watches
    /// never fire (a warning says so).
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
        let (wake, _) = watch::channel(());
        let wd = self.inner.watches.as_ref().and_then(|watches| {
            match watches.lock().unwrap_or_else(|e| e.into_inner()).add(dir, mask()) {
                Ok(wd) => Some(wd),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a log with inotify (fs.inotify.max_user_watches?); its subscribers poll it");
                    None
                }
            }
        });
        if let Some(wd) = &wd {
            state.by_wd.insert(wd.clone(), wake.clone());
        }
        let w =
            Arc::new(Watch { dir: dir.to_owned(), wake, wd, owner: Arc::downgrade(&self.inner) });
        state.by_dir.insert(dir.to_owned(), Arc::downgrade(&w));
        w
    }

    /// Directories watched now (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.inner.state().by_dir.values().filter(|w| w.strong_count() > 0).count()
    }
}

impl Inner {
    fn event(&self, wd: &WatchDescriptor, mask: EventMask) {
        let mut state = self.state();
        if mask.contains(EventMask::Q_OVERFLOW) {
            for wake in state.by_wd.values() {
                wake.send_replace(());
            }
            return;
        }
        if let Some(wake) = state.by_wd.get(wd) {
            wake.send_replace(());
        }
        if mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch (the directory is gone): its
            // descriptor may be given to another directory later.
            state.by_wd.remove(wd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_watch_per_directory_woken_by_writes() {
        let dir = tempfile::tempdir().unwrap();
        let watcher = Watcher::start();
        let a = watcher.watch(dir.path());
        let b = watcher.watch(dir.path());
        assert!(Arc::ptr_eq(&a, &b), "shared");
        assert!(a.is_live());
        assert_eq!(watcher.watched(), 1);
        let mut rx = a.subscribe();
        std::fs::write(dir.path().join("00000000000000000000.log"), b"x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
        drop((a, b));
        assert_eq!(watcher.watched(), 0, "the last holder takes the watch away");
        let c = watcher.watch(dir.path());
        assert!(c.is_live(), "watched again");
    }
}
