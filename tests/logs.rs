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

use serde_json::{json, Value};

use ccmanagerd::logs::format::Kind;
use ccmanagerd::logs::Log;
use common::daemon::TestDaemon;
use common::output::{b64, cat_raw, create, terminal_data};
use common::wait::{eventually, WAIT};

/// Generous: 20 MiB through tmux on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(180);

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
    // Asking past the end gives the end in the error.
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
    let id = create(&d, cat_raw(&file, "sleep 600"));
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

/// Lines `0..n` printed at `per_sec`, then the program waits.
fn counting(n: u32, sleep: &str) -> Value {
    json!(["sh", "-c", format!("stty raw -echo -opost; i=0; while [ $i -lt {n} ]; do printf 'line %05d\\n' $i; i=$((i+1)); sleep {sleep}; done; sleep 600")])
}

fn counted(n: u32) -> Vec<u8> {
    (0..n).flat_map(|i| format!("line {i:05}\n").into_bytes()).collect()
}

#[test]
fn output_while_the_daemon_is_down_is_in_the_log() {
    let mut d = TestDaemon::start("");
    let n = 300;
    let id = create(&d, counting(n, "0.01"));
    eventually(WAIT, "some output", || (log_end(&d, &id) > 200).then_some(()));
    d.kill9();
    // The logger is a child of the tmux server: it keeps logging.
    let dir = log_dir(&d, &id);
    let before = Log::open(&dir).unwrap().extent().unwrap().end;
    eventually(WAIT, "the log to grow while the daemon is down", || {
        (Log::open(&dir).unwrap().extent().unwrap().end > before + 100).then_some(())
    });
    d.restart();
    let want = counted(n);
    wait_end(&d, &id, want.len() as u64, LONG);
    let (first, got) = read_all(&d, &id, 0);
    assert_eq!(first, 0);
    assert!(got == want, "byte-exact across a daemon SIGKILL:\n{}", String::from_utf8_lossy(&got));
    // Reading on from an offset taken before the crash gives the rest exactly.
    let (from, rest) = read_all(&d, &id, before);
    assert_eq!((from, &rest[..]), (before, &want[before as usize..]));
}

#[test]
fn a_killed_sessions_log_stays_readable_by_its_owner_only() {
    let Some(users) =
        common::users::users_or_skip("a_killed_sessions_log_stays_readable_by_its_owner_only")
    else {
        return;
    };
    let d = TestDaemon::start_shared(&[users.a.uid, users.b.uid], "");
    let a = common::caller::as_user(&d, &users.a);
    let b = common::caller::as_user(&d, &users.b);
    let s = a.create(json!({"command": ["sh", "-c", "printf 'secret of a'; sleep 600"]}));
    let id = common::caller::sid(&s).to_string();
    eventually(WAIT, "a's output in the log", || {
        let r = a.ok("session.read", json!({"id": id}));
        (b64(&r["data"]) == b"secret of a").then_some(())
    });
    let meta = std::fs::metadata(log_dir(&d, &id)).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (users.a.uid, 0o700));
    // Another user: not found (not even "forbidden"), live or killed.
    let e = b.err("session.read", json!({"id": id}));
    assert!(e.to_string().contains("not found"), "{e}");
    // Nor through the filesystem.
    let out = users
        .b
        .command("cat")
        .arg(log_dir(&d, &id).join("00000000000000000000.log"))
        .output()
        .unwrap();
    assert!(!out.status.success() && out.stdout.is_empty());
    a.ok("session.kill", json!({"id": id}));
    let r = a.ok("session.read", json!({"id": id}));
    assert_eq!(b64(&r["data"]), b"secret of a");
    assert_eq!(r["end"], true);
    let r = common::caller::as_root(&d).ok("session.read", json!({"id": id}));
    assert_eq!(b64(&r["data"]), b"secret of a", "an admin reads it too");
    let e = b.err("session.read", json!({"id": id}));
    assert!(e.to_string().contains("not found"), "{e}");
    // The pane is gone: the logger saw EOF and closed the log.
    eventually(WAIT, "the eof record", || {
        Log::open(&log_dir(&d, &id)).unwrap().extent().unwrap().closed.then_some(())
    });
}

