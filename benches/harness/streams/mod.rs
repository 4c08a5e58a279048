//! `cargo bench --bench daemon -- --streams [--streams-mb N]
//! [--streams-reps N] [--streams-sessions N]`: the figures of issue 12's
//! live streams and output logs, against what a user with the tmux socket
//! would do instead:
//! - throughput (MB/s) of a program printing N MB of base64 lines (76
//!   characters, like `base64`) as fast as it can: alone in a bare tmux
//!   pane, alone in a daemon session (its logger on), watched through
//!   `tmux attach` in a pty, and through `session.subscribe` (every byte,
//!   acknowledged as it arrives). Target: subscribe >= 0.8x attach;
//! - keystroke-to-echo latency: `session.write` + the subscription, against
//!   `tmux send-keys` + polling `capture-pane` (spawned, and on a raw
//!   control-mode connection). Target: p50 < 1 ms;
//! - the memory of a session's logger (PSS) with `--streams-sessions`
//!   sessions. Target: < 256 KiB each;
//! - what logging costs a program at full output: its wall time in a
//!   daemon session against a bare tmux pane, and the logger's CPU.
//!   Target: at most 1.3x.
//!
//! The paths take turns every repetition (load drift on a shared machine
//! hits them alike); figures are medians over the repetitions.

mod attach;
mod loggers;
mod paths;
mod render;
mod wire;

pub use render::render;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::Serialize;

use super::{call, cores, Control, DaemonGuard, Stats, TmuxGuard, TMUX};
use loggers::{Cpu, Memory};

/// The daemon's periodic full refresh (every `health.interval`) gives a
/// logger to every pane without one, which undoes the logger-stopped
/// baseline mid-run (seen in 3 runs in a row at the default 5 s).
const NO_PERIODIC_REFRESH: &str = "\n[health]\ninterval = \"1h\"\n";

/// The batched viewer acks once this much is unacknowledged: half the
/// default `streams.window` (256 KiB), so the daemon never waits for it.
const BATCHED_ACK: u64 = 128 << 10;

/// Shape of the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamsOptions {
    /// Bytes each program prints, MB (10^6).
    pub mb: u64,
    /// Repetitions of each throughput path.
    pub reps: usize,
    /// Timed keystrokes per echo path.
    pub echoes: usize,
    /// Sessions alive for the logger memory figure.
    pub sessions: usize,
    /// Smoke mode: tiny counts, figures not meaningful.
    pub quick: bool,
}

impl Default for StreamsOptions {
    fn default() -> Self {
        StreamsOptions { mb: 50, reps: 5, echoes: 1000, sessions: 20, quick: false }
    }
}

impl StreamsOptions {
    /// For the smoke test: seconds, not minutes.
    pub fn quick() -> Self {
        StreamsOptions { mb: 2, reps: 1, echoes: 20, sessions: 3, quick: true }
    }

    fn warmup(&self) -> usize {
        if self.quick {
            2
        } else {
            50
        }
    }
}

/// One throughput path over the repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// The path.
    pub path: String,
    /// MB/s each repetition (viewer's when there is one, else the program's).
    pub mb_s: Vec<f64>,
    /// Median of `mb_s`.
    pub median_mb_s: f64,
    /// Best of `mb_s` (least disturbed by other load on the machine).
    pub best_mb_s: f64,
    /// The program's own MB/s, median (what the viewer cost it).
    pub program_mb_s: f64,
    /// Bytes the viewer received in the last repetition.
    pub viewer_bytes: u64,
    /// `session.output` notifications in the last repetition (subscribe).
    pub notifications: u64,
    /// CPU per run of each process involved, medians.
    pub cpu: Cpu,
}

/// One echo path.
#[derive(Debug, Clone, Serialize)]
pub struct Echo {
    /// The path.
    pub path: String,
    /// Keystroke to echo.
    pub stats: Stats,
}

