//! The socket under a connection to systemd's private socket.
//!
//! PID 1 marks every message it sends on `/run/systemd/private` with the
//! sender `org.freedesktop.systemd1` (`sd_bus_set_sender` in systemd's
//! `bus_on_connection`), a well-known name. zbus (5.x, z-galaxy/zbus#1497)
//! accepts only unique names (`:1.42`) there and panics in its reader task
//! when it reads that header ("Invalid field reconstruction"): the connection
//! went silent and every call waited out its timeout. So the read half
//! rewrites that one header field, in place and at the same length, to the
//! unique name `:rg.freedesktop.systemd1` before zbus parses the message.
//! The SASL handshake is done here too (EXTERNAL, as our uid): zbus would
//! read its lines through that rewriting.
//!
//! Remove this module once zbus accepts a well-known sender on p2p links.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split};

/// What PID 1 writes as the sender of each message.
const SYSTEMD_SENDER: &[u8] = b"org.freedesktop.systemd1";
/// The same length, a valid unique name.
const UNIQUE_SENDER: &[u8] = b":rg.freedesktop.systemd1";
/// Header field code of the sender (D-Bus specification).
const FIELD_SENDER: u8 = 7;
/// Longest handshake line we accept from the server.
const MAX_AUTH_LINE: usize = 512;
/// Largest message D-Bus allows (128 MiB).
const MAX_MESSAGE: usize = 128 << 20;

/// Connects to a manager's private socket at `path` and authenticates;
/// returns the socket for `Builder::authenticated_socket` and the server's guid.
pub(super) async fn connect(path: &Path) -> std::io::Result<(BoxedSplit, String)> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut stream = tokio::net::UnixStream::connect(path).await?;
    let uid = nix::unistd::geteuid().as_raw().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    // BEGIN goes with AUTH, as sd-bus' own clients send it. Sent after the
    // OK, it reached PID 1 in one read with our first message now and then;
    // sd-bus then left that message unparsed in its buffer (no new input to
    // wake it) and the call went unanswered until CALL_TIMEOUT.
    stream.write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes()).await?;
    // The server answers AUTH with one line and BEGIN with nothing; what
    // follows that line in the same read is already the message stream
    // (PID 1 sends its signals to private connections unasked).
    let mut input = Vec::new();
    let end = loop {
        if let Some(at) = input.windows(2).position(|w| w == b"\r\n") {
            break at;
        }
        if input.len() >= MAX_AUTH_LINE || stream.read_buf(&mut input).await? == 0 {
            let got = String::from_utf8_lossy(&input).into_owned();
            return Err(bad(format!("no handshake answer: {got:?}")));
        }
    };
    let line = String::from_utf8_lossy(&input[..end]).into_owned();
    let guid = line
        .strip_prefix("OK ")
        .ok_or_else(|| bad(format!("authentication refused: {line}")))?
        .to_string();
    input.drain(..end + 2);
    let (read, write) = stream.into_split();
    let read = SenderFix { inner: read, input, output: VecDeque::new() };
    let split: BoxedSplit = Split::new(Box::new(read) as Box<dyn ReadHalf>, Box::new(write));
    Ok((split, guid))
}

/// The read half that hands zbus whole messages with the sender rewritten.
#[derive(Debug)]
struct SenderFix {
    inner: tokio::net::unix::OwnedReadHalf,
    /// Bytes read, not yet a whole message.
    input: Vec<u8>,
    /// Rewritten bytes zbus has not taken yet.
    output: VecDeque<u8>,
}