#[test]
fn the_caps_hold_on_disk_and_keep_the_newest_bytes() {
    let d = TestDaemon::start(
        "[logs]\nmax_bytes_per_session = \"1M\"\nmax_bytes_total = \"3M\"\n[cleanup]\ninterval = \"1s\"\n",
    );
    let len = 5 << 20;
    let mut sessions = Vec::new();
    for seed in 1..=4u64 {
        let data = terminal_data(len, seed);
        let file = d.dir.path().join(format!("data{seed}.bin"));
        std::fs::write(&file, &data).unwrap();
        sessions.push((create(&d, cat_raw(&file, "sleep 600")), data));
    }
    for (id, data) in &sessions {
        wait_end(&d, id, data.len() as u64, LONG);
        let used = du(&log_dir(&d, id));
        eprintln!("session {id}: {used} bytes on disk (du)");
        assert!(used <= 1 << 20, "logs.max_bytes_per_session: {used} bytes on disk");
    }
    let root = d.dir.path().join("state/logs");
    let total = eventually(WAIT, "the total cap to be enforced", || {
        let used = du(&root);
        (used <= (3 << 20) + 4096).then_some(used)
    });
    eprintln!("all logs: {total} bytes on disk (du), cap 3 MiB");
    for (id, data) in &sessions {
        let (first, got) = read_all(&d, id, 0);
        assert!(first > 0 && !got.is_empty(), "{id}: kept [{first}, ...)");
        assert!(got[..] == data[first as usize..], "{id}: the newest bytes, exactly");
    }
    let metrics = d.ok("daemon.metrics", json!({}));
    let text = metrics["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("ccmanagerd_log_segments_dropped_total"), "{text}");
    let health = d.ok("health.check", json!({}));
    let disk =
        health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "disk").unwrap().clone();
    assert_eq!(disk["log_max_bytes_total"], 3 << 20, "{disk}");
    assert!(disk["detail"].as_str().unwrap().contains("session logs use"), "{disk}");
}

