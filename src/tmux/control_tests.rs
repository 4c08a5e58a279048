//! Unit tests for the control-mode parser and notification decoding.

use super::*;

fn feed_all(chunks: &[&[u8]]) -> Vec<Event> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(p.feed(c));
    }
    out
}

fn one(input: &str) -> Event {
    let mut ev = feed_all(&[input.as_bytes()]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    ev.remove(0)
}

fn reply(kind: ReplyKind, flags: u32, lines: &[&str]) -> Event {
    Event::Reply(Reply {
        time: 100,
        number: 7,
        flags,
        kind,
        lines: lines.iter().map(|s| s.to_string()).collect(),
    })
}

fn notif(input: &str) -> Notification {
    match one(input) {
        Event::Notification(n) => n,
        e => panic!("not a notification: {e:?}"),
    }
}

#[test]
fn ok_block_with_lines() {
    let e = one("%begin 100 7 1\nhello\nworld\n%end 100 7 1\n");
    assert_eq!(e, reply(ReplyKind::Ok, 1, &["hello", "world"]));
}

#[test]
fn empty_block_and_initial_flags_zero() {
    let e = one("%begin 100 7 0\n%end 100 7 0\n");
    assert_eq!(e, reply(ReplyKind::Ok, 0, &[]));
    let Event::Reply(r) = e else { unreachable!() };
    assert!(!r.from_this_client());
}

#[test]
fn error_block_carries_message() {
    let e = one("%begin 100 7 1\nparse error: unknown command: bogus\n%error 100 7 1\n");
    assert_eq!(e, reply(ReplyKind::Error, 1, &["parse error: unknown command: bogus"]));
    let Event::Reply(r) = e else { unreachable!() };
    assert_eq!(r.message(), "parse error: unknown command: bogus");
}

#[test]
fn forged_end_inside_block_is_content() {
    let e = one("%begin 100 7 1\n%end 100 8 1\n%end 99 7 1\n%error 100 6 1\n%end 100 7\n%begin 100 7 1\n%end 100 7 1\n");
    assert_eq!(
        e,
        reply(
            ReplyKind::Ok,
            1,
            &["%end 100 8 1", "%end 99 7 1", "%error 100 6 1", "%end 100 7", "%begin 100 7 1"]
        )
    );
}

#[test]
fn crlf_and_lf_are_equivalent() {
    let a = feed_all(&[b"%begin 100 7 1\r\nx\r\n%end 100 7 1\r\n%sessions-changed\r\n"]);
    let b = feed_all(&[b"%begin 100 7 1\nx\n%end 100 7 1\n%sessions-changed\n"]);
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
}

#[test]
fn byte_at_a_time_and_utf8_split() {
    let input = "%begin 100 7 1\nçé→✓\n%end 100 7 1\n%output %1 ✓\\015\\012\n".as_bytes();
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    let ev = feed_all(&chunks);
    assert_eq!(ev[0], reply(ReplyKind::Ok, 1, &["çé→✓"]));
    assert_eq!(
        ev[1],
        Event::Notification(Notification::Output {
            pane: "%1".into(),
            data: "✓\r\n".as_bytes().to_vec()
        })
    );
    // Split inside a multi-byte character at every position.
    for cut in 0..input.len() {
        assert_eq!(feed_all(&[&input[..cut], &input[cut..]]), ev, "cut at {cut}");
    }
}

#[test]
fn invalid_utf8_is_lossy_not_fatal() {
    let ev = feed_all(&[b"%begin 100 7 1\n\xff\xfeok\n%end 100 7 1\n"]);
    assert_eq!(ev, vec![reply(ReplyKind::Ok, 1, &["\u{fffd}\u{fffd}ok"])]);
}

#[test]
fn octal_escapes() {
    let n = notif("%output %12 a\\134b\\\\c\\033[0m\\000\\177\\9x\\\n");
    let Notification::Output { pane, data } = n else { panic!() };
    assert_eq!(pane, "%12");
    // `\134` and `\\` are both `\`; `\177` is read as octal although tmux
    // never writes it; `\9` is not octal and stays literal, as does a final `\`.
    assert_eq!(data, b"a\\b\\c\x1b[0m\x00\x7f\\9x\\".to_vec());
}

#[test]
fn output_with_empty_data_and_extended_output() {
    assert_eq!(notif("%output %1 \n"), Notification::Output { pane: "%1".into(), data: vec![] });
    assert_eq!(
        notif("%extended-output %3 25 : hi\\040: x\n"),
        Notification::ExtendedOutput { pane: "%3".into(), age_ms: 25, data: b"hi : x".to_vec() }
    );
}

#[test]
fn every_notification_shape() {
    use Notification as N;
    let s = |x: &str| x.to_string();
    let cases = vec![
        ("%sessions-changed", N::SessionsChanged),
        (
            "%session-changed $0 ccmanager_control",
            N::SessionChanged { session: s("$0"), name: s("ccmanager_control") },
        ),
        (
            "%session-renamed $1 new name",
            N::SessionRenamed { session: s("$1"), name: s("new name") },
        ),
        ("%window-add @1", N::WindowAdd { window: s("@1") }),
        ("%window-close @1", N::WindowClose { window: s("@1") }),
        ("%unlinked-window-add @2", N::UnlinkedWindowAdd { window: s("@2") }),
        ("%unlinked-window-close @2", N::UnlinkedWindowClose { window: s("@2") }),
        ("%window-renamed @3 vim", N::WindowRenamed { window: s("@3"), name: s("vim") }),
        (
            "%unlinked-window-renamed @1 printf[dead]",
            N::UnlinkedWindowRenamed { window: s("@1"), name: s("printf[dead]") },
        ),
        (
            "%layout-change @1 b25d,80x24,0,0,0 b25d,80x24,0,0,0 *",
            N::LayoutChange { window: s("@1"), layout: s("b25d,80x24,0,0,0 b25d,80x24,0,0,0 *") },
        ),
        ("%pane-mode-changed %4", N::PaneModeChanged { pane: s("%4") }),
        ("%client-detached client-123", N::ClientDetached { client: s("client-123") }),
        (
            "%client-session-changed /dev/pts/1 $2 work",
            N::ClientSessionChanged { client: s("/dev/pts/1"), session: s("$2"), name: s("work") },
        ),
        (
            "%session-window-changed $1 @5",
            N::SessionWindowChanged { session: s("$1"), window: s("@5") },
        ),
        ("%window-pane-changed @5 %9", N::WindowPaneChanged { window: s("@5"), pane: s("%9") }),
        (
            "%subscription-changed sub $1 @1 0 %1 : value",
            N::SubscriptionChanged { name: s("sub"), rest: s("$1 @1 0 %1 : value") },
        ),
        ("%paste-buffer-changed buffer0", N::PasteBufferChanged { name: s("buffer0") }),
        ("%paste-buffer-deleted buffer0", N::PasteBufferDeleted { name: s("buffer0") }),
        ("%pause %1", N::Pause { pane: s("%1") }),
        ("%continue %1", N::Continue { pane: s("%1") }),
        ("%exit", N::Exit { reason: None }),
        ("%exit server exited", N::Exit { reason: Some(s("server exited")) }),
        ("%brand-new-thing a b", N::Other { name: s("brand-new-thing"), rest: s("a b") }),
        ("%window-add", N::Other { name: s("window-add"), rest: s("") }),
        ("%session-changed $0", N::Other { name: s("session-changed"), rest: s("$0") }),
    ];
    for (line, want) in cases {
        assert_eq!(notif(&format!("{line}\n")), want, "{line}");
    }
}

#[test]
fn notifications_between_blocks_and_stray_lines() {
    let ev = feed_all(&[b"hello\n\n%window-add @1\n%begin 1 2 1\n%window-add @2\n%end 1 2 1\n"]);
    assert_eq!(ev[0], Event::Stray("hello".into()));
    assert_eq!(ev[1], Event::Notification(Notification::WindowAdd { window: "@1".into() }));
    // Inside a block, a notification-looking line is content.
    assert_eq!(
        ev[2],
        Event::Reply(Reply {
            time: 1,
            number: 2,
            flags: 1,
            kind: ReplyKind::Ok,
            lines: ["%window-add @2"].into_iter().collect()
        })
    );
}

#[test]
fn oversized_block_becomes_error_reply_and_parser_recovers() {
    let mut p = Parser::new();
    assert!(p.feed(b"%begin 1 2 1\n").is_empty());
    let line = vec![b'x'; 1 << 16];
    let mut fed = 0;
    while fed <= MAX_BLOCK_BYTES {
        assert!(p.feed(&line).is_empty());
        assert!(p.feed(b"\n").is_empty());
        fed += line.len() + 1;
    }
    assert!(p.line.capacity() <= MAX_LINE_BYTES * 2);
    let ev = p.feed(b"%end 1 2 1\n%begin 1 3 1\nok\n%end 1 3 1\n");
    let Event::Reply(r) = &ev[0] else { panic!() };
    assert_eq!(r.kind, ReplyKind::TooLarge);
    assert!(r.message().contains("exceeded"));
    assert_eq!(
        ev[1],
        Event::Reply(Reply {
            time: 1,
            number: 3,
            flags: 1,
            kind: ReplyKind::Ok,
            lines: ["ok"].into_iter().collect()
        })
    );
}

#[test]
fn overlong_line_is_bounded() {
    let mut p = Parser::new();
    let chunk = vec![b'y'; MAX_LINE_BYTES / 2];
    for _ in 0..5 {
        assert!(p.feed(&chunk).is_empty());
    }
    assert!(p.line.len() <= MAX_LINE_BYTES);
    let ev = p.feed(b"\n%sessions-changed\n");
    assert_eq!(ev[0], Event::LineTooLong { bytes: 5 * chunk.len() });
    assert_eq!(ev[1], Event::Notification(Notification::SessionsChanged));
    // Inside a block an overlong line makes the reply TooLarge.
    let mut ev = p.feed(b"%begin 1 2 1\n");
    for _ in 0..3 {
        ev.extend(p.feed(&chunk));
    }
    ev.extend(p.feed(b"\n%error 1 2 1\n"));
    let [Event::Reply(r)] = ev.as_slice() else { panic!("{ev:?}") };
    assert_eq!(r.kind, ReplyKind::TooLarge);
}