/// What a session's logger costs.
#[derive(Debug, Clone, Serialize)]
pub struct LoggerCost {
    /// Sessions alive.
    pub sessions: usize,
    /// Loggers found below the daemon's tmux servers.
    pub loggers: usize,
    /// The program they run.
    pub program: String,
    /// All their processes together.
    pub total: Memory,
    /// PSS per session, KiB.
    pub pss_kib_per_session: f64,
    /// Private (clean + dirty) per session, KiB.
    pub private_kib_per_session: f64,
}

/// What logging costs a program at full output.
#[derive(Debug, Clone, Serialize)]
pub struct LoggingCpu {
    /// The daemon's panes had a `pipe-pane` (false: it does not log yet,
    /// and the figures compare nothing).
    pub logger_on: bool,
    /// The program's wall time in a bare tmux pane (no logger), median, s.
    pub bare_s: f64,
    /// In a daemon session with its logger stopped, median, s.
    pub unlogged_s: f64,
    /// In a daemon session (its logger on), median, s.
    pub logged_s: f64,
    /// `logged_s / unlogged_s`: the logger's cost alone. Target <= 1.3.
    pub slowdown: f64,
    /// `logged_s / bare_s`: against a pane of a bare tmux server.
    pub slowdown_vs_bare: f64,
    /// The same ratio as `slowdown` from each path's fastest repetition.
    pub slowdown_best: f64,
    /// The logger's CPU (user + system) per repetition, median, s.
    pub logger_cpu_s: Option<f64>,
}

/// Everything `--streams` measured.
#[derive(Debug, Clone, Serialize)]
pub struct StreamsReport {
    /// `nproc`.
    pub cores: usize,
    /// `tmux -V`.
    pub tmux_version: String,
    /// The shape.
    pub options: StreamsOptions,
    /// Bytes each program printed.
    pub bytes: u64,
    /// Throughput per path.
    pub throughput: Vec<Throughput>,
    /// subscribe / tmux attach (viewer MB/s, medians). Target >= 0.8.
    pub subscribe_vs_attach: Option<f64>,
    /// The same with the viewer acking every 128 KiB.
    pub batched_vs_attach: Option<f64>,
    /// Echo latency per path.
    pub echo: Vec<Echo>,
    /// Logger memory (None: no logger found, the daemon does not log).
    pub logger: Option<LoggerCost>,
    /// Logging's cost to the program.
    pub logging: LoggingCpu,
    /// Paths that could not run, and why.
    pub missing: Vec<String>,
    /// Whole run, s.
    pub total_s: f64,
}

/// The state of one run.
struct Ctx<'a> {
    opts: &'a StreamsOptions,
    daemon: DaemonGuard,
    base: TmuxGuard,
    d: ccmanagerd::client::Client,
    /// Holds the data file and each run's files.
    dir: tempfile::TempDir,
    data: PathBuf,
    bytes: u64,
    seq: usize,
    log: bool,
}

impl Ctx<'_> {
    fn note(&self, msg: &str) {
        if self.log {
            eprintln!("[bench] {msg}");
        }
    }
}

