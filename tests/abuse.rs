//! The daemon under abuse and stalls, against a real daemon and real tmux:
//! clients that never read their replies, oversized batches and captures,
//! and a tmux server stopped for 30 s under load. Each test prints what it
//! measured (`cargo test --test abuse -- --nocapture`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ccmanagerd::client::Client;
use common::daemon::{tmux_server_pid, Raw, TestDaemon};
use common::users::users_or_skip;
use common::wait::{eventually, WAIT};

const MIB: u64 = 1 << 20;
/// The bound docs/protocol.md gives for the daemon under 50 clients that
/// never read (default budgets).
const DAEMON_RSS_BOUND: u64 = 200 * MIB;
/// How much the abused tmux server may grow.
const TMUX_GROWTH_BOUND: u64 = 64 * MIB;
/// Lines the scrollback program prints: more than `tmux.history_limit`.
const SCROLLBACK_LINES: u32 = 12_000;

/// A program printing [`SCROLLBACK_LINES`] lines of 190 bytes (a 200-column
/// pane keeps each on one row), then waiting.
fn scrollback_command() -> Value {
    let script = format!(
        "awk 'BEGIN {{ s = sprintf(\"%180s\", \"\"); gsub(/ /, \"x\", s); \
         for (i = 0; i < {SCROLLBACK_LINES}; i++) printf \"%s line %d\\n\", s, i }}'; exec cat"
    );
    json!(["sh", "-c", script])
}

/// A session whose scrollback is full (10000 lines, about 2 MB per capture).
fn big_session(d: &TestDaemon) -> String {
    let s =
        d.ok("session.create", json!({"command": scrollback_command(), "cols": 200, "rows": 50}));
    let id = s["id"].as_str().unwrap().to_string();
    let last = format!("line {}", SCROLLBACK_LINES - 1);
    eventually(WAIT, "the scrollback to be printed", || {
        let c = d.call("session.capture", json!({"id": id})).ok()?;
        c["text"].as_str()?.contains(&last).then_some(())
    });
    id
}

/// `(VmRSS, VmHWM)` of `pid` in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Pids of the tmux servers on `socket` (every process naming the socket
/// that is neither a probe nor a control client: both use `-N`).
fn servers_on(socket: &Path) -> Vec<u32> {
    let socket = socket.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let names_socket = args.iter().any(|a| a.contains(&socket));
        if names_socket && !args.iter().any(|a| a == "-N") && args[0].contains("tmux") {
            pids.push(pid);
        }
    }
    pids
}

/// The value of `ccmanagerd_budget_hits_total{budget="key"}`.
fn budget_hits(d: &TestDaemon, key: &str) -> u64 {
    let text = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    let prefix = format!("ccmanagerd_budget_hits_total{{budget=\"{key}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

/// Sets the flag on drop, so client threads stop even when the test panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A client that sends `line` again and again and never reads; reconnects
/// when the daemon closes it. Counts the connections it made.
fn never_reads(socket: &Path, line: String, stop: Arc<AtomicBool>, connections: Arc<AtomicUsize>) {
    let line = format!("{line}\n").into_bytes();
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut s) = UnixStream::connect(socket) else { return };
        connections.fetch_add(1, Ordering::SeqCst);
        s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut at = 0;
        'conn: while !stop.load(Ordering::SeqCst) {
            match s.write(&line[at..]) {
                Ok(n) => at = (at + n) % line.len(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break 'conn,
            }
        }
    }
}

