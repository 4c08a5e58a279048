//! Live streams through the real daemon and real tmux: `session.subscribe`
//! reproduces a session's output byte for byte (across a daemon SIGKILL,
//! for 100 sessions at once), holds nothing for a viewer that never
//! acknowledges, resets a viewer behind the log's cap; `session.write`
//! types every byte value into a raw tty; the first notification never
//! precedes the subscribe reply.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::daemon::TestDaemon;
use common::output::{b64, b64e, cat_raw, create, terminal_data as data};
use common::wait::{eventually, WAIT};

/// Generous: megabytes through tmux on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(240);

/// FNV-1a, to print a short fingerprint of what was compared.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// A connection that tells replies from notifications.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    notes: VecDeque<Value>,
    /// Ids of acks sent without waiting for their replies.
    acks: usize,
}

impl Conn {
    fn open(d: &TestDaemon) -> Conn {
        let s = UnixStream::connect(&d.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            next_id: 1,
            notes: VecDeque::new(),
            acks: 0,
        }
    }

    fn line(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read");
        assert!(n > 0, "the daemon closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"))
    }

    fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.writer.write_all(format!("{msg}\n").as_bytes()).unwrap();
        id
    }

    /// A line that is not the reply to an ack.
    fn next(&mut self) -> Value {
        loop {
            let v = self.line();
            if v.get("method").is_none() && v["id"].as_str() == Some("ack") {
                assert!(v.get("error").is_none(), "ack refused: {v}");
                self.acks -= 1;
                continue;
            }
            return v;
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send(method, params);
        loop {
            let v = self.next();
            if v.get("method").is_some() {
                self.notes.push_back(v);
                continue;
            }
            assert_eq!(v["id"], json!(id), "replies in order: {v}");
            return match v.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(v["result"].clone()),
            };
        }
    }

    fn note(&mut self) -> Value {
        if let Some(v) = self.notes.pop_front() {
            return v;
        }
        let v = self.next();
        assert!(v.get("method").is_some(), "expected a notification: {v}");
        v
    }

    /// Whether nothing arrives for `within`.
    fn quiet(&mut self, within: Duration) -> bool {
        self.writer.set_read_timeout(Some(within)).unwrap();
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        self.writer.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        match got {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            other => panic!("expected nothing, got {other:?}: {line:?}"),
        }
    }

    /// Acknowledges without waiting for the reply.
    fn ack(&mut self, sub: u64, offset: u64) {
        let msg = json!({"jsonrpc": "2.0", "id": "ack", "method": "session.ack",
            "params": {"subscription": sub, "offset": offset}});
        self.writer.write_all(format!("{msg}\n").as_bytes()).unwrap();
        self.acks += 1;
    }
}

/// What a subscription delivered.
#[derive(Debug, Default)]
struct Got {
    bytes: Vec<u8>,
    /// Offset just past the last byte.
    next: u64,
    exit: Option<Value>,
    resets: Vec<(u64, Vec<u8>)>,
}

/// Follows subscription `sub` from `from`, acknowledging every output,
/// until `want` bytes came (or the exit).
fn follow(c: &mut Conn, sub: u64, from: u64, want: usize) -> Got {
    let mut got = Got { next: from, ..Got::default() };
    while got.bytes.len() < want && got.exit.is_none() {
        let n = c.note();
        let p = &n["params"];
        assert_eq!(p["subscription"], json!(sub), "{n}");
        match n["method"].as_str().unwrap() {
            "session.output" => {
                assert_eq!(p["offset"], json!(got.next), "contiguous output");
                let data = b64(&p["data"]);
                assert!(!data.is_empty() && data.len() <= 64 << 10, "{} bytes", data.len());
                got.next += data.len() as u64;
                got.bytes.extend(data);
                c.ack(sub, got.next);
            }
            "session.reset" => {
                let offset = p["offset"].as_u64().unwrap();
                got.resets.push((offset, b64(&p["screen"])));
                got.next = offset;
            }
            "session.exit" => got.exit = Some(p.clone()),
            other => panic!("unexpected notification {other}: {n}"),
        }
    }
    got
}

fn subscribe(c: &mut Conn, id: &str, from: Value) -> (u64, u64) {
    let r = c.call("session.subscribe", json!({"id": id, "from": from})).expect("subscribe");
    (r["subscription"].as_u64().unwrap(), r["offset"].as_u64().unwrap())
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
}

