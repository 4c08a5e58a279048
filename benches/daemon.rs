//! `cargo bench --bench daemon -- [--sessions N] [--json] [--quick]`: see
//! docs/performance.md and benches/harness/mod.rs.

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
