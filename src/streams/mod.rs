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

/// The stream services (a cheap handle): the log watcher and the writers.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Sessions,
    config: ConfigHandle,
    metrics: Arc<Metrics>,
    watcher: watch::Watcher,
    writers: input::Writers,
}

/// Runs `f` on `log` off the async threads (a log is files on disk).
async fn on_log<T: Send + 'static>(
    log: &Arc<Log>,
    f: impl FnOnce(&Log) -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let log = log.clone();
    let path = log.path().display().to_string();
    tokio::task::spawn_blocking(move || f(&log))
        .await
        .map_err(|e| Error::Internal(format!("reading the log {path}: {e}")))?
        .map_err(|e| Error::Internal(format!("reading the log {path}: {e}")))
}

impl Streams {
    /// Starts the log watcher (on the current runtime).
    pub fn start(sessions: Sessions, config: ConfigHandle, metrics: Arc<Metrics>) -> Streams {
        let watcher = watch::Watcher::start();
        let writers = input::Writers::default();
        Streams { inner: Arc::new(Inner { sessions, config, metrics, watcher, writers }) }
    }

    /// Log directories followed now, and how many of them are armed.
    pub fn watched(&self) -> (usize, usize) {
        self.inner.watcher.watched()
    }

    /// The log of session `id` as `caller` may read it: a session they may
    /// see, or, once removed while its log stays, a log they own (the
    /// daemon made and chowned it, in a root-only directory), or any log
    /// for an admin; anyone else gets "not found" (as `session.read`).
    async fn log_of(&self, config: &Config, caller: &Caller, id: &str) -> Result<(Arc<Log>, bool)> {
        crate::sessions::validate::id(id)?;
        let known = self.inner.sessions.registry().find(caller, id).map(drop);
        let dir = crate::logs::dir_of(config, id);
        let opened = tokio::task::spawn_blocking(move || {
            let log = Log::open(&dir)?;
            let owner = log.owner()?;
            Ok::<_, std::io::Error>((log, owner))
        })
        .await
        .map_err(|e| Error::Internal(format!("opening a log: {e}")))?;
        match opened {
            Ok((log, owner)) => match known {
                Ok(()) => Ok((Arc::new(log), true)),
                Err(_) if caller.admin || owner == caller.uid => Ok((Arc::new(log), false)),
                Err(hidden) => Err(hidden),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                known?;
                Err(Error::InvalidState(format!("session {id} has no output log (yet)")))
            }
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
        let (log, known) = self.log_of(config, caller, &p.id).await?;
        let max = config.streams.max_per_connection;
        if outlet.count() >= max {
            return Err(full(max));
        }
        // Watched before the start is read, so nothing written after it
        // goes unnoticed.
        let watch = self.inner.watcher.watch(log.path());
        let (offset, screen) = match p.from {
            From::Offset(offset) => {
                let end = on_log(&log, |l| l.extent()).await?.end;
                if offset > end {
                    return Err(Error::InvalidParams(format!(
                        "from: {offset} is past the end of the log of session {} ({end})",
                        p.id
                    )));
                }
                (offset, None)
            }
            From::Now => (on_log(&log, |l| l.extent()).await?.end, None),
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