/// The abuse case, fifty times over: clients that send batches of
/// the largest captures and never read. The daemon's memory stays bounded
/// (replies held per connection, tmux work per server), the tmux server
/// stays small, no session is lost, and another client keeps being served.
#[test]
fn fifty_clients_that_never_read_cost_bounded_memory_and_nothing_else() {
    let Some(users) = users_or_skip("fifty_clients_that_never_read") else { return };
    const CLIENTS: usize = 50;
    const BATCH: usize = 40;
    const ABUSE_FOR: Duration = Duration::from_secs(25);
    // CCM_ABUSE_CONFIG="[daemon]\nmax_pending_reply_bytes = \"4G\"" (say)
    // shows what a budget holds: without it the test fails.
    let extra = std::env::var("CCM_ABUSE_CONFIG").unwrap_or_default().replace("\\n", "\n");
    let d = TestDaemon::start_shared(&[], &extra);
    let big = big_session(&d);
    // Another uid's session: its own server, untouched by the flood.
    let other = d.ok("session.create", json!({"command": ["cat"], "user": users.a.name}));
    let other = other["id"].as_str().unwrap().to_string();
    let daemon_pid = d.pid() as u32;
    let tmux_pid = tmux_server_pid(&d.tmux_socket).expect("root's tmux server") as u32;
    let (daemon_before, _) = memory(daemon_pid);
    let (tmux_before, tmux_hwm_before) = memory(tmux_pid);

    let batch: Vec<Value> = (0..BATCH)
        .map(|i| {
            let params = json!({"id": big, "lines": 10000});
            json!({"jsonrpc": "2.0", "id": i, "method": "session.capture", "params": params})
        })
        .collect();
    let line = serde_json::to_string(&batch).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let connections = Arc::new(AtomicUsize::new(0));
    let abusers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (socket, line, stop, n) =
                (d.socket.clone(), line.clone(), stop.clone(), connections.clone());
            std::thread::spawn(move || never_reads(&socket, line, stop, n))
        })
        .collect();

    // Meanwhile: another client, served within its timeouts.
    let timeout = Duration::from_secs(10);
    let mut served = Client::connect(&d.socket, Some(timeout)).expect("connect");
    let started = Instant::now();
    let (mut calls, mut slowest) = (0, Duration::ZERO);
    let (mut daemon_peak, mut tmux_peak) = (0, 0);
    while started.elapsed() < ABUSE_FOR {
        for (method, params) in [
            ("session.capture", json!({"id": other, "lines": 100})),
            ("session.get", json!({"id": big})),
            ("session.list", json!({})),
        ] {
            let t = Instant::now();
            let reply = served.call(method, params.clone());
            let took = t.elapsed();
            let reply = reply.unwrap_or_else(|e| {
                panic!("{method} failed after {took:?} under the flood: {e}\n{}", d.log_text())
            });
            slowest = slowest.max(took);
            calls += 1;
            if method == "session.list" {
                for s in reply["sessions"].as_array().unwrap() {
                    assert_ne!(s["state"], "lost", "a session was lost: {s}");
                }
            }
        }
        daemon_peak = daemon_peak.max(memory(daemon_pid).0);
        tmux_peak = tmux_peak.max(memory(tmux_pid).0);
        assert!(daemon_peak < DAEMON_RSS_BOUND, "daemon RSS {:.1} MiB", mib(daemon_peak));
        assert!(
            tmux_peak < tmux_before + TMUX_GROWTH_BOUND,
            "tmux RSS {:.1} MiB, was {:.1}",
            mib(tmux_peak),
            mib(tmux_before)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    for a in abusers {
        a.join().unwrap();
    }
    let (daemon_after, daemon_hwm) = memory(daemon_pid);
    let (tmux_after, tmux_hwm) = memory(tmux_pid);
    println!(
        "{CLIENTS} clients x batches of {BATCH} captures (10000 lines, ~2 MB) for {ABUSE_FOR:?}: {} connections made; \
         daemon RSS {:.1} -> {:.1} MiB (peak sampled {:.1}, VmHWM {:.1}); tmux RSS {:.1} -> {:.1} MiB (VmHWM {:.1} -> {:.1}); \
         other client: {calls} calls, slowest {slowest:?}",
        connections.load(Ordering::SeqCst),
        mib(daemon_before),
        mib(daemon_after),
        mib(daemon_peak),
        mib(daemon_hwm),
        mib(tmux_before),
        mib(tmux_after),
        mib(tmux_hwm_before),
        mib(tmux_hwm),
    );
    assert!(daemon_hwm < DAEMON_RSS_BOUND, "daemon VmHWM {:.1} MiB", mib(daemon_hwm));
    assert!(
        tmux_hwm < tmux_hwm_before.max(tmux_before) + TMUX_GROWTH_BOUND,
        "tmux VmHWM {:.1} MiB (before {:.1})",
        mib(tmux_hwm),
        mib(tmux_hwm_before)
    );
    // The flood was held back by the budgets, and the clients were closed.
    assert!(connections.load(Ordering::SeqCst) > CLIENTS, "no client was ever disconnected");
    for key in ["daemon.write_timeout", "daemon.max_pending_reply_bytes"] {
        assert!(budget_hits(&d, key) > 0, "{key} never hit");
    }
    assert_eq!(tmux_server_pid(&d.tmux_socket), Some(tmux_pid as i32), "the same tmux server");
    let all = d.ok("session.list", json!({}));
    assert!(all["sessions"].as_array().unwrap().iter().all(|s| s["state"] == "running"), "{all}");
}

/// A client that sends requests and stops reading is disconnected after
/// `daemon.write_timeout`, although it is otherwise idle, and only what the
/// socket buffers held reaches it.
#[test]
fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let d = TestDaemon::start("[daemon]\nwrite_timeout = \"2s\"\n");
    let big = big_session(&d);
    let mut raw = Raw::connect(&d.socket);
    const CAPTURES: usize = 30;
    for i in 0..CAPTURES {
        let line = json!({"jsonrpc": "2.0", "id": i, "method": "session.capture", "params": {"id": big, "lines": 10000}});
        raw.send(format!("{line}\n").as_bytes());
    }
    let sent = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    // Now read: what the socket held, then EOF (a connection still open
    // would block here and fail on the read timeout).
    let mut stream = raw.writer;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection was not closed ({got} bytes read, {:?} after sending): {e}\n{}",
                sent.elapsed(),
                d.log_text()
            ),
        }
    }
    println!("a client that did not read: closed, {got} bytes reached it of {CAPTURES} captures of ~2 MB");
    assert!(got < CAPTURES * 1_000_000, "{got} bytes: everything was written");
    assert!(d.log_text().contains("daemon.write_timeout"), "{}", d.log_text());
    assert!(budget_hits(&d, "daemon.write_timeout") >= 1);
    assert_eq!(d.ok("daemon.ping", json!({})), "pong");
}

