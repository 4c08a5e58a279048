//! Bytes from a client, as the daemon reads them: the line framing with its
//! size cap over arbitrary read boundaries, the JSON-RPC envelope, the typed
//! params, the replies (see `ccmanagerd::fuzzing::check_framing`).
//!
//! Input: two control bytes (the cap: 1..=256 bytes, or 4096 when the first
//! byte is 0; the buffer size), then the stream. The read sizes come from
//! the stream's own length, so the same input is cut differently from the
//! reference (one read).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [cap, capacity, stream @ ..] = data else { return };
    let max = if *cap == 0 { 4096 } else { usize::from(*cap) };
    let reads = [1 + stream.len() % 7, 3, 1 + stream.len() % 13, 64];
    ccmanagerd::fuzzing::check_framing(stream, max, usize::from(*capacity), &reads);
    // Whole, without framing: every message the cap lets through.
    ccmanagerd::fuzzing::check_message(stream);
});
