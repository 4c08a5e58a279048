//! `cargo bench --bench daemon -- --scale N`: one daemon with N sessions of
//! `sleep` (all of one uid, so in N / `tmux.sessions_per_server` tmux
//! servers): what a create and a kill cost at 100 sessions (200 creates,
//! then their kills) and at N (200 kills spread over every server, then 200
//! creates that fill the places), `session.list` and `session.get` at N,
//! RSS, idle CPU, and a restart (SIGTERM, and SIGKILL) until all N are
//! re-adopted.
//!
//! Each session holds a pseudo-terminal: when `kernel.pty.max` is too low
//! for N, the run raises it (as root) and puts it back afterwards, also on
//! error or interruption. tmux holds a descriptor per pane: the soft
//! `RLIMIT_NOFILE` is raised to the hard one (the daemon, and the tmux
//! server it starts detached, inherit it).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::{
    call, cpu_ticks, d_create, d_list, new_session_cmd, rss_kib, time, tmux_server_pid, Control,
    DaemonGuard, Row, Stats,
};
use ccmanagerd::tmux::Cmd;

const PTY_MAX: &str = "/proc/sys/kernel/pty/max";
const PTY_NR: &str = "/proc/sys/kernel/pty/nr";
/// Pseudo-terminals left for the rest of the host during the run.
const PTY_HEADROOM: u64 = 1024;
/// Creates (and kills) measured at each size.
const REPS: usize = 200;
/// Threads growing the daemon to N (creates in parallel share fsyncs).
const GROW_THREADS: usize = 8;

/// The value of `kernel.pty.max` to put back, if the run changed it.
static PTY_RESTORE: Mutex<Option<u64>> = Mutex::new(None);

fn read_u64(path: &str) -> Result<u64> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?.trim().parse()?)
}

/// Puts `kernel.pty.max` back if the run raised it (also from the signal
/// handler).
pub fn restore_pty() {
    if let Some(old) = PTY_RESTORE.lock().unwrap_or_else(|e| e.into_inner()).take() {
        match std::fs::write(PTY_MAX, old.to_string()) {
            Ok(()) => eprintln!("[bench] kernel.pty.max restored to {old}"),
            Err(e) => eprintln!("[bench] could not restore kernel.pty.max to {old}: {e}"),
        }
    }
}

/// Raises `kernel.pty.max` for `n` more sessions while it lives.
struct PtyGuard {
    before: u64,
    during: u64,
}

impl PtyGuard {
    fn ensure(n: usize) -> Result<PtyGuard> {
        let (max, nr) = (read_u64(PTY_MAX)?, read_u64(PTY_NR)?);
        let need = nr + n as u64 + PTY_HEADROOM;
        if max >= need {
            return Ok(PtyGuard { before: max, during: max });
        }
        if !nix::unistd::geteuid().is_root() {
            bail!("{n} sessions need kernel.pty.max >= {need} (it is {max}, {nr} in use); run as root or `sysctl -w kernel.pty.max={need}`");
        }
        *PTY_RESTORE.lock().unwrap_or_else(|e| e.into_inner()) = Some(max);
        std::fs::write(PTY_MAX, need.to_string()).context("raising kernel.pty.max")?;
        eprintln!("[bench] kernel.pty.max raised from {max} to {need} for the run");
        Ok(PtyGuard { before: max, during: need })
    }
}

impl Drop for PtyGuard {
    fn drop(&mut self) {
        restore_pty();
    }
}

/// Raises the soft open-files limit to the hard one; fails if that cannot
/// hold `n` panes.
fn raise_nofile(n: usize) -> Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    if hard < n as u64 + 1024 {
        bail!("RLIMIT_NOFILE hard limit {hard} is too low for {n} panes (the tmux server holds one descriptor each)");
    }
    Ok(hard)
}

/// One operation at one size.
#[derive(Debug, Clone, Serialize)]
pub struct At {
    /// Sessions present.
    pub sessions: usize,
    /// Latency.
    pub stats: Stats,
    /// Mean, µs.
    pub mean_us: f64,
}

impl At {
    fn of(sessions: usize, samples: Vec<Duration>) -> At {
        let mean_us = samples.iter().map(|d| d.as_secs_f64() * 1e6).sum::<f64>()
            / samples.len().max(1) as f64;
        At { sessions, stats: Stats::of(samples), mean_us }
    }
}

/// A restart until every session is listed again.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    /// How the daemon was stopped.
    pub how: String,
    /// Spawn to the first `daemon.ping` (READY), s.
    pub ready_s: f64,
    /// Spawn to `session.list` showing all N `running`, s.
    pub readopted_s: f64,
    /// Sessions it showed.
    pub readopted: usize,
}