/// CPU time (user + system) a process has used.
fn cpu(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn twenty_mib_subscribed_from_zero_arrive_byte_for_byte_then_the_exit() {
    let d = TestDaemon::start("");
    let want = data(20 << 20, 0x5eed);
    let file = d.dir.path().join("data.bin");
    std::fs::write(&file, &want).unwrap();
    let started = Instant::now();
    let id = create(&d, cat_raw(&file, "exit 7"));
    let mut c = Conn::open(&d);
    let (sub, offset) = subscribe(&mut c, &id, json!(0));
    assert_eq!(offset, 0);
    let got = follow(&mut c, sub, 0, want.len());
    let took = started.elapsed();
    assert!(got.resets.is_empty(), "no reset for a viewer within the cap: {:?}", got.resets);
    assert_eq!(first_difference(&got.bytes, &want), None, "byte-exact");
    eprintln!(
        "20 MiB through session.subscribe in {took:?} ({:.1} MB/s); fnv {:x} = {:x}",
        want.len() as f64 / took.as_secs_f64() / 1e6,
        hash(&got.bytes),
        hash(&want)
    );
    // The program exited 7: the exit follows the last byte.
    let n = c.note();
    assert_eq!(n["method"], "session.exit", "{n}");
    assert_eq!(n["params"], json!({"subscription": sub, "exit_status": 7}));
    // It is over: nothing to acknowledge or close any more.
    let e = c.call("session.unsubscribe", json!({"subscription": sub})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("not a subscription open"), "{e}");
}

#[test]
fn a_resubscription_after_a_daemon_sigkill_continues_exactly() {
    let mut d = TestDaemon::start("");
    let want = data(6 << 20, 0xfeed);
    let file = d.dir.path().join("data.bin");
    std::fs::write(&file, &want).unwrap();
    // 96 blocks of 64 KiB, 30 ms apart: it keeps printing while the daemon is down.
    let script = format!(
        "stty raw -echo -opost; i=0; while [ $i -lt 96 ]; do dd if='{}' bs=65536 skip=$i count=1 status=none; i=$((i+1)); sleep 0.03; done; sleep 600",
        file.display()
    );
    let id = create(&d, json!(["sh", "-c", script]));
    let mut c = Conn::open(&d);
    let (sub, _) = subscribe(&mut c, &id, json!(0));
    let first = follow(&mut c, sub, 0, 1 << 20);
    d.kill9();
    let at_kill = first.next;
    // Output goes on while the daemon is down (the logger is tmux's child).
    let dir = d.dir.path().join("state/logs").join(&id);
    let end = || ccmanagerd::logs::Log::open(&dir).unwrap().extent().unwrap().end;
    let down = end();
    eventually(WAIT, "output while the daemon is down", || (end() > down).then_some(()));
    d.restart();
    let mut c = Conn::open(&d);
    let (sub, offset) = subscribe(&mut c, &id, json!(at_kill));
    assert_eq!(offset, at_kill);
    let rest = follow(&mut c, sub, at_kill, want.len() - at_kill as usize);
    let mut all = first.bytes;
    all.extend(rest.bytes);
    assert!(rest.resets.is_empty());
    assert_eq!(first_difference(&all, &want), None, "the concatenation is byte-exact");
    eprintln!(
        "resubscribed at {at_kill} after SIGKILL (log end {down} then); {} bytes in all, exact",
        all.len()
    );
}

#[test]
fn a_viewer_that_never_acknowledges_costs_nothing_and_slows_nothing() {
    let d = TestDaemon::start("");
    let total: u64 = 500 << 20;
    let run = |subscribe_first: bool| -> (f64, u64, Duration) {
        let elapsed = d.dir.path().join(format!("elapsed.{subscribe_first}"));
        let go = d.dir.path().join(format!("go.{subscribe_first}"));
        // Waits for `go` so that the subscriber is in place before the output.
        let script = format!(
            "stty raw -echo -opost; while [ ! -e '{go}' ]; do sleep 0.05; done; s=$(date +%s%N); yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY | head -c {total}; e=$(date +%s%N); echo $((e-s)) > '{out}'; sleep 600",
            go = go.display(),
            out = elapsed.display()
        );
        let id = create(&d, json!(["sh", "-c", script]));
        let mut conn = subscribe_first.then(|| {
            let mut c = Conn::open(&d);
            let (sub, _) = subscribe(&mut c, &id, json!(0));
            (c, sub)
        });
        std::fs::write(&go, b"").unwrap();
        let cpu_before = cpu(d.pid());
        let mut max_rss = rss_kib(d.pid());
        let mut window = 0;
        let ns = eventually(LONG * 3, "the program to print 500 MiB", || {
            max_rss = max_rss.max(rss_kib(d.pid()));
            // The viewer reads what it is sent and never acknowledges.
            if let Some((c, sub)) = conn.as_mut() {
                while window < 256 << 10 {
                    let n = c.note();
                    assert_eq!(n["params"]["subscription"], json!(*sub));
                    window += b64(&n["params"]["data"]).len();
                }
            }
            std::fs::read_to_string(&elapsed).ok()?.trim().parse::<u64>().ok()
        });
        if let Some((c, _)) = conn.as_mut() {
            assert_eq!(window, 256 << 10, "exactly the window...");
            assert!(c.quiet(Duration::from_secs(1)), "... then nothing");
        }
        let used = cpu(d.pid()) - cpu_before;
        d.ok("session.kill", json!({"id": id}));
        (ns as f64 / 1e9, max_rss, used)
    };
    let idle_rss = rss_kib(d.pid());
    let (alone, rss_alone, cpu_alone) = run(false);
    let (viewed, rss_viewed, cpu_viewed) = run(true);
    eprintln!(
        "500 MiB printed: {alone:.2} s with no subscriber, {viewed:.2} s with one that never acks ({:+.1}%); daemon RSS {idle_rss} KiB idle, max {rss_alone} KiB / {rss_viewed} KiB; daemon CPU {cpu_alone:?} / {cpu_viewed:?}",
        (viewed / alone - 1.0) * 100.0
    );
    assert!(rss_viewed < idle_rss + 64 * 1024, "the daemon grew by {} KiB", rss_viewed - idle_rss);
    // Without credit the daemon would read and send the 500 MiB; with a
    // permanent inotify mark it spent 4.8 s handling the log's events.
    assert!(
        cpu_viewed < cpu_alone + Duration::from_millis(1500),
        "the daemon worked for a stalled viewer"
    );
    assert!(
        viewed < alone * 2.0,
        "a stalled viewer slowed the program: {alone:.2} -> {viewed:.2} s"
    );
}

#[test]
fn a_hundred_subscribers_on_a_hundred_sessions_each_byte_exact() {
    let d = TestDaemon::start("[limits]\nmax_sessions_per_owner = 150\n");
    let n = 100;
    let size = 256 << 10;
    let mut sessions = Vec::new();
    for i in 0..n {
        let want = data(size, 1000 + i as u64);
        let file = d.dir.path().join(format!("data.{i}"));
        std::fs::write(&file, &want).unwrap();
        let go = d.dir.path().join("go");
        let script = format!(
            "stty raw -echo -opost; while [ ! -e '{}' ]; do sleep 0.05; done; cat '{}'; sleep 600",
            go.display(),
            file.display()
        );
        sessions.push((create(&d, json!(["sh", "-c", script])), want));
    }
    let started = Instant::now();
    let d = &d;
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handles: Vec<_> = sessions
            .iter()
            .map(|(id, want)| {
                let ready = ready_tx.clone();
                s.spawn(move || {
                    let mut c = Conn::open(d);
                    let (sub, _) = subscribe(&mut c, id, json!(0));
                    ready.send(()).unwrap();
                    let got = follow(&mut c, sub, 0, want.len());
                    assert_eq!(first_difference(&got.bytes, want), None, "session {id}");
                })
            })
            .collect();
        for _ in 0..n {
            ready_rx.recv_timeout(WAIT).expect("every subscriber in place");
        }
        std::fs::write(d.dir.path().join("go"), b"").unwrap();
        for h in handles {
            h.join().unwrap();
        }
    });
    eprintln!("{n} subscribers x {} KiB, byte-exact, in {:?}", size >> 10, started.elapsed());
}

