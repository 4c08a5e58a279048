//! Live terminal streams over the control socket: following a session's
//! log (`session.subscribe`, `session.ack`, `session.unsubscribe`) and
//! typing raw bytes into its pane (`session.write`).
//!
//! - [`follow`]: one subscription's task, fed from the log on disk with
//!   credit flow control; never an unbounded buffer;
//! - [`watch`]: inotify wake-ups, one watch per followed log;
//! - [`screen`]: screen snapshots (`from: "screen"`, `session.reset`);
//! - [`input`]: typing raw bytes (`session.write`).
//!
//! The subscriptions themselves belong to their connection
//! (`server::Outlet`): they end with it, and a connection names only its own.

pub mod follow;
pub mod input;
pub mod screen;
pub mod watch;

use std::sync::Arc;

use crate::config::{Config, ConfigHandle};
use crate::error::{Error, Result};
use crate::logs::Log;
use crate::metrics::Metrics;
use crate::protocol::streams::{Bytes, From, SessionSubscribe, SubscribeResult};
use crate::server::{OpenError, Outlet};
use crate::sessions::{Caller, Sessions};
use follow::{Counted, Credit, Follow};

/// Bytes of `session.read` results one uid may have in flight (read and
/// not yet taken by its client), over all its connections: 16 reads of the
/// largest size.
pub const READ_BYTES_IN_FLIGHT: usize = 16 << 20;
/// How long a read waits for its budget before it is refused.
pub const READ_BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The stream services (a cheap handle): the log watcher and the writers.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

struct Inner {
    /// Bytes of `session.read` results in flight, per uid (see
    /// [`Streams::read_budget`]).
    reads: std::sync::Mutex<std::collections::HashMap<u32, Arc<tokio::sync::Semaphore>>>,
    sessions: Sessions,
    config: ConfigHandle,
    metrics: Arc<Metrics>,
    watcher: watch::Watcher,
    writers: input::Writers,
}

/// Runs `f` on `log` off the async threads (a log is files on disk),
/// keeping the kind of an I/O error (a follower ends on `NotFound`).
async fn blocking<T: Send + 'static>(
    log: &Arc<Log>,
    f: impl FnOnce(&Log) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || f(&log))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

/// Where `log` ends now (the offset of the next byte).
async fn log_end(log: &Arc<Log>) -> Result<u64> {
    blocking(log, |l| l.extent())
        .await
        .map(|e| e.end)
        .map_err(|e| Error::Internal(format!("reading the log {}: {e}", log.path().display())))
}

impl Streams {
    /// Starts the log watcher (on the current runtime).
    pub fn start(sessions: Sessions, config: ConfigHandle, metrics: Arc<Metrics>) -> Streams {
        let watcher = watch::Watcher::start();
        let writers = input::Writers::default();
        let reads = Default::default();
        Streams { inner: Arc::new(Inner { reads, sessions, config, metrics, watcher, writers }) }
    }

