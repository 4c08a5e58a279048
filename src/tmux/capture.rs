//! `capture-pane` over the control connection, without leaking it in tmux.
//!
//! tmux before 3.6 never frees the text of a `capture-pane -p` run by a
//! control client (`cmd-capture-pane.c`: the `CLIENT_CONTROL` branch
//! `control_write`s the buffer and returns without `free`; fixed upstream
//! in 94bafa5, August 2025, "A couple of memory leaks", released in 3.6).
//! Measured here on 3.3a: every 10000-line capture of a 200-column pane
//! grew the server by 1.87 MB, 25 of them by 47 MB, never given back. So
//! on those versions a capture goes through a paste buffer of its own:
//! `capture-pane -b NAME`, `show-buffer -b NAME`, `delete-buffer -b NAME`,
//! written together (the buffer is freed even when the caller gives up);
//! 25 such captures left the server where it was. `show-buffer` escapes
//! what is not printable (`utf8_stravisx` with `VIS_OCTAL|VIS_CSTYLE|
//! VIS_TAB`), which [`decode_vis`] undoes.

use std::sync::atomic::{AtomicU64, Ordering};

use super::client::ControlClient;
use super::command::Cmd;
use super::TmuxError;

/// The first version whose `capture-pane -p` does not leak (see above).
const FIXED_IN: (u32, u32) = (3, 6);

/// Numbers the capture buffers, so concurrent captures never share one.
static NEXT_BUFFER: AtomicU64 = AtomicU64::new(0);

/// Prefix of the paste buffers captures go through.
pub const BUFFER_PREFIX: &str = "ccm_capture_";

/// What to capture.
#[derive(Debug, Clone)]
pub struct CaptureSpec<'a> {
    /// The pane (`%N`).
    pub target: &'a str,
    /// Scrollback lines above the visible screen.
    pub lines: u32,
    /// Keep colour and attribute escape sequences (`-e`).
    pub escapes: bool,
    /// The caller's estimate of the capture's size, for the reply budget.
    pub estimate: usize,
}

/// Whether tmux `version` (`#{version}`: "3.3a", "next-3.6", "master")
/// leaks `capture-pane -p`: when in doubt, it is assumed to.
pub fn leaks_printed_captures(version: &str) -> bool {
    let v = version.trim().trim_start_matches("next-");
    if v.starts_with("openbsd") {
        return true;
    }
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
    match (parts.next().and_then(|p| p.parse().ok()), parts.next().and_then(|p| p.parse().ok())) {
        (Some(major), Some(minor)) => (major, minor) < FIXED_IN,
        _ => true,
    }
}

/// The pane's text, one `\n`-terminated line per row, as `capture-pane -p`
/// prints it; through a paste buffer when `version` leaks (or is unknown).
pub async fn capture(
    client: &ControlClient,
    version: Option<&str>,
    spec: &CaptureSpec<'_>,
) -> Result<String, TmuxError> {
    let mut cmd = Cmd::new("capture-pane").opt("-t", spec.target);
    if spec.escapes {
        cmd = cmd.flag("-e");
    }
    if spec.lines > 0 {
        cmd = cmd.opt("-S", format!("-{}", spec.lines));
    }
    if !version.is_none_or(leaks_printed_captures) {
        return Ok(client.run_sized(&cmd.flag("-p"), spec.estimate).await?.into_text());
    }
    let name = format!("{BUFFER_PREFIX}{}", NEXT_BUFFER.fetch_add(1, Ordering::Relaxed));
    let cmds = [
        cmd.opt("-b", &name),
        Cmd::new("show-buffer").opt("-b", &name),
        Cmd::new("delete-buffer").opt("-b", &name),
    ];
    let mut results = client.run_many(&cmds, spec.estimate).await?.into_iter();
    let mut next = || results.next().unwrap_or_else(|| Err(TmuxError::Command("no reply".into())));
    let (captured, shown) = (next(), next());
    captured?;
    let shown = shown?.into_text();
    // show-buffer prints the buffer (whose rows each end in `\n`) and a
    // newline of its own.
    let body = shown.strip_suffix('\n').unwrap_or(&shown);
    Ok(String::from_utf8_lossy(&decode_vis(body)).into_owned())
}

/// Undoes tmux's `vis` escaping as `show-buffer` does it (`VIS_OCTAL |
/// VIS_CSTYLE | VIS_TAB`): `\\` is a backslash, `\ooo` a byte in octal,
/// `\t \n \r \b \a \v \f \s \0` the C escapes; everything else (printable
/// ASCII, valid UTF-8, newlines) is itself. Written by hand: no crate
/// decodes BSD vis.
pub fn decode_vis(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let octal = |c: u8| (b'0'..=b'7').contains(&c);
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        if i + 3 < b.len() && octal(c) && octal(b[i + 2]) && octal(b[i + 3]) {
            let value = u32::from(c - b'0') << 6
                | u32::from(b[i + 2] - b'0') << 3
                | u32::from(b[i + 3] - b'0');
            out.push(value as u8);
            i += 4;
            continue;
        }
        let decoded = match c {
            b'\\' => b'\\',
            b't' => b'\t',
            b'n' => b'\n',
            b'r' => b'\r',
            b'b' => 0x08,
            b'a' => 0x07,
            b'v' => 0x0b,
            b'f' => 0x0c,
            b's' => b' ',
            b'0' => 0,
            // Not an escape vis makes: keep it as it is.
            _ => {
                out.push(b'\\');
                i += 1;
                continue;
            }
        };
        out.push(decoded);
        i += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vis_escapes_are_undone() {
        let cases: [(&str, &[u8]); 7] = [
            ("plain text é\n", "plain text é\n".as_bytes()),
            ("back\\\\slash", b"back\\slash"),
            ("\\033[31mred\\033[39m", b"\x1b[31mred\x1b[39m"),
            ("tab\\there\\r\\b\\a\\v\\f\\s", b"tab\there\r\x08\x07\x0b\x0c "),
            ("nul\\0x \\000", b"nul\0x \0"),
            ("\\377\\200", b"\xff\x80"),
            ("odd \\q and end\\", b"odd \\q and end\\"),
        ];
        for (input, want) in cases {
            assert_eq!(decode_vis(input), want, "{input:?}");
        }
    }

    #[test]
    fn versions_before_3_6_leak() {
        for v in ["3.2", "3.3a", "3.4", "3.5a", "master", "", "openbsd-7.4"] {
            assert!(leaks_printed_captures(v), "{v}");
        }
        for v in ["3.6", "3.6a", "next-3.7", "4.0"] {
            assert!(!leaks_printed_captures(v), "{v}");
        }
    }
}
