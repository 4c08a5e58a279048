//! Session output logs through the real daemon and real tmux: every byte a
//! pane prints is in the log (`session.read`), byte for byte, while the
//! daemon is down too; the caps hold on disk; logs outlive their session;
//! adoption taps unpiped panes with a gap; an owner's planted files are
//! never followed; other users cannot read a log.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use ccmanagerd::logs::format::Kind;
use ccmanagerd::logs::Log;
use common::daemon::TestDaemon;
use common::wait::{eventually, WAIT};

/// Generous: 20 MiB through tmux on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(180);

/// Deterministic pseudo-random bytes: printable runs, UTF-8 characters
/// (split across reads wherever they fall), escape sequences, and every
/// control byte 0x00-0x1f.
fn terminal_data(len: usize, seed: u64) -> Vec<u8> {
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

/// `sh -c` that puts the tty in raw mode (no output processing, no echo)
/// and prints `file`.
fn cat_raw(file: &Path) -> Value {
    json!(["sh", "-c", format!("stty raw -echo -opost; cat '{}'; sleep 600", file.display())])
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64 string")).unwrap()
}

/// Reads the whole log of `id` from `from`: (offset of the first byte, bytes).
fn read_all(d: &TestDaemon, id: &str, from: u64) -> (u64, Vec<u8>) {
    let mut at = from;
    let mut start = None;
    let mut out = Vec::new();
    loop {
        let r = d.ok("session.read", json!({"id": id, "offset": at, "max_bytes": 1 << 20}));
        let off = r["offset"].as_u64().unwrap();
        start.get_or_insert(off);
        assert_eq!(off, start.unwrap() + out.len() as u64, "contiguous: no gap expected");
        out.extend(b64(&r["data"]));
        assert_eq!(r["next_offset"].as_u64().unwrap(), off + b64(&r["data"]).len() as u64);
        if r["end"] == true {
            return (start.unwrap(), out);
        }
        at = r["next_offset"].as_u64().unwrap();
    }
}

/// The end of `id`'s log (where the next byte will go).
fn log_end(d: &TestDaemon, id: &str) -> u64 {
    let r = d.ok("session.read", json!({"id": id, "offset": 0, "max_bytes": 0}));
    // max_bytes 0 reads nothing; find the end by asking past it.
    let _ = r;
    let e = d.call("session.read", json!({"id": id, "offset": u64::MAX})).unwrap_err();
    let text = e.to_string();
    let end = text.rsplit('(').next().and_then(|t| t.split(')').next()).unwrap_or("");
    end.parse().unwrap_or_else(|_| panic!("no end in {text}"))
}

fn wait_end(d: &TestDaemon, id: &str, end: u64, within: Duration) {
    eventually(within, &format!("the log of {id} to reach {end} bytes"), || {
        let now = log_end(d, id);
        assert!(now <= end, "the log holds {now} bytes, more than the {end} printed");
        (now == end).then_some(())
    });
}

fn log_dir(d: &TestDaemon, id: &str) -> PathBuf {
    d.dir.path().join("state/logs").join(id)
}

fn create(d: &TestDaemon, command: Value) -> String {
    let s = d.ok("session.create", json!({"command": command}));
    s["id"].as_str().unwrap().to_string()
}

/// `du --block-size=1 -s PATH`: what the filesystem allocated.
fn du(path: &Path) -> u64 {
    let out = Command::new("du").args(["-s", "--block-size=1"]).arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn twenty_mib_of_terminal_bytes_read_back_exactly() {
    let d = TestDaemon::start("");
    let data = terminal_data(20 << 20, 0x5eed);
    let file = d.dir.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let started = Instant::now();
    let id = create(&d, cat_raw(&file));
    wait_end(&d, &id, data.len() as u64, LONG);
    let printed = started.elapsed();
    let started = Instant::now();
    let (first, got) = read_all(&d, &id, 0);
    assert_eq!(first, 0);
    assert_eq!(got.len(), data.len());
    let bad = got.iter().zip(&data).position(|(a, b)| a != b);
    assert!(bad.is_none(), "first difference at byte {bad:?}");
    eprintln!(
        "20 MiB printed and logged in {printed:?}; read back in {:?} (1 MiB reads)",
        started.elapsed()
    );
    // The log directory is the session user's alone.
    let meta = std::fs::metadata(log_dir(&d, &id)).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
}

#[test]
fn read_params_are_checked() {
    let d = TestDaemon::start("");
    let id = create(&d, json!(["sh", "-c", "printf hello; sleep 600"]));
    wait_end(&d, &id, 5, WAIT);
    let r = d.ok("session.read", json!({"id": id}));
    assert_eq!(b64(&r["data"]), b"hello");
    assert_eq!((r["offset"].as_u64(), r["next_offset"].as_u64()), (Some(0), Some(5)));
    assert_eq!((r["first_offset"].as_u64(), r["end"].as_bool()), (Some(0), Some(true)));
    let r = d.ok("session.read", json!({"id": id, "offset": 1, "max_bytes": 2}));
    assert_eq!((b64(&r["data"]), r["end"].as_bool()), (b"el".to_vec(), Some(false)));
    let e = d.call("session.read", json!({"id": id, "max_bytes": (1 << 20) + 1})).unwrap_err();
    assert!(e.to_string().contains("max_bytes") && e.to_string().contains("1048576"), "{e}");
    let e = d.call("session.read", json!({"id": id, "offset": 6})).unwrap_err();
    assert!(e.to_string().contains("past the end of the log (5)"), "{e}");
    let e = d.call("session.read", json!({"id": "nosuchid"})).unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
}