    /// Holds `bytes` of uid's budget of [`READ_BYTES_IN_FLIGHT`] for one
    /// `session.read`, until the returned permit drops (with the call, once
    /// its reply is taken). Waits at most [`READ_BUDGET_WAIT`], then refuses
    /// with `limit_reached`.
    pub async fn read_budget(
        &self,
        uid: u32,
        bytes: u32,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let units = bytes.div_ceil(1024).max(1);
        let sem = {
            let mut reads = self.inner.reads.lock().unwrap_or_else(|e| e.into_inner());
            if reads.len() >= 1024 {
                reads.retain(|_, s| Arc::strong_count(s) > 1);
            }
            reads
                .entry(uid)
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Semaphore::new(READ_BYTES_IN_FLIGHT >> 10))
                })
                .clone()
        };
        match tokio::time::timeout(READ_BUDGET_WAIT, sem.acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.inner.metrics.budget_hit("session.read bytes in flight");
                Err(Error::LimitReached(format!(
                    "limit reached: uid {uid} already has {} MiB of session.read results waiting to be read; read the replies, or ask for less at once",
                    READ_BYTES_IN_FLIGHT >> 20
                )))
            }
        }
    }

    /// Log directories followed now, and how many of them are armed.
    pub fn watched(&self) -> (usize, usize) {
        self.inner.watcher.watched()
    }

    /// The log of session `id` as `caller` may read it (for `session.read`
    /// and `session.subscribe`): a session they may see whose log belongs
    /// to the uid it runs as, or, once removed while its log stays, a log
    /// they own (the daemon made and chowned it, in a root-only directory),
    /// or any log for an admin; anyone else gets "not found", as for an id
    /// that never existed. The owner check holds for a known session too: a
    /// session planted in one uid's server under the id of another uid's
    /// removed session is adopted as the planter's, and must not open the
    /// other's log. `Ok(None)`: a session they may see that has no log yet.
    /// The bool says whether the session is known.
    pub async fn log_of(
        &self,
        config: &Config,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<(Arc<Log>, bool)>> {
        crate::sessions::validate::id(id)?;
        let known = self.inner.sessions.registry().find(caller, id).map(|r| r.server_uid());
        let dir = crate::logs::dir_of(config, id);
        let opened = tokio::task::spawn_blocking(move || {
            let log = Log::open(&dir)?;
            let owner = log.owner()?;
            Ok::<_, std::io::Error>((log, owner))
        })
        .await
        .map_err(|e| Error::Internal(format!("opening a log: {e}")))?;
        let hidden = || Error::SessionNotFound(format!("session not found: {id}"));
        match opened {
            Ok((log, owner)) => match known {
                Ok(uid) if uid == owner => Ok(Some((Arc::new(log), true))),
                Ok(uid) => {
                    tracing::warn!(session_id = %id, session_uid = uid, log_uid = owner,
                        "a session's log directory belongs to another uid; not opened");
                    if caller.admin {
                        Ok(Some((Arc::new(log), true)))
                    } else {
                        Err(hidden())
                    }
                }
                Err(_) if caller.admin || owner == caller.uid => Ok(Some((Arc::new(log), false))),
                Err(e) => Err(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => known.map(|_| None),
            Err(e) => Err(Error::Internal(format!("opening the log of session {id}: {e}"))),
        }
    }

    /// `session.subscribe`: opens a subscription on `outlet`'s connection.
    pub async fn subscribe(
        &self,
        outlet: &Outlet,
        config: &Config,
        caller: &Caller,
        p: SessionSubscribe,
    ) -> Result<SubscribeResult> {
        let Some((log, known)) = self.log_of(config, caller, &p.id).await? else {
            return Err(Error::InvalidState(format!("session {} has no output log (yet)", p.id)));
        };
        let max = config.streams.max_per_connection;
        if outlet.count() >= max {
            return Err(full(max));
        }
        // Watched before the start is read, so nothing written after it
        // goes unnoticed.
        let watch = self.inner.watcher.watch(log.path());
        let (offset, screen) = match p.from {
            From::Offset(offset) => {
                let end = log_end(&log).await?;
                if offset > end {
                    return Err(Error::InvalidParams(format!(
                        "from: {offset} is past the end of the log of session {} ({end})",
                        p.id
                    )));
                }
                (offset, None)
            }
            From::Now => (log_end(&log).await?, None),
            From::Screen if !known => {
                return Err(Error::InvalidState(format!(
                    "session {} was removed: there is no screen to show; subscribe from an offset",
                    p.id
                )))
            }
            From::Screen => {
                let s = screen::snapshot(&self.inner.sessions, caller, &p.id, &log).await?;
                (s.offset, Some(Bytes(s.screen)))
            }
        };
        let credit = Arc::new(Credit::new(offset));
        let follow = Follow {
            id: p.id.clone(),
            caller: *caller,
            sessions: self.inner.sessions.clone(),
            log,
            watch,
            credit: credit.clone(),
            config: self.inner.config.clone(),
            metrics: self.inner.metrics.clone(),
            offset,
            counted: Counted::new(self.inner.metrics.clone()),
        };
        let subscription =
            outlet.open(max, credit, |sink| follow.run(sink)).map_err(|e| match e {
                OpenError::Full(max) => full(max),
                OpenError::Closed => Error::ShuttingDown,
            })?;
        tracing::debug!(session_id = %p.id, subscription, offset, "subscribed");
        Ok(SubscribeResult { subscription, offset, screen })
    }

    /// `session.ack`.
    pub fn ack(&self, outlet: &Outlet, subscription: u64, offset: u64) -> Result<()> {
        outlet
            .get::<Credit>(subscription)
            .ok_or_else(|| unknown(subscription))?
            .ack(subscription, offset)
    }

    /// `session.unsubscribe`.
    pub fn unsubscribe(&self, outlet: &Outlet, subscription: u64) -> Result<()> {
        if outlet.close(subscription) {
            Ok(())
        } else {
            Err(unknown(subscription))
        }
    }

    /// `session.write`: `bytes` typed into session `id`'s pane.
    pub async fn write(
        &self,
        config: &Config,
        caller: &Caller,
        id: &str,
        bytes: &[u8],
    ) -> Result<()> {
        input::write(&self.inner.sessions, &self.inner.writers, config, caller, id, bytes).await
    }
}

fn full(max: usize) -> Error {
    Error::LimitReached(format!(
        "limit reached: this connection has {max} subscriptions open (streams.max_per_connection = {max}); unsubscribe from some first"
    ))
}

fn unknown(subscription: u64) -> Error {
    Error::InvalidParams(format!(
        "subscription: {subscription} is not a subscription open on this connection"
    ))
}
