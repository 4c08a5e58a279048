//! The benchmark harness behind `cargo bench --bench daemon`: ccmanagerd
//! against the two usual ways of driving tmux (spawning `tmux` per operation,
//! and a raw `tmux -C` control-mode connection, the floor), measured side by
//! side in one run on fresh sockets. Shared with `tests/bench_smoke.rs`,
//! which runs the `--quick` mode so the harness cannot rot.
#![allow(dead_code)]

mod exits;
pub mod load;
pub mod scale;
pub mod streams;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use ccmanagerd::client::Client;
use ccmanagerd::protocol::types::Session;
use ccmanagerd::tmux::{ClientConfig, Cmd, ControlClient};

/// The tmux binary (from PATH) used by the daemon and the baselines.
pub const TMUX: &str = "tmux";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sessions for the scale part (and the largest list tier).
    pub sessions: usize,
    /// Tiny counts, for the smoke test.
    pub quick: bool,
    /// Also print JSON.
    pub json: bool,
    /// The three paths take turns every repetition instead of running in
    /// blocks (steady state, the default): fairer under load drift on a
    /// shared machine, but each path then runs with caches and scheduler
    /// state disturbed by the others (and by the daemon's background
    /// refresh after a create).
    pub interleave: bool,
    /// `--scale N`: run only the scale scenario with N sessions
    /// ([`scale`]).
    pub scale: Option<usize>,
    /// `--load`: run only the load scenario ([`load`]).
    pub load: Option<load::LoadOptions>,
    /// `--streams`: run only the streams and logs scenario ([`streams`]).
    pub streams: Option<streams::StreamsOptions>,
}

impl Options {
    /// Parses `[--sessions N] [--json] [--quick]`; cargo's own `--bench` is ignored.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options> {
        let mut o = Options {
            sessions: 1000,
            quick: false,
            json: false,
            interleave: false,
            scale: None,
            load: None,
            streams: None,
        };
        let mut streams = streams::StreamsOptions::default();
        let mut streams_given = (false, false, false, false);
        let mut load = load::LoadOptions { sessions: 1000, clients: 64, secs: 30 };
        let mut want_load = false;
        let num = |v: Option<String>, what: &str| -> Result<u64> {
            Ok(v.with_context(|| format!("{what} needs a number"))?.parse()?)
        };
        let mut sessions_given = false;
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--sessions" => {
                    o.sessions = it.next().context("--sessions needs a number")?.parse()?;
                    sessions_given = true;
                }
                "--json" => o.json = true,
                "--quick" => o.quick = true,
                "--interleave" => o.interleave = true,
                "--scale" => o.scale = Some(num(it.next(), "--scale")? as usize),
                "--load" => want_load = true,
                "--load-sessions" => load.sessions = num(it.next(), "--load-sessions")? as usize,
                "--load-clients" => load.clients = num(it.next(), "--load-clients")? as usize,
                "--load-secs" => load.secs = num(it.next(), "--load-secs")?,
                "--streams" => o.streams = Some(streams),
                "--streams-mb" => {
                    streams.mb = num(it.next(), "--streams-mb")?.max(1);
                    streams_given.0 = true;
                }
                "--streams-reps" => {
                    streams.reps = num(it.next(), "--streams-reps")?.max(1) as usize;
                    streams_given.1 = true;
                }
                "--streams-echoes" => {
                    streams.echoes = num(it.next(), "--streams-echoes")?.max(1) as usize;
                    streams_given.2 = true;
                }
                "--streams-sessions" => {
                    streams.sessions = num(it.next(), "--streams-sessions")?.max(1) as usize;
                    streams_given.3 = true;
                }
                "--bench" => {}
                other => bail!(
                    "unknown argument {other:?} (use --sessions N, --json, --quick, --interleave, --scale N, --load [--load-sessions N --load-clients N --load-secs S], --streams [--streams-mb N --streams-reps N --streams-echoes N --streams-sessions N])"
                ),
            }
        }
        if want_load {
            o.load = Some(load);
        }
        if o.streams.is_some() {
            // Quick: the smoke sizes, except what was given.
            let q = streams::StreamsOptions::quick();
            let g = streams_given;
            o.streams = Some(streams::StreamsOptions {
                mb: if o.quick && !g.0 { q.mb } else { streams.mb },
                reps: if o.quick && !g.1 { q.reps } else { streams.reps },
                echoes: if o.quick && !g.2 { q.echoes } else { streams.echoes },
                sessions: if o.quick && !g.3 { q.sessions } else { streams.sessions },
                quick: o.quick,
            });
        }
        if o.quick && !sessions_given {
            o.sessions = 10;
        }
        Ok(o)
    }

    fn reps(&self, normal: usize) -> usize {
        if self.quick {
            3
        } else {
            normal
        }
    }

    fn warmup(&self) -> usize {
        if self.quick {
            1
        } else {
            10
        }
    }
}

/// p50/p99 of one operation, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Number of measured repetitions.
    pub n: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let n = samples.len().max(1);
        let at = |q: f64| {
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
            samples.get(i).map(|d| d.as_secs_f64() * 1e6).unwrap_or(0.0)
        };
        Stats { n: samples.len(), p50_us: at(0.50), p99_us: at(0.99) }
    }
}

