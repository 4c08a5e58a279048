//! Bytes from tmux in control mode: `%begin`/`%end`/`%error` blocks and
//! notifications (`%output` escapes...), fed at once and cut into pieces
//! (see `ccmanagerd::fuzzing::check_control`).
//!
//! Input: one control byte (how many cuts), then the stream; the cuts are
//! spread over the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [n, stream @ ..] = data else { return };
    let len = stream.len().max(1);
    let cuts: Vec<usize> =
        (0..usize::from(*n % 16)).map(|i| (i * 7919 + usize::from(*n)) % len).collect();
    ccmanagerd::fuzzing::check_control(stream, &cuts);
});
