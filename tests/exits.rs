//! How a session's program ends, through the real daemon and a real tmux
//! 3.3a: its last output is never lost, its exit is seen at once with the
//! right status, `session.kill` and its own exit end every descendant
//! without cgroups (also those that called `setsid`), and the exec-wrapper
//! that stays as the program's parent keeps job control, terminal signals
//! and `session.get`'s pid what they were.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ccmanagerd::client::Client;
use common::daemon::TestDaemon;
use common::wait::{eventually, WAIT};

/// Programs in the output test, and how many threads create them.
const PROGRAMS: usize = 1000;
const CREATORS: usize = 8;
/// Sessions in the exit-latency test.
const TIMED: usize = 100;
/// What an exit must be seen within (the issue's target is 250 ms; this is
/// generous for a loaded 2-core VM, and still far below the refresh
/// interval those tests configure, which is what saw exits before).
const SEEN_WITHIN: Duration = Duration::from_secs(2);
/// Config for tests that must not be helped by the periodic refresh.
const SLOW_REFRESH: &str =
    "[health]\ninterval = \"60s\"\n[limits]\nmax_sessions = 500\nmax_sessions_per_owner = 500\n";

fn client(d: &TestDaemon) -> Client {
    d.client()
}

fn call(c: &mut Client, method: &str, params: Value) -> Value {
    c.call(method, params).unwrap_or_else(|e| panic!("{method} failed: {e}"))
}

fn create(c: &mut Client, command: &[&str]) -> String {
    let s = call(c, "session.create", json!({"command": command}));
    s["id"].as_str().expect("an id").to_string()
}

fn get(c: &mut Client, id: &str) -> Value {
    call(c, "session.get", json!({"id": id}))
}

fn screen(c: &mut Client, id: &str) -> String {
    call(c, "session.capture", json!({"id": id}))["text"].as_str().unwrap_or_default().to_string()
}

fn wait_screen(c: &mut Client, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = screen(c, id);
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{needle:?} never showed in {id}:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exited(c: &mut Client, id: &str) -> Value {
    eventually(WAIT, &format!("session {id} to exit"), || {
        let s = get(c, id);
        (s["state"] == "exited").then_some(s)
    })
}

fn send(c: &mut Client, id: &str, text: &str) {
    call(c, "session.send", json!({"id": id, "text": text, "enter": true}));
}

fn keys(c: &mut Client, id: &str, keys: &[&str]) {
    call(c, "session.send", json!({"id": id, "keys": keys, "enter": false}));
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Pids whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> BTreeSet<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let entries = std::fs::read_dir("/proc").unwrap().flatten();
    entries
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let zombie = std::fs::read_to_string(e.path().join("stat"))
                .map(|s| s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
                .unwrap_or(true);
            (cmdline == want && !zombie).then_some(pid)
        })
        .collect()
}

fn comm(pid: u64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// A number no other test (or run) uses, for `sleep` arguments to find by.
fn marker() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{}.{}{}", 9000 + N.fetch_add(1, Ordering::SeqCst), std::process::id(), 7)
}

