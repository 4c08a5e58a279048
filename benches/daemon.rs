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