/// One operation measured through the three paths.
#[derive(Debug, Clone, Serialize)]
pub struct OpRow {
    /// Operation name.
    pub op: String,
    /// Through ccmanagerd (JSON-RPC on its socket).
    pub daemon: Stats,
    /// Spawning the `tmux` binary per operation.
    pub per_command: Stats,
    /// A raw `tmux -C` connection.
    pub control_mode: Stats,
    /// daemon p50 / per-command p50 (below 1: the daemon is faster).
    pub ratio_daemon_per_command: f64,
    /// daemon p50 / control-mode p50.
    pub ratio_daemon_control_mode: f64,
}

impl OpRow {
    fn new(op: &str, daemon: Stats, per_command: Stats, control_mode: Stats) -> OpRow {
        OpRow {
            op: op.into(),
            ratio_daemon_per_command: daemon.p50_us / per_command.p50_us.max(f64::MIN_POSITIVE),
            ratio_daemon_control_mode: daemon.p50_us / control_mode.p50_us.max(f64::MIN_POSITIVE),
            daemon,
            per_command,
            control_mode,
        }
    }
}

/// Throughput of one method with some concurrent clients.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// RPC method.
    pub method: String,
    /// Concurrent clients (threads, one connection each, request/response).
    pub clients: usize,
    /// Requests answered.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency median, µs.
    pub p50_us: f64,
    /// Latency p99, µs.
    pub p99_us: f64,
}

/// RSS of the daemon and of its tmux server at some session count.
#[derive(Debug, Clone, Serialize)]
pub struct RssRow {
    /// Live sessions in the daemon.
    pub sessions: usize,
    /// Daemon VmRSS, KiB.
    pub daemon_rss_kib: u64,
    /// Daemon's tmux server VmRSS, KiB.
    pub tmux_rss_kib: u64,
}

/// The scale part.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// Sessions created.
    pub sessions: usize,
    /// Wall time to create them one after another through the daemon, s.
    pub create_all_s: f64,
    /// Same, through raw control mode on the baseline server, s.
    pub create_all_control_mode_s: f64,
    /// RSS at 0, 100 and N sessions.
    pub rss: Vec<RssRow>,
    /// Daemon CPU (utime+stime) while idle with N sessions, % of one core.
    pub idle_cpu_percent: f64,
    /// Over how long the idle CPU was measured, s.
    pub idle_window_s: f64,
    /// From spawning the daemon (N sessions to re-adopt) to the first
    /// successful `daemon.ping`, s.
    pub ready_s: f64,
    /// From spawning it to `session.list` showing all N sessions, s.
    pub readopted_s: f64,
    /// Sessions `session.list` showed after the restart.
    pub readopted: usize,
    /// Daemon starts it took to get READY (more than 1: it exited early).
    pub restart_attempts: u32,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `nproc`.
    pub cores: usize,
    /// `tmux -V`.
    pub tmux_version: String,
    /// Quick (smoke) mode.
    pub quick: bool,
    /// The paths took turns every repetition (`--interleave`).
    pub interleave: bool,
    /// Latency table.
    pub ops: Vec<OpRow>,
    /// Throughput table.
    pub throughput: Vec<ThroughputRow>,
    /// Scale figures.
    pub scale: Scale,
    /// Exit to visible in `session.get` (after the restart: re-armed watches).
    pub exits: exits::ExitLatency,
    /// Sessions still listed (state lost/exited) after a successful
    /// `session.kill` of all of them: a daemon race, removed before the scale part.
    pub killed_but_listed: usize,
    /// Whole run, s.
    pub total_s: f64,
}

// ---------------------------------------------------------------- processes

/// What is alive right now (tmux sockets, daemon pids), for [`cleanup_now`]
/// when the process is interrupted and Drop guards will not run.
type Live = (Vec<PathBuf>, Vec<i32>, Vec<i32>);
static LIVE: Mutex<Live> = Mutex::new((Vec::new(), Vec::new(), Vec::new()));

