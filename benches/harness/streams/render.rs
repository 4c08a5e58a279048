//! The `--streams` report as tables, each figure next to its target.

use std::fmt::Write as _;

use super::{Cpu, StreamsReport};

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn cpu(c: &Cpu) -> String {
    let o = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    format!("{:.2} / {} / {} / {}", c.tmux_s, o(c.logger_s), o(c.daemon_s), o(c.viewer_s))
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// The human-readable tables.
pub fn render(r: &StreamsReport) -> String {
    let mut s = String::new();
    let o = &r.options;
    let _ = writeln!(
        s,
        "ccmanagerd streams and logs — {} cores, {}, {:.0} MB of base64 lines per program, {} repetition(s){}",
        r.cores,
        r.tmux_version,
        r.bytes as f64 / 1e6,
        o.reps,
        if o.quick { " (QUICK mode: tiny counts, figures are not meaningful)" } else { "" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| path | MB/s median | best | each repetition | program's own MB/s | viewer bytes | CPU s per run: tmux server / logger / daemon / viewer |"
    );
    let _ = writeln!(s, "|---|---:|---:|---|---:|---:|---|");
    for t in &r.throughput {
        let each: Vec<String> = t.mb_s.iter().map(|v| format!("{v:.1}")).collect();
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {} | {:.1} | {} | {} |",
            t.path,
            t.median_mb_s,
            t.best_mb_s,
            each.join(", "),
            t.program_mb_s,
            t.viewer_bytes,
            cpu(&t.cpu),
        );
    }
    let _ = writeln!(s);
    for t in r.throughput.iter().filter(|t| t.notifications > 0) {
        let _ = writeln!(
            s,
            "{}: {} session.output notifications, {:.1} KiB each on average",
            t.path,
            t.notifications,
            t.viewer_bytes as f64 / t.notifications as f64 / 1024.0
        );
    }
    if let Some(x) = r.subscribe_vs_attach {
        let _ =
            writeln!(s, "subscribe / tmux attach: {x:.2}× (target >= 0.8: {})", verdict(x >= 0.8));
    }
    if let Some(x) = r.batched_vs_attach {
        let _ = writeln!(s, "subscribe with acks every 128 KiB / tmux attach: {x:.2}×");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| keystroke → echo | n | p50 | p99 |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for e in &r.echo {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            e.path,
            e.stats.n,
            fmt_us(e.stats.p50_us),
            fmt_us(e.stats.p99_us)
        );
    }
    if let Some(e) = r.echo.iter().find(|e| e.path.starts_with("session.write")) {
        let _ =
            writeln!(s, "\nsession.write echo p50 < 1 ms: {}", verdict(e.stats.p50_us < 1000.0));
    }
    let _ = writeln!(s);
    if let Some(l) = &r.logger {
        let _ = writeln!(
            s,
            "logger memory ({}), {} sessions ({} loggers, {} processes): PSS {:.0} KiB per session \
             (target < 256 KiB: {}), private {:.0} KiB (anonymous {:.0} KiB), RSS {:.0} KiB",
            l.program,
            l.sessions,
            l.loggers,
            l.total.processes,
            l.pss_kib_per_session,
            verdict(l.pss_kib_per_session < 256.0),
            l.private_kib_per_session,
            l.total.anon_kib as f64 / l.sessions as f64,
            l.total.rss_kib as f64 / l.sessions as f64
        );
    }
    let g = &r.logging;
    let _ = writeln!(
        s,
        "logging at full output{}: program {:.2} s with its logger vs {:.2} s with it stopped = \
         {:.2}× (target <= 1.3: {}; fastest runs {:.2}×); {:.2}× a bare tmux pane ({:.2} s); \
         logger CPU {} per run",
        if g.logger_on { "" } else { " (NO LOGGER: the daemon does not log)" },
        g.logged_s,
        g.unlogged_s,
        g.slowdown,
        if g.logger_on { verdict(g.slowdown <= 1.3) } else { "n/a" },
        g.slowdown_best,
        g.slowdown_vs_bare,
        g.bare_s,
        g.logger_cpu_s.map_or("n/a (no logger found)".into(), |c| format!("{c:.2} s")),
    );
    for m in &r.missing {
        let _ = writeln!(s, "NOT MEASURED: {m}");
    }
    let _ = writeln!(s, "total run time: {:.1} s", r.total_s);
    s
}
