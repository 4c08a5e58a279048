//! Session output for the log and stream tests: deterministic terminal
//! bytes, a program that prints a file on a raw tty, base64 both ways.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use super::daemon::TestDaemon;

/// Deterministic pseudo-random bytes: printable runs, UTF-8 characters
/// (split across reads wherever they fall), escape sequences, and every
/// control byte 0x00-0x1f.
pub fn terminal_data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const UTF8: [&str; 5] = ["é", "€", "中文", "😀", "ß"];
    const ESC: [&[u8]; 7] = [
        b"\x1b[31m",
        b"\x1b[0m",
        b"\x1b[2J\x1b[H",
        b"\x1b]0;title\x07",
        b"\x1b[?25l",
        b"\x1b[?25h",
        b"\x1b[10;20H",
    ];
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let r = next();
        match r % 8 {
            0..=3 => {
                let n = 1 + (r >> 8) as usize % 120;
                out.extend((0..n).map(|i| b' ' + ((r >> (i % 50)) as u8 % 95)));
            }
            4 => out.extend_from_slice(UTF8[(r >> 8) as usize % UTF8.len()].as_bytes()),
            5 => out.extend_from_slice(ESC[(r >> 8) as usize % ESC.len()]),
            6 => out.push((r >> 8) as u8 % 0x20),
            _ => out.extend_from_slice(b"\r\n"),
        }
    }
    out.truncate(len);
    out
}

/// `sh -c` that puts the tty in raw mode (no output processing, no echo),
/// prints `file`, then runs `then` (e.g. `sleep 600`, `exit 7`).
pub fn cat_raw(file: &Path, then: &str) -> Value {
    json!(["sh", "-c", format!("stty raw -echo -opost; cat '{}'; {then}", file.display())])
}

/// Creates a session running `command`; its id.
pub fn create(d: &TestDaemon, command: Value) -> String {
    d.ok("session.create", json!({"command": command}))["id"].as_str().unwrap().to_string()
}

/// The bytes of a base64 string member.
pub fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64 string")).unwrap()
}

/// `bytes` as base64.
pub fn b64e(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
