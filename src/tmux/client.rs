//! The daemon's ONE long-lived control-mode connection (`tmux -C`): a child
//! process attached to the keeper session, pipelined requests matched to
//! replies in FIFO order, and notifications forwarded on a bounded channel.
//!
//! The work queued on the server is bounded: at most
//! [`ClientConfig::max_commands`] commands sent and not yet answered, and at
//! most [`ClientConfig::max_reply_bytes`] of large replies (captures, whose
//! size the caller estimates) owed or held. tmux runs every command it has
//! read back to back and buffers the replies without limit for a client
//! that reads slower than it writes: 160 queued `capture-pane -S -10000`
//! grew a server by 620 MB it never gave back. A command holds its share
//! from before it is written until its reply has been handed to its caller
//! and the caller is done with it (a caller that gave up releases it when
//! the reply arrives), so no caller can make tmux hold more than that.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::command::Cmd;
use super::control::{Event, Notification, Output, Parser, Reply, ReplyKind};
use super::server::tmux_command;
use super::TmuxError;

/// Session the control client stays attached to; never a user session.
pub const KEEPER_SESSION: &str = "ccmanager_control";
/// The keeper's harmless program: never exits, never prints, not a shell.
pub const KEEPER_COMMAND: &[&str] = &["sleep", "infinity"];
/// How long [`connect`] waits for the control client to be attached.
const KEEPER_ATTACH_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between checks of [`KEEPER_ATTACH_TIMEOUT`].
const KEEPER_ATTACH_RETRY: Duration = Duration::from_millis(10);
/// Keeper window size; it is never displayed.
pub const KEEPER_COLS: u16 = 80;
/// Keeper window height.
pub const KEEPER_ROWS: u16 = 24;
/// How long one request may take before the server is considered stuck.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Capacity of the notification channel; beyond it notifications are dropped.
pub const NOTIFICATION_CAPACITY: usize = 4096;
/// At most one "notifications dropped" warning per this interval.
pub const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How much of the child's stderr is kept for the error message.
pub const STDERR_CAPTURE_BYTES: usize = 4096;
/// After stdout closes, how long we wait for the child's exit and stderr.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Default of [`ClientConfig::max_commands`] (`tmux.max_commands_in_flight`).
pub const MAX_COMMANDS: usize = 64;
/// Default of [`ClientConfig::max_reply_bytes`] (`tmux.max_capture_bytes_in_flight`).
pub const MAX_REPLY_BYTES: usize = 16 << 20;
/// The reply budget is counted in units of this many bytes (a semaphore
/// counts in u32).
const REPLY_UNIT: usize = 1024;
/// Budget names, as the config keys that set them (metrics labels, errors).
pub const COMMANDS_BUDGET: &str = "tmux.max_commands_in_flight";
/// See [`COMMANDS_BUDGET`].
pub const REPLY_BYTES_BUDGET: &str = "tmux.max_capture_bytes_in_flight";

/// Told the name of a budget each time a request has to wait for it (the
/// daemon counts them in its metrics); this layer knows nothing of metrics.
#[derive(Clone)]
pub struct BudgetHook(Arc<dyn Fn(&'static str) + Send + Sync>);

impl BudgetHook {
    /// Calls `f` with the budget's name on each hit.
    pub fn new(f: impl Fn(&'static str) + Send + Sync + 'static) -> Self {
        BudgetHook(Arc::new(f))
    }

    /// Counts nothing.
    pub fn none() -> Self {
        BudgetHook::new(|_| {})
    }

    /// A request hit `budget`.
    pub fn hit(&self, budget: &'static str) {
        (self.0)(budget)
    }
}

impl std::fmt::Debug for BudgetHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BudgetHook")
    }
}

/// Where to find tmux and its server, and the connection's tunables.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The tmux binary.
    pub tmux_bin: PathBuf,
    /// The server socket (`-S`).
    pub socket: PathBuf,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Notification channel capacity.
    pub notification_capacity: usize,
    /// Run the client as this account (see `ServerPaths::client_as`).
    pub run_as: Option<super::RunAs>,
    /// Most commands sent and not yet answered.
    pub max_commands: usize,
    /// Most bytes of large replies owed or held (see [`ControlClient::run_sized`]).
    pub max_reply_bytes: usize,
    /// Told when a request has to wait for one of the two bounds above.
    pub budget_hook: BudgetHook,
}

