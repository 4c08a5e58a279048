//! A snapshot of a pane's screen as bytes a terminal can replay, and the
//! log offset from which live output continues it (`from: "screen"`,
//! `session.reset`).
//!
//! The bytes: the terminal modes tmux reports (alternate screen, cursor
//! keys, keypad, mouse reporting, insert, wrap, origin, scroll region) set
//! explicitly on *and* off, since a reset lands in a terminal in any state;
//! home and clear; the visible rows of `capture-pane -e` (text with its
//! colour and attribute escapes), joined by CR LF; the pen reset; the
//! cursor position and visibility.
//!
//! Not reproduced: the pen (colours, attributes) at the cursor, bracketed
//! paste (tmux 3.3a has no format for it), character sets, tab stops, the
//! title, the scrollback, and trailing blanks of a row (with their
//! background colour).
//!
//! Snapshot and offset: tmux writes what it reads from a pane to the pipe
//! of `pipe-pane` (then the logger, then the file) in the same step as it
//! draws it, so the screen at a capture holds every byte the log has before
//! the capture and may hold bytes that reach the file just after. The log's
//! end is read before the capture and again [`SETTLE`] after it: when both
//! agree, the pane printed nothing meanwhile and the snapshot is exactly
//! the bytes before that offset (the usual case: a prompt, an agent
//! waiting). A pane that keeps printing is tried [`ATTEMPTS`] times; then
//! the offset is the end read after the last capture, and the few bytes
//! printed during the capture may be drawn twice or skipped.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::logs::Log;
use crate::sessions::{Caller, Sessions, DEFAULT_COLS, DEFAULT_ROWS};
use crate::tmux::capture::CaptureSpec;
use crate::tmux::Cmd;

/// Time after a capture within which the logger has written what tmux
/// drew (measured: tmux to the log file takes well under a millisecond on
/// an idle machine).
pub const SETTLE: Duration = Duration::from_millis(10);
/// Captures tried before settling for an inexact one.
pub const ATTEMPTS: usize = 3;
/// Bytes per cell a capture with escapes is expected to take (for the tmux
/// reply budget; as `session.capture` estimates).
const BYTES_PER_CELL: usize = 6;

/// What a screen snapshot clears a terminal with when there is no screen
/// to show (the session's pane is gone): home, clear.
pub const CLEAR: &[u8] = b"\x1b[H\x1b[2J";

/// The pane state tmux reports next to a capture.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Modes {
    cursor_x: u32,
    cursor_y: u32,
    alternate: bool,
    cursor_visible: bool,
    cursor_keys: bool,
    keypad: bool,
    mouse_standard: bool,
    mouse_button: bool,
    mouse_any: bool,
    mouse_sgr: bool,
    mouse_utf8: bool,
    insert: bool,
    wrap: bool,
    origin: bool,
    region: Option<(u32, u32)>,
}

/// The `display-message` format that yields [`Modes`] (parsed by [`parse_modes`]).
pub const MODES_FORMAT: &str = "#{cursor_x},#{cursor_y},#{pane_height},#{alternate_on},\
#{cursor_flag},#{keypad_cursor_flag},#{keypad_flag},#{mouse_standard_flag},\
#{mouse_button_flag},#{mouse_any_flag},#{mouse_sgr_flag},#{mouse_utf8_flag},\
#{insert_flag},#{wrap_flag},#{origin_flag},#{scroll_region_upper},#{scroll_region_lower}";

/// [`Modes`] from a line of [`MODES_FORMAT`].
pub fn parse_modes(line: &str) -> Option<Modes> {
    let f: Vec<u32> = line.trim().split(',').map(|v| v.parse().ok()).collect::<Option<_>>()?;
    if f.len() != 17 {
        return None;
    }
    let on = |i: usize| f[i] != 0;
    let (height, upper, lower) = (f[2], f[15], f[16]);
    let full = upper == 0 && lower + 1 >= height;
    Some(Modes {
        cursor_x: f[0],
        cursor_y: f[1],
        alternate: on(3),
        cursor_visible: on(4),
        cursor_keys: on(5),
        keypad: on(6),
        mouse_standard: on(7),
        mouse_button: on(8),
        mouse_any: on(9),
        mouse_sgr: on(10),
        mouse_utf8: on(11),
        insert: on(12),
        wrap: on(13),
        origin: on(14),
        region: (!full && lower > upper).then_some((upper, lower)),
    })
}