/// Everything `--scale` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// Sessions.
    pub sessions: usize,
    /// `kernel.pty.max` before the run, and during it.
    pub pty_max: (u64, u64),
    /// The open-files limit the daemon and tmux ran with.
    pub nofile: u64,
    /// Growing from 100 to N with [`GROW_THREADS`] clients, s.
    pub grow_s: f64,
    /// create, at 100 and at N.
    pub create: Vec<At>,
    /// kill, at 100 and at N.
    pub kill: Vec<At>,
    /// create p50 at N / at 100.
    pub create_ratio: f64,
    /// tmux's own `new-session` (and `kill-session`) in the same server,
    /// through a raw control-mode client, at 100 and at N: what tmux itself
    /// costs as sessions grow.
    pub raw_create: Vec<At>,
    /// See `raw_create`.
    pub raw_kill: Vec<At>,
    /// `session.list` at N with five fields.
    pub list_fields: At,
    /// `session.list` at N, whole sessions.
    pub list_whole: At,
    /// `session.list` at N with five fields, the reply read but not decoded:
    /// the daemon's part (and the socket's).
    pub list_fields_raw: At,
    /// `session.get` at N.
    pub get: At,
    /// Daemon / tmux server VmRSS at N, KiB.
    pub rss_kib: (u64, u64),
    /// Descriptors the busiest tmux server holds at N.
    pub tmux_fds: usize,
    /// tmux servers at N (a uid's sessions are spread over servers of
    /// `tmux.sessions_per_server`).
    pub tmux_servers: usize,
    /// Daemon / tmux CPU while idle with N sessions (10 s), % of a core.
    pub idle_cpu_percent: (f64, f64),
    /// Restarts.
    pub restarts: Vec<Restart>,
    /// Whole run, s.
    pub total_s: f64,
}

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// `reps` creates then their kills, one after another on one connection.
fn create_kill(d: &DaemonGuard, at: usize, reps: usize) -> Result<(At, At)> {
    let mut c = d.client()?;
    let argv = ["sleep", "100000"];
    let (mut made, mut tc, mut tk) = (vec![], vec![], vec![]);
    for _ in 0..reps {
        let (t, s) = time(|| d_create(&mut c, &argv))?;
        tc.push(t);
        made.push(s.name);
    }
    for id in made {
        let (t, _) = time(|| call(&mut c, "session.kill", json!({"id": id})))?;
        tk.push(t);
    }
    Ok((At::of(at, tc), At::of(at, tk)))
}

/// At `n` sessions: kills `reps` sessions spread over all the servers,
/// then creates `reps` (which fill the places freed), one after another.
fn kill_create(d: &DaemonGuard, n: usize, reps: usize) -> Result<(At, At)> {
    let mut c = d.client()?;
    let v = call(&mut c, "session.list", json!({"fields": ["id"]}))?;
    let all: Vec<String> = v["sessions"]
        .as_array()
        .context("no sessions")?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    let step = (all.len() / reps).max(1);
    let (mut tc, mut tk) = (vec![], vec![]);
    for id in all.iter().step_by(step).take(reps) {
        tk.push(time(|| call(&mut c, "session.kill", json!({"id": id})))?.0);
    }
    for _ in 0..tk.len() {
        tc.push(time(|| d_create(&mut c, &["sleep", "100000"]))?.0);
    }
    Ok((At::of(n, tc), At::of(n, tk)))
}

/// The same as [`create_kill`] straight to the daemon's tmux server
/// (sessions not named `ccmanager_sess_*`, which the daemon ignores).
fn raw_create_kill(d: &DaemonGuard, at: usize, reps: usize) -> Result<(At, At)> {
    let ctl = Control::connect(&d.tmux_socket)?;
    let (mut tc, mut tk) = (vec![], vec![]);
    for i in 0..reps {
        let cmd = new_session_cmd(&format!("raw{i}"), &["sleep", "100000"]);
        tc.push(time(|| ctl.run(&cmd))?.0);
    }
    for i in 0..reps {
        let cmd = Cmd::new("kill-session").opt("-t", format!("=raw{i}"));
        tk.push(time(|| ctl.run(&cmd))?.0);
    }
    Ok((At::of(at, tc), At::of(at, tk)))
}