fn live() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills everything still registered (for a SIGINT/SIGTERM handler).
pub fn cleanup_now() {
    scale::restore_pty();
    let (sockets, pids, servers) = std::mem::take(&mut *live());
    for pid in pids.into_iter().filter(|&p| p > 1) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    // A daemon's uid may have several servers: every socket next to the one
    // registered.
    let sockets: Vec<PathBuf> = sockets
        .iter()
        .flat_map(|s| {
            // Only in a daemon's own `<ccm-bench-*>/tmux/<uid>/` directory.
            let ours = s
                .ancestors()
                .nth(3)
                .and_then(Path::file_name)
                .is_some_and(|n| n.to_string_lossy().starts_with("ccm-bench-"))
                && s.ancestors().nth(2).and_then(Path::file_name).is_some_and(|n| n == "tmux");
            let tmux_dir = s.parent().and_then(Path::parent).filter(|_| ours);
            let mut all = tmux_dir.map(tmux_sockets).unwrap_or_default();
            if !all.contains(s) {
                all.push(s.clone());
            }
            all
        })
        .collect();
    let socket_list = sockets.clone();
    // Servers start with their uid's first session: find their pids now.
    let servers: Vec<i32> =
        servers.into_iter().chain(sockets.iter().map(|s| tmux_server_pid(s))).collect();
    for socket in sockets {
        kill_tmux_server(&socket);
    }
    // A server whose control-mode client is blocked (our runtime is not
    // being polled) does not finish exiting on kill-server: make sure.
    std::thread::sleep(Duration::from_millis(100));
    for pid in servers.into_iter().filter(|&p| p > 1) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for socket in &socket_list {
        // Our temp dirs hold the sockets (in <dir>/tmux/<uid>/); remove them (only ours).
        if let Some(dir) = socket.ancestors().nth(3) {
            let ours =
                dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ccm-bench-"));
            if ours {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// The daemon under test; SIGTERM (then SIGKILL) and its tmux server killed on drop.
pub struct DaemonGuard {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Control socket.
    pub socket: PathBuf,
    /// Its tmux server's socket.
    pub tmux_socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl DaemonGuard {
    fn start(bin: &Path, sessions: usize) -> Result<DaemonGuard> {
        DaemonGuard::start_with(bin, sessions, "")
    }

    /// [`DaemonGuard::start`] with `extra` appended to the config (whole
    /// tables, e.g. `[health]`).
    fn start_with(bin: &Path, sessions: usize, extra: &str) -> Result<DaemonGuard> {
        let dir = tempfile::Builder::new().prefix("ccm-bench-").tempdir_in("/tmp")?;
        let config = dir.path().join("config.toml");
        let cap = sessions + 1000;
        let text = format!(
            r#"[daemon]
state_dir = "{state}"
log_level = "warn"
max_connections = 1024

[tmux]
launcher = "detached"
{root_sessions}
[limits]
max_sessions = {cap}
max_sessions_per_owner = {cap}

[cleanup]
interval = "1000d"
max_age = "off"
exited_grace = "off"
{extra}"#,
            state = dir.path().join("state").display(),
            // As root, root's sessions run as root, explicitly (a bench
            // machine has no `ccmanager` user).
            root_sessions = if nix::unistd::geteuid().is_root() {
                "session_user = \"root\"\nallow_root_sessions = true\n"
            } else {
                ""
            },
        );
        std::fs::write(&config, text)?;
        let mut d = DaemonGuard {
            bin: bin.to_path_buf(),
            socket: dir.path().join("d.sock"),
            tmux_socket: dir
                .path()
                .join("tmux")
                .join(nix::unistd::geteuid().to_string())
                .join("tmux.sock"),
            log: dir.path().join("daemon.log"),
            config,
            dir,
            child: None,
        };
        d.start_ready(Duration::from_secs(30))?;
        Ok(d)
    }

    /// Spawns and waits for READY; a daemon that exits early (a startup race
    /// in the daemon, reported in the log) is started again, up to 3 times.
    /// Returns how many starts it took.
    fn start_ready(&mut self, limit: Duration) -> Result<u32> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.spawn()?;
            match self.wait_ready(limit) {
                Ok(()) => return Ok(attempt),
                Err(e) if attempt < 3 && self.child.is_none() => {
                    eprintln!("[bench] ccmanagerd start attempt {attempt} failed: {e:#}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--tmux-dir")
            .arg(self.dir.path().join("tmux"))
            .env("RUST_LOG", std::env::var("CCM_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("INVOCATION_ID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        live().1.push(child.id() as i32);
        if !live().0.contains(&self.tmux_socket) {
            live().0.push(self.tmux_socket.clone());
        }
        self.child = Some(child);
        Ok(())
    }

    /// Polls `daemon.ping` every 2 ms; returns when it answers.
    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(mut c) = Client::connect(&self.socket, Some(Duration::from_secs(10))) {
                if c.call("daemon.ping", json!({})).is_ok() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!("ccmanagerd exited early with {status}: {}", tail.join(" / "));
            }
            if Instant::now() > deadline {
                bail!("ccmanagerd did not answer in time:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    fn client(&self) -> Result<Client> {
        Ok(Client::connect(&self.socket, Some(Duration::from_secs(60)))?)
    }

    /// SIGKILL and wait (a crash).
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            live().1.retain(|&p| p != child.id() as i32);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded; SIGKILL after 20 s).
    fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            live().1.retain(|&p| p != child.id() as i32);
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("ccmanagerd did not exit within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let _ = self.stop();
        for socket in tmux_sockets(&self.dir.path().join("tmux")) {
            kill_tmux_server(&socket);
        }
        kill_tmux_server(&self.tmux_socket);
        let mut l = live();
        l.0.retain(|s| s != &self.tmux_socket);
        if std::env::var_os("CCM_BENCH_SHOW_LOG").is_some() {
            eprintln!("--- daemon log ---\n{}", self.log_text());
        }
    }
}

/// The baseline tmux server; killed on drop.
pub struct TmuxGuard {
    server_pid: i32,
    _dir: tempfile::TempDir,
    /// Its socket.
    pub socket: PathBuf,
}

impl TmuxGuard {
    fn start() -> Result<TmuxGuard> {
        let dir = tempfile::Builder::new().prefix("ccm-bench-tmux-").tempdir_in("/tmp")?;
        let socket = dir.path().join("t.sock");
        live().0.push(socket.clone());
        let g = TmuxGuard { _dir: dir, socket, server_pid: -1 };
        tmux(&g.socket, &["-f", "/dev/null", "new-session", "-d", "-s", "keep"])?;
        let pid = tmux_server_pid(&g.socket);
        live().2.push(pid);
        let mut g = g;
        g.server_pid = pid;
        tmux(&g.socket, &["set-option", "-g", "history-limit", "10000"])?;
        Ok(g)
    }
}

impl Drop for TmuxGuard {
    fn drop(&mut self) {
        kill_tmux_server(&self.socket);
        let mut l = live();
        l.0.retain(|s| s != &self.socket);
        l.2.retain(|&p| p != self.server_pid);
    }
}

fn kill_tmux_server(socket: &Path) {
    let _ = Command::new(TMUX)
        .arg("-S")
        .arg(socket)
        .arg("kill-server")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Spawns `tmux -S socket ARGS...` and returns its stdout (the per-command path).
fn tmux(socket: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(TMUX).arg("-S").arg(socket).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may hold spaces: state is field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12) // utime (14), stime (15) counted from field 3 at index 0
}

/// Every tmux server socket under a daemon's `--tmux-dir`
/// (`<dir>/<uid>/tmux.sock`, and `tmux.N.sock` of a uid's other servers).
fn tmux_sockets(tmux_dir: &Path) -> Vec<PathBuf> {
    let per_uid = std::fs::read_dir(tmux_dir).into_iter().flatten().flatten();
    per_uid
        .flat_map(|d| ccmanagerd::sessions::server::sockets_in(&d.path()))
        .map(|(_, socket)| socket)
        .collect()
}

/// VmRSS of every tmux server under `tmux_dir`, KiB, and how many there are.
fn tmux_rss_kib(tmux_dir: &Path) -> (u64, usize) {
    let socks = tmux_sockets(tmux_dir);
    (socks.iter().map(|s| rss_kib(tmux_server_pid(s))).sum(), socks.len())
}

fn tmux_server_pid(socket: &Path) -> i32 {
    tmux(socket, &["display-message", "-p", "#{pid}"])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1)
}

// ---------------------------------------------------------------- the three paths

/// The raw control-mode connection, on its own current-thread runtime.
struct Control {
    rt: tokio::runtime::Runtime,
    client: ControlClient,
}

impl Control {
    fn connect(socket: &Path) -> Result<Control> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let cfg = ClientConfig::new(TMUX, socket);
        // Right after `new-session -A` the keeper session is sometimes not
        // yet visible to the first command ("can't find window"): retry.
        let mut attempt = 0;
        let (client, notes) = loop {
            attempt += 1;
            match rt.block_on(ccmanagerd::tmux::connect(&cfg)) {
                Ok(c) => break c,
                Err(e) if attempt < 10 => {
                    eprintln!("[bench] control-mode connect attempt {attempt} failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e).context("control-mode connection to the baseline server"),
            }
        };
        // Notifications are not needed; dropping the receiver discards them.
        drop(notes);
        Ok(Control { rt, client })
    }

    fn run(&self, cmd: &Cmd) -> Result<ccmanagerd::tmux::Output> {
        Ok(self.rt.block_on(self.client.run(cmd))?)
    }
}

fn time<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let t = Instant::now();
    let v = f()?;
    Ok((t.elapsed(), v))
}

fn call(c: &mut Client, method: &str, params: Value) -> Result<Value> {
    c.call(method, params).map_err(|e| anyhow::anyhow!("{method}: {e}"))
}

/// A session in one of the three paths: the daemon's id, or a baseline pane.
#[derive(Clone)]
struct Target {
    /// Daemon session id, or tmux session name for the baselines.
    name: String,
    /// Pane id (baselines).
    pane: String,
}

/// The `session.list` result, decoded.
#[derive(serde::Deserialize)]
struct Listed<T> {
    sessions: Vec<T>,
}

/// The daemon's counterpart of the five `list-sessions -F` fields.
const ROW_FIELDS: [&str; 5] = ["id", "tmux_session", "created_at", "state", "pid"];

/// A session as `session.list {"fields": ROW_FIELDS}` gives it.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // decoded to be paid for, not read
struct Row {
    id: String,
    tmux_session: String,
    created_at: String,
    state: String,
    pid: Option<u32>,
}

/// The five fields the baselines list, with the daemon's counterparts in
/// [`ROW_FIELDS`].
const LIST_FORMAT: &str =
    "#{session_name} #{session_id} #{session_created} #{session_attached} #{pane_pid}";

/// `session.list` with `params`, its sessions decoded into `T`.
fn d_list<T: serde::de::DeserializeOwned>(c: &mut Client, params: Value) -> Result<()> {
    let listed: Listed<T> = c.call_as("session.list", params)?;
    std::hint::black_box(listed.sessions);
    Ok(())
}

/// `tmux list-sessions -F LIST_FORMAT`, spawned, its lines split.
fn p_list(sock: &Path) -> Result<()> {
    tmux(sock, &["list-sessions", "-F", LIST_FORMAT]).map(|out| black_box_fields(out.lines()))
}

/// The same through raw control mode.
fn c_list(ctl: &Control) -> Result<()> {
    let out = ctl.run(&Cmd::new("list-sessions").opt("-F", LIST_FORMAT))?;
    black_box_fields(out.lines());
    Ok(())
}

/// Splits `list-sessions -F` lines into their fields, as a per-command
/// client must before it can use them.
fn black_box_fields<'a>(lines: impl Iterator<Item = &'a str>) {
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(' ').collect()).collect();
    std::hint::black_box(rows);
}

fn d_create(c: &mut Client, argv: &[&str]) -> Result<Target> {
    let s = call(c, "session.create", json!({"command": argv}))?;
    let id = s["id"].as_str().context("session.create: no id")?.to_string();
    Ok(Target { name: id, pane: String::new() })
}

fn new_session_cmd(name: &str, argv: &[&str]) -> Cmd {
    Cmd::new("new-session")
        .flag("-d")
        .opt("-s", name)
        .opt("-x", "80")
        .opt("-y", "24")
        .flag("-P")
        .opt("-F", "#{pane_id}")
        .args(argv.iter().copied())
}

fn c_create(ctl: &Control, name: &str, argv: &[&str]) -> Result<Target> {
    let out = ctl.run(&new_session_cmd(name, argv))?;
    Ok(Target { name: name.into(), pane: out.first().unwrap_or_default().to_string() })
}

fn p_create(sock: &Path, name: &str, argv: &[&str]) -> Result<Target> {
    let mut args =
        vec!["new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-P", "-F", "#{pane_id}"];
    args.extend_from_slice(argv);
    let out = tmux(sock, &args)?;
    Ok(Target { name: name.into(), pane: out.trim().to_string() })
}

struct Bench<'a> {
    opts: &'a Options,
    daemon: DaemonGuard,
    base: TmuxGuard,
    ctl: Control,
    d: Client,
    seq: usize,
    log: bool,
}

impl Bench<'_> {
    fn name(&mut self) -> String {
        self.seq += 1;
        format!("bench{}", self.seq)
    }

    fn note(&self, msg: &str) {
        if self.log {
            eprintln!("[bench] {msg}");
        }
    }

    /// create then kill through each path; see [`Options::interleave`].
    fn create_kill(&mut self, argv: &[&str]) -> Result<(OpRow, OpRow)> {
        if self.opts.interleave {
            self.create_kill_interleaved(argv)
        } else {
            self.create_kill_blocks(argv)
        }
    }

    /// create then kill, `reps` of each, through each path in turn (all
    /// daemon creates and kills, then per-command, then control mode).
    fn create_kill_blocks(&mut self, argv: &[&str]) -> Result<(OpRow, OpRow)> {
        let reps = self.opts.reps(200);
        let warm = self.opts.warmup();
        let (mut dc, mut dk, mut pc, mut pk, mut cc, mut ck) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        // Daemon.
        let mut made = vec![];
        for i in 0..warm + reps {
            let (t, s) = time(|| d_create(&mut self.d, argv))?;
            if i >= warm {
                dc.push(t);
            }
            made.push(s);
        }
        for (i, s) in made.drain(..).enumerate() {
            let (t, _) = time(|| call(&mut self.d, "session.kill", json!({"id": s.name})))?;
            if i >= warm {
                dk.push(t);
            }
        }
        // Per command.
        for i in 0..warm + reps {
            let name = self.name();
            let (t, s) = time(|| p_create(&self.base.socket, &name, argv))?;
            if i >= warm {
                pc.push(t);
            }
            made.push(s);
        }
        for (i, s) in made.drain(..).enumerate() {
            let target = format!("={}", s.name);
            let (t, _) = time(|| tmux(&self.base.socket, &["kill-session", "-t", &target]))?;
            if i >= warm {
                pk.push(t);
            }
        }
        // Control mode.
        for i in 0..warm + reps {
            let name = self.name();
            let (t, s) = time(|| c_create(&self.ctl, &name, argv))?;
            if i >= warm {
                cc.push(t);
            }
            made.push(s);
        }
        for (i, s) in made.drain(..).enumerate() {
            let cmd = Cmd::new("kill-session").opt("-t", format!("={}", s.name));
            let (t, _) = time(|| self.ctl.run(&cmd))?;
            if i >= warm {
                ck.push(t);
            }
        }
        Ok((
            OpRow::new("create", Stats::of(dc), Stats::of(pc), Stats::of(cc)),
            OpRow::new("kill", Stats::of(dk), Stats::of(pk), Stats::of(ck)),
        ))
    }

    /// create then kill, `reps` of each, through each path. The paths take
    /// turns (one create each, round after round; then the kills likewise)
    /// so that load drift on a shared machine hits all three alike.
    fn create_kill_interleaved(&mut self, argv: &[&str]) -> Result<(OpRow, OpRow)> {
        let reps = self.opts.reps(200);
        let warm = self.opts.warmup();
        let (mut dc, mut dk, mut pc, mut pk, mut cc, mut ck) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut made = vec![];
        for i in 0..warm + reps {
            let (td, d) = time(|| d_create(&mut self.d, argv))?;
            let name = self.name();
            let (tp, p) = time(|| p_create(&self.base.socket, &name, argv))?;
            let name = self.name();
            let (tc, c) = time(|| c_create(&self.ctl, &name, argv))?;
            if i >= warm {
                dc.push(td);
                pc.push(tp);
                cc.push(tc);
            }
            made.push((d, p, c));
        }
        for (i, (d, p, c)) in made.into_iter().enumerate() {
            let (td, _) = time(|| call(&mut self.d, "session.kill", json!({"id": d.name})))?;
            let target = format!("={}", p.name);
            let (tp, _) = time(|| tmux(&self.base.socket, &["kill-session", "-t", &target]))?;
            let cmd = Cmd::new("kill-session").opt("-t", format!("={}", c.name));
            let (tc, _) = time(|| self.ctl.run(&cmd))?;
            if i >= warm {
                dk.push(td);
                pk.push(tp);
                ck.push(tc);
            }
        }
        Ok((
            OpRow::new("create", Stats::of(dc), Stats::of(pc), Stats::of(cc)),
            OpRow::new("kill", Stats::of(dk), Stats::of(pk), Stats::of(ck)),
        ))
    }

    /// Runs `d`, `p`, `c` each `reps` times after warm-up (taking turns
    /// with `--interleave`).
    fn measure3(
        &mut self,
        op: &str,
        reps: usize,
        mut d: impl FnMut(&mut Client) -> Result<()>,
        mut p: impl FnMut(&Path) -> Result<()>,
        mut c: impl FnMut(&Control) -> Result<()>,
    ) -> Result<OpRow> {
        if !self.opts.interleave {
            return self.measure3_blocks(op, reps, d, p, c);
        }
        let warm = self.opts.warmup();
        let (mut ds, mut ps, mut cs) = (vec![], vec![], vec![]);
        for i in 0..warm + reps {
            let (td, _) = time(|| d(&mut self.d))?;
            let (tp, _) = time(|| p(&self.base.socket))?;
            let (tc, _) = time(|| c(&self.ctl))?;
            if i >= warm {
                ds.push(td);
                ps.push(tp);
                cs.push(tc);
            }
        }
        Ok(OpRow::new(op, Stats::of(ds), Stats::of(ps), Stats::of(cs)))
    }

    /// [`Bench::measure3`] in blocks: all daemon reps, then per-command, then control mode.
    fn measure3_blocks(
        &mut self,
        op: &str,
        reps: usize,
        mut d: impl FnMut(&mut Client) -> Result<()>,
        mut p: impl FnMut(&Path) -> Result<()>,
        mut c: impl FnMut(&Control) -> Result<()>,
    ) -> Result<OpRow> {
        let warm = self.opts.warmup();
        let mut ds = vec![];
        let mut ps = vec![];
        let mut cs = vec![];
        for i in 0..warm + reps {
            let (t, _) = time(|| d(&mut self.d))?;
            if i >= warm {
                ds.push(t);
            }
        }
        for i in 0..warm + reps {
            let (t, _) = time(|| p(&self.base.socket))?;
            if i >= warm {
                ps.push(t);
            }
        }
        for i in 0..warm + reps {
            let (t, _) = time(|| c(&self.ctl))?;
            if i >= warm {
                cs.push(t);
            }
        }
        Ok(OpRow::new(op, Stats::of(ds), Stats::of(ps), Stats::of(cs)))
    }

    fn capture_send(&mut self) -> Result<Vec<OpRow>> {
        let argv = ["sh", "-c", "seq 1 2000; exec cat"];
        let d = d_create(&mut self.d, &argv)?;
        let n1 = self.name();
        let b = c_create(&self.ctl, &n1, &argv)?;
        // Wait until the scrollback is filled (on both servers).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dt = call(&mut self.d, "session.capture", json!({"id": d.name}))?;
            let bt = tmux(&self.base.socket, &["capture-pane", "-p", "-t", &b.pane])?;
            if dt["text"].as_str().unwrap_or("").contains("2000") && bt.contains("2000") {
                break;
            }
            if Instant::now() > deadline {
                bail!("seq 1 2000 did not show up in the panes");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let reps = self.opts.reps(300);
        let mut rows = vec![];
        let (id, pane) = (d.name.clone(), b.pane.clone());
        rows.push(self.measure3(
            "capture visible",
            reps,
            |c| call(c, "session.capture", json!({"id": id})).map(drop),
            |s| tmux(s, &["capture-pane", "-p", "-t", &pane]).map(drop),
            |c| c.run(&Cmd::new("capture-pane").flag("-p").opt("-t", pane.clone())).map(drop),
        )?);
        let check = call(&mut self.d, "session.capture", json!({"id": id, "lines": 1000}))?;
        let got = check["text"].as_str().unwrap_or("").lines().count();
        if got < 1000 {
            bail!("capture with lines=1000 returned only {got} lines");
        }
        rows.push(self.measure3(
            "capture 1000 lines",
            reps,
            |c| call(c, "session.capture", json!({"id": id, "lines": 1000})).map(drop),
            |s| tmux(s, &["capture-pane", "-p", "-t", &pane, "-S", "-1000"]).map(drop),
            |c| {
                let cmd =
                    Cmd::new("capture-pane").flag("-p").opt("-t", pane.clone()).opt("-S", "-1000");
                c.run(&cmd).map(drop)
            },
        )?);
        rows.push(self.measure3(
            "send",
            reps,
            |c| call(c, "session.send", json!({"id": id, "text": "hello"})).map(drop),
            |s| tmux(s, &["send-keys", "-t", &pane, "-l", "--", "hello"]).map(drop),
            |c| {
                let cmd =
                    Cmd::new("send-keys").opt("-t", pane.clone()).flag("-l").arg("--").arg("hello");
                c.run(&cmd).map(drop)
            },
        )?);
        call(&mut self.d, "session.kill", json!({"id": id}))?;
        self.ctl.run(&Cmd::new("kill-session").opt("-t", format!("={n1}")))?;
        Ok(rows)
    }

    fn daemon_count(&mut self) -> Result<usize> {
        let v = call(&mut self.d, "session.list", json!({"state": "running"}))?;
        Ok(v["sessions"].as_array().map(Vec::len).unwrap_or(0))
    }

    fn rss(&mut self, sessions: usize) -> RssRow {
        RssRow {
            sessions,
            daemon_rss_kib: rss_kib(self.daemon.pid()),
            tmux_rss_kib: tmux_rss_kib(&self.daemon.dir.path().join("tmux")).0,
        }
    }

    fn throughput(&mut self, method: &str, params: Value, clients: usize) -> Result<ThroughputRow> {
        let dur = if self.opts.quick { Duration::from_millis(200) } else { Duration::from_secs(2) };
        let barrier = Arc::new(Barrier::new(clients + 1));
        let mut handles = vec![];
        for _ in 0..clients {
            let socket = self.daemon.socket.clone();
            let barrier = barrier.clone();
            let method = method.to_string();
            let params = params.clone();
            handles.push(std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut c = Client::connect(&socket, Some(Duration::from_secs(30)))?;
                call(&mut c, &method, params.clone())?;
                barrier.wait();
                let end = Instant::now() + dur;
                let mut lat = Vec::with_capacity(100_000);
                while Instant::now() < end {
                    let (t, _) = time(|| call(&mut c, &method, params.clone()))?;
                    lat.push(t);
                }
                Ok(lat)
            }));
        }
        barrier.wait();
        let start = Instant::now();
        let mut all = vec![];
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??);
        }
        let elapsed = start.elapsed().as_secs_f64();
        let requests = all.len() as u64;
        let s = Stats::of(all);
        Ok(ThroughputRow {
            method: method.into(),
            clients,
            requests,
            rps: requests as f64 / elapsed,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
        })
    }
}

