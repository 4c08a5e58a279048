//! The persister: makes registry changes durable in the [`Store`], in
//! groups, and tells each waiting request when its change is on disk.
//!
//! Every change to what must survive marks the session dirty, under the
//! registry lock; one a request waits for (a create's intent, a removal)
//! also bumps the registry's generation and wakes this task. It takes the
//! dirty sessions, appends them to the journal and fsyncs it (on the
//! blocking pool), then publishes the generation that is now durable;
//! changes that arrive meanwhile go in the next group, so concurrent
//! requests share one fsync. Changes nobody waits for (a state found in
//! tmux, the end of a create whose intent is saved) ride along with the
//! next save, [`LAZY`] later at most: tmux tells them again after a crash. A request that must not be acknowledged before its change is
//! durable (`session.create`, `session.kill`) waits for its generation;
//! when the write failed it gets the error instead, naming the path and
//! the OS error, and health is `degraded` until a save succeeds again.
//! After a failure the next save is a whole snapshot, so it saves every
//! session; it is retried every [`RETRY`] and on every change.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::registry::Registry;
use super::store::Store;
use crate::error::{Error, Result};
use crate::shutdown::ShutdownListener;

/// While saving fails, it is tried again this often (and on every change).
pub const RETRY: Duration = Duration::from_secs(1);
/// A save that takes this long is logged as a warning (the disk is slow,
/// and creates and kills wait for it).
pub const SLOW_SAVE: Duration = Duration::from_millis(100);
/// A change nobody waits for is saved with the next save, or this long
/// after it was made at the latest.
pub const LAZY: Duration = Duration::from_secs(1);

/// What is on disk.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// Every change up to this generation is durable.
    pub durable: u64,
    /// The last attempt, which covered changes up to this generation, failed.
    pub failed: u64,
    /// Why saving fails now (path and OS error); `None` once a save worked.
    pub error: Option<String>,
    /// The persister wrote its last snapshot and ended (shutdown): a request
    /// still finishing saves its own change.
    pub closed: bool,
}

/// Shared between the registry (which wakes it and waits on it), the
/// persister task (which owns the store) and health.
pub struct Persist {
    store: Mutex<Store>,
    path: PathBuf,
    wake: Notify,
    nudge: Notify,
    saved: watch::Sender<Saved>,
    failures: AtomicU64,
}

impl Persist {
    /// A persister writing to `store` (already loaded).
    pub fn new(store: Store) -> Persist {
        Persist {
            path: store.path().to_path_buf(),
            store: Mutex::new(store),
            wake: Notify::new(),
            nudge: Notify::new(),
            saved: watch::Sender::new(Saved::default()),
            failures: AtomicU64::new(0),
        }
    }

    /// The state file, for messages.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A change someone waits for: save now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The first change since the last save that nobody waits for: save
    /// within [`LAZY`].
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// What is on disk now.
    pub fn saved(&self) -> Saved {
        self.saved.borrow().clone()
    }

    /// Failed saves since start (`ccmanagerd_state_save_failures_total`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Waits until every change up to `gen` is durable; the error when the
    /// save that covered it failed.
    pub async fn durable(&self, gen: u64) -> Result<()> {
        let mut rx = self.saved.subscribe();
        loop {
            {
                let s = rx.borrow_and_update();
                if s.durable >= gen {
                    return Ok(());
                }
                if s.failed >= gen {
                    let why = s.error.clone().unwrap_or_else(|| "unknown error".into());
                    return Err(Error::StateNotSaved(why));
                }
                if s.closed {
                    return Err(Error::ShuttingDown);
                }
            }
            if rx.changed().await.is_err() {
                return Err(Error::ShuttingDown);
            }
        }
    }
}

/// What one save writes.
enum Work {
    /// Journal lines.
    Append(Vec<u8>),
    /// Every session, as a new snapshot.
    Compact(Vec<super::store::Stored>),
}

/// Saves the registry's changes until shutdown, then writes a final
/// snapshot (which also keeps the activity times that changes do not
/// journal).
pub async fn run(registry: Arc<Registry>, mut shutdown: ShutdownListener) {
    let persist = registry.persist().clone();
    // Fold what was loaded (snapshot and journal) into one snapshot and
    // open a fresh journal, so the first change appends a line.
    save(&registry, &persist, true).await;
    loop {
        // A wake (a change someone waits for) saves at once; a change nobody
        // waits for within LAZY; a failed save is retried every RETRY.
        let pause = if persist.saved.borrow().error.is_some() {
            Some(RETRY)
        } else if registry.lock().is_dirty() {
            Some(LAZY)
        } else {
            None
        };
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = persist.wake.notified() => {}
            _ = persist.nudge.notified() => continue,
            _ = tokio::time::sleep(pause.unwrap_or(Duration::MAX)), if pause.is_some() => {}
        }
        save(&registry, &persist, false).await;
    }
    save(&registry, &persist, true).await;
    persist.saved.send_modify(|s| s.closed = true);
}

/// Makes every change up to `gen` durable when the persister has ended
/// (requests still being served during shutdown), or waits for it.
pub async fn durable(registry: &Registry, gen: u64) -> Result<()> {
    let persist = registry.persist();
    loop {
        match persist.durable(gen).await {
            Err(Error::ShuttingDown) => {
                save(registry, persist, false).await;
                // Another request's save may hold this change: let it end.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => return other,
        }
    }
}

/// One save: the dirty sessions appended to the journal, or every session
/// as a new snapshot when the store needs one (at start, after a failure,
/// when the journal outgrew the snapshot) or `full`.
async fn save(registry: &Registry, persist: &Arc<Persist>, full: bool) {
    let compact = full
        || persist.saved.borrow().error.is_some()
        || persist.store.lock().unwrap_or_else(|e| e.into_inner()).needs_compaction();
    let (work, gen) = if compact {
        let (all, gen) = registry.snapshot();
        (Work::Compact(all), gen)
    } else {
        let mut records = registry.lock();
        (Work::Append(records.take_dirty()), records.generation())
    };
    if matches!(&work, Work::Append(lines) if lines.is_empty()) {
        return;
    }
    let writer = persist.clone();
    let started = std::time::Instant::now();
    let what = match &work {
        Work::Append(lines) => format!("{} journal bytes", lines.len()),
        Work::Compact(all) => format!("a snapshot of {} sessions", all.len()),
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut store = writer.store.lock().unwrap_or_else(|e| e.into_inner());
        match work {
            Work::Append(lines) => store.append(&lines),
            Work::Compact(all) => store.compact(all),
        }
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let took = started.elapsed();
    if took >= SLOW_SAVE {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            "saving {what} was slow (requests waiting for it waited as long)"
        );
    } else {
        tracing::debug!(took_us = took.as_micros() as u64, "saved {what}");
    }
    match result {
        Ok(()) => persist.saved.send_modify(|s| {
            if s.error.take().is_some() {
                tracing::warn!(path = %persist.path.display(), "the state file is saved again");
            }
            s.durable = s.durable.max(gen);
        }),
        Err(e) => {
            persist.failures.fetch_add(1, Ordering::Relaxed);
            let why = format!("cannot save {}: {e}", persist.path.display());
            persist.saved.send_modify(|s| {
                if s.error.as_deref() != Some(why.as_str()) {
                    tracing::error!(path = %persist.path.display(), error = %e,
                        "cannot save the state file; creates are refused and kills report it until it can");
                }
                s.failed = s.failed.max(gen);
                s.error = Some(why);
            });
        }
    }
}