impl ClientConfig {
    /// Defaults for everything but the paths.
    pub fn new(tmux_bin: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        ClientConfig {
            tmux_bin: tmux_bin.into(),
            socket: socket.into(),
            request_timeout: REQUEST_TIMEOUT,
            notification_capacity: NOTIFICATION_CAPACITY,
            run_as: None,
            max_commands: MAX_COMMANDS,
            max_reply_bytes: MAX_REPLY_BYTES,
            budget_hook: BudgetHook::none(),
        }
    }
}

/// A command's share of the budgets, held until its caller is done with the
/// reply (or, when the caller gave up, until the reply arrived).
struct Permits {
    _slot: OwnedSemaphorePermit,
    _reply: Option<OwnedSemaphorePermit>,
}

type Answer = (Result<Output, TmuxError>, Permits);
type ReplySender = oneshot::Sender<Answer>;

/// A command sent and not answered yet.
struct Pending {
    tx: ReplySender,
    permits: Permits,
    /// How many commands follow this one on the same line: tmux drops them
    /// all, unanswered, when this one fails (`cmdq_remove_group`, 3.3a
    /// cmd-queue.c), as it answers a line that does not parse with one block.
    then: usize,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Pending>,
    dead: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    closed: watch::Sender<bool>,
    keeper_panes: Mutex<HashSet<String>>,
    dropped_notifications: AtomicU64,
    /// Fired by the reader with the outcome of the attach command given on
    /// tmux's command line (the first flags=0 reply).
    attached: Mutex<Option<oneshot::Sender<Result<(), String>>>>,
    /// One permit per command that may be in flight.
    slots: Arc<Semaphore>,
    /// One permit per [`REPLY_UNIT`] of large replies that may be owed.
    reply_units: Arc<Semaphore>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the queue consistent enough
        // to fail everything, so recover instead of propagating the poison.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection dead and fails every pending request at once.
    fn fail_all(&self, reason: &str) {
        let pending = {
            let mut st = self.lock();
            st.dead.get_or_insert_with(|| reason.to_owned());
            std::mem::take(&mut st.pending)
        };
        for Pending { tx, permits, .. } in pending {
            let _ = tx.send((Err(TmuxError::Unavailable(reason.to_owned())), permits));
        }
        // Wakes the requests waiting for a budget: nothing more is sent.
        self.slots.close();
        self.reply_units.close();
        self.closed.send_replace(true);
    }
}

/// The control-mode connection; see the module documentation.
pub struct ControlClient {
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<ChildStdin>,
    pid: Option<u32>,
    timeout: Duration,
    max_commands: usize,
    max_reply_bytes: usize,
    budget_hook: BudgetHook,
    /// Dropping this tells the supervisor task to kill the child.
    _shutdown: oneshot::Sender<()>,
}

