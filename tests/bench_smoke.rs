//! Runs the benchmark harness in `--quick` mode so it cannot rot; the real
//! benchmark is `cargo bench --bench daemon` (too slow and noisy for CI).

#[path = "../benches/harness/mod.rs"]
mod harness;

use std::path::Path;

#[test]
fn bench_harness_quick_mode_reports_every_figure() {
    let opts = harness::Options::parse(["--quick".to_string()]).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_ccmanagerd"));
    let r = harness::run(bin, &opts, false).expect("quick benchmark run");
    let table = harness::render(&r);
    println!("{table}");
    assert!(r.cores >= 1);
    assert!(r.tmux_version.starts_with("tmux"), "{}", r.tmux_version);
    let ops: Vec<&str> = r.ops.iter().map(|o| o.op.as_str()).collect();
    for op in ["create", "capture visible", "capture 1000 lines", "send", "list 10", "kill"] {
        assert!(ops.contains(&op), "missing {op} in {ops:?}");
    }
    for o in &r.ops {
        for (path, s) in
            [("daemon", &o.daemon), ("per-command", &o.per_command), ("control", &o.control_mode)]
        {
            assert!(s.n > 0 && s.p50_us > 0.0 && s.p99_us >= s.p50_us, "{} {path}: {s:?}", o.op);
        }
        assert!(o.ratio_daemon_per_command > 0.0 && o.ratio_daemon_control_mode > 0.0);
    }
    assert_eq!(r.throughput.len(), 6);
    for t in &r.throughput {
        assert!(t.requests > 0 && t.rps > 0.0 && t.p99_us > 0.0, "{t:?}");
    }
    let e = &r.exits;
    assert!(e.sessions == 5 && e.visible.n == 5 && e.visible.p50_us > 0.0, "{e:?}");
    assert!(e.wrapper_pss_kib > 0, "{e:?}");
    let sc = &r.scale;
    assert_eq!(sc.sessions, 10);
    assert!(sc.create_all_s > 0.0 && sc.create_all_control_mode_s > 0.0);
    assert!(sc.rss.iter().any(|x| x.sessions == 0) && sc.rss.iter().any(|x| x.sessions == 10));
    // No session, no tmux server (servers start with their uid's first session).
    assert!(
        sc.rss.iter().all(|x| x.daemon_rss_kib > 0 && (x.tmux_rss_kib > 0) == (x.sessions > 0)),
        "{:?}",
        sc.rss
    );
    assert!(sc.idle_cpu_percent >= 0.0);
    assert!(sc.ready_s > 0.0 && sc.readopted_s >= sc.ready_s);
    assert_eq!(sc.readopted, 10);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["ops"].as_array().is_some_and(|a| !a.is_empty()));
}

#[test]
fn streams_quick_mode_reports_every_figure() {
    let opts = harness::streams::StreamsOptions::quick();
    let bin = Path::new(env!("CARGO_BIN_EXE_ccmanagerd"));
    let r = harness::streams::run(bin, &opts, false).expect("quick streams run");
    println!("{}", harness::streams::render(&r));
    assert!(r.missing.is_empty(), "paths that could not run: {:#?}", r.missing);
    let paths: Vec<&str> = r.throughput.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(paths.len(), 6, "{paths:?}");
    for t in &r.throughput {
        assert!(t.median_mb_s > 0.0 && t.program_mb_s > 0.0, "{t:?}");
    }
    for sub in r.throughput.iter().filter(|t| t.path.starts_with("session.subscribe")) {
        // Every byte the program printed came through the subscription.
        assert!(sub.viewer_bytes >= r.bytes, "{} of {} bytes", sub.viewer_bytes, r.bytes);
        assert!(sub.notifications > 0, "{sub:?}");
    }
    assert!(r.subscribe_vs_attach.is_some_and(|x| x > 0.0));
    assert_eq!(r.echo.len(), 3);
    for e in &r.echo {
        assert!(e.stats.n == opts.echoes && e.stats.p50_us > 0.0, "{e:?}");
    }
    let l = r.logger.as_ref().expect("logger memory");
    assert_eq!(l.loggers, opts.sessions, "{l:?}");
    assert!(l.pss_kib_per_session > 0.0, "{l:?}");
    let g = &r.logging;
    assert!(g.logger_on && g.logger_cpu_s.is_some(), "{g:?}");
    assert!(g.bare_s > 0.0 && g.unlogged_s > 0.0 && g.logged_s > 0.0, "{g:?}");
}

#[test]
fn streams_flags_parse() {
    let args = ["--streams", "--quick", "--streams-mb", "3"].map(String::from);
    let s = harness::Options::parse(args).unwrap().streams.expect("--streams");
    // Quick sizes, except the one given.
    assert!(s.quick && s.mb == 3 && s.reps == 1 && s.sessions == 3, "{s:?}");
    let full = harness::Options::parse(["--streams".to_string()]).unwrap().streams.unwrap();
    assert!(!full.quick && full.mb == 50 && full.reps == 5, "{full:?}");
    assert!(harness::Options::parse(["--streams-mb".to_string()]).is_err());
}