/// Every call of a batch takes an in-flight slot: a batch larger than
/// `daemon.max_inflight_per_connection` is refused with one error naming
/// it; one that fits but finds too few free slots waits for them.
#[test]
fn batch_calls_count_against_the_in_flight_bound() {
    let d = TestDaemon::start("[daemon]\nmax_inflight_per_connection = 4\n");
    let mut raw = Raw::connect(&d.socket);
    let pings = |n: usize| {
        let calls: Vec<Value> =
            (0..n).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "daemon.ping"})).collect();
        serde_json::to_string(&calls).unwrap()
    };
    let refused = raw.roundtrip(&pings(5));
    assert_eq!(refused["error"]["code"], -32001, "{refused}");
    assert_eq!(refused["id"], Value::Null, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("daemon.max_inflight_per_connection = 4"), "{message}");
    let ok = raw.roundtrip(&pings(4));
    assert_eq!(ok.as_array().map(Vec::len), Some(4), "{ok}");

    // A batch of 3 sleeps and two single sleeps: 5 calls, 4 slots. The
    // second single can only start when a call of the batch is done
    // (a batch counted as one call would let all five run at once).
    let sleep = |id: &str| json!({"jsonrpc": "2.0", "id": id, "method": "debug.sleep", "params": {"ms": 1000}});
    let batch = json!([sleep("b1"), sleep("b2"), sleep("b3")]);
    let started = Instant::now();
    raw.send(format!("{batch}\n{}\n{}\n", sleep("s1"), sleep("s2")).as_bytes());
    let mut at = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let reply = raw.recv().expect("a reply");
        let name = if reply.is_array() { "batch".to_string() } else { reply["id"].to_string() };
        at.insert(name, started.elapsed());
    }
    println!("replies after: {at:?}");
    let last = at.values().max().unwrap();
    assert!(*last >= Duration::from_millis(1900), "all five ran at once: {at:?}");
    assert!(budget_hits(&d, "daemon.max_inflight_per_connection") >= 1);
}