/// Spawns `tmux -C` attached to [`KEEPER_SESSION`] (created if missing) on an
/// already running server; `-N` keeps it from starting one of its own, so the
/// server's launch stays in [`super::server`].
pub async fn connect(
    cfg: &ClientConfig,
) -> Result<(ControlClient, mpsc::Receiver<Notification>), TmuxError> {
    let mut cmd = tmux_command(&cfg.tmux_bin);
    if let Some(run_as) = &cfg.run_as {
        run_as.apply(&mut cmd);
    }
    // `-f no-output`: the daemon reads no pane output over this connection,
    // and a program in the server could otherwise switch this client to a
    // busy session and stream its output at the daemon.
    cmd.args(["-N", "-C", "-S"])
        .arg(&cfg.socket)
        .args(["new-session", "-A", "-f", "no-output", "-s", KEEPER_SESSION])
        .args(["-x", &KEEPER_COLS.to_string(), "-y", &KEEPER_ROWS.to_string()])
        .args(KEEPER_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A session made over this connection without -c would start in the
        // client's directory: never the daemon's own.
        .current_dir("/")
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        TmuxError::Unavailable(format!("cannot run {}: {e}", cfg.tmux_bin.display()))
    })?;
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
        return Err(TmuxError::Unavailable("tmux child has no pipes".into()));
    };
    let (closed, _) = watch::channel(false);
    let (attached_tx, attached_rx) = oneshot::channel();
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        closed,
        keeper_panes: Mutex::new(HashSet::new()),
        dropped_notifications: AtomicU64::new(0),
        attached: Mutex::new(Some(attached_tx)),
        slots: Arc::new(Semaphore::new(cfg.max_commands.clamp(1, Semaphore::MAX_PERMITS))),
        reply_units: Arc::new(Semaphore::new(reply_units(cfg.max_reply_bytes) as usize)),
    });
    let (notify_tx, notify_rx) = mpsc::channel(cfg.notification_capacity.max(1));
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let pid = child.id();
    let stderr_task = tokio::spawn(capture_stderr(stderr));
    tokio::spawn(supervise(shared.clone(), child, stdout, stderr_task, notify_tx, shutdown_rx));
    let client = ControlClient {
        shared,
        writer: tokio::sync::Mutex::new(stdin),
        pid,
        timeout: cfg.request_timeout,
        max_commands: cfg.max_commands,
        max_reply_bytes: cfg.max_reply_bytes,
        budget_hook: cfg.budget_hook.clone(),
        _shutdown: shutdown_tx,
    };
    client.wait_attached(attached_rx).await?;
    let panes = Cmd::new("list-panes")
        .flag("-s")
        .opt("-t", format!("={KEEPER_SESSION}"))
        .opt("-F", "#{pane_id}");
    // tmux (3.3a seen) may run commands read from stdin before the
    // command-line `new-session -A` has attached the client, answering
    // "no current target": retry briefly until the client is attached.
    let deadline = tokio::time::Instant::now() + KEEPER_ATTACH_TIMEOUT;
    let keeper = loop {
        match client.run(&panes).await {
            Err(TmuxError::Command(m)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %m, "control client not attached yet; retrying");
                tokio::time::sleep(KEEPER_ATTACH_RETRY).await;
            }
            other => break other?,
        }
    };
    *client.shared.keeper_panes.lock().unwrap_or_else(|e| e.into_inner()) =
        keeper.lines().map(str::to_string).collect();
    Ok((client, notify_rx))
}