/// `nproc`.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs everything and returns the report; every process and socket made is
/// gone when this returns (or unwinds).
pub fn run(bin: &Path, opts: &Options, log: bool) -> Result<Report> {
    let t0 = Instant::now();
    let tmux_version = Command::new(TMUX)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .context("tmux -V")?;
    let n = opts.sessions.max(1);
    let daemon = DaemonGuard::start(bin, n)?;
    let base = TmuxGuard::start()?;
    let ctl = Control::connect(&base.socket)?;
    let d = daemon.client()?;
    let mut b = Bench { opts, daemon, base, ctl, d, seq: 0, log };

    let mut rss = vec![b.rss(0)];
    b.note("create / kill");
    let (create, kill) = b.create_kill(&["cat"])?;
    b.note("capture / send");
    let mut ops = vec![create];
    ops.extend(b.capture_send()?);

    // List tiers, growing both servers to 10, 100, N sessions of `sleep`.
    let sleep = ["sleep", "100000"];
    let mut tiers: Vec<usize> = [10, 100, 1000].into_iter().filter(|&t| t < n).collect();
    tiers.push(n);
    // Sessions killed above must be gone; a kill racing the daemon's own
    // reconcile can leave a ghost record (state lost/exited): remove those.
    let leftovers = call(&mut b.d, "session.list", json!({}))?;
    let ghosts: Vec<String> = leftovers["sessions"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if !ghosts.is_empty() {
        b.note(&format!(
            "{} killed session(s) still listed (lost/exited), removing: {ghosts:?}",
            ghosts.len()
        ));
        for id in &ghosts {
            let _ = call(&mut b.d, "session.kill", json!({"id": id}));
        }
    }
    let mut have = b.daemon_count()?;
    if have != 0 {
        bail!("expected no running daemon sessions before the scale part, found {have}");
    }
    let mut create_all = Duration::ZERO;
    let mut create_all_ctl = Duration::ZERO;
    let mut base_names = vec![];
    for &tier in &tiers {
        b.note(&format!("growing to {tier} sessions"));
        let mut t = Instant::now();
        while have < tier {
            d_create(&mut b.d, &sleep)?;
            have += 1;
            if have == 100 {
                // RSS sampling is not part of the creation time.
                create_all += t.elapsed();
                rss.push(b.rss(100));
                t = Instant::now();
            }
        }
        create_all += t.elapsed();
        let t = Instant::now();
        while base_names.len() < tier {
            let name = b.name();
            c_create(&b.ctl, &name, &sleep)?;
            base_names.push(name);
        }
        create_all_ctl += t.elapsed();
        let reps = if tier >= 500 { opts.reps(50) } else { opts.reps(200) };
        // Each path ends with the records in the client's hands, as a
        // client of it would: the same five fields from each (the daemon's
        // `fields` projection, decoded into a struct; tmux's lines split).
        ops.push(b.measure3(
            &format!("list {tier}"),
            reps,
            |c| d_list::<Row>(c, json!({"fields": ROW_FIELDS})),
            p_list,
            c_list,
        )?);
        if tier == n {
            // The same list with whole Session objects (17 fields, ~410
            // bytes each): what a client pays that asks for everything.
            ops.push(b.measure3(
                &format!("list {tier}, whole sessions"),
                reps,
                |c| d_list::<Session>(c, json!({})),
                p_list,
                c_list,
            )?);
        }
    }
    ops.push(kill);
    if rss.iter().all(|r| r.sessions != n) {
        rss.push(b.rss(n));
    }
    let got = b.daemon_count()?;
    if got != n {
        bail!("the daemon lists {got} sessions, expected {n}");
    }

    // Idle CPU with N sessions.
    b.note("idle CPU");
    std::thread::sleep(Duration::from_millis(if opts.quick { 100 } else { 1000 }));
    let window = if opts.quick { Duration::from_millis(500) } else { Duration::from_secs(5) };
    let pid = b.daemon.pid();
    let (c0, t) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(window);
    let (c1, secs) = (cpu_ticks(pid), t.elapsed().as_secs_f64());
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    let idle_cpu_percent = (c1 - c0) as f64 / hz as f64 / secs * 100.0;

    // Throughput (with N sessions present).
    let mut throughput = vec![];
    let get_id = {
        let v = call(&mut b.d, "session.list", json!({}))?;
        v["sessions"][0]["id"].as_str().context("no session")?.to_string()
    };
    for (method, params) in [("daemon.ping", json!({})), ("session.get", json!({"id": get_id}))] {
        for clients in [1, 16, 64] {
            b.note(&format!("throughput {method} x{clients}"));
            throughput.push(b.throughput(method, params.clone(), clients)?);
        }
    }

    // Restart: READY with N sessions to re-adopt.
    b.note("restart");
    b.daemon.stop()?;
    let t = Instant::now();
    let restart_attempts = b.daemon.start_ready(Duration::from_secs(60))?;
    let ready_s = t.elapsed().as_secs_f64();
    let mut d = b.daemon.client()?;
    let readopted = loop {
        let v = call(&mut d, "session.list", json!({}))?;
        let k = v["sessions"].as_array().map(Vec::len).unwrap_or(0);
        if k >= n || t.elapsed() > Duration::from_secs(30) {
            break k;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let readopted_s = t.elapsed().as_secs_f64();
    b.d = d;

    b.note("exit latency");
    let exits = exits::measure(&mut b.d, if opts.quick { 5 } else { 100 })?;

    let scale = Scale {
        sessions: n,
        create_all_s: create_all.as_secs_f64(),
        create_all_control_mode_s: create_all_ctl.as_secs_f64(),
        rss,
        idle_cpu_percent,
        idle_window_s: secs,
        ready_s,
        readopted_s,
        readopted,
        restart_attempts,
    };
    drop(b);
    Ok(Report {
        cores: cores(),
        tmux_version,
        quick: opts.quick,
        interleave: opts.interleave,
        ops,
        throughput,
        scale,
        exits,
        killed_but_listed: ghosts.len(),
        total_s: t0.elapsed().as_secs_f64(),
    })
}

fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn faster_slower(ratio: f64) -> String {
    if ratio <= 1.0 {
        format!("{:.1}× faster", 1.0 / ratio.max(f64::MIN_POSITIVE))
    } else {
        format!("{ratio:.1}× slower")
    }
}

/// The human-readable tables.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ccmanagerd benchmark — {} cores, {}, paths measured {}{}",
        r.cores,
        r.tmux_version,
        if r.interleave { "interleaved" } else { "in blocks" },
        if r.quick { " (QUICK mode: tiny counts, figures are not meaningful)" } else { "" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| operation | n | daemon p50 | daemon p99 | per-cmd p50 | per-cmd p99 | ctl-mode p50 | ctl-mode p99 | daemon/per-cmd | daemon/ctl-mode |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in &r.ops {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.3} ({}) | {:.2}× |",
            o.op,
            o.daemon.n,
            fmt_us(o.daemon.p50_us),
            fmt_us(o.daemon.p99_us),
            fmt_us(o.per_command.p50_us),
            fmt_us(o.per_command.p99_us),
            fmt_us(o.control_mode.p50_us),
            fmt_us(o.control_mode.p99_us),
            o.ratio_daemon_per_command,
            faster_slower(o.ratio_daemon_per_command),
            o.ratio_daemon_control_mode,
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| method | clients | requests | req/s | p50 | p99 |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for t in &r.throughput {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {} | {} |",
            t.method,
            t.clients,
            t.requests,
            t.rps,
            fmt_us(t.p50_us),
            fmt_us(t.p99_us)
        );
    }
    let sc = &r.scale;
    let _ = writeln!(s);
    let _ = writeln!(s, "| scale ({} sessions of `sleep 100000`) | value |", sc.sessions);
    let _ = writeln!(s, "|---|---:|");
    let _ = writeln!(
        s,
        "| create {} one by one, daemon | {:.2} s ({:.2} ms each) |",
        sc.sessions,
        sc.create_all_s,
        sc.create_all_s * 1000.0 / sc.sessions as f64
    );
    let _ = writeln!(
        s,
        "| create {} one by one, raw control mode | {:.2} s ({:.2} ms each) |",
        sc.sessions,
        sc.create_all_control_mode_s,
        sc.create_all_control_mode_s * 1000.0 / sc.sessions as f64
    );
    for row in &sc.rss {
        let _ = writeln!(
            s,
            "| RSS at {} sessions: daemon / its tmux server | {:.1} MiB / {:.1} MiB |",
            row.sessions,
            row.daemon_rss_kib as f64 / 1024.0,
            row.tmux_rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(
        s,
        "| daemon idle CPU with {} sessions ({:.1} s window) | {:.2} % of a core |",
        sc.sessions, sc.idle_window_s, sc.idle_cpu_percent
    );
    let _ = writeln!(
        s,
        "| restart → first daemon.ping (READY) | {:.3} s{} |",
        sc.ready_s,
        if sc.restart_attempts > 1 {
            format!(" ({} starts: it exited early)", sc.restart_attempts)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "| restart → session.list shows all (re-adopted {}) | {:.3} s |",
        sc.readopted, sc.readopted_s
    );
    let e = &r.exits;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "exit → visible in session.get ({} sessions, after the restart): p50 {}, p99 {}; \
         exec-wrapper PSS {:.1} MiB each",
        e.sessions,
        fmt_us(e.visible.p50_us),
        fmt_us(e.visible.p99_us),
        e.wrapper_pss_kib as f64 / 1024.0
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "killed sessions still listed afterwards (daemon race): {}",
        r.killed_but_listed
    );
    let _ = writeln!(s, "total run time: {:.1} s", r.total_s);
    s
}