/// The bytes that draw `capture` (the rows of `capture-pane -e -p`, each
/// ending in `\n`) with `modes` on a terminal in any state.
pub fn render(capture: &str, modes: &Modes) -> Vec<u8> {
    let set = |on: bool, mode: &str| format!("\x1b[?{mode}{}", if on { 'h' } else { 'l' });
    let mut out = String::with_capacity(capture.len() + 256);
    // Leave any scroll region and origin mode first: they change what
    // home, clear and positions mean.
    out.push_str("\x1b[r\x1b[?6l");
    out.push_str(&set(modes.alternate, "1049"));
    out.push_str("\x1b[0m\x1b[H\x1b[2J");
    let rows = capture.strip_suffix('\n').unwrap_or(capture);
    for (i, row) in rows.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(row);
    }
    out.push_str("\x1b[0m");
    out.push_str(&set(modes.cursor_keys, "1"));
    out.push_str(if modes.keypad { "\x1b=" } else { "\x1b>" });
    for (on, mode) in [
        (modes.mouse_standard, "1000"),
        (modes.mouse_button, "1002"),
        (modes.mouse_any, "1003"),
        (modes.mouse_utf8, "1005"),
        (modes.mouse_sgr, "1006"),
    ] {
        out.push_str(&set(on, mode));
    }
    out.push_str(if modes.insert { "\x1b[4h" } else { "\x1b[4l" });
    out.push_str(&set(modes.wrap, "7"));
    let mut row = modes.cursor_y;
    if let Some((upper, lower)) = modes.region {
        out.push_str(&format!("\x1b[{};{}r", upper + 1, lower + 1));
        if modes.origin {
            out.push_str("\x1b[?6h");
            row = row.saturating_sub(upper);
        }
    }
    out.push_str(&format!("\x1b[{};{}H", row + 1, modes.cursor_x + 1));
    out.push_str(&set(modes.cursor_visible, "25"));
    out.into_bytes()
}

/// A screen and the offset output continues it from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The bytes to replay.
    pub screen: Vec<u8>,
    /// Where live output continues.
    pub offset: u64,
    /// Whether the pane was quiet around the capture (see the module doc).
    pub exact: bool,
}

/// The screen of session `id` (as `caller` may see it) and the offset in
/// `log` output continues it from.
pub async fn snapshot(
    sessions: &Sessions,
    caller: &Caller,
    id: &str,
    log: &Arc<Log>,
) -> Result<Snapshot> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (record, server, pane) = sessions.live_pane(caller, id, false)?;
        let cols = usize::from(record.session.cols.unwrap_or(DEFAULT_COLS));
        let rows = usize::from(record.session.rows.unwrap_or(DEFAULT_ROWS));
        let before = super::log_end(log).await?;
        let spec = CaptureSpec {
            target: &pane,
            lines: 0,
            escapes: true,
            estimate: rows * (cols * BYTES_PER_CELL + 1),
        };
        let text = server.capture(&spec).await?;
        let out = server
            .tmux(Cmd::new("display-message").flag("-p").opt("-t", pane).arg(MODES_FORMAT))
            .await?;
        let modes = out.first().and_then(parse_modes).ok_or_else(|| {
            Error::Internal(format!("tmux answered the pane modes with {:?}", out.first()))
        })?;
        tokio::time::sleep(SETTLE).await;
        let after = super::log_end(log).await?;
        let exact = before == after;
        if exact || attempt >= ATTEMPTS {
            if !exact {
                tracing::debug!(session_id = %id, before, after, "screen snapshot of a busy pane: offset approximate");
            }
            return Ok(Snapshot { screen: render(&text, &modes), offset: after, exact });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_render() {
        let m = parse_modes("3,1,24,1,0,1,0,1,0,0,1,0,0,1,0,0,23").unwrap();
        assert_eq!((m.cursor_x, m.cursor_y), (3, 1));
        assert!(m.alternate && !m.cursor_visible && m.cursor_keys && m.mouse_sgr && m.wrap);
        assert_eq!(m.region, None, "0..23 of 24 rows is the whole screen");
        let out = String::from_utf8(render("a\x1b[31mb\n\ncd\n", &m)).unwrap();
        assert!(
            out.starts_with(
                "\x1b[r\x1b[?6l\x1b[?1049h\x1b[0m\x1b[H\x1b[2Ja\x1b[31mb\r\n\r\ncd\x1b[0m"
            ),
            "{out:?}"
        );
        assert!(out.contains("\x1b[?1h\x1b>"), "{out:?}");
        assert!(out.ends_with("\x1b[2;4H\x1b[?25l"), "{out:?}");

        let r = parse_modes("0,10,24,0,1,0,0,0,0,0,0,0,0,1,1,5,20").unwrap();
        assert_eq!(r.region, Some((5, 20)));
        let out = String::from_utf8(render("x\n", &r)).unwrap();
        assert!(out.contains("\x1b[?1049l"));
        assert!(out.ends_with("\x1b[6;21r\x1b[?6h\x1b[6;1H\x1b[?25h"), "{out:?}");

        assert!(parse_modes("1,2,3").is_none());
        assert!(parse_modes("a,0,24,0,1,0,0,0,0,0,0,0,0,1,0,0,23").is_none());
    }
}
