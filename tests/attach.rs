//! `ccmanagerctl attach` through the daemon, driven in a real pty: the
//! test holds the master (it reads the screen and types), the real binary
//! runs as a non-admin test user with the slave as its controlling
//! terminal (setsid + TIOCSCTTY), exactly as in an operator's terminal.
//!
//! Needs root (test users); each test prints SKIP otherwise.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags, Termios};
use serde_json::json;

use common::caller::{as_user, sid, Caller};
use common::daemon::{bin, TestDaemon};
use common::users::{users_or_skip, TestUser, Users};
use common::wait::{eventually, WAIT};

/// A daemon that the test users may use.
struct World {
    d: TestDaemon,
    u: Users,
}

impl World {
    fn start(test: &str) -> Option<World> {
        let u = users_or_skip(test)?;
        let d = TestDaemon::start_shared(&[u.a.uid, u.b.uid], "");
        Some(World { d, u })
    }

    fn a(&self) -> Caller<'_> {
        as_user(&self.d, &self.u.a)
    }
}

/// `ccmanagerctl attach ARGS` as `user` in a fresh pty of `cols`x`rows`.
struct Terminal {
    master: Arc<OwnedFd>,
    /// Kept open to look at the terminal's settings from outside.
    slave: OwnedFd,
    child: Child,
    /// Everything the program wrote to its terminal.
    seen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

fn size(cols: u16, rows: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

impl Terminal {
    fn start(d: &TestDaemon, user: &TestUser, args: &[&str], cols: u16, rows: u16) -> Terminal {
        let pty = openpty(Some(&size(cols, rows)), None).expect("openpty");
        let slave = pty.slave;
        let mut cmd = user.command(bin("ccmanagerctl"));
        cmd.arg("--socket").arg(&d.socket).arg("attach").args(args).env("TERM", "xterm");
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing allocates.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn ccmanagerctl attach");
        let master = Arc::new(pty.master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s, st) = (master.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || read_master(&m, &s, &st));
        Terminal { master, slave, child, seen, stop }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `needle`.
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.screen().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never showed on the attached terminal; it shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_bytes(&self, bytes: &[u8]) {
        let mut f = std::fs::File::from(self.master.as_fd().try_clone_to_owned().unwrap());
        f.write_all(bytes).expect("type into the pty");
    }

    fn resize(&self, cols: u16, rows: u16) {
        let ws = size(cols, rows);
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    fn settings(&self) -> Termios {
        tcgetattr(&self.slave).expect("tcgetattr on the slave")
    }

    /// Waits for the program to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "attach did not end; it shows:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_master(master: &OwnedFd, seen: &Mutex<Vec<u8>>, stop: &AtomicBool) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut buf = vec![0u8; 64 * 1024];
    let tick = Timespec { tv_sec: 0, tv_nsec: 50_000_000 };
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(master, PollFlags::IN)];
        if poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
            continue;
        }
        match rustix::io::read(master, &mut buf) {
            Ok(n @ 1..) => seen.lock().unwrap().extend_from_slice(&buf[..n]),
            Ok(0) | Err(rustix::io::Errno::IO) => std::thread::sleep(Duration::from_millis(20)),
            _ => {}
        }
    }
}

/// The settings that matter for "the terminal is restored".
fn same_settings(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.control_flags == b.control_flags
        && a.local_flags == b.local_flags
        && a.control_chars == b.control_chars
}

/// `(cols, rows)` of a session, as its owner sees it.
fn pane_size(c: &Caller, id: &str) -> (u64, u64) {
    let s = c.ok("session.get", json!({"id": id}));
    (s["cols"].as_u64().unwrap_or(0), s["rows"].as_u64().unwrap_or(0))
}

/// Whether any client other than a control-mode one (the daemon's) is on
/// the server of `uid`: attach must not be a tmux client.
fn tmux_clients(d: &TestDaemon, uid: u32) -> Vec<String> {
    let out = std::process::Command::new("tmux")
        .arg("-S")
        .arg(d.tmux_socket_of(uid))
        .args(["list-clients", "-F", "#{client_control_mode} #{client_tty}"])
        .output()
        .expect("tmux list-clients");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().filter(|l| !l.starts_with('1')).map(str::to_string).collect()
}

#[test]
fn attach_shows_types_resizes_and_detaches_as_a_non_admin_owner() {
    let Some(w) = World::start("attach_shows_types_resizes_and_detaches_as_a_non_admin_owner")
    else {
        return;
    };
    let script = "echo READY-$((6*7)); while read line; do echo \"got:$line\"; stty size; done";
    let s = w.a().create(json!({"command": ["/bin/sh", "-c", script], "cols": 80, "rows": 24}));
    let id = sid(&s).to_string();
    w.a().wait_screen(&id, "READY-42");

    let mut t = Terminal::start(&w.d, &w.u.a, &[&id], 91, 27);
    let before = {
        // The settings before ccmanagerctl made the terminal raw: those of
        // a fresh pty (cooked, echo).
        let fresh = openpty(None, None).unwrap();
        tcgetattr(&fresh.slave).unwrap()
    };
    t.wait_for("READY-42");
    let raw = t.settings();
    assert!(
        !raw.local_flags.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "the terminal is not raw while attached: {:?}",
        raw.local_flags
    );
    eventually(WAIT, "the pane to take the terminal's size at attach", || {
        (pane_size(&w.a(), &id) == (91, 27)).then_some(())
    });
    assert_eq!(tmux_clients(&w.d, w.u.a.uid), Vec::<String>::new(), "attach ran a tmux client");

    t.type_bytes(b"hello there\r");
    t.wait_for("got:hello there");
    t.wait_for("27 91");

    t.resize(120, 40);
    eventually(WAIT, "the pane to follow the terminal's resize", || {
        (pane_size(&w.a(), &id) == (120, 40)).then_some(())
    });
    // tmux gives the pane's tty its new size a moment after the window's
    // (it defers pane resizes): ask until `stty size` says so.
    eventually(WAIT, "`stty size` in the pane to say 40 120", || {
        t.type_bytes(b"again\r");
        std::thread::sleep(Duration::from_millis(200));
        t.screen().contains("40 120").then_some(())
    });

    t.type_bytes(b"\x1d");
    let status = t.wait_exit();
    assert_eq!(status.code(), Some(0), "detach: {}", t.screen());
    t.wait_for(&format!("`ccmanagerctl attach {id}` attaches again"));
    assert!(same_settings(&t.settings(), &before), "the terminal was not restored");
    assert_eq!(w.a().ok("session.get", json!({"id": id}))["state"], "running");
}

#[test]
fn attach_ends_with_the_session_and_a_chosen_detach_key_is_typed_through() {
    let Some(w) =
        World::start("attach_ends_with_the_session_and_a_chosen_detach_key_is_typed_through")
    else {
        return;
    };
    // `od` shows what the program read: Ctrl-] must reach it when it is
    // not the detach key.
    let script = "stty raw -echo; echo READY; head -c 3 | od -An -tx1; stty sane; read x; exit 7";
    let s = w.a().create(json!({"command": ["/bin/sh", "-c", script]}));
    let id = sid(&s).to_string();
    w.a().wait_screen(&id, "READY");
    let mut t = Terminal::start(&w.d, &w.u.a, &["--detach-key", "ctrl-b", &id], 80, 24);
    t.wait_for("READY");
    t.type_bytes(b"\x1d\x03\x1a");
    t.wait_for("1d 03 1a");
    t.type_bytes(b"bye\r");
    let status = t.wait_exit();
    assert_eq!(status.code(), Some(3), "{}", t.screen());
    t.wait_for(&format!("session {id} exited with status 7"));
    let fresh = openpty(None, None).unwrap();
    assert!(same_settings(&t.settings(), &tcgetattr(&fresh.slave).unwrap()));
}

#[test]
fn sigterm_restores_the_terminal() {
    let Some(w) = World::start("sigterm_restores_the_terminal") else { return };
    let s = w.a().create(json!({"command": ["/bin/sh", "-c", "echo READY; exec cat"]}));
    let id = sid(&s).to_string();
    w.a().wait_screen(&id, "READY");
    let mut t = Terminal::start(&w.d, &w.u.a, &[&id], 80, 24);
    t.wait_for("READY");
    assert!(!t.settings().local_flags.contains(LocalFlags::ICANON));
    let pid = nix::unistd::Pid::from_raw(t.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = t.wait_exit();
    assert_eq!(status.code(), Some(128 + 15), "{}", t.screen());
    let fresh = openpty(None, None).unwrap();
    assert!(same_settings(&t.settings(), &tcgetattr(&fresh.slave).unwrap()));
}

#[test]
fn attach_keeps_going_across_a_daemon_restart_without_losing_output() {
    let Some(mut w) =
        World::start("attach_keeps_going_across_a_daemon_restart_without_losing_output")
    else {
        return;
    };
    let script = "echo READY; while read line; do sleep 1; echo \"late:$line\"; done";
    let s = w.a().create(json!({"command": ["/bin/sh", "-c", script]}));
    let id = sid(&s).to_string();
    w.a().wait_screen(&id, "READY");
    let t = Terminal::start(&w.d, &w.u.a, &[&id], 80, 24);
    t.wait_for("READY");
    // Printed a second later, while the daemon is down.
    t.type_bytes(b"one\r");
    t.wait_for("one");
    w.d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = w.d.child.as_mut().unwrap().wait();
    std::thread::sleep(Duration::from_millis(1500));
    w.d.restart();
    t.wait_for("late:one");
    t.type_bytes(b"two\r");
    t.wait_for("late:two");
    let screen = t.screen();
    assert_eq!(screen.matches("late:one").count(), 1, "repeated after the reconnect:\n{screen}");
}

/// Figures, not assertions (timing is noisy here): how fast output reaches
/// an attached terminal and how long a key takes to come back, printed.
/// `cargo test --release --test attach -- --ignored --nocapture figures`
#[test]
#[ignore]
fn figures_throughput_and_echo_through_attach() {
    let Some(w) = World::start("figures_throughput_and_echo_through_attach") else { return };
    const BYTES: u64 = 50_000_000;
    let script = format!(
        "stty raw -echo; echo READY; head -c1 >/dev/null; t0=$(date +%s%N); \
         yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz | head -c {BYTES}; \
         t1=$(date +%s%N); printf '\\r\\nPRINTED-IN %s ns\\r\\n' $((t1-t0)); exec cat"
    );
    let s = w.a().create(json!({"command": ["/bin/sh", "-c", script]}));
    let id = sid(&s).to_string();
    w.a().wait_screen(&id, "READY");
    let t = Terminal::start(&w.d, &w.u.a, &[&id], 80, 24);
    t.wait_for("READY");
    let start_len = t.seen.lock().unwrap().len();
    let started = Instant::now();
    t.type_bytes(b"g");
    let tail_has = |needle: &[u8]| {
        let seen = t.seen.lock().unwrap();
        let from = seen.len().saturating_sub(4096);
        seen[from..].windows(needle.len()).any(|w| w == needle)
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while !tail_has(b" ns\r\n") {
        assert!(Instant::now() < deadline, "the output never all arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let received = t.seen.lock().unwrap().len() - start_len;
    let screen =
        String::from_utf8_lossy(&t.seen.lock().unwrap()[start_len + received - 200..]).into_owned();
    let printed_ns: f64 = screen
        .split("PRINTED-IN ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    let mb = BYTES as f64 / 1e6;
    println!(
        "attach throughput: {mb:.0} MB in {:.2} s = {:.1} MB/s at the terminal ({received} bytes); \
         the program printed them in {:.2} s ({:.1} MB/s)",
        took.as_secs_f64(),
        mb / took.as_secs_f64(),
        printed_ns / 1e9,
        mb / (printed_ns / 1e9)
    );
    // Echo: one key at a time through `cat` in a raw tty.
    let mut samples = Vec::new();
    for i in 0..200u32 {
        let key = [b'a' + (i % 26) as u8];
        let before = t.seen.lock().unwrap().len();
        let sent = Instant::now();
        t.type_bytes(&key);
        while t.seen.lock().unwrap()[before..].iter().all(|b| *b != key[0]) {
            assert!(sent.elapsed() < Duration::from_secs(10), "no echo");
            std::thread::sleep(Duration::from_micros(50));
        }
        samples.push(sent.elapsed());
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "attach echo (key -> session.write -> cat -> log -> session.output -> terminal), {} keys: p50 {:.2} ms, p99 {:.2} ms",
        samples.len(),
        p(0.5),
        p(0.99)
    );
}
