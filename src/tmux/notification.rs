//! Typed tmux control-mode notifications (`%output`, `%window-add`, ...) and
//! the decoding of one notification line, including `%output`'s octal escapes.

/// An asynchronous control-mode notification. Ids keep tmux's sigils
/// (`$1` session, `@2` window, `%3` pane) so they can be used as targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `%output %PANE DATA`: bytes a pane wrote, unescaped.
    Output {
        /// Pane id, e.g. `%3`.
        pane: String,
        /// The raw bytes.
        data: Vec<u8>,
    },
    /// `%extended-output %PANE AGE ... : DATA` (flow control on).
    ExtendedOutput {
        /// Pane id.
        pane: String,
        /// Milliseconds the output was buffered.
        age_ms: u64,
        /// The raw bytes.
        data: Vec<u8>,
    },
    /// `%sessions-changed`: a session was created or destroyed.
    SessionsChanged,
    /// `%session-changed $ID NAME`: this client is now attached to that session.
    SessionChanged {
        /// Session id.
        session: String,
        /// Session name.
        name: String,
    },
    /// `%session-renamed $ID NAME`.
    SessionRenamed {
        /// Session id.
        session: String,
        /// New name.
        name: String,
    },
    /// `%window-add @ID` (window linked to the attached session).
    WindowAdd {
        /// Window id.
        window: String,
    },
    /// `%window-close @ID`.
    WindowClose {
        /// Window id.
        window: String,
    },
    /// `%unlinked-window-add @ID` (window in another session).
    UnlinkedWindowAdd {
        /// Window id.
        window: String,
    },
    /// `%unlinked-window-close @ID`.
    UnlinkedWindowClose {
        /// Window id.
        window: String,
    },
    /// `%window-renamed @ID NAME`.
    WindowRenamed {
        /// Window id.
        window: String,
        /// New name.
        name: String,
    },
    /// `%unlinked-window-renamed @ID NAME`.
    UnlinkedWindowRenamed {
        /// Window id.
        window: String,
        /// New name.
        name: String,
    },
    /// `%layout-change @ID LAYOUT ...`.
    LayoutChange {
        /// Window id.
        window: String,
        /// The rest of the line (layout, visible layout, flags).
        layout: String,
    },
    /// `%pane-mode-changed %PANE`.
    PaneModeChanged {
        /// Pane id.
        pane: String,
    },
    /// `%client-detached CLIENT`.
    ClientDetached {
        /// Client name.
        client: String,
    },
    /// `%client-session-changed CLIENT $ID NAME`.
    ClientSessionChanged {
        /// Client name.
        client: String,
        /// Session id.
        session: String,
        /// Session name.
        name: String,
    },
    /// `%session-window-changed $ID @ID`.
    SessionWindowChanged {
        /// Session id.
        session: String,
        /// Window id.
        window: String,
    },
    /// `%window-pane-changed @ID %ID`.
    WindowPaneChanged {
        /// Window id.
        window: String,
        /// Pane id.
        pane: String,
    },
    /// `%subscription-changed NAME ...`.
    SubscriptionChanged {
        /// Subscription name.
        name: String,
        /// The rest of the line.
        rest: String,
    },
    /// `%paste-buffer-changed NAME`.
    PasteBufferChanged {
        /// Buffer name.
        name: String,
    },
    /// `%paste-buffer-deleted NAME`.
    PasteBufferDeleted {
        /// Buffer name.
        name: String,
    },
    /// `%pause %PANE` (flow control).
    Pause {
        /// Pane id.
        pane: String,
    },
    /// `%continue %PANE` (flow control).
    Continue {
        /// Pane id.
        pane: String,
    },
    /// `%exit [REASON]`: the control client is about to exit.
    Exit {
        /// Why, when tmux says.
        reason: Option<String>,
    },
    /// Anything else; tmux adds notifications, so unknown is never an error.
    Other {
        /// The word after `%`.
        name: String,
        /// The rest of the line after one space.
        rest: String,
    },
}

/// Parses one complete line that starts with `%` and is not `%begin`.
/// Malformed known notifications fall back to [`Notification::Other`].
pub(crate) fn parse_notification(line: &[u8]) -> Notification {
    let body = line.strip_prefix(b"%").unwrap_or(line);
    let (name, rest) = match body.iter().position(|&b| b == b' ') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let name = String::from_utf8_lossy(name).into_owned();
    let typed = match name.as_str() {
        "output" => parse_output(rest),
        "extended-output" => parse_extended_output(rest),
        _ => parse_text(&name, &String::from_utf8_lossy(rest)),
    };
    typed.unwrap_or_else(|| Notification::Other {
        name,
        rest: String::from_utf8_lossy(rest).into_owned(),
    })
}