#[test]
fn a_thousand_programs_that_print_and_exit_at_once_keep_their_output_and_status() {
    let cap = PROGRAMS + 100;
    let d = TestDaemon::start(&format!(
        "[limits]\nmax_sessions = {cap}\nmax_sessions_per_owner = {cap}\n\
         [cleanup]\ninterval = \"1000d\"\nexited_grace = \"off\"\nmax_age = \"off\"\n"
    ));
    let start = Instant::now();
    // Creators run in parallel, each one after another (sequential creates
    // lost the most output: 16-26%).
    let made: Vec<(usize, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CREATORS)
            .map(|w| {
                let d = &d;
                scope.spawn(move || {
                    let mut c = client(d);
                    let mine = (w..PROGRAMS).step_by(CREATORS);
                    let script = r#"echo "last words $0"; exit "$1""#;
                    mine.map(|i| {
                        let (n, code) = (i.to_string(), (i % 200).to_string());
                        (i, create(&mut c, &["sh", "-c", script, &n, &code]))
                    })
                    .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let created = start.elapsed();
    let mut c = client(&d);
    let mut lost = Vec::new();
    let mut wrong_status = Vec::new();
    for (i, id) in &made {
        let s = wait_exited(&mut c, id);
        if s["exit_status"] != json!(i % 200) {
            wrong_status.push((*i, s["exit_status"].clone()));
        }
        let text = screen(&mut c, id);
        if !text.contains(&format!("last words {i}\n")) {
            lost.push((*i, text.trim().to_string()));
        }
    }
    println!(
        "{PROGRAMS} programs: created in {:.1}s ({CREATORS} creators), checked in {:.1}s; \
         output lost: {}, wrong status: {}",
        created.as_secs_f64(),
        start.elapsed().as_secs_f64() - created.as_secs_f64(),
        lost.len(),
        wrong_status.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {PROGRAMS} lost their output: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(wrong_status.is_empty(), "wrong exit statuses: {wrong_status:?}");
}

#[test]
fn an_exit_is_visible_at_once_not_at_the_next_refresh() {
    let d = TestDaemon::start(SLOW_REFRESH);
    let mut c = client(&d);
    let ids: Vec<String> =
        (0..TIMED).map(|_| create(&mut c, &["sh", "-c", "read line; exit 3"])).collect();
    let mut seen = Vec::new();
    for id in &ids {
        // Typed before `read` runs, the line waits in the terminal.
        send(&mut c, id, "go");
        let sent = Instant::now();
        let got = loop {
            let s = get(&mut c, id);
            if s["state"] == "exited" {
                break s;
            }
            assert!(
                sent.elapsed() < SEEN_WITHIN,
                "session {id} still {} {SEEN_WITHIN:?} after its program was told to exit:\n{}",
                s["state"],
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        seen.push(sent.elapsed());
        assert_eq!(got["exit_status"], json!(3), "{got}");
    }
    seen.sort();
    println!(
        "exit to visible in session.get over {TIMED} sessions: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&seen, 0.5).as_secs_f64() * 1e3,
        percentile(&seen, 0.99).as_secs_f64() * 1e3,
        seen.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[test]
fn exits_are_still_seen_at_once_after_a_daemon_restart_and_the_pid_stays_the_programs() {
    let mut d = TestDaemon::start(SLOW_REFRESH);
    let mut c = client(&d);
    let a = create(&mut c, &["sh", "-c", "read line; exit 4"]);
    let b = create(&mut c, &["sh", "-c", "read line; exit 5"]);
    let pid_a = get(&mut c, &a)["pid"].as_u64().expect("a pid");
    assert_eq!(comm(pid_a), "sh", "session.get's pid is the program's, not the wrapper's");

    // With the state file: the pid is kept, the watch re-armed.
    d.kill9();
    d.restart();
    let mut c = client(&d);
    assert_eq!(get(&mut c, &a)["pid"].as_u64(), Some(pid_a));
    send(&mut c, &a, "go");
    let sent = Instant::now();
    let s = wait_exited(&mut c, &a);
    assert!(sent.elapsed() < SEEN_WITHIN, "seen after {:?}", sent.elapsed());
    assert_eq!(s["exit_status"], json!(4));

    // Without it: adopted from tmux, the program found under its wrapper.
    d.kill9();
    std::fs::remove_file(d.dir.path().join("state").join("sessions.json")).unwrap();
    d.restart();
    let mut c = client(&d);
    let s = get(&mut c, &b);
    assert_eq!(s["adopted"], json!(true), "{s}");
    assert_eq!(comm(s["pid"].as_u64().expect("a pid")), "sh", "{s}");
    send(&mut c, &b, "go");
    let sent = Instant::now();
    let s = wait_exited(&mut c, &b);
    assert!(sent.elapsed() < SEEN_WITHIN, "seen after {:?}", sent.elapsed());
    assert_eq!(s["exit_status"], json!(5));
}

#[test]
fn session_kill_ends_every_descendant_also_those_that_called_setsid() {
    // A TestDaemon runs without systemd: no cgroup holds the session.
    let d = TestDaemon::start("");
    let mut c = client(&d);
    let (orphan, child, main) = (marker(), marker(), marker());
    // The subshell exits at once: its setsid'd sleep loses its parent and
    // its session; the other background sleep stays a plain child.
    let script =
        format!("(setsid sleep {orphan} &); sleep {child} & echo ready; exec sleep {main}");
    let id = create(&mut c, &["sh", "-c", &script]);
    wait_screen(&mut c, &id, "ready");
    let all = [&orphan, &child, &main];
    let found = eventually(WAIT, "the session's three sleeps", || {
        let found: Vec<BTreeSet<u32>> = all.iter().map(|m| pids_running(&["sleep", m])).collect();
        found.iter().all(|f| f.len() == 1).then_some(found)
    });
    let before = Instant::now();
    call(&mut c, "session.kill", json!({"id": id}));
    println!("session.kill took {:?}", before.elapsed());
    for (m, pids) in all.iter().zip(&found) {
        let left = pids_running(&["sleep", m]);
        assert!(left.is_empty(), "sleep {m} {pids:?} survived session.kill: {left:?}");
    }
}

#[test]
fn what_a_program_leaves_behind_ends_with_it() {
    let d = TestDaemon::start("");
    let mut c = client(&d);
    let (orphan, child) = (marker(), marker());
    // It waits until both run (else its exit's hangup may kill them first).
    let script = format!(
        "(setsid sleep {orphan} &); sleep {child} & \
         until pgrep -fx 'sleep {orphan}' && pgrep -fx 'sleep {child}'; do sleep 0.01; done >/dev/null; \
         echo started; exit 6"
    );
    let id = create(&mut c, &["sh", "-c", &script]);
    let s = wait_exited(&mut c, &id);
    assert_eq!(s["exit_status"], json!(6));
    // The wrapper ends leftovers before it exits, so before the exit shows.
    for m in [&orphan, &child] {
        let left = pids_running(&["sleep", m]);
        assert!(left.is_empty(), "sleep {m} outlived its session's program: {left:?}");
    }
    assert!(screen(&mut c, &id).contains("started"));
}

#[test]
fn job_control_and_terminal_signals_work_in_an_interactive_shell() {
    let d = TestDaemon::start("");
    let mut c = client(&d);
    let s = call(
        &mut c,
        "session.create",
        json!({"command": ["bash", "--norc", "--noprofile", "-i"], "env": {"PS1": "shell$ "},
               "cols": 100, "rows": 30}),
    );
    let id = s["id"].as_str().unwrap().to_string();
    wait_screen(&mut c, &id, "shell$"); // a capture drops trailing blanks
    let job = marker();
    send(&mut c, &id, &format!("sleep {job} &"));
    send(&mut c, &id, "jobs");
    wait_screen(&mut c, &id, "Running");
    send(&mut c, &id, "fg");
    wait_screen(&mut c, &id, &format!("\nsleep {job}\n"));
    keys(&mut c, &id, &["C-c"]);
    send(&mut c, &id, "echo rc=$?");
    let text = wait_screen(&mut c, &id, "rc=130");
    assert!(pids_running(&["sleep", &job]).is_empty(), "Ctrl-C did not reach the foreground job");
    // Ctrl-Z stops a foreground job, bg resumes it.
    let stopped = marker();
    send(&mut c, &id, &format!("sleep {stopped}"));
    eventually(WAIT, "the foreground sleep", || {
        (!pids_running(&["sleep", &stopped]).is_empty()).then_some(())
    });
    keys(&mut c, &id, &["C-z"]);
    wait_screen(&mut c, &id, "Stopped");
    send(&mut c, &id, "bg; jobs");
    wait_screen(&mut c, &id, &format!("sleep {stopped} &\n"));
    // SIGWINCH reaches the shell on a resize.
    send(&mut c, &id, "trap 'echo got-winch' WINCH");
    call(&mut c, "session.resize", json!({"id": id, "cols": 90, "rows": 25}));
    wait_screen(&mut c, &id, "got-winch");
    for bad in ["no job control", "cannot set terminal process group"] {
        assert!(!text.contains(bad), "{bad}:\n{text}");
    }
    send(&mut c, &id, "exit 3");
    let s = wait_exited(&mut c, &id);
    assert_eq!(s["exit_status"], json!(3));
    assert!(pids_running(&["sleep", &stopped]).is_empty(), "the shell's job outlived it");
}

#[test]
fn a_signal_that_kills_the_program_is_its_exit_status() {
    let d = TestDaemon::start("");
    let mut c = client(&d);
    let (term, int) = (marker(), marker());
    let a = create(&mut c, &["sleep", &term]);
    let b = create(&mut c, &["sleep", &int]);
    let pid = eventually(WAIT, "the program's pid", || get(&mut c, &a)["pid"].as_u64());
    assert_eq!(
        pids_running(&["sleep", &term]),
        BTreeSet::from([pid as u32]),
        "pid is the program's"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_exited(&mut c, &a)["exit_status"], json!(128 + 15));
    // Ctrl-C through the terminal reaches the program (the foreground group).
    eventually(WAIT, "the second sleep", || {
        (!pids_running(&["sleep", &int]).is_empty()).then_some(())
    });
    keys(&mut c, &b, &["C-c"]);
    assert_eq!(wait_exited(&mut c, &b)["exit_status"], json!(128 + 2));
    // tmux has the signal itself, not a code that looks like one.
    let out = d.tmux(&["list-panes", "-a", "-F", "#{pane_dead_status}:#{pane_dead_signal}"]);
    let panes = String::from_utf8_lossy(&out.stdout);
    for sig in [":15", ":2"] {
        assert!(panes.lines().any(|l| l.ends_with(sig)), "{panes}");
    }
}

#[test]
fn session_kill_ends_a_program_that_ignores_hup_and_term() {
    let d = TestDaemon::start("");
    let mut c = client(&d);
    let (shell, child) = (marker(), marker());
    // The shell and its child both ignore SIGHUP and SIGTERM (an ignored
    // signal stays ignored across exec).
    let script = format!("trap '' HUP TERM; sleep {child}; sleep {shell}");
    let id = create(&mut c, &["sh", "-c", &script]);
    eventually(WAIT, "the child sleep", || {
        (!pids_running(&["sleep", &child]).is_empty()).then_some(())
    });
    let before = Instant::now();
    call(&mut c, "session.kill", json!({"id": id}));
    println!("session.kill of a program ignoring SIGHUP and SIGTERM took {:?}", before.elapsed());
    assert!(pids_running(&["sleep", &child]).is_empty(), "the child survived session.kill");
    // The exec-wrapper did it (SIGKILL after its grace), not the daemon's fallback.
    let log = d.log_text();
    assert!(!log.contains("did not end the session's processes"), "{log}");
}

#[test]
fn a_program_does_not_outlive_its_tmux_server() {
    let d = TestDaemon::start("");
    let mut c = client(&d);
    let m = marker();
    let script = format!("trap '' HUP; exec sleep {m}");
    let id = create(&mut c, &["sh", "-c", &script]);
    eventually(WAIT, "the sleep", || (!pids_running(&["sleep", &m]).is_empty()).then_some(()));
    let out = d.tmux(&["kill-server"]);
    assert!(out.status.success(), "{out:?}");
    eventually(WAIT, "the session's program to end with its pane", || {
        pids_running(&["sleep", &m]).is_empty().then_some(())
    });
    eventually(WAIT, "the session to be lost", || {
        (get(&mut c, &id)["state"] == "lost").then_some(())
    });
}