/// Creates sessions until the daemon holds `n`, from `threads` clients.
fn grow(d: &DaemonGuard, have: usize, n: usize, threads: usize) -> Result<()> {
    let todo = n.saturating_sub(have);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let socket = d.socket.clone();
            let mine = todo / threads + usize::from(i < todo % threads);
            std::thread::spawn(move || -> Result<()> {
                let mut c =
                    ccmanagerd::client::Client::connect(&socket, Some(Duration::from_secs(60)))?;
                for _ in 0..mine {
                    d_create(&mut c, &["sleep", "100000"])?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("grow thread panicked"))??;
    }
    Ok(())
}

fn count_running(d: &DaemonGuard) -> Result<usize> {
    let mut c = d.client()?;
    let v = call(&mut c, "session.list", json!({"state": "running", "fields": ["id"]}))?;
    Ok(v["sessions"].as_array().map(Vec::len).unwrap_or(0))
}

/// `reps` calls of `f` (after 5 unmeasured) on one connection.
fn measure(
    d: &DaemonGuard,
    n: usize,
    reps: usize,
    mut f: impl FnMut(&mut ccmanagerd::client::Client) -> Result<()>,
) -> Result<At> {
    let mut c = d.client()?;
    let mut t = vec![];
    for i in 0..reps + 5 {
        let (dt, _) = time(|| f(&mut c))?;
        if i >= 5 {
            t.push(dt);
        }
    }
    Ok(At::of(n, t))
}

fn restart(d: &mut DaemonGuard, n: usize, kill: bool) -> Result<Restart> {
    if kill {
        d.kill9();
    } else {
        d.stop()?;
    }
    let t = Instant::now();
    d.start_ready(Duration::from_secs(120))?;
    let ready_s = t.elapsed().as_secs_f64();
    let readopted = loop {
        let k = count_running(d)?;
        if k >= n || t.elapsed() > Duration::from_secs(60) {
            break k;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Restart {
        how: if kill { "SIGKILL" } else { "SIGTERM" }.into(),
        ready_s,
        readopted_s: t.elapsed().as_secs_f64(),
        readopted,
    })
}

/// `session.list` with five fields, `reps` times, the reply line read into
/// a buffer and not decoded.
fn raw_list(d: &DaemonGuard, n: usize, reps: usize) -> Result<At> {
    use std::io::{BufRead, Write};
    let stream = std::os::unix::net::UnixStream::connect(&d.socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let line = format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": 1, "method": "session.list",
            "params": {"fields": super::ROW_FIELDS}})
    );
    let mut buf = Vec::with_capacity(2 << 20);
    let mut t = vec![];
    for i in 0..reps + 5 {
        buf.clear();
        let start = Instant::now();
        writer.write_all(line.as_bytes())?;
        reader.read_until(b'\n', &mut buf)?;
        if i >= 5 {
            t.push(start.elapsed());
        }
    }
    if !buf.starts_with(b"{\"jsonrpc\"") || buf.len() < n * 50 {
        bail!("unexpected list reply ({} bytes)", buf.len());
    }
    Ok(At::of(n, t))
}

