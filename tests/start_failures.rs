//! Start failures without systemd: an invalid config exits 78 (EX_CONFIG)
//! naming the key, and under socket activation answers the clients that
//! were waiting; `ccmanagerctl` never hangs on a socket nobody serves (a
//! connect timeout when the backlog is full, a reply timeout when nobody
//! answers), with exit code 2 and a message saying what to check.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::daemon::bin;

const BAD_CONFIG: &str = "[limits]\nmax_sessions = 10\nmax_sesions = 3\n";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cmd`, failing the test if it takes longer than `bound`.
fn run_within(cmd: &mut Command, bound: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > bound {
            let _ = child.kill();
            panic!("{cmd:?} still running after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("output"), t0.elapsed())
}

#[test]
fn an_invalid_config_exits_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, BAD_CONFIG).unwrap();
    let (out, _) = run_within(
        Command::new(bin("ccmanagerd"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(dir.path().join("d.sock")),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3: limits.max_sesions", config.display())), "{err}");
    assert!(!dir.path().join("d.sock").exists(), "an invalid config must not serve");
    // A missing file is a config error too.
    let (out, _) = run_within(
        Command::new(bin("ccmanagerd")).arg("--config").arg(dir.path().join("missing.toml")),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    // Other start failures keep their status: a socket that cannot be bound
    // (its directory is a file).
    std::fs::write(&config, "").unwrap();
    std::fs::write(dir.path().join("plain"), "").unwrap();
    let (out, _) = run_within(
        Command::new(bin("ccmanagerd"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(dir.path().join("plain").join("d.sock"))
            .arg("--tmux-dir")
            .arg(dir.path().join("tmux")),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "only config errors exit 78: {out:?}");
}

/// Socket activation emulated as systemd does it: the listening socket as fd
/// 3, `LISTEN_PID`/`LISTEN_FDS` naming it; a client already waiting in the
/// backlog gets an `invalid_config` error instead of hanging.
#[test]
fn waiting_clients_are_told_the_daemon_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, BAD_CONFIG).unwrap();
    let path = dir.path().join("d.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Already connected, as a client would be when systemd starts the service.
    let mut early = UnixStream::connect(&path).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(bin("ccmanagerd"))
        .arg("--config")
        .arg(&config);
    // SAFETY: dup2 and fcntl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it then.
            let ok = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (out, _) = run_within(&mut cmd, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    use std::io::{BufRead, Write};
    let _ = early.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.ping\",\"id\":1}\n");
    early.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&early).read_line(&mut line).expect("a reply, not a hang");
    let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["error"]["data"]["kind"], "invalid_config", "{reply}");
    assert_eq!(reply["id"], serde_json::Value::Null, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("systemctl status ccmanagerd"), "{message}");
    // The reason stays out of the reply (not every peer may read the config).
    assert!(!message.contains("max_sesions"), "{message}");
}

/// A listening socket whose backlog is full (the second connection waits):
/// nobody accepts, as with a socket-activated service failing to start.
fn full_backlog(path: &Path) -> (rustix::fd::OwnedFd, Vec<UnixStream>) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    rustix::net::listen(&fd, 0).unwrap();
    let mut queued = Vec::new();
    // Fill the queue: non-blocking connects until one would wait.
    for _ in 0..8 {
        let c = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            rustix::net::SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        match rustix::net::connect(&c, &SocketAddrUnix::new(path).unwrap()) {
            Ok(()) => queued.push(UnixStream::from(c)),
            Err(rustix::io::Errno::AGAIN) => return (fd, queued),
            Err(e) => panic!("connect: {e}"),
        }
    }
    panic!("the backlog never filled");
}

#[test]
fn ctl_gives_up_when_nobody_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let _listener = full_backlog(&path);
    let (out, took) = run_within(
        Command::new(bin("ccmanagerctl"))
            .args(["--connect-timeout", "1s", "--socket"])
            .arg(&path)
            .arg("status"),
        Duration::from_secs(20),
    );
    eprintln!("ccmanagerctl --connect-timeout 1s gave up after {took:?}");
    assert_eq!(out.status.code(), Some(75), "a timeout is EX_TEMPFAIL: {out:?}");
    let err = stderr(&out);
    assert!(err.contains("no connection to") && err.contains("within 1s"), "{err}");
    assert!(err.contains("systemctl status ccmanagerd"), "{err}");
    assert!(took >= Duration::from_millis(900), "gave up before its timeout: {took:?}");
}

#[test]
fn ctl_gives_up_when_nobody_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    // Connections are queued (the backlog has room) but never accepted.
    let _listener = UnixListener::bind(&path).unwrap();
    let (out, took) = run_within(
        Command::new(bin("ccmanagerctl"))
            .args(["--timeout", "1s", "--socket"])
            .arg(&path)
            .arg("status"),
        Duration::from_secs(20),
    );
    eprintln!("ccmanagerctl --timeout 1s gave up after {took:?}");
    assert_eq!(out.status.code(), Some(75), "a timeout is EX_TEMPFAIL: {out:?}");
    let err = stderr(&out);
    assert!(err.contains("no reply from the daemon") && err.contains("within 1s"), "{err}");
    assert!(err.contains("systemctl status ccmanagerd"), "{err}");
    // The default is bounded too, and said in --help.
    let help = Command::new(bin("ccmanagerctl")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 30s]") && help.contains("[default: 5s]"), "{help}");
    // A usage error is 2, not "cannot reach the daemon" (69).
    let bad =
        Command::new(bin("ccmanagerctl")).args(["--timeout", "0s", "status"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(stderr(&bad).contains("must be more than 0"), "{bad:?}");
    // Accepted, then closed without a reply (a daemon that dies): 69.
    let listener = UnixListener::bind(dir.path().join("closing.sock")).unwrap();
    let closer = std::thread::spawn(move || drop(listener.accept()));
    let (out, _) = run_within(
        Command::new(bin("ccmanagerctl"))
            .arg("--socket")
            .arg(dir.path().join("closing.sock"))
            .arg("status"),
        Duration::from_secs(20),
    );
    closer.join().unwrap();
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(stderr(&out).contains("closed the connection without replying"), "{out:?}");
}
