//! The `tmux attach` viewer, the baseline of the stream figures: a real
//! tmux client in a pseudo-terminal (80x24, `TERM=xterm-256color`), its
//! master read as fast as possible by a thread that notes when the run's
//! end marker is drawn. What a user with the tmux socket would run instead
//! of `session.subscribe`.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use super::super::TMUX;
use super::wire::Finder;

/// A tmux client attached in a pty.
pub struct Attached {
    child: Child,
    found: mpsc::Receiver<SystemTime>,
    reader: Option<JoinHandle<u64>>,
}

impl Attached {
    /// Attaches to session `target` (a name, matched exactly) of the server
    /// on `socket`, and waits until the client is listed.
    pub fn start(socket: &Path, target: &str, marker: &str) -> Result<Attached> {
        let size = nix::pty::Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&size), None).context("openpty")?;
        let slave: OwnedFd = pty.slave;
        let io = |fd: &OwnedFd| -> Result<Stdio> { Ok(Stdio::from(fd.try_clone()?)) };
        let mut cmd = Command::new(TMUX);
        cmd.arg("-S")
            .arg(socket)
            .args(["attach-session", "-t", &format!("={target}")])
            .env("TERM", "xterm-256color")
            .stdin(io(&slave)?)
            .stdout(io(&slave)?)
            .stderr(io(&slave)?);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawning tmux attach-session")?;
        drop(slave);
        let (tx, found) = mpsc::channel();
        let mut master = std::fs::File::from(pty.master);
        let mut finder = Finder::new(marker.as_bytes());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let (mut total, mut seen) = (0u64, false);
            // Ends with EIO once the client is gone.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
                if !seen && finder.feed(&buf[..n]) {
                    seen = true;
                    let _ = tx.send(SystemTime::now());
                }
            }
            total
        });
        let a = Attached { child, found, reader: Some(reader) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(TMUX)
                .arg("-S")
                .arg(socket)
                .args(["list-clients", "-t", &format!("={target}"), "-F", "#{client_pid}"])
                .output()?;
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!("tmux attach-session to {target} is not listed as a client after 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the first full redraw go by.
        std::thread::sleep(Duration::from_millis(100));
        Ok(a)
    }

    /// The tmux client's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// When the marker was drawn, waiting up to `limit`.
    pub fn wait_marker(&self, limit: Duration) -> Result<SystemTime> {
        self.found.recv_timeout(limit).map_err(|_| {
            anyhow::anyhow!("the end marker did not show through tmux attach within {limit:?}")
        })
    }

    /// Ends the client; returns the bytes read from the pty.
    pub fn stop(mut self) -> u64 {
        self.finish()
    }

    fn finish(&mut self) -> u64 {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        self.reader.take().and_then(|r| r.join().ok()).unwrap_or(0)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.finish();
        }
    }
}
