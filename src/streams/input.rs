//! `session.write`: raw bytes typed into a pane exactly, with no tmux key
//! names.
//!
//! Each byte goes as `send-keys -H XX`: tmux 3.2+ (`cmd-send-keys.c`,
//! `cmd_send_keys_inject_string`) turns a hex argument into
//! `KEYC_LITERAL|n`, and `input_key` (`input-keys.c`) writes such a key to
//! the pane as that one byte, before any key-name, backspace or UTF-8
//! handling. `send-keys -l` would not do: it drops bytes that are not
//! UTF-8 and maps DEL through the `backspace` option. `paste-buffer` would
//! be faster, but in 3.3a it writes to `wp->event` without checking that
//! the pane is alive (a NULL bufferevent once it died), where `send-keys`
//! goes through `window_pane_key`, which drops keys to a dead pane.
//!
//! Cost (tmux 3.3a, measured here over a control client): one `send-keys
//! -H` with N arguments grows faster than N: 64 arguments took 0.12 ms,
//! 256 took 0.7-0.85 ms, 1024 took 13-17 ms, 4096 took 256-282 ms. So a
//! write goes as commands of [`BYTES_PER_COMMAND`] arguments, written to the
//! control connection in rounds of at most [`COMMANDS_PER_ROUND`] (nothing
//! else comes between the commands of a round); the rounds of one session
//! are serialised by a per-session lock, so two writes never interleave.
//!
//! What tmux does with keys besides:
//! - a pane in a mode (copy mode after a scroll in an attached tmux client,
//!   a tree chooser) takes keys as that mode's commands, and nothing
//!   reaches the program (`cmd_send_keys_inject_key`). A viewer of the
//!   daemon's stream cannot see the mode (the log holds the program's
//!   output, not tmux's drawing), so a write first leaves every mode
//!   (`copy-mode -q`), as typing at the bottom of a terminal would;
//! - a pane whose input is off (`select-pane -d`) drops keys: the write
//!   is refused with `invalid_state` saying so (checked in the same round,
//!   so the bytes of that round were dropped by tmux, nothing else);
//! - a program that never reads its terminal: the kernel's pty queue fills
//!   (4 KiB in canonical mode), then tmux keeps what it cannot write in the
//!   pane's libevent buffer, which has no bound of its own. What bounds it
//!   is the owner's own: each call carries at most [`MAX_WRITE_BYTES`] and
//!   returns once tmux has queued them, and the owner's tmux server is
//!   capped by its unit's `MemoryMax` (`tmux.server_memory_max`) under
//!   systemd. It is the owner's server only: nobody else's memory grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::streams::SessionWrite;
use crate::sessions::{rfc3339, Caller, Sessions};
use crate::tmux::Cmd;

/// Most bytes one `session.write` carries (a large paste is several calls).
pub const MAX_WRITE_BYTES: usize = 64 << 10;
/// Bytes per `send-keys -H` command (see the cost above).
pub const BYTES_PER_COMMAND: usize = 64;
/// Commands written together to the control connection, at most (and at
/// most half of `tmux.max_commands_in_flight`, so other requests to the
/// same server still get slots).
pub const COMMANDS_PER_ROUND: usize = 16;
/// Per-session locks kept before dead ones are swept.
const SWEEP_AT: usize = 256;

/// The bytes a `session.write` asks for: exactly one of `data` and `text`,
/// not empty, at most [`MAX_WRITE_BYTES`].
pub fn bytes_of(p: SessionWrite) -> Result<(String, Vec<u8>)> {
    let bytes = match (p.data, p.text) {
        (Some(data), None) => data.0,
        (None, Some(text)) => text.into_bytes(),
        (Some(_), Some(_)) => {
            return Err(Error::InvalidParams(
                "data, text: give one of them, not both (data: base64 bytes, text: UTF-8)".into(),
            ))
        }
        (None, None) => {
            return Err(Error::InvalidParams(
                "data, text: give one of them (data: base64 bytes, text: UTF-8)".into(),
            ))
        }
    };
    if bytes.is_empty() {
        return Err(Error::InvalidParams("data/text: nothing to write (empty)".into()));
    }
    if bytes.len() > MAX_WRITE_BYTES {
        return Err(Error::InvalidParams(format!(
            "data/text: {} bytes is more than {MAX_WRITE_BYTES} bytes per session.write; send it in several calls",
            bytes.len()
        )));
    }
    Ok((p.id, bytes))
}