#[test]
fn every_byte_value_written_reaches_a_raw_tty_unchanged() {
    let d = TestDaemon::start("");
    let out = d.dir.path().join("typed.bin");
    let script = format!("stty raw -echo; head -c 255 > '{}'; sleep 600", out.display());
    let id = create(&d, json!(["sh", "-c", script]));
    let want: Vec<u8> = (1..=255).collect();
    // The program is reading its tty once stty has run.
    eventually(WAIT, "the program to read its tty", || {
        let r = d.ok("session.get", json!({"id": id}));
        let pid = r["pid"].as_u64()?;
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children
            .split_whitespace()
            .any(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "head")
            })
            .then_some(())
    });
    d.ok("session.write", json!({"id": id, "data": b64e(&want)}));
    let got =
        eventually(WAIT, "255 bytes typed", || std::fs::read(&out).ok().filter(|b| b.len() == 255));
    assert_eq!(first_difference(&got, &want), None, "every byte as written: {got:?}");

    // Params: exactly one of data and text, within the bound.
    let e = d.call("session.write", json!({"id": id})).unwrap_err().to_string();
    assert!(e.contains("give one of them"), "{e}");
    let big = b64e(&vec![b'x'; (64 << 10) + 1]);
    let e = d.call("session.write", json!({"id": id, "data": big})).unwrap_err().to_string();
    assert!(e.contains("65536 bytes per session.write"), "{e}");
}

