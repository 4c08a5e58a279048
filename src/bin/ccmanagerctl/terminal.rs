//! The operator's terminal during `ccmanagerctl attach`: raw mode that is
//! always given back (on return, on error, on panic, on a terminating
//! signal), its size, the signals it reports, and the detach key.
//!
//! The terminal is a plain pipe for the session's bytes (like `ssh` and
//! `docker attach`; unlike `tmux attach`, which renders a screen of its
//! own): whatever modes the session's program turns on (mouse reporting,
//! bracketed paste, application keys, the alternate screen) reach the
//! operator's terminal as they are, and the session's output lands in the
//! terminal's own scrollback. There is no alternate screen of ours: the
//! daemon's screen snapshot sets the alternate screen on or off to match
//! the pane (src/streams/screen.rs), which would leave ours at once.
//! Before the snapshot, the operator's screen is scrolled into the
//! scrollback ([`make_room`]) so the snapshot's clear loses nothing.
//! Leaving turns the common modes off again ([`LEAVE`]) and leaves the
//! alternate screen if the program had it on ([`AltScreen`]).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use nix::sys::termios::{self, SetArg, Termios};

/// Written when leaving: attributes and modes a session may have turned
/// on back to their defaults (SGR, scroll region, cursor shown, mouse
/// modes 1000/1002/1003/1005/1006/1015, focus events, bracketed paste,
/// application cursor keys and keypad, the G0 character set and shift-in:
/// a session that switched to line drawing would leave the shell's prompt
/// in it). The scroll region reset homes the cursor, so the cursor is
/// saved around it.
pub const LEAVE: &[u8] = b"\x1b(B\x0f\x1b[0m\x1b7\x1b[r\x1b8\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1004l\x1b[?2004l\x1b[?1l\x1b>";
/// Leaves the alternate screen (back to the normal one and its cursor).
const LEAVE_ALTERNATE: &[u8] = b"\x1b[?1049l";

/// Whether the session's program has the alternate screen on, as far as
/// the bytes written to the terminal say; read by the panic hook too.
static ALTERNATE: AtomicBool = AtomicBool::new(false);

/// Follows the alternate screen switches (`CSI ? 1049/1047/47 h|l`) in
/// the bytes written to the terminal, across writes, so leaving can switch
/// back to the normal screen where the operator's shell is.
#[derive(Default)]
pub struct AltScreen {
    /// 0: ground; 1: after ESC; 2: after `ESC [`; 3: in `ESC [ ?` digits.
    state: u8,
    number: u32,
}

impl AltScreen {
    /// Scans bytes about to be written.
    pub fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (_, 0x1b) => 1,
                (1, b'[') => 2,
                (2, b'?') => {
                    self.number = 0;
                    3
                }
                (3, b'0'..=b'9') => {
                    self.number = (self.number * 10 + u32::from(b - b'0')).min(100_000);
                    3
                }
                (3, b'h' | b'l') => {
                    if matches!(self.number, 1049 | 1047 | 47) {
                        ALTERNATE.store(b == b'h', Ordering::Relaxed);
                    }
                    0
                }
                _ => 0,
            };
        }
    }
}

/// Pushes what the terminal shows into its scrollback (`rows` new lines),
/// so a screen drawn over it next (a snapshot clears) hides nothing.
pub fn make_room() -> Vec<u8> {
    let rows = size().map_or(24, |(_, rows)| rows);
    b"\r\n".repeat(usize::from(rows))
}

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
    let mut leave = LEAVE.to_vec();
    if ALTERNATE.swap(false, Ordering::Relaxed) {
        leave.extend_from_slice(LEAVE_ALTERNATE);
    }
    leave.extend_from_slice(b"\r\n");
    let mut out = leave.as_slice();
    while !out.is_empty() {
        match rustix::io::write(std::io::stdout(), out) {
            Ok(n) => out = &out[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    // TCSAFLUSH: the terminal's answers to queries the session printed last
    // (device attributes, cursor reports) are discarded, not left as input
    // for the operator's shell.
    let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSAFLUSH, saved);
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

    #[test]
    fn alternate_screen_switches_are_followed_across_writes() {
        let mut a = AltScreen::default();
        a.scan(b"x\x1b[?1049h");
        assert!(ALTERNATE.load(Ordering::Relaxed));
        a.scan(b"vim\x1b[?10");
        a.scan(b"49lshell");
        assert!(!ALTERNATE.load(Ordering::Relaxed));
        a.scan(b"\x1b[?47h\x1b[?1000l\x1b[?25l");
        assert!(ALTERNATE.load(Ordering::Relaxed));
        a.scan(b"\x1b[?2004l\x1b[?1047l");
        assert!(!ALTERNATE.load(Ordering::Relaxed));
    }
}
