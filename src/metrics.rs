//! In-memory counters and histograms, rendered as Prometheus text by
//! `daemon.metrics`. Cheap to update from any task (a short mutex per update).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Default)]
struct MethodStats {
    requests: u64,
    errors: u64,
}

#[derive(Default)]
struct Inner {
    methods: BTreeMap<&'static str, MethodStats>,
    buckets: [u64; LATENCY_BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    reaped: BTreeMap<String, u64>,
    limit_rejections: BTreeMap<String, u64>,
    connections_rejected: u64,
    budget_hits: BTreeMap<&'static str, u64>,
}

/// Every budget, by the config key that sets it: listed at 0 until hit.
pub const BUDGETS: [&str; 6] = [
    "daemon.max_inflight_per_connection",
    "daemon.max_pending_reply_bytes",
    "daemon.write_timeout",
    "daemon.max_capture_bytes",
    "tmux.max_commands_in_flight",
    "tmux.max_capture_bytes_in_flight",
];

/// The daemon's counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Live output subscriptions (`session.subscribe`).
    pub streams: StreamCounters,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records one served request.
    pub fn request(&self, method: &'static str, ok: bool, took: Duration) {
        self.with(|m| {
            let s = m.methods.entry(method).or_default();
            s.requests += 1;
            if !ok {
                s.errors += 1;
            }
            let secs = took.as_secs_f64();
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    m.buckets[i] += 1;
                }
            }
            m.latency_count += 1;
            m.latency_sum += secs;
        });
    }

    /// Records a session removed by the reaper.
    pub fn reaped(&self, reason: &str) {
        self.with(|m| *m.reaped.entry(reason.to_string()).or_default() += 1);
    }

    /// Records a create refused by a limit.
    pub fn limit_rejected(&self, limit: &str) {
        self.with(|m| *m.limit_rejections.entry(limit.to_string()).or_default() += 1);
    }

    /// Records a connection refused (too many, or not allowed).
    pub fn connection_rejected(&self) {
        self.with(|m| m.connections_rejected += 1);
    }

    /// Records that a budget (named by its config key, see [`BUDGETS`])
    /// held something back: a request waited or was refused, a reply was
    /// cut, a connection was closed.
    pub fn budget_hit(&self, budget: &'static str) {
        self.with(|m| *m.budget_hits.entry(budget).or_default() += 1);
    }

    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.with(|m| {
            let _ = writeln!(out, "# HELP ccmanagerd_rpc_requests_total RPC requests served, by method.");
            let _ = writeln!(out, "# TYPE ccmanagerd_rpc_requests_total counter");
            for (method, s) in &m.methods {
                let _ = writeln!(out, "ccmanagerd_rpc_requests_total{{method=\"{method}\"}} {}", s.requests);
            }
            let _ = writeln!(out, "# HELP ccmanagerd_rpc_errors_total RPC requests answered with an error, by method.");
            let _ = writeln!(out, "# TYPE ccmanagerd_rpc_errors_total counter");
            for (method, s) in &m.methods {
                let _ = writeln!(out, "ccmanagerd_rpc_errors_total{{method=\"{method}\"}} {}", s.errors);
            }
            let _ = writeln!(out, "# HELP ccmanagerd_rpc_duration_seconds RPC request latency.");
            let _ = writeln!(out, "# TYPE ccmanagerd_rpc_duration_seconds histogram");
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "ccmanagerd_rpc_duration_seconds_bucket{{le=\"{bound}\"}} {}", m.buckets[i]);
            }
            let _ = writeln!(out, "ccmanagerd_rpc_duration_seconds_bucket{{le=\"+Inf\"}} {}", m.latency_count);
            let _ = writeln!(out, "ccmanagerd_rpc_duration_seconds_sum {}", m.latency_sum);
            let _ = writeln!(out, "ccmanagerd_rpc_duration_seconds_count {}", m.latency_count);
            let _ = writeln!(out, "# HELP ccmanagerd_sessions_reaped_total Sessions removed by cleanup, by reason.");
            let _ = writeln!(out, "# TYPE ccmanagerd_sessions_reaped_total counter");
            for reason in ["max_age", "idle", "exited"] {
                let n = m.reaped.get(reason).copied().unwrap_or(0);
                let _ = writeln!(out, "ccmanagerd_sessions_reaped_total{{reason=\"{reason}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP ccmanagerd_limit_rejections_total Creates refused by a limit, by limit.");
            let _ = writeln!(out, "# TYPE ccmanagerd_limit_rejections_total counter");
            for (limit, n) in &m.limit_rejections {
                let _ = writeln!(out, "ccmanagerd_limit_rejections_total{{limit=\"{limit}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP ccmanagerd_connections_rejected_total Connections refused.");
            let _ = writeln!(out, "# TYPE ccmanagerd_connections_rejected_total counter");
            let _ = writeln!(out, "ccmanagerd_connections_rejected_total {}", m.connections_rejected);
            let _ = writeln!(out, "# HELP ccmanagerd_budget_hits_total Times a budget held something back (a request waited or was refused, a capture was cut, a connection closed), by the config key that sets it.");
            let _ = writeln!(out, "# TYPE ccmanagerd_budget_hits_total counter");
            let others = m.budget_hits.keys().filter(|b| !BUDGETS.contains(b)).copied();
            for budget in BUDGETS.into_iter().chain(others) {
                let n = m.budget_hits.get(budget).copied().unwrap_or(0);
                let _ = writeln!(out, "ccmanagerd_budget_hits_total{{budget=\"{budget}\"}} {n}");
            }
        });
        self.streams.render(out);
    }
}

/// The counters of live output subscriptions: lock-free, as they change
/// with every chunk sent.
#[derive(Default)]
pub struct StreamCounters {
    open: std::sync::atomic::AtomicI64,
    bytes: std::sync::atomic::AtomicU64,
    resets: std::sync::atomic::AtomicU64,
}

impl StreamCounters {
    /// A subscription opened (+1) or ended (-1).
    pub fn open(&self, delta: i64) {
        self.open.fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of output sent in `session.output` notifications.
    pub fn sent(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// A `session.reset` was sent.
    pub fn reset(&self) {
        self.resets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let _ =
            writeln!(out, "# HELP ccmanagerd_stream_subscriptions Live output subscriptions open.");
        let _ = writeln!(out, "# TYPE ccmanagerd_stream_subscriptions gauge");
        let _ = writeln!(out, "ccmanagerd_stream_subscriptions {}", self.open.load(Relaxed).max(0));
        let _ = writeln!(out, "# HELP ccmanagerd_stream_bytes_total Output bytes sent to subscribers (before base64).");
        let _ = writeln!(out, "# TYPE ccmanagerd_stream_bytes_total counter");
        let _ = writeln!(out, "ccmanagerd_stream_bytes_total {}", self.bytes.load(Relaxed));
        let _ = writeln!(out, "# HELP ccmanagerd_stream_resets_total session.reset notifications sent (a subscriber behind the log's cap, or a gap).");
        let _ = writeln!(out, "# TYPE ccmanagerd_stream_resets_total counter");
        let _ = writeln!(out, "ccmanagerd_stream_resets_total {}", self.resets.load(Relaxed));
    }
}