/// Runs the scale scenario with `n` sessions.
pub fn run(bin: &Path, n: usize, log: bool) -> Result<ScaleReport> {
    let t0 = Instant::now();
    let note = |m: &str| {
        if log {
            eprintln!("[bench] {m}");
        }
    };
    let small = 100.min(n / 2).max(1);
    let nofile = raise_nofile(n)?;
    let pty = PtyGuard::ensure(n + REPS)?;
    let mut d = DaemonGuard::start(bin, n + REPS)?;
    note(&format!("growing to {small} sessions"));
    grow(&d, 0, small, 1)?;
    note(&format!("{REPS} creates and kills at {small}"));
    let (c_small, k_small) = create_kill(&d, small, REPS)?;
    let (rc_small, rk_small) = raw_create_kill(&d, small, REPS)?;
    note(&format!("growing to {n} sessions ({GROW_THREADS} clients)"));
    let t = Instant::now();
    grow(&d, small, n, GROW_THREADS)?;
    let grow_s = t.elapsed().as_secs_f64();
    let have = count_running(&d)?;
    if have != n {
        bail!("the daemon lists {have} running sessions, expected {n}");
    }
    std::thread::sleep(Duration::from_secs(2));
    note(&format!("{REPS} kills and creates at {n}"));
    let (c_n, k_n) = kill_create(&d, n, REPS)?;
    let (rc_n, rk_n) = raw_create_kill(&d, n, REPS)?;
    note("list and get");
    // As a client would: decoded into typed records (the main bench's
    // `list N` rows), not into a `serde_json::Value` tree.
    let list_fields =
        measure(&d, n, 50, |c| d_list::<Row>(c, json!({"fields": super::ROW_FIELDS})))?;
    let list_whole =
        measure(&d, n, 50, |c| d_list::<ccmanagerd::protocol::types::Session>(c, json!({})))?;
    let list_fields_raw = raw_list(&d, n, 50)?;
    let id = {
        let mut c = d.client()?;
        let v = call(&mut c, "session.list", json!({"fields": ["id"]}))?;
        v["sessions"][n / 2]["id"].as_str().context("no session")?.to_string()
    };
    let get = measure(&d, n, 2000, |c| {
        c.request::<ccmanagerd::protocol::method::SessionGet>(
            &ccmanagerd::protocol::methods::SessionId { id: id.clone() },
        )?;
        Ok(())
    })?;
    let tmux_dir = d.dir.path().join("tmux");
    let socks = super::tmux_sockets(&tmux_dir);
    let pids: Vec<i32> = socks.iter().map(|s| tmux_server_pid(s)).collect();
    let rss_kib = (rss_kib(d.pid()), super::tmux_rss_kib(&tmux_dir).0);
    let tmux_fds = pids.iter().map(|p| fds(*p)).max().unwrap_or(0);
    let tmux_servers = pids.len();
    note("idle CPU (10 s)");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    let tmux_ticks = || pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>();
    let (d0, m0, ti) = (cpu_ticks(d.pid()), tmux_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let secs = ti.elapsed().as_secs_f64();
    let pct = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz as f64 / secs * 100.0;
    let idle_cpu_percent = (pct(d0, cpu_ticks(d.pid())), pct(m0, tmux_ticks()));
    note("restart (SIGTERM), then restart (SIGKILL)");
    let restarts = vec![restart(&mut d, n, false)?, restart(&mut d, n, true)?];
    drop(d);
    let report = ScaleReport {
        sessions: n,
        pty_max: (pty.before, pty.during),
        nofile,
        grow_s,
        create_ratio: c_n.stats.p50_us / c_small.stats.p50_us.max(f64::MIN_POSITIVE),
        create: vec![c_small, c_n],
        kill: vec![k_small, k_n],
        raw_create: vec![rc_small, rc_n],
        raw_kill: vec![rk_small, rk_n],
        list_fields,
        list_whole,
        list_fields_raw,
        get,
        rss_kib,
        tmux_fds,
        tmux_servers,
        idle_cpu_percent,
        restarts,
        total_s: t0.elapsed().as_secs_f64(),
    };
    drop(pty);
    Ok(report)
}

fn us(v: f64) -> String {
    super::fmt_us(v)
}

/// The human-readable table.
pub fn render(r: &ScaleReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ccmanagerd scale — {} sessions of `sleep`, {} cores, kernel.pty.max {} (was {}), RLIMIT_NOFILE {}",
        r.sessions,
        super::cores(),
        r.pty_max.1,
        r.pty_max.0,
        r.nofile
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| operation | sessions | n | p50 | p99 | mean |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    let raw_c = r.raw_create.iter().map(|a| ("tmux's own new-session (raw control mode)", a));
    let raw_k = r.raw_kill.iter().map(|a| ("tmux's own kill-session (raw control mode)", a));
    let rows = r
        .create
        .iter()
        .map(|a| ("create", a))
        .chain(r.kill.iter().map(|a| ("kill", a)))
        .chain(raw_c)
        .chain(raw_k)
        .chain([
            ("list, 5 fields", &r.list_fields),
            ("list, 5 fields, reply read but not decoded", &r.list_fields_raw),
            ("list, whole sessions", &r.list_whole),
            ("get", &r.get),
        ]);
    for (op, a) in rows {
        let _ = writeln!(
            s,
            "| {op} | {} | {} | {} | {} | {} |",
            a.sessions,
            a.stats.n,
            us(a.stats.p50_us),
            us(a.stats.p99_us),
            us(a.mean_us)
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| figure | value |");
    let _ = writeln!(s, "|---|---:|");
    let _ = writeln!(
        s,
        "| create p50 at {} / at {} | {:.2}× (tmux's own new-session: {:.2}×) |",
        r.sessions,
        r.create[0].sessions,
        r.create_ratio,
        r.raw_create[1].stats.p50_us / r.raw_create[0].stats.p50_us.max(f64::MIN_POSITIVE)
    );
    let _ = writeln!(
        s,
        "| grow {} → {} ({GROW_THREADS} clients) | {:.1} s ({:.2} ms per session) |",
        r.create[0].sessions,
        r.sessions,
        r.grow_s,
        r.grow_s * 1000.0 / (r.sessions - r.create[0].sessions).max(1) as f64
    );
    let _ = writeln!(
        s,
        "| RSS at {}: daemon / {} tmux servers together | {:.1} MiB / {:.1} MiB |",
        r.sessions,
        r.tmux_servers,
        r.rss_kib.0 as f64 / 1024.0,
        r.rss_kib.1 as f64 / 1024.0
    );
    let _ = writeln!(s, "| descriptors of the busiest tmux server | {} |", r.tmux_fds);
    let _ = writeln!(
        s,
        "| idle CPU with {} sessions: daemon / tmux servers | {:.2} % / {:.2} % of a core |",
        r.sessions, r.idle_cpu_percent.0, r.idle_cpu_percent.1
    );
    for x in &r.restarts {
        let _ = writeln!(
            s,
            "| restart ({}) → READY / → all {} listed | {:.3} s / {:.3} s |",
            x.how, x.readopted, x.ready_s, x.readopted_s
        );
    }
    let _ = writeln!(s, "| whole run | {:.0} s |", r.total_s);
    s
}