/// A batch's replies together are bounded by `daemon.max_pending_reply_bytes`:
/// a large reply that would go past it while another is held is answered
/// with `limit_reached` naming the key; small replies always go through.
#[test]
fn a_batch_of_large_captures_keeps_one_and_names_the_budget_for_the_rest() {
    let d = TestDaemon::start("[daemon]\nmax_pending_reply_bytes = \"256K\"\n");
    let big = big_session(&d);
    let mut calls: Vec<Value> = (0..5)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "session.capture", "params": {"id": big, "lines": 10000}}))
        .collect();
    calls.push(json!({"jsonrpc": "2.0", "id": "ping", "method": "daemon.ping"}));
    let mut raw = Raw::connect(&d.socket);
    let replies = raw.roundtrip(&serde_json::to_string(&calls).unwrap());
    let replies = replies.as_array().expect("a batch reply");
    assert_eq!(replies.len(), 6);
    let kept = replies.iter().filter(|r| r["result"]["text"].is_string()).count();
    let refused: Vec<&Value> = replies.iter().filter(|r| r["error"].is_object()).collect();
    assert_eq!(kept, 1, "one capture kept: {:?}", refused);
    assert_eq!(refused.len(), 4);
    for r in refused {
        assert_eq!(r["error"]["data"]["kind"], "limit_reached", "{r}");
        let m = r["error"]["message"].as_str().unwrap();
        assert!(m.contains("daemon.max_pending_reply_bytes"), "{m}");
        assert!(r["id"].is_u64(), "the error answers its call: {r}");
    }
    assert!(replies.iter().any(|r| r["id"] == "ping" && r["result"] == "pong"));
}

/// `session.capture` is bounded in bytes: a longer capture keeps its last
/// whole lines and says `truncated`; a short one says nothing.
#[test]
fn a_capture_is_cut_to_its_last_lines_at_the_byte_bound() {
    let d = TestDaemon::start("[daemon]\nmax_capture_bytes = \"64K\"\n");
    let big = big_session(&d);
    let c = d.ok("session.capture", json!({"id": big, "lines": 10000}));
    let text = c["text"].as_str().unwrap();
    assert_eq!(c["truncated"], true, "{}", &text[..200.min(text.len())]);
    assert!(text.len() <= 64 * 1024 && text.len() > 60 * 1024, "{} bytes", text.len());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("xxxx") && lines[0].contains(" line "),
        "a whole first line: {}",
        lines[0]
    );
    let last_printed = format!("line {}", SCROLLBACK_LINES - 1);
    assert!(text.contains(&last_printed), "the bottom is kept");
    let screen = d.ok("session.capture", json!({"id": big}));
    assert!(screen.get("truncated").is_none(), "{screen}");
    assert!(budget_hits(&d, "daemon.max_capture_bytes") >= 1);
}

