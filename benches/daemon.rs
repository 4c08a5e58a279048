//! `cargo bench --bench daemon -- [--sessions N] [--json] [--quick]`, or
//! `-- --scale N`, or `-- --load`, or `-- --streams`: see docs/performance.md and
//! benches/harness/.

mod harness;

use std::path::Path;

fn main() {
    let opts = match harness::Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    // Interrupted: Drop guards do not run, so kill what the harness made.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .expect("signal handler");
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("[bench] signal {sig}: cleaning up");
            harness::cleanup_now();
            std::process::exit(128 + sig);
        }
    });
    let bin = Path::new(env!("CARGO_BIN_EXE_ccmanagerd"));
    if let Some(n) = opts.scale {
        return finish(harness::scale::run(bin, n, true), harness::scale::render, opts.json);
    }
    if let Some(streams) = opts.streams {
        return finish(
            harness::streams::run(bin, &streams, true),
            harness::streams::render,
            opts.json,
        );
    }
    if let Some(load) = opts.load {
        return finish(harness::load::run(bin, load, true), harness::load::render, opts.json);
    }
    match harness::run(bin, &opts, true) {
        Ok(report) => {
            println!("{}", harness::render(&report));
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("serialize report"));
            }
        }
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints a scenario's report (and its JSON), or the error and exits 1.
fn finish<R: serde::Serialize>(r: anyhow::Result<R>, render: fn(&R) -> String, json: bool) {
    match r {
        Ok(report) => {
            println!("{}", render(&report));
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("serialize report"));
            }
        }
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            harness::cleanup_now();
            std::process::exit(1);
        }
    }
}