#[async_trait::async_trait]
impl ReadHalf for SenderFix {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        loop {
            if !self.output.is_empty() {
                let n = buf.len().min(self.output.len());
                for (dst, src) in buf.iter_mut().zip(self.output.drain(..n)) {
                    *dst = src;
                }
                return Ok((n, Vec::new()));
            }
            if let Some(len) = message_len(&self.input)? {
                let mut msg: Vec<u8> = self.input.drain(..len).collect();
                rewrite_sender(&mut msg);
                self.output.extend(msg);
                continue;
            }
            let mut chunk = [0u8; 8192];
            // No fds: none were negotiated (can_pass_unix_fd is false).
            let (n, _) = self.inner.recvmsg(&mut chunk).await?;
            if n == 0 {
                return Ok((0, Vec::new()));
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    async fn peer_credentials(&mut self) -> std::io::Result<zbus::fdo::ConnectionCredentials> {
        self.inner.peer_credentials().await
    }
}

fn u32_at(msg: &[u8], at: usize, little: bool) -> Option<usize> {
    let b: [u8; 4] = msg.get(at..at + 4)?.try_into().ok()?;
    Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) } as usize)
}

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The length of the first message in `buf` once all of it is there.
fn message_len(buf: &[u8]) -> std::io::Result<Option<usize>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let little = buf[0] == b'l';
    let (Some(body), Some(fields)) = (u32_at(buf, 4, little), u32_at(buf, 12, little)) else {
        return Ok(None);
    };
    let total = align(16 + fields, 8) + body;
    if total > MAX_MESSAGE {
        let e = format!("message of {total} bytes from systemd");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Rewrites a sender field of [`SYSTEMD_SENDER`] to [`UNIQUE_SENDER`]; any
/// other message is left as it is. Walks the header fields (all of type
/// `s`, `o`, `g` or `u`), so the body is never touched.
fn rewrite_sender(msg: &mut [u8]) {
    let little = msg[0] == b'l';
    let Some(fields_len) = u32_at(msg, 12, little) else { return };
    let end = (16 + fields_len).min(msg.len());
    let mut at = 16;
    while at < end {
        at = align(at, 8);
        let (Some(&code), Some(&sig_len)) = (msg.get(at), msg.get(at + 1)) else { return };
        let sig = msg.get(at + 2..at + 2 + sig_len as usize).unwrap_or_default().to_vec();
        let value = at + 2 + sig_len as usize + 1;
        match sig.as_slice() {
            b"s" | b"o" => {
                let start = align(value, 4);
                let Some(len) = u32_at(msg, start, little) else { return };
                let text = start + 4..start + 4 + len;
                if code == FIELD_SENDER && msg.get(text.clone()) == Some(SYSTEMD_SENDER) {
                    msg[text].copy_from_slice(UNIQUE_SENDER);
                    return;
                }
                at = start + 4 + len + 1;
            }
            b"g" => {
                let Some(&len) = msg.get(value) else { return };
                at = value + 1 + len as usize + 1;
            }
            b"u" => at = align(value, 4) + 4,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pad(buf: &mut Vec<u8>, to: usize) {
        while buf.len() % to != 0 {
            buf.push(0);
        }
    }

    /// `JobRemoved`'s header as PID 1 writes it, with a body of one string.
    fn signal(sender: &[u8]) -> Vec<u8> {
        let mut m = vec![b'l', 4, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        let fields: [(u8, u8, &[u8]); 4] = [
            (1, b'o', b"/org/freedesktop/systemd1"),
            (2, b's', b"org.freedesktop.systemd1.Manager"),
            (3, b's', b"JobRemoved"),
            (FIELD_SENDER, b's', sender),
        ];
        for (code, sig, text) in fields {
            pad(&mut m, 8);
            m.extend_from_slice(&[code, 1, sig, 0]);
            m.extend_from_slice(&(text.len() as u32).to_le_bytes());
            m.extend_from_slice(text);
            m.push(0);
        }
        pad(&mut m, 8);
        m.extend_from_slice(&[8, 1, b'g', 0, 1, b's', 0]);
        let fields_len = (m.len() - 16) as u32;
        m[12..16].copy_from_slice(&fields_len.to_le_bytes());
        pad(&mut m, 8);
        let body_start = m.len();
        m.extend_from_slice(&7u32.to_le_bytes());
        m.extend_from_slice(b"x.scope\0");
        let body_len = (m.len() - body_start) as u32;
        m[4..8].copy_from_slice(&body_len.to_le_bytes());
        m
    }

    fn parse(bytes: Vec<u8>) -> zbus::message::Message {
        use zbus::zvariant::{serialized::Context, serialized::Data, LE};
        // SAFETY: the bytes are a message built above.
        unsafe { zbus::message::Message::from_bytes(Data::new(bytes, Context::new_dbus(LE, 0))) }
            .unwrap()
    }

    #[test]
    fn rewrites_systemds_sender_so_zbus_can_read_it() {
        let mut msg = signal(SYSTEMD_SENDER);
        let len = message_len(&msg).unwrap().unwrap();
        assert_eq!(len, msg.len());
        assert_eq!(message_len(&msg[..len - 1]).unwrap(), None);
        rewrite_sender(&mut msg);
        let parsed = parse(msg);
        let header = parsed.header();
        assert_eq!(header.sender().map(|s| s.as_str()), Some(":rg.freedesktop.systemd1"));
        assert_eq!(header.member().map(|m| m.as_str()), Some("JobRemoved"));
        assert_eq!(parsed.body().deserialize::<String>().unwrap(), "x.scope");
    }

    #[test]
    fn leaves_other_messages_alone() {
        let mut other = signal(b":1.77");
        let before = other.clone();
        rewrite_sender(&mut other);
        assert_eq!(other, before);
    }
}