fn split_word(rest: &[u8]) -> Option<(String, &[u8])> {
    let i = rest.iter().position(|&b| b == b' ')?;
    Some((String::from_utf8_lossy(&rest[..i]).into_owned(), &rest[i + 1..]))
}

fn parse_output(rest: &[u8]) -> Option<Notification> {
    let (pane, data) = split_word(rest)?;
    Some(Notification::Output { pane, data: unescape_output(data) })
}

fn parse_extended_output(rest: &[u8]) -> Option<Notification> {
    let (pane, rest) = split_word(rest)?;
    let (age, rest) = split_word(rest)?;
    let sep = rest.windows(2).position(|w| w == b": ")?;
    Some(Notification::ExtendedOutput {
        pane,
        age_ms: age.parse().ok()?,
        data: unescape_output(&rest[sep + 2..]),
    })
}

fn parse_text(name: &str, rest: &str) -> Option<Notification> {
    let one = |n: usize| -> Option<Vec<String>> {
        let parts: Vec<String> = rest.splitn(n, ' ').map(str::to_owned).collect();
        (parts.len() == n && parts.iter().take(n - 1).all(|p| !p.is_empty())).then_some(parts)
    };
    let word = || (!rest.is_empty() && !rest.contains(' ')).then(|| rest.to_owned());
    use Notification as N;
    Some(match name {
        "sessions-changed" => N::SessionsChanged,
        "session-changed" => {
            one(2).map(|p| N::SessionChanged { session: p[0].clone(), name: p[1].clone() })?
        }
        "session-renamed" => {
            one(2).map(|p| N::SessionRenamed { session: p[0].clone(), name: p[1].clone() })?
        }
        "window-add" => N::WindowAdd { window: word()? },
        "window-close" => N::WindowClose { window: word()? },
        "unlinked-window-add" => N::UnlinkedWindowAdd { window: word()? },
        "unlinked-window-close" => N::UnlinkedWindowClose { window: word()? },
        "window-renamed" => {
            one(2).map(|p| N::WindowRenamed { window: p[0].clone(), name: p[1].clone() })?
        }
        "unlinked-window-renamed" => {
            one(2).map(|p| N::UnlinkedWindowRenamed { window: p[0].clone(), name: p[1].clone() })?
        }
        "layout-change" => {
            one(2).map(|p| N::LayoutChange { window: p[0].clone(), layout: p[1].clone() })?
        }
        "pane-mode-changed" => N::PaneModeChanged { pane: word()? },
        "client-detached" => N::ClientDetached { client: word()? },
        "client-session-changed" => one(3).map(|p| N::ClientSessionChanged {
            client: p[0].clone(),
            session: p[1].clone(),
            name: p[2].clone(),
        })?,
        "session-window-changed" => one(2)
            .map(|p| N::SessionWindowChanged { session: p[0].clone(), window: p[1].clone() })?,
        "window-pane-changed" => {
            one(2).map(|p| N::WindowPaneChanged { window: p[0].clone(), pane: p[1].clone() })?
        }
        "subscription-changed" => match rest.split_once(' ') {
            Some((n, r)) => N::SubscriptionChanged { name: n.to_owned(), rest: r.to_owned() },
            None => N::SubscriptionChanged { name: word()?, rest: String::new() },
        },
        "paste-buffer-changed" => N::PasteBufferChanged { name: word()? },
        "paste-buffer-deleted" => N::PasteBufferDeleted { name: word()? },
        "pause" => N::Pause { pane: word()? },
        "continue" => N::Continue { pane: word()? },
        "exit" => N::Exit { reason: (!rest.is_empty()).then(|| rest.to_owned()) },
        _ => return None,
    })
}

/// Decodes `%output` data: tmux writes bytes below 0x20 and `\` as `\ooo`
/// (three octal digits). `\\` is also accepted as `\`; any other `\` is
/// kept literally rather than failing, since losing output is worse.
pub(crate) fn unescape_output(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'\\' {
            let octal =
                data.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
            if let Some(d) = octal {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
            if data.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}