impl ControlClient {
    /// tmux may run lines read from stdin before the attach command from its
    /// command line; with no session yet they fail ("no current target"),
    /// so nothing is sent until the attach has been answered.
    async fn wait_attached(
        &self,
        rx: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), TmuxError> {
        let waited = tokio::time::timeout(self.timeout, async {
            tokio::select! {
                r = rx => r.ok(),
                _ = self.closed() => None,
            }
        })
        .await;
        match waited {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(message))) => Err(TmuxError::Unavailable(format!(
                "attaching to {KEEPER_SESSION} failed: {message}"
            ))),
            // The sender is only dropped when the connection dies.
            Ok(None) => Err(TmuxError::Unavailable(
                self.dead_reason().unwrap_or_else(|| "control connection closed".into()),
            )),
            Err(_) => Err(TmuxError::Unavailable(format!(
                "tmux did not attach the control client within {:?}",
                self.timeout
            ))),
        }
    }

    /// Runs one command and returns its output lines. `%error` gives
    /// [`TmuxError::Command`]; a dead or stuck connection, or a budget that
    /// stays full for the whole timeout, gives [`TmuxError::Unavailable`].
    /// Concurrent calls are pipelined.
    pub async fn run(&self, cmd: &Cmd) -> Result<Output, TmuxError> {
        self.run_sized(cmd, 0).await
    }

    /// [`ControlClient::run`] for a command whose reply may be large (a
    /// capture); see [`ControlClient::run_many`].
    pub async fn run_sized(&self, cmd: &Cmd, reply_bytes: usize) -> Result<Output, TmuxError> {
        let mut results = self.run_many(std::slice::from_ref(cmd), reply_bytes).await?;
        results.pop().unwrap_or_else(|| Err(TmuxError::Unavailable("no reply".into())))
    }

    /// Runs `cmds` one after the other, written together (nothing else
    /// comes between them on the wire), each on its own line with its own
    /// reply: one failing does not stop the next. `reply_bytes` is the
    /// caller's estimate of what they make tmux hold and answer (a
    /// capture), taken from the reply budget (at most all of it) until the
    /// caller has the replies, or, if it gave up, until the last reply came.
    /// Errors that concern every command (connection, budget, timeout) are
    /// the outer `Err`.
    pub async fn run_many(
        &self,
        cmds: &[Cmd],
        reply_bytes: usize,
    ) -> Result<Vec<Result<Output, TmuxError>>, TmuxError> {
        self.exchange(cmds, reply_bytes, false).await
    }

    /// Runs `cmds` on ONE line (`a ; b`): tmux runs them back to back before
    /// it reads a pane again (a `pipe-pane` sent with the `new-session` it
    /// taps sees the first output; sent after it, never: DESIGN.md). Each
    /// has its own reply; when one fails, tmux does not run those after it,
    /// which get an error saying so.
    pub async fn run_line(
        &self,
        cmds: &[Cmd],
    ) -> Result<Vec<Result<Output, TmuxError>>, TmuxError> {
        self.exchange(cmds, 0, true).await
    }

    async fn exchange(
        &self,
        cmds: &[Cmd],
        reply_bytes: usize,
        one_line: bool,
    ) -> Result<Vec<Result<Output, TmuxError>>, TmuxError> {
        let mut lines = Vec::new();
        for (i, cmd) in cmds.iter().enumerate() {
            if one_line && i > 0 {
                lines.extend_from_slice(b" ; ");
            }
            lines.extend_from_slice(cmd.render()?.as_bytes());
            if !one_line || i + 1 == cmds.len() {
                lines.push(b'\n');
            }
        }
        let name = cmds.iter().map(Cmd::name).collect::<Vec<_>>().join("`, `");
        let deadline = tokio::time::Instant::now() + self.timeout;
        let permits = self.permits(cmds.len(), reply_bytes, deadline).await?;
        let exchange = async {
            let answers = self.send_lines(&lines, permits, one_line).await?;
            let mut results = Vec::with_capacity(answers.len());
            let mut permits = Vec::with_capacity(answers.len());
            for rx in answers {
                let Ok((result, p)) = rx.await else {
                    return Err(TmuxError::Unavailable("control connection closed".into()));
                };
                results.push(result);
                permits.push(p);
            }
            // The permits go with the outputs' last use: the caller's.
            drop(permits);
            Ok(results)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TmuxError::Unavailable(format!(
                "tmux did not answer `{name}` within {:?}",
                self.timeout
            ))),
        }
    }

    /// The commands' shares of the budgets: the reply bytes first (carried
    /// by the last command, whose reply comes last), so a capture waiting
    /// for them holds no command slot.
    async fn permits(
        &self,
        commands: usize,
        reply_bytes: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Permits>, TmuxError> {
        let n = u32::try_from(commands).unwrap_or(u32::MAX);
        if commands == 0 || commands > self.max_commands {
            return Err(TmuxError::Unavailable(format!(
                "{commands} commands at once is more than {COMMANDS_BUDGET} = {}",
                self.max_commands
            )));
        }
        let mut reply = if reply_bytes == 0 {
            None
        } else {
            let units = reply_units(reply_bytes).min(reply_units(self.max_reply_bytes));
            let sem = &self.shared.reply_units;
            let budget = (REPLY_BYTES_BUDGET, self.max_reply_bytes, "bytes of captures owed");
            Some(self.acquire(sem, units, deadline, budget).await?)
        };
        let budget = (COMMANDS_BUDGET, self.max_commands, "commands sent and not answered");
        let mut slots = self.acquire(&self.shared.slots, n, deadline, budget).await?;
        let mut permits = Vec::with_capacity(commands);
        for i in 0..commands {
            let Some(slot) = slots.split(1) else { break };
            let reply = if i + 1 == commands { reply.take() } else { None };
            permits.push(Permits { _slot: slot, _reply: reply });
        }
        Ok(permits)
    }

    async fn acquire(
        &self,
        sem: &Arc<Semaphore>,
        n: u32,
        deadline: tokio::time::Instant,
        (key, max, what): (&'static str, usize, &str),
    ) -> Result<OwnedSemaphorePermit, TmuxError> {
        let closed = || {
            TmuxError::Unavailable(
                self.dead_reason().unwrap_or_else(|| "control connection closed".into()),
            )
        };
        match sem.clone().try_acquire_many_owned(n) {
            Ok(p) => return Ok(p),
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => self.budget_hook.hit(key),
        }
        match tokio::time::timeout_at(deadline, sem.clone().acquire_many_owned(n)).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(closed()),
            Err(_) => Err(TmuxError::Unavailable(format!(
                "the tmux server is busy: {key} = {max} {what} stayed full for {:?}",
                self.timeout
            ))),
        }
    }

    /// Queues the reply slots and writes the lines under the writer lock,
    /// so the FIFO order of slots is the order of lines on the wire.
    async fn send_lines(
        &self,
        lines: &[u8],
        permits: Vec<Permits>,
        one_line: bool,
    ) -> Result<Vec<oneshot::Receiver<Answer>>, TmuxError> {
        let mut writer = self.writer.lock().await;
        let mut answers = Vec::with_capacity(permits.len());
        {
            let mut st = self.shared.lock();
            if let Some(reason) = &st.dead {
                return Err(TmuxError::Unavailable(reason.clone()));
            }
            let count = permits.len();
            for (i, permits) in permits.into_iter().enumerate() {
                let (tx, rx) = oneshot::channel();
                let then = if one_line { count - 1 - i } else { 0 };
                st.pending.push_back(Pending { tx, permits, then });
                answers.push(rx);
            }
        }
        // If this future is dropped mid-write (timeout, caller cancelled),
        // the wire holds a partial line and the FIFO no longer matches it:
        // the only safe outcome is to declare the connection dead.
        let torn = TornWriteGuard(Some(&self.shared));
        let written = async {
            writer.write_all(lines).await?;
            writer.flush().await
        }
        .await;
        torn.disarm();
        if let Err(e) = written {
            self.shared.fail_all(&format!("writing to tmux control client: {e}"));
        }
        Ok(answers)
    }

    /// The control client's pid, if it was known at spawn.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the connection is still usable.
    pub fn is_alive(&self) -> bool {
        self.shared.lock().dead.is_none()
    }

    /// Why the connection died, once it has.
    pub fn dead_reason(&self) -> Option<String> {
        self.shared.lock().dead.clone()
    }

    /// Notifications dropped so far because the channel was full.
    pub fn dropped_notifications(&self) -> u64 {
        self.shared.dropped_notifications.load(Ordering::Relaxed)
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.shared.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

struct TornWriteGuard<'a>(Option<&'a Shared>);

impl TornWriteGuard<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TornWriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.0 {
            shared.fail_all("a command write to tmux was interrupted");
        }
    }
}

