//! The only wiring: builds the handles (config, sessions, metrics, health,
//! cleanup, reload), spawns the background tasks, reports READY and runs the
//! server until shutdown.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::cleanup::Reaper;
use crate::config::{Config, ConfigHandle};
use crate::gauges::Gauges;
use crate::health::Checker;
use crate::metrics::Metrics;
use crate::reload::{Options, Reloader};
use crate::rpc::Service;
use crate::server::Listener;
use crate::shutdown::Shutdown;

/// Adopts the tmux servers and reconciles the sessions (before READY), then
/// serves on `listener` until shutdown; returns after in-flight requests
/// finished (or the shutdown timeout passed) and the state file is written.
pub async fn start_and_run(
    config: Config,
    options: Options,
    listener: Listener,
) -> anyhow::Result<()> {
    let config = ConfigHandle::new(config);
    let shutdown = Shutdown::new();
    let metrics = Arc::new(Metrics::default());
    let hits = metrics.clone();
    let budget_hook = crate::tmux::BudgetHook::new(move |budget| hits.budget_hit(budget));
    let sessions = crate::sessions::start(&config, &shutdown, budget_hook).await?;
    let health = Checker {
        config: config.clone(),
        sessions: sessions.clone(),
        socket: listener.path.clone(),
    };
    let started = Instant::now();
    let gauges = Gauges {
        metrics: metrics.clone(),
        sessions: sessions.clone(),
        health: health.clone(),
        started,
    };
    let reaper = Arc::new(Reaper::default());
    let reloader = Arc::new(Reloader::new(config.clone(), options));
    let service = Arc::new(Service {
        config: config.clone(),
        sessions: sessions.clone(),
        metrics: metrics.clone(),
        reaper: reaper.clone(),
        reloader: reloader.clone(),
        health: health.clone(),
        gauges: gauges.clone(),
        started,
        socket_path: listener.path.clone(),
        streams: crate::streams::Streams::start(sessions.clone(), config.clone(), metrics.clone()),
    });
    let tasks = [
        tokio::spawn(crate::sessions::persist_loop(
            sessions.registry().clone(),
            shutdown.listener(),
        )),
        tokio::spawn(crate::cleanup::reaper_loop(
            reaper,
            sessions.clone(),
            config.clone(),
            metrics,
            shutdown.listener(),
        )),
        // Restores and restarts: after READY (docs/design.md, "Sessions that come back").
        tokio::spawn(crate::sessions::revive::run(
            sessions.clone(),
            config.clone(),
            sessions.boot().clone(),
            shutdown.listener(),
        )),
        tokio::spawn(health.clone().monitor(shutdown.listener())),
        tokio::spawn(health.clone().feed_watchdog(shutdown.listener())),
        tokio::spawn(gauges.textfile_loop(shutdown.listener())),
    ];
    let signals = {
        let handle = tokio::runtime::Handle::current();
        let health = health.clone();
        tokio::spawn(crate::shutdown::watch_signals(shutdown.clone(), move || {
            let (reloader, health) = (reloader.clone(), health.clone());
            handle.spawn(async move {
                let _ = reloader.reload(|| health.status_line()).await;
            });
        }))
    };
    tracing::info!(socket = %listener.path.display(), activated = listener.activated, pid = std::process::id(), "ccmanagerd ready");
    crate::systemd::ready(&health.status_line());
    let result = crate::server::serve(service, listener, shutdown.clone())
        .await
        .context("serving the control socket");
    crate::systemd::stopping();
    shutdown.trigger();
    signals.abort();
    // The persister writes the state file once more on its way out.
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!("ccmanagerd stopped");
    result
}