#[test]
fn echo_through_write_and_subscribe() {
    let d = TestDaemon::start("");
    let id = create(&d, json!(["sh", "-c", "stty raw -echo; exec cat"]));
    let mut c = Conn::open(&d);
    // From the screen: the reply carries it, and where output continues.
    let r = c.call("session.subscribe", json!({"id": id, "from": "screen"})).unwrap();
    let sub = r["subscription"].as_u64().unwrap();
    let screen = b64(&r["screen"]);
    assert!(screen.windows(4).any(|w| w == b"\x1b[2J"), "a clear: {screen:?}");
    let mut next = r["offset"].as_u64().unwrap();
    // Raw typing comes back through the pane, the log and the stream.
    let mut lat = Vec::new();
    for i in 0..200u32 {
        let key = [b'a' + (i % 26) as u8];
        let t = Instant::now();
        c.send("session.write", json!({"id": id, "data": b64e(&key)}));
        let n = loop {
            let v = c.next();
            if v.get("method").is_some() {
                break v;
            }
            assert!(v.get("error").is_none(), "{v}");
        };
        lat.push(t.elapsed());
        assert_eq!(n["method"], "session.output", "{n}");
        assert_eq!(n["params"]["offset"], json!(next));
        assert_eq!(b64(&n["params"]["data"]), key);
        next += 1;
        c.ack(sub, next);
    }
    lat.sort();
    eprintln!(
        "keystroke to echo (session.write + session.output): p50 {:?} p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
}

#[test]
fn the_first_notification_never_precedes_the_subscribe_reply() {
    let d = TestDaemon::start("");
    let want = data(1 << 20, 7);
    let file = d.dir.path().join("data.bin");
    std::fs::write(&file, &want).unwrap();
    let id = create(&d, cat_raw(&file, "sleep 600"));
    eventually(LONG, "the output in the log", || {
        let r = d.call("session.read", json!({"id": id, "offset": (1 << 20) - 1})).ok()?;
        (r["end"] == true && !b64(&r["data"]).is_empty()).then_some(())
    });
    for round in 0..20 {
        let mut c = Conn::open(&d);
        c.send("session.subscribe", json!({"id": id, "from": 0}));
        let first = c.line();
        assert!(first.get("method").is_none(), "round {round}: a {} came first", first["method"]);
        assert!(first["result"]["subscription"].is_u64(), "{first}");
        // In a batch: the array comes first.
        let call = |i: u32| json!({"jsonrpc": "2.0", "id": i, "method": "session.subscribe", "params": {"id": id, "from": 0}});
        c.writer.write_all(format!("[{},{}]\n", call(100), call(101)).as_bytes()).unwrap();
        loop {
            let v = c.line();
            if v.is_array() {
                assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
                break;
            }
            let sub = v["params"]["subscription"].as_u64().unwrap();
            let method = &v["method"];
            assert_eq!(
                sub, 1,
                "round {round}: a {method} of the batch's subscriptions came before its reply"
            );
        }
    }
}

#[test]
fn a_viewer_behind_the_cap_is_reset_to_the_screen() {
    let d = TestDaemon::start("[logs]\nmax_bytes_per_session = \"1M\"\n");
    let lines: Vec<u8> =
        (0..200_000u32).flat_map(|i| format!("line {i:07}\r\n").into_bytes()).collect();
    // The first 384 KiB (more than a window) come first; the rest only once
    // the viewer has its first window: a viewer that is merely slower than
    // `cat` may fall behind the cap within its first window too, which is
    // a reset as well, but not the one this test is about.
    let head = 384 << 10;
    let first = d.dir.path().join("first.bin");
    let rest = d.dir.path().join("rest.bin");
    std::fs::write(&first, &lines[..head]).unwrap();
    std::fs::write(&rest, &lines[head..]).unwrap();
    let go = d.dir.path().join("go");
    let go2 = d.dir.path().join("go2");
    let script = format!(
        "stty raw -echo -opost; while [ ! -e '{go}' ]; do sleep 0.05; done; cat '{first}'; while [ ! -e '{go2}' ]; do sleep 0.05; done; cat '{rest}'; printf 'END'; sleep 600",
        go = go.display(),
        go2 = go2.display(),
        first = first.display(),
        rest = rest.display(),
    );
    let id = create(&d, json!(["sh", "-c", script]));
    let mut c = Conn::open(&d);
    let (sub, _) = subscribe(&mut c, &id, json!(0));
    std::fs::write(&go, b"").unwrap();
    // Take the first window, acknowledge nothing while 3 MiB go past a 1 MiB cap.
    let mut at = 0;
    while at < 256 << 10 {
        let n = c.note();
        assert_eq!(n["method"], "session.output");
        at += b64(&n["params"]["data"]).len() as u64;
    }
    std::fs::write(&go2, b"").unwrap();
    let total = lines.len() as u64 + 3;
    eventually(LONG, "all the output in the log", || {
        let r = d.call("session.read", json!({"id": id, "offset": total - 3})).ok()?;
        (b64(&r["data"]) == b"END").then_some(())
    });
    c.ack(sub, at);
    let n = c.note();
    assert_eq!(n["method"], "session.reset", "{n}");
    let offset = n["params"]["offset"].as_u64().unwrap();
    let screen = String::from_utf8_lossy(&b64(&n["params"]["screen"])).into_owned();
    assert!(screen.contains("line 0199999") && screen.ends_with("\x1b[?25h"), "{screen:?}");
    assert_eq!(offset, total, "continues where the screen was taken (the end: the pane is quiet)");
    // Subscribing from a dropped offset: a reset first.
    let (sub2, from) = subscribe(&mut c, &id, json!(0));
    assert_eq!(from, 0);
    let n = c.note();
    assert_eq!(
        (n["method"].as_str(), n["params"]["subscription"].as_u64()),
        (Some("session.reset"), Some(sub2))
    );
    assert_eq!(n["params"]["offset"], json!(total));
    let metrics = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    assert!(metrics.contains("ccmanagerd_stream_resets_total 2"), "{metrics}");
    assert!(metrics.contains("ccmanagerd_stream_subscriptions 2"), "{metrics}");
}

#[test]
fn subscription_params_caps_and_ownership_of_the_connection() {
    let d = TestDaemon::start("[streams]\nmax_per_connection = 2\n");
    let id = create(&d, json!(["sh", "-c", "printf hello; sleep 600"]));
    eventually(WAIT, "hello in the log", || {
        (b64(&d.ok("session.read", json!({"id": id}))["data"]) == b"hello").then_some(())
    });
    let mut c = Conn::open(&d);
    let e = c.call("session.subscribe", json!({"id": id, "from": 6})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("past the end of the log of session"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("(5)"), "{e}");
    let (a, offset) = subscribe(&mut c, &id, json!("now"));
    assert_eq!(offset, 5);
    let (b, _) = subscribe(&mut c, &id, json!(3));
    let n = c.note();
    assert_eq!(n["params"], json!({"subscription": b, "offset": 3, "data": b64e(b"lo")}));
    let e = c.call("session.subscribe", json!({"id": id})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("streams.max_per_connection = 2"), "{e}");
    let e = c.call("session.ack", json!({"subscription": b, "offset": 6})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("past what subscription"), "{e}");
    // Another connection cannot name this one's subscriptions.
    let mut other = Conn::open(&d);
    let e = other.call("session.unsubscribe", json!({"subscription": a})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("not a subscription open on this connection"));
    c.call("session.unsubscribe", json!({"subscription": a})).unwrap();
    c.call("session.ack", json!({"subscription": b, "offset": 5})).unwrap();
    let e = c.call("session.subscribe", json!({"id": "nosuchid"})).unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("not found"), "{e}");
    // The subscriptions end with the connection.
    drop(c);
    eventually(WAIT, "the subscriptions to end", || {
        let m = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
        m.contains("ccmanagerd_stream_subscriptions 0").then_some(())
    });
}
