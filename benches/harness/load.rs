//! `cargo bench --bench daemon -- --load`: one daemon with 1000 sessions of
//! `cat` and 64 clients (a thread and a connection each, request/response)
//! mixing `session.list`, `get`, `capture`, `send` and create/kill for 30 s.
//! Any error fails the run; it reports throughput, p50/p99 per operation,
//! and the daemon's and the tmux server's RSS at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::json;

use super::{call, d_create, rss_kib, time, DaemonGuard, Stats};

/// What the load is made of: per 100 requests.
const MIX: [(&str, u32); 6] =
    [("list", 5), ("get", 35), ("capture", 25), ("send", 25), ("create", 5), ("kill", 5)];

/// Shape of the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LoadOptions {
    /// Sessions present throughout.
    pub sessions: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// How long, s.
    pub secs: u64,
}

/// One operation under load.
#[derive(Debug, Clone, Serialize)]
pub struct OpLoad {
    /// Operation.
    pub op: String,
    /// Requests answered.
    pub requests: u64,
    /// Per second.
    pub rps: f64,
    /// Latency.
    pub stats: Stats,
}

/// Everything `--load` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The shape.
    pub options: LoadOptions,
    /// Errors (must be 0).
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Requests per second, all operations.
    pub rps: f64,
    /// Per operation.
    pub ops: Vec<OpLoad>,
    /// Daemon / tmux server VmRSS at the end, KiB.
    pub rss_kib: (u64, u64),
    /// Daemon / tmux server VmRSS before the load, KiB.
    pub rss_before_kib: (u64, u64),
    /// tmux servers (all of them together in the RSS figures).
    pub tmux_servers: usize,
    /// Sessions the daemon listed at the end.
    pub sessions_after: usize,
    /// Wall time of the load, s.
    pub elapsed_s: f64,
}

/// A small xorshift: the mix needs no quality, only no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn pick(r: u64) -> &'static str {
    let mut x = (r % 100) as u32;
    for (op, w) in MIX {
        if x < w {
            return op;
        }
        x -= w;
    }
    "get"
}

type Samples = BTreeMap<&'static str, Vec<Duration>>;

/// One client: requests until `end`; its samples and errors.
fn client(
    socket: &Path,
    ids: Arc<Vec<String>>,
    seed: u64,
    barrier: Arc<Barrier>,
    dur: Duration,
) -> Result<(Samples, Vec<String>)> {
    let mut c = ccmanagerd::client::Client::connect(socket, Some(Duration::from_secs(60)))?;
    let mut rng = Rng(seed | 1);
    let mut samples: Samples = BTreeMap::new();
    let mut errors = vec![];
    let mut mine: Vec<String> = vec![];
    barrier.wait();
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let mut op = pick(rng.next());
        // A client kills only what it created, and keeps a few at most.
        if op == "kill" && mine.is_empty() || op == "create" && mine.len() >= 4 {
            op = if op == "kill" { "create" } else { "kill" };
        }
        let id = ids[(rng.next() % ids.len() as u64) as usize].clone();
        let (t, r) = time(|| {
            Ok(match op {
                "list" => call(
                    &mut c,
                    "session.list",
                    json!({"fields": ["id", "name", "state", "pid", "last_activity_at"]}),
                )
                .map(drop),
                "get" => call(&mut c, "session.get", json!({"id": id})).map(drop),
                "capture" => call(&mut c, "session.capture", json!({"id": id})).map(drop),
                "send" => {
                    call(&mut c, "session.send", json!({"id": id, "text": "hello"})).map(drop)
                }
                "create" => d_create(&mut c, &["cat"]).map(|s| mine.push(s.name)),
                _ => {
                    let victim = mine.remove(0);
                    call(&mut c, "session.kill", json!({"id": victim})).map(drop)
                }
            })
        })?;
        match r {
            Ok(()) => samples.entry(op).or_default().push(t),
            Err(e) => errors.push(format!("{op}: {e:#}")),
        }
    }
    for victim in mine {
        call(&mut c, "session.kill", json!({"id": victim}))?;
    }
    Ok((samples, errors))
}

