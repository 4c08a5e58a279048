//! A config file: TOML text → `Config`, validation, the error's file, line
//! and key, and the round trip of a valid config (see
//! `ccmanagerd::fuzzing::check_config`). Non-UTF-8 input is what
//! `Config::load` refuses before parsing: skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        ccmanagerd::fuzzing::check_config(text);
    }
});