/// Writes `mb` MB of base64 lines (76 characters and a newline, the
/// `base64` tool's shape) of xorshift bytes: printable, incompressible
/// enough, and never containing `-` (the end markers' character).
fn write_data(path: &Path, mb: u64) -> Result<u64> {
    let want = mb * 1_000_000;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut raw, mut line, mut written) = ([0u8; 57], String::with_capacity(80), 0u64);
    while written < want {
        for b in raw.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        line.clear();
        base64::engine::general_purpose::STANDARD.encode_string(raw, &mut line);
        line.push('\n');
        f.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    f.flush()?;
    Ok(written)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Collects a path's samples, or notes why it could not run.
struct Collect {
    path: &'static str,
    samples: Vec<paths::Sample>,
    failed: Option<String>,
}

impl Collect {
    fn new(path: &'static str) -> Collect {
        Collect { path, samples: vec![], failed: None }
    }

    fn take(&mut self, r: Result<paths::Sample>) {
        match r {
            Ok(s) => self.samples.push(s),
            Err(e) => self.failed = Some(format!("{}: {e:#}", self.path)),
        }
    }

    fn row(&self, bytes: u64) -> Option<Throughput> {
        if self.samples.is_empty() {
            return None;
        }
        let mb = bytes as f64 / 1e6;
        let mb_s: Vec<f64> =
            self.samples.iter().map(|s| mb / s.viewer_s.unwrap_or(s.program_s)).collect();
        let program: Vec<f64> = self.samples.iter().map(|s| mb / s.program_s).collect();
        Some(Throughput {
            path: self.path.into(),
            median_mb_s: median(&mb_s),
            best_mb_s: mb_s.iter().copied().fold(0.0, f64::max),
            mb_s,
            program_mb_s: median(&program),
            viewer_bytes: self.samples.last().map_or(0, |s| s.viewer_bytes),
            notifications: self.samples.last().map_or(0, |s| s.notifications),
            cpu: self.cpu(),
        })
    }

    /// Each CPU figure's median over the repetitions.
    fn cpu(&self) -> Cpu {
        let of = |f: fn(&Cpu) -> Option<f64>| {
            let v: Vec<f64> = self.samples.iter().filter_map(|s| f(&s.cpu)).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        Cpu {
            tmux_s: of(|c| Some(c.tmux_s)).unwrap_or(0.0),
            logger_s: of(|c| c.logger_s),
            daemon_s: of(|c| c.daemon_s),
            viewer_s: of(|c| c.viewer_s),
        }
    }
}

/// Runs the scenario; every process and socket made is gone when this
/// returns.
pub fn run(bin: &Path, opts: &StreamsOptions, log: bool) -> Result<StreamsReport> {
    let t0 = Instant::now();
    let tmux_version = std::process::Command::new(TMUX)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .context("tmux -V")?;
    // A binary cargo has just linked has dirty pages in the page cache,
    // which smaps counts as Private_Dirty of every process mapping them:
    // write them out (the daemon's and the logger's, which the daemon runs
    // when it is beside its own) so the loggers' memory is what they cost.
    for exe in [bin.to_path_buf(), bin.with_file_name("ccmanagerd-log")] {
        if exe.exists() {
            std::fs::File::open(&exe)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", exe.display()))?;
        }
    }
    let daemon = DaemonGuard::start_with(bin, opts.sessions + 10, NO_PERIODIC_REFRESH)?;
    let base = TmuxGuard::start()?;
    let d = daemon.client()?;
    let dir = tempfile::Builder::new().prefix("ccm-bench-streams-").tempdir_in("/tmp")?;
    let data = dir.path().join("data");
    let bytes = write_data(&data, opts.mb)?;
    let mut c = Ctx { opts, daemon, base, d, dir, data, bytes, seq: 0, log };
    c.note(&format!("daemon pid {} (for a profiler)", c.daemon.pid()));
    let mut missing = vec![];

    let mut cols = [
        Collect::new("bare tmux pane, no viewer"),
        Collect::new("daemon session, logger stopped, no viewer"),
        Collect::new("daemon session, no viewer"),
        Collect::new("tmux attach (pty)"),
        Collect::new("session.subscribe"),
        Collect::new("session.subscribe, ack every 128 KiB"),
    ];
    for rep in 0..opts.reps {
        c.note(&format!("throughput, repetition {}/{}", rep + 1, opts.reps));
        cols[0].take(c.bare());
        cols[1].take(c.logged(false));
        cols[2].take(c.logged(true));
        cols[3].take(c.attach());
        for (col, ack_every) in [(4, 0), (5, BATCHED_ACK)] {
            if cols[col].failed.is_none() {
                cols[col].take(c.subscribe(ack_every));
            }
        }
    }
    missing.extend(cols.iter().filter_map(|c| c.failed.clone()));
    let throughput: Vec<Throughput> = cols.iter().filter_map(|col| col.row(bytes)).collect();
    let by = |p: &str| throughput.iter().find(|t| t.path == p).map(|t| t.median_mb_s);
    let subscribe_vs_attach =
        by("session.subscribe").zip(by("tmux attach (pty)")).map(|(s, a)| s / a);
    let batched_vs_attach =
        by("session.subscribe, ack every 128 KiB").zip(by("tmux attach (pty)")).map(|(s, a)| s / a);
    let times = |col: &Collect| col.samples.iter().map(|s| s.program_s).collect::<Vec<_>>();
    let program_s = |col: &Collect| median(&times(col));
    let fastest = |col: &Collect| times(col).into_iter().fold(f64::INFINITY, f64::min);
    let (bare_s, unlogged_s, logged_s) =
        (program_s(&cols[0]), program_s(&cols[1]), program_s(&cols[2]));
    let logging = LoggingCpu {
        logger_on: cols[2].samples.iter().any(|s| s.piped),
        bare_s,
        unlogged_s,
        logged_s,
        slowdown: logged_s / unlogged_s.max(f64::MIN_POSITIVE),
        slowdown_vs_bare: logged_s / bare_s.max(f64::MIN_POSITIVE),
        slowdown_best: fastest(&cols[2]) / fastest(&cols[1]),
        logger_cpu_s: cols[2].cpu().logger_s,
    };

    c.note("keystroke to echo");
    let (warm, n) = (opts.warmup(), opts.echoes);
    let mut echo = vec![];
    match c.echo_daemon(warm, n) {
        Ok(s) => {
            echo.push(Echo { path: "session.write + subscription".into(), stats: Stats::of(s) })
        }
        Err(e) => missing.push(format!("session.write + subscription: {e:#}")),
    }
    let s = c.echo_tmux(None, warm, n)?;
    echo.push(Echo { path: "send-keys + capture-pane (spawned)".into(), stats: Stats::of(s) });
    let ctl = Control::connect(&c.base.socket)?;
    let s = c.echo_tmux(Some(&ctl), warm, n)?;
    echo.push(Echo { path: "send-keys + capture-pane (control mode)".into(), stats: Stats::of(s) });
    drop(ctl);

    c.note(&format!("logger memory with {} sessions", opts.sessions));
    let logger = logger_memory(&mut c)?;
    if logger.is_none() {
        missing.push("logger memory: no logger process below the daemon's tmux servers".into());
    }
    drop(c);
    Ok(StreamsReport {
        cores: cores(),
        tmux_version,
        options: *opts,
        bytes,
        throughput,
        subscribe_vs_attach,
        batched_vs_attach,
        echo,
        logger,
        logging,
        missing,
        total_s: t0.elapsed().as_secs_f64(),
    })
}

/// Creates the sessions, waits for their loggers, sums their memory,
/// kills the sessions.
fn logger_memory(c: &mut Ctx) -> Result<Option<LoggerCost>> {
    let n = c.opts.sessions;
    let mut ids = vec![];
    for _ in 0..n {
        let s = call(&mut c.d, "session.create", serde_json::json!({"command": ["cat"]}))?;
        ids.push(s["id"].as_str().context("no id")?.to_string());
    }
    let tmux_dir = c.daemon.dir.path().join("tmux");
    let deadline = Instant::now() + Duration::from_secs(if c.opts.quick { 3 } else { 10 });
    let mut found = loggers::find(&tmux_dir);
    while found.len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        found = loggers::find(&tmux_dir);
    }
    // Let them settle (first reads, index files opened).
    std::thread::sleep(Duration::from_millis(200));
    let total = loggers::memory(&found);
    let program = loggers::program(&found).unwrap_or_default();
    for id in &ids {
        call(&mut c.d, "session.kill", serde_json::json!({"id": id}))?;
    }
    if found.is_empty() {
        return Ok(None);
    }
    Ok(Some(LoggerCost {
        sessions: n,
        loggers: found.len(),
        program,
        total,
        pss_kib_per_session: total.pss_kib as f64 / n as f64,
        private_kib_per_session: total.private_kib as f64 / n as f64,
    }))
}