/// Runs the load scenario.
pub fn run(bin: &Path, o: LoadOptions, log: bool) -> Result<LoadReport> {
    let d = DaemonGuard::start(bin, o.sessions + o.clients * 8)?;
    if log {
        eprintln!("[bench] load: creating {} sessions of `cat`", o.sessions);
    }
    let mut c = d.client()?;
    let mut ids = Vec::with_capacity(o.sessions);
    for _ in 0..o.sessions {
        ids.push(d_create(&mut c, &["cat"])?.name);
    }
    std::thread::sleep(Duration::from_secs(1));
    let tmux_dir = d.dir.path().join("tmux");
    let rss_before_kib = (rss_kib(d.pid()), super::tmux_rss_kib(&tmux_dir).0);
    let ids = Arc::new(ids);
    let barrier = Arc::new(Barrier::new(o.clients + 1));
    let dur = Duration::from_secs(o.secs);
    if log {
        eprintln!("[bench] load: {} clients for {} s", o.clients, o.secs);
    }
    let handles: Vec<_> = (0..o.clients)
        .map(|i| {
            let (socket, ids, barrier) = (d.socket.clone(), ids.clone(), barrier.clone());
            std::thread::spawn(move || {
                client(&socket, ids, 0x9e37_79b9 * (i as u64 + 1), barrier, dur)
            })
        })
        .collect();
    barrier.wait();
    let t = Instant::now();
    let mut all: Samples = BTreeMap::new();
    let mut errors = vec![];
    for h in handles {
        let (s, e) = h.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        for (op, v) in s {
            all.entry(op).or_default().extend(v);
        }
        errors.extend(e);
    }
    let elapsed_s = t.elapsed().as_secs_f64().max(dur.as_secs_f64());
    let (tmux_rss, tmux_servers) = super::tmux_rss_kib(&tmux_dir);
    let rss_kib = (rss_kib(d.pid()), tmux_rss);
    let after = call(&mut c, "session.list", json!({"fields": ["id"]}))?;
    let sessions_after = after["sessions"].as_array().map(Vec::len).unwrap_or(0);
    let total: usize = all.values().map(Vec::len).sum();
    let ops = MIX
        .iter()
        .filter_map(|(op, _)| all.remove(op).map(|v| (op, v)))
        .map(|(op, v)| OpLoad {
            op: op.to_string(),
            requests: v.len() as u64,
            rps: v.len() as f64 / elapsed_s,
            stats: Stats::of(v),
        })
        .collect();
    let report = LoadReport {
        options: o,
        errors: errors.len() as u64,
        error_samples: errors.iter().take(5).cloned().collect(),
        rps: total as f64 / elapsed_s,
        ops,
        rss_kib,
        rss_before_kib,
        tmux_servers,
        sessions_after,
        elapsed_s,
    };
    if sessions_after != o.sessions {
        bail!("{} sessions listed after the load, expected {}", sessions_after, o.sessions);
    }
    Ok(report)
}

/// The human-readable table.
pub fn render(r: &LoadReport) -> String {
    let mut s = String::new();
    let o = &r.options;
    let _ = writeln!(
        s,
        "ccmanagerd load — {} sessions of `cat`, {} clients, {} s, {} cores: {} errors, {:.0} requests/s",
        o.sessions,
        o.clients,
        o.secs,
        super::cores(),
        r.errors,
        r.rps
    );
    for e in &r.error_samples {
        let _ = writeln!(s, "  error: {e}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| operation | requests | req/s | p50 | p99 |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for op in &r.ops {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} |",
            op.op,
            op.requests,
            op.rps,
            super::fmt_us(op.stats.p50_us),
            super::fmt_us(op.stats.p99_us)
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "RSS before / after the load: daemon {:.1} / {:.1} MiB, {} tmux servers together {:.1} / {:.1} MiB",
        r.rss_before_kib.0 as f64 / 1024.0,
        r.rss_kib.0 as f64 / 1024.0,
        r.tmux_servers,
        r.rss_before_kib.1 as f64 / 1024.0,
        r.rss_kib.1 as f64 / 1024.0
    );
    s
}