/// The `send-keys -H` commands that type `bytes` into `pane`, in order.
pub fn commands(pane: &str, bytes: &[u8]) -> Vec<Cmd> {
    bytes
        .chunks(BYTES_PER_COMMAND)
        .map(|chunk| {
            let hex = chunk.iter().map(|b| format!("{b:02x}"));
            Cmd::new("send-keys").opt("-t", pane).flag("-H").arg("--").args(hex)
        })
        .collect()
}

/// One lock per session being written to, so writes never interleave.
#[derive(Default)]
pub struct Writers {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Writers {
    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(id).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() >= SWEEP_AT {
            locks.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(id.to_string(), Arc::downgrade(&lock));
        lock
    }
}

/// `session.write`: `bytes` into the pane of session `id`, which must be
/// running and visible to `caller`.
pub async fn write(
    sessions: &Sessions,
    writers: &Writers,
    config: &Config,
    caller: &Caller,
    id: &str,
    bytes: &[u8],
) -> Result<()> {
    let (_, server, pane) = sessions.live_pane(caller, id, true)?;
    let lock = writers.lock_for(id);
    let _serial = lock.lock().await;
    let client = server.client()?;
    let per_round = (config.tmux.max_commands_in_flight / 2).clamp(1, COMMANDS_PER_ROUND);
    let mut cmds = commands(&pane, bytes).into_iter().peekable();
    let mut first = true;
    while cmds.peek().is_some() {
        let mut round = Vec::with_capacity(per_round + 2);
        if first {
            round.push(
                Cmd::new("display-message")
                    .flag("-p")
                    .opt("-t", pane.clone())
                    .arg("#{pane_input_off}"),
            );
            round.push(Cmd::new("copy-mode").flag("-q").opt("-t", pane.clone()));
        }
        round.extend(cmds.by_ref().take(per_round));
        let results =
            client.run_many(&round, 0).await.map_err(crate::sessions::server::tmux_err)?;
        for (i, result) in results.into_iter().enumerate() {
            let out = result.map_err(crate::sessions::server::tmux_err)?;
            if first && i == 0 && out.first() == Some("1") {
                return Err(Error::InvalidState(format!(
                    "session {id}: input to its pane is off (tmux select-pane -d); nothing was typed"
                )));
            }
        }
        first = false;
    }
    sessions.registry().update(id, |r| {
        let now = std::time::SystemTime::now();
        r.last_input = Some(now);
        r.session.last_activity_at = Some(rfc3339(now));
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::streams::Bytes;

    #[test]
    fn one_of_data_and_text_within_the_bound() {
        let w = |data: Option<Vec<u8>>, text: Option<&str>| {
            bytes_of(SessionWrite {
                id: "a".into(),
                data: data.map(Bytes),
                text: text.map(str::to_string),
            })
        };
        assert_eq!(w(Some(vec![0, 0xff]), None).unwrap().1, vec![0, 0xff]);
        assert_eq!(w(None, Some("é")).unwrap().1, "é".as_bytes());
        assert!(w(Some(vec![1]), Some("x")).unwrap_err().to_string().contains("not both"));
        assert!(w(None, None).unwrap_err().to_string().contains("give one"));
        assert!(w(Some(vec![]), None).unwrap_err().to_string().contains("empty"));
        assert!(w(None, Some("")).unwrap_err().to_string().contains("empty"));
        assert!(w(Some(vec![b'x'; MAX_WRITE_BYTES]), None).is_ok());
        let e = w(Some(vec![b'x'; MAX_WRITE_BYTES + 1]), None).unwrap_err().to_string();
        assert!(e.contains("65536 bytes per session.write"), "{e}");
    }

    #[test]
    fn every_byte_is_one_hex_argument_after_the_flags() {
        let bytes: Vec<u8> = (0..=255).collect();
        let cmds = commands("%3", &bytes);
        assert_eq!(cmds.len(), 256 / BYTES_PER_COMMAND);
        let line = cmds[0].render().unwrap();
        assert!(line.starts_with("send-keys '-t' '%3' '-H' '--' '00' '01' '02'"), "{line}");
        let all: Vec<String> = cmds.iter().map(|c| c.render().unwrap()).collect();
        assert!(all.last().unwrap().ends_with("'fe' 'ff'"));
        let args: usize = all.iter().map(|l| l.split(' ').count() - 5).sum();
        assert_eq!(args, 256);
    }
}