/// `bytes` in units of the reply budget (at least one).
fn reply_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(REPLY_UNIT).max(1)).unwrap_or(u32::MAX)
}

async fn capture_stderr(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    // Keep reading past the cap so tmux never blocks on a full stderr pipe.
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = STDERR_CAPTURE_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}

async fn supervise(
    shared: Arc<Shared>,
    mut child: Child,
    stdout: impl AsyncRead + Unpin,
    stderr_task: tokio::task::JoinHandle<String>,
    notify_tx: mpsc::Sender<Notification>,
    shutdown: oneshot::Receiver<()>,
) {
    let mut reason = tokio::select! {
        r = read_loop(&shared, stdout, &notify_tx) => r,
        _ = shutdown => "control client was dropped".to_owned(),
    };
    let _ = child.start_kill();
    if let Ok(Ok(status)) = tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        reason += &format!(" ({status})");
    }
    if let Ok(Ok(err)) = tokio::time::timeout(EXIT_GRACE, stderr_task).await {
        if !err.is_empty() {
            reason += &format!(": {err}");
        }
    }
    tracing::warn!(%reason, "tmux control connection closed");
    shared.fail_all(&reason);
}

/// Reads until EOF; returns why it stopped.
async fn read_loop(
    shared: &Shared,
    mut stdout: impl AsyncRead + Unpin,
    notify_tx: &mpsc::Sender<Notification>,
) -> String {
    let mut parser = Parser::new();
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut last_drop_warning: Option<Instant> = None;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) => return "tmux control client closed its output".to_owned(),
            Ok(n) => n,
            Err(e) => return format!("reading from tmux control client: {e}"),
        };
        for event in parser.feed(&buf[..n]) {
            match event {
                Event::Reply(reply) => deliver_reply(shared, reply),
                Event::Notification(n) => forward(shared, notify_tx, n, &mut last_drop_warning),
                Event::Stray(line) => tracing::debug!(%line, "unexpected tmux control line"),
                Event::LineTooLong { bytes } => {
                    tracing::warn!(bytes, "dropped over-long tmux control line")
                }
            }
        }
    }
}

