//! The operator's terminal during `ccmanagerctl attach`: raw mode that is
//! always given back (on return, on error, on panic, on a terminating
//! signal), its size, the signals it reports, and the detach key.
//!
//! The terminal is a dumb pipe for the session's bytes (like `docker
//! attach` and `ssh`, unlike `tmux attach`, which renders its own screen):
//! whatever modes the session's program turns on (mouse reporting,
//! bracketed paste, application keys, the alternate screen) reach the
//! operator's terminal as they are. Attaching switches to the alternate
//! screen first, so the operator's shell screen comes back on detach, and
//! leaving turns the common modes off again ([`LEAVE`]).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Mutex, Once};

use nix::sys::termios::{self, SetArg, Termios};

/// Written when attached: the alternate screen (saving the cursor), so
/// the session's screen does not overwrite the operator's shell screen.
pub const ENTER: &[u8] = b"\x1b[?1049h";
/// Written when leaving: attributes and modes a session may have turned
/// on back to their defaults (SGR, cursor shown, mouse modes 1000/1002/
/// 1003/1005/1006/1015, focus events, bracketed paste, application cursor
/// keys and keypad), then back to the normal screen and saved cursor.
pub const LEAVE: &[u8] = b"\x1b[0m\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1004l\x1b[?2004l\x1b[?1l\x1b>\x1b[?1049l";

/// The settings to give back, for the panic hook (which has no guard).
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Raw mode on stdin's terminal until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Saves the terminal's settings, then makes it raw (no echo, no line
    /// editing, no signal keys: Ctrl-C and Ctrl-Z go to the session).
    pub fn enter() -> std::io::Result<RawMode> {
        let saved = termios::tcgetattr(std::io::stdin())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        install_panic_hook();
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved.clone());
        termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore(&self.saved);
        SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Leaves the session's modes and gives the saved settings back. Written
/// with `write(2)` on fd 1, not through `Stdout`: a panic may hold its lock.
fn restore(saved: &Termios) {
    let mut out = LEAVE;
    while !out.is_empty() {
        match rustix::io::write(std::io::stdout(), out) {
            Ok(n) => out = &out[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, saved);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(saved) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take() {
                restore(&saved);
            }
            previous(info);
        }));
    });
}

/// Whether stdin and stdout are both terminals.
pub fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The terminal's size as (columns, rows); `None` when it does not say
/// (a pty nobody sized reports 0x0).
pub fn size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Signals that end an attach: they restore the terminal first.
pub const TERMINATING: [i32; 4] = [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT];

/// A self-pipe that receives one byte, the signal number, per signal
/// delivered (signal-hook runs the handler; the handler only `write(2)`s).
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Catches `signals` until dropped.
    pub fn catch(signals: &[i32]) -> std::io::Result<Signals> {
        use nix::fcntl::OFlag;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let fd = write.as_raw_fd();
        let mut ids = Vec::new();
        for &signal in signals {
            let byte = signal as u8;
            // SAFETY: the action only calls write(2), which is
            // async-signal-safe, on a descriptor that outlives the
            // registration (unregistered in Drop before `_write` closes).
            let id = unsafe {
                signal_hook::low_level::register(signal, move || {
                    libc::write(fd, (&byte as *const u8).cast(), 1);
                })
            }?;
            ids.push(id);
        }
        Ok(Signals { read, _write: write, ids })
    }

    /// The signals delivered since the last call, in order (a signal
    /// delivered many times before this may show once).
    pub fn take(&self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while let Ok(n @ 1..) = rustix::io::read(&self.read, &mut buf) {
            got.extend(buf[..n].iter().map(|b| i32::from(*b)));
        }
        got
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The name of a signal, for messages.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map_or(signal.to_string(), |s| s.to_string())
}

/// Parses a detach key: `ctrl-X`, `C-X` or `^X` where X is a letter or
/// one of `@ [ \ ] ^ _ ?` (Ctrl-? is DEL). It is always a control
/// character: a printable key would detach on ordinary typing.
pub fn parse_key(spec: &str) -> Result<u8, String> {
    let lower = spec.to_ascii_lowercase();
    let key = ["ctrl-", "ctrl+", "c-", "^"].iter().find_map(|p| lower.strip_prefix(p));
    let byte = match key.map(str::as_bytes) {
        Some([c @ b'a'..=b'z']) => c - b'a' + 1,
        Some([c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')]) => c - b'@',
        Some([b'?']) => 0x7f,
        _ => {
            return Err(format!(
                "{spec:?} is not a control key: expected e.g. ctrl-], ctrl-a, ^A, C-q"
            ))
        }
    };
    Ok(byte)
}

/// How a key byte is written in messages: `Ctrl-]`.
pub fn key_name(byte: u8) -> String {
    match byte {
        0x7f => "Ctrl-?".into(),
        b => format!("Ctrl-{}", char::from(b + b'@')),
    }
}

/// Writes all of `bytes` to stdout and flushes.
pub fn write_out(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_to_control_bytes() {
        assert_eq!(parse_key("ctrl-]"), Ok(0x1d));
        assert_eq!(parse_key("Ctrl-A"), Ok(0x01));
        assert_eq!(parse_key("^a"), Ok(0x01));
        assert_eq!(parse_key("C-\\"), Ok(0x1c));
        assert_eq!(parse_key("ctrl-?"), Ok(0x7f));
        assert_eq!(parse_key("ctrl-@"), Ok(0x00));
        for bad in ["a", "ctrl-", "ctrl-ab", "ctrl-1", "^", "meta-x"] {
            assert!(parse_key(bad).unwrap_err().contains("not a control key"), "{bad}");
        }
        assert_eq!(key_name(0x1d), "Ctrl-]");
        assert_eq!(key_name(0x01), "Ctrl-A");
    }
}
