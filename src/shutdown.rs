//! Shutdown and reload signalling: one broadcast that tells every task to
//! stop, and the task that turns SIGTERM/SIGINT into that broadcast and
//! SIGHUP into a reload.

use std::sync::Arc;

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::watch;

/// The sending side: trigger once, every [`ShutdownListener`] sees it.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

/// The receiving side, cheap to clone into every task.
#[derive(Clone, Debug)]
pub struct ShutdownListener {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Shutdown { tx: Arc::new(tx) }
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A listener for a task.
    pub fn listener(&self) -> ShutdownListener {
        ShutdownListener { rx: self.tx.subscribe() }
    }
}

impl ShutdownListener {
    /// Resolves once shutdown has started.
    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means: stop.
        let _ = self.rx.wait_for(|stopped| *stopped).await;
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Watches SIGTERM, SIGINT and SIGHUP: the first two trigger `shutdown`,
/// SIGHUP calls `on_reload`. Runs until shutdown.
pub async fn watch_signals<F>(shutdown: Shutdown, on_reload: F) -> std::io::Result<()>
where
    F: Fn() + Send + 'static,
{
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    let mut listener = shutdown.listener();
    loop {
        tokio::select! {
            _ = listener.wait() => break,
            sig = signals.next() => match sig {
                Some(SIGHUP) => on_reload(),
                Some(sig) => {
                    tracing::info!(signal = sig, "shutdown requested by signal");
                    shutdown.trigger();
                    break;
                }
                None => break,
            },
        }
    }
    handle.close();
    Ok(())
}