/// tmux stopped (SIGSTOP) for 30 s while clients keep sending requests,
/// the daemon killed and restarted meanwhile, and a create asked for: no
/// session is ever reported lost, no second server is started, health says
/// `degraded` naming the uid, the daemon's memory stays bounded, and after
/// SIGCONT everything answers again within about a second.
#[test]
fn a_tmux_server_stopped_for_30s_under_load_loses_nothing() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    const STALL: Duration = Duration::from_secs(30);
    /// SIGCONT on the way out, whatever happens.
    struct Resume(Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let mut d = TestDaemon::start("");
    let ids: Vec<String> = (0..4)
        .map(|_| {
            d.ok("session.create", json!({"command": ["cat"]}))["id"].as_str().unwrap().to_string()
        })
        .collect();
    let server = tmux_server_pid(&d.tmux_socket).expect("a tmux server") as u32;
    assert_eq!(servers_on(&d.tmux_socket), vec![server]);
    let (daemon_before, _) = memory(d.pid() as u32);

    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    // Load: 6 clients, each pipelining batches of 24 requests (more than
    // tmux.max_commands_in_flight together) and reading the replies;
    // they reconnect when the daemon restarts.
    let load: Vec<_> = (0..6)
        .map(|c| {
            let (socket, ids, stop, errors) =
                (d.socket.clone(), ids.clone(), stop.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let Ok(mut client) = Client::connect(&socket, Some(Duration::from_secs(60)))
                    else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    while !stop.load(Ordering::SeqCst) {
                        let calls: Vec<Value> = (0..24)
                            .map(|i| {
                                n += 1;
                                let id = &ids[(i + c) % ids.len()];
                                let (method, params) = match i % 4 {
                                    0 => ("session.capture", json!({"id": id, "lines": 100})),
                                    1 => ("session.send", json!({"id": id, "text": "x"})),
                                    2 => ("session.get", json!({"id": id})),
                                    _ => ("session.list", json!({})),
                                };
                                json!({"jsonrpc": "2.0", "id": n, "method": method, "params": params})
                            })
                            .collect();
                        let Ok(replies) = client.raw(&serde_json::to_string(&calls).unwrap()) else {
                            break;
                        };
                        let mut errors = errors.lock().unwrap();
                        for r in replies.as_array().into_iter().flatten() {
                            if let Some(m) = r["error"]["message"].as_str() {
                                errors.push(format!("{}: {m}", r["error"]["data"]["kind"]));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    let stopped = Resume(Pid::from_raw(server as i32));
    kill(stopped.0, Signal::SIGSTOP).unwrap();
    let stalled_at = Instant::now();
    let (mut polls, mut daemon_peak) = (0, 0);
    let (mut health_connected, mut health_restarted) = (None, None);
    let mut create = None;
    let mut restarted = false;
    while stalled_at.elapsed() < STALL {
        let at = stalled_at.elapsed();
        let mut list = Client::connect(&d.socket, Some(Duration::from_secs(10))).unwrap();
        let sessions = list.call("session.list", json!({})).expect("session.list during the stall");
        for s in sessions["sessions"].as_array().unwrap() {
            assert_eq!(s["state"], "running", "{at:?} into the stall: {s}\n{}", d.log_text());
        }
        polls += 1;
        daemon_peak = daemon_peak.max(memory(d.pid() as u32).0);
        if health_connected.is_none() && at > Duration::from_secs(12) {
            health_connected = Some(list.call("health.check", json!({})).expect("health.check"));
        }
        if !restarted && at > Duration::from_secs(13) {
            // A daemon that starts while the server is stopped keeps its
            // sessions and waits for it; a create must not start another.
            d.kill9();
            d.restart();
            restarted = true;
            let socket = d.socket.clone();
            create = Some(std::thread::spawn(move || {
                let mut c = Client::connect(&socket, Some(Duration::from_secs(60))).unwrap();
                c.call("session.create", json!({"command": ["cat"]})).map_err(|e| e.to_string())
            }));
        }
        if restarted && health_restarted.is_none() && at > Duration::from_secs(22) {
            health_restarted = Some(list.call("health.check", json!({})).expect("health.check"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(servers_on(&d.tmux_socket), vec![server], "one server, the stopped one");
    drop(stopped);
    let resumed = Instant::now();
    let back = eventually(Duration::from_secs(60), "the sessions to answer again", || {
        let mut c = Client::connect(&d.socket, Some(Duration::from_secs(10))).ok()?;
        for id in &ids {
            c.call("session.capture", json!({"id": id})).ok()?;
        }
        Some(resumed.elapsed())
    });
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.join().unwrap();
    }
    let created = create.expect("a create was tried").join().unwrap();
    let errors = errors.lock().unwrap();
    let busy = errors.iter().filter(|e| e.contains("tmux.max_commands_in_flight")).count();
    let (daemon_after, daemon_hwm) = memory(d.pid() as u32);
    println!(
        "tmux stopped for {STALL:?} under load, the daemon restarted meanwhile: {polls} session.list polls, none lost; \
         {} request errors ({busy} naming tmux.max_commands_in_flight); daemon RSS {:.1} -> {:.1} MiB (peak sampled {:.1}); \
         all sessions answered {back:?} after SIGCONT; create during the stall: {created:?}",
        errors.len(),
        mib(daemon_before),
        mib(daemon_after),
        mib(daemon_peak),
    );
    assert!(back < Duration::from_secs(5), "answered {back:?} after SIGCONT");
    for (when, health) in [("connected", &health_connected), ("after a restart", &health_restarted)]
    {
        let health = health.as_ref().expect("health was checked");
        println!("health during the stall, {when}: {health}");
        assert_eq!(health["status"], "degraded", "{when}: {health}");
        let checks = health["checks"].as_array().unwrap();
        let tmux = checks.iter().find(|c| c["name"] == "tmux_server").expect("a tmux_server check");
        let detail = tmux["detail"].as_str().unwrap();
        assert!(detail.contains("uid 0") && detail.contains("stalled"), "{when}: {detail}");
    }
    assert!(
        busy > 0,
        "no request was held back by tmux.max_commands_in_flight: {:?}",
        &errors[..errors.len().min(5)]
    );
    let other: Vec<&String> =
        errors.iter().filter(|e| !e.starts_with("\"tmux_unavailable\": ")).take(5).collect();
    assert!(other.is_empty(), "requests failed otherwise than tmux_unavailable: {other:?}");
    let e = created.expect_err("a create on a stopped server cannot succeed");
    assert!(e.contains("not starting another one"), "{e}");
    assert!(daemon_peak < daemon_before + 64 * MIB, "daemon RSS {:.1} MiB", mib(daemon_peak));
    assert!(daemon_hwm < daemon_before + 64 * MIB, "daemon VmHWM {:.1} MiB", mib(daemon_hwm));
    assert_eq!(tmux_server_pid(&d.tmux_socket), Some(server as i32), "the same server");
    assert_eq!(servers_on(&d.tmux_socket), vec![server], "one server");
    for id in &ids {
        assert_eq!(d.ok("session.get", json!({"id": id}))["state"], "running");
    }
    assert!(!d.log_text().contains("the tmux server died"), "{}", d.log_text());
}

/// Captures cost the tmux server nothing it keeps: tmux before 3.6 never
/// frees a `capture-pane -p` printed to a control client (1.9 MB for each
/// of these), so the daemon captures through a paste buffer there.
#[test]
fn captures_do_not_grow_the_tmux_server() {
    const CAPTURES: usize = 40;
    let d = TestDaemon::start("");
    let big = big_session(&d);
    let tmux_pid = tmux_server_pid(&d.tmux_socket).expect("a tmux server") as u32;
    let mut c = Client::connect(&d.socket, Some(Duration::from_secs(30))).unwrap();
    let capture = json!({"id": big, "lines": 10000});
    // The first ones settle the allocator.
    for _ in 0..3 {
        c.call("session.capture", capture.clone()).unwrap();
    }
    let (before, _) = memory(tmux_pid);
    let mut bytes = 0;
    for _ in 0..CAPTURES {
        let r = c.call("session.capture", capture.clone()).unwrap();
        bytes += r["text"].as_str().unwrap().len();
    }
    let (after, hwm) = memory(tmux_pid);
    println!(
        "{CAPTURES} captures of {:.1} MB each: tmux RSS {:.1} -> {:.1} MiB (VmHWM {:.1})",
        bytes as f64 / CAPTURES as f64 / 1e6,
        mib(before),
        mib(after),
        mib(hwm)
    );
    assert!(bytes > CAPTURES * 1_800_000, "{bytes} bytes captured");
    assert!(
        after < before + 16 * MIB,
        "tmux grew from {:.1} to {:.1} MiB",
        mib(before),
        mib(after)
    );
}