fn deliver_reply(shared: &Shared, reply: Reply) {
    if !reply.from_this_client() {
        // e.g. the attach command from tmux's command line, or the config.
        let first = shared.attached.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = first {
            let outcome =
                (reply.kind == ReplyKind::Ok).then_some(()).ok_or_else(|| reply.message());
            let _ = tx.send(outcome);
        } else if reply.kind != ReplyKind::Ok {
            tracing::warn!(message = %reply.message(), "tmux reported an error not caused by our requests");
        }
        return;
    }
    let mut skipped = Vec::new();
    let Some(Pending { tx, permits, then }) = ({
        let mut st = shared.lock();
        let first = st.pending.pop_front();
        if reply.kind != ReplyKind::Ok {
            for _ in 0..first.as_ref().map_or(0, |p| p.then) {
                skipped.extend(st.pending.pop_front());
            }
        }
        first
    }) else {
        tracing::warn!(number = reply.number, "tmux reply with no pending request");
        return;
    };
    let result = match reply.kind {
        ReplyKind::Ok => Ok(reply.lines),
        ReplyKind::Error | ReplyKind::TooLarge => Err(TmuxError::Command(reply.message())),
    };
    // The caller may have timed out and gone; its slot still had to be
    // consumed, and its permits go back now.
    let _ = tx.send((result, permits));
    debug_assert!(skipped.is_empty() || then > 0);
    for p in skipped {
        let not_run = "not run: an earlier command on its line failed".to_string();
        let _ = p.tx.send((Err(TmuxError::Command(not_run)), p.permits));
    }
}

fn forward(
    shared: &Shared,
    tx: &mpsc::Sender<Notification>,
    n: Notification,
    last_warning: &mut Option<Instant>,
) {
    if let Notification::Output { pane, .. } | Notification::ExtendedOutput { pane, .. } = &n {
        if shared.keeper_panes.lock().unwrap_or_else(|e| e.into_inner()).contains(pane) {
            return;
        }
    }
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(n) {
        let total = shared.dropped_notifications.fetch_add(1, Ordering::Relaxed) + 1;
        if last_warning.is_none_or(|t| t.elapsed() >= DROP_WARN_INTERVAL) {
            *last_warning = Some(Instant::now());
            tracing::warn!(total, "tmux notification channel full; dropping notifications");
        }
    }
}