#[test]
fn adoption_pipes_an_unpiped_pane_after_a_gap() {
    let d = TestDaemon::start("");
    let id = create(
        &d,
        json!([
            "sh",
            "-c",
            "stty -echo -opost; printf one; read x; printf two; read y; printf three; sleep 600"
        ]),
    );
    wait_end(&d, &id, 3, WAIT);
    let target = format!("=ccmanager_sess_{id}:");
    // Closing the pipe from outside: the logger sees EOF.
    let out = d.tmux(&["pipe-pane", "-t", &target]);
    assert!(out.status.success(), "{out:?}");
    let dir = log_dir(&d, &id);
    eventually(WAIT, "the eof record", || {
        Log::open(&dir).unwrap().extent().unwrap().closed.then_some(())
    });
    d.ok("session.send", json!({"id": id, "text": "x", "enter": true}));
    // The supervisor's next full refresh (health.interval = 1s) pipes it again.
    eventually(WAIT, "a new pipe", || {
        let out = d.tmux(&["display-message", "-p", "-t", &target, "#{pane_pipe}"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
    });
    d.ok("session.send", json!({"id": id, "text": "y", "enter": true}));
    eventually(WAIT, "three in the log", || {
        let (_, all) = read_all_gapped(&d, &id);
        all.ends_with(b"three").then_some(())
    });
    let log = Log::open(&dir).unwrap();
    assert_eq!(log.segments().unwrap(), [0, 3], "a new segment where the old logger stopped");
    let gap = log.index(3).unwrap()[0];
    assert_eq!(
        (gap.kind, gap.offset),
        (Kind::Gap, 3),
        "the gap is marked where the pipe was missing"
    );
    let (_, after) = read_all(&d, &id, 3);
    assert!(after == b"twothree" || after == b"three", "{:?}", String::from_utf8_lossy(&after));
    assert!(d.log_text().contains("logging the output of a pane that had no logger"));
}

/// Every byte the log holds, across gaps.
fn read_all_gapped(d: &TestDaemon, id: &str) -> (u64, Vec<u8>) {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        let r = d.ok("session.read", json!({"id": id, "offset": at}));
        out.extend(b64(&r["data"]));
        if r["end"] == true {
            return (r["first_offset"].as_u64().unwrap(), out);
        }
        at = r["next_offset"].as_u64().unwrap();
    }
}

#[test]
fn planted_links_and_fifos_are_never_followed_or_waited_on() {
    let Some(users) =
        common::users::users_or_skip("planted_links_and_fifos_are_never_followed_or_waited_on")
    else {
        return;
    };
    let d = TestDaemon::start_shared(
        &[users.a.uid],
        "[cleanup]\ninterval = \"1s\"\nexited_grace = \"2s\"\n[logs]\nmax_bytes_per_session = \"1M\"\nmax_bytes_total = \"1M\"\n",
    );
    let a = common::caller::as_user(&d, &users.a);
    let s = a.create(json!({"command": ["sh", "-c", "printf mine; sleep 600"]}));
    let id = common::caller::sid(&s).to_string();
    let dir = log_dir(&d, &id);
    eventually(WAIT, "the log", || (log_end(&d, &id) == 4).then_some(()));
    // Root's files the owner points at.
    let secret_dir = d.dir.path().join("root-only");
    std::fs::create_dir(&secret_dir).unwrap();
    let secret = secret_dir.join("secret");
    std::fs::write(&secret, b"root's secret").unwrap();
    let plant = |args: &[&str]| {
        let out = users.a.command(args[0]).args(&args[1..]).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let at = |name: &str| dir.join(name).display().to_string();
    // A FIFO as the newest segment: an error at once, never a hang.
    plant(&["mkfifo", &at("00000000000000000100.log")]);
    plant(&["mkfifo", &at("00000000000000000100.idx")]);
    let t = Instant::now();
    let e = a.err("session.read", json!({"id": id}));
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    plant(&["rm", &at("00000000000000000100.log")]);
    // A link as the newest segment, and as an older one: never followed.
    plant(&["ln", "-s", &secret.display().to_string(), &at("00000000000000000100.log")]);
    plant(&["ln", "-s", &secret.display().to_string(), &at("00000000000000000001.log")]);
    let e = a.err("session.read", json!({"id": id}));
    assert!(!e.to_string().contains("secret"), "{e}");
    let e = common::caller::as_root(&d).err("session.read", json!({"id": id}));
    assert!(!e.to_string().contains("root's"), "{e}");
    plant(&["ln", "-s", &secret_dir.display().to_string(), &at("subdir")]);
    // The passes (total cap, orphan removal) run meanwhile; the daemon
    // still answers, and removes the killed session's log without
    // following anything in it.
    a.ok("session.kill", json!({"id": id}));
    eventually(WAIT, "the orphan log to be removed", || (!dir.exists()).then_some(()));
    assert_eq!(std::fs::read(&secret).unwrap(), b"root's secret", "the link's target is untouched");
    d.ok("daemon.ping", json!({}));
}

#[test]
fn a_write_error_drops_bytes_records_the_gap_and_never_stalls() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::daemon::bin("ccmanagerd"));
    child.args(["__log", "--dir"]).arg(dir.path()).args(["--cap", "16777216"]);
    child.stdin(std::process::Stdio::piped());
    // Every file may hold 300000 bytes: writes past that fail (EFBIG).
    unsafe {
        child.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: 300_000, rlim_max: 300_000 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = child.spawn().unwrap();
    let data = terminal_data(3 << 20, 9);
    let t = Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // past the retry pause
    stdin.write_all(&data[1 << 20..]).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    eprintln!("3 MiB through a logger that cannot write most of it: {:?}", t.elapsed());
    let log = Log::open(dir.path()).unwrap();
    let e = log.extent().unwrap();
    assert_eq!(
        (e.first, e.end, e.closed),
        (0, data.len() as u64, true),
        "offsets count every byte"
    );
    let segs = log.segments().unwrap();
    assert_eq!(segs[0], 0);
    assert!(segs.len() >= 2, "a new segment after the failure: {segs:?}");
    let gap = log.index(segs[1]).unwrap()[0];
    assert_eq!(gap.kind, Kind::Gap);
    assert_eq!(gap.lost, segs[1] - 300_000, "the gap says how many bytes were lost");
    let c = log.read(0, 1 << 20).unwrap();
    assert!(c.data[..] == data[..300_000]);
    let c = log.read(300_000, 1 << 20).unwrap();
    assert_eq!(c.offset, segs[1], "reading skips the gap");
    assert!(c.data[..] == data[segs[1] as usize..segs[1] as usize + c.data.len()]);
}
