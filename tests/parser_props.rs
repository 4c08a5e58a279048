//! Property tests (proptest) of the parsers that read untrusted input, with
//! the invariants the fuzz targets check (`ccmanagerd::fuzzing`, `fuzz/`):
//! JSON-RPC ids round-trip byte-exact; framing does not depend on read
//! boundaries and honours the cap (CRLF included); the control-mode parser
//! never panics, does not depend on read boundaries, and parses what tmux
//! renders; a valid config written back parses to the same config.

use ccmanagerd::fuzzing::{check_config, check_control, check_framing, frame, replies, Frame};
use ccmanagerd::tmux::{Event, Notification, Parser, ReplyKind};
use proptest::prelude::*;

/// A JSON number as text: any length of digits (far beyond u64), a
/// fraction with its trailing zeros, an exponent far beyond f64.
fn json_number() -> impl Strategy<Value = String> {
    let int = prop_oneof![Just("0".to_string()), "[1-9][0-9]{0,60}".prop_map(String::from)];
    (
        any::<bool>(),
        int,
        proptest::option::of("[0-9]{1,20}"),
        proptest::option::of(("[eE]", "[+-]?", "[0-9]{1,6}")),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let mut s = if neg { format!("-{int}") } else { int };
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some((e, sign, digits)) = exp {
                s.push_str(&format!("{e}{sign}{digits}"));
            }
            s
        })
}

/// A JSON string as text, each character written plainly or as `\uXXXX`
/// (surrogate pairs beyond the BMP), with the short escapes where JSON needs them.
fn json_string() -> impl Strategy<Value = String> {
    proptest::collection::vec((any::<char>(), any::<bool>()), 0..24).prop_map(|chars| {
        let mut s = String::from('"');
        for (c, escape) in chars {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 || escape => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        s.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => s.push(c),
            }
        }
        s.push('"');
        s
    })
}

proptest! {
    /// Whatever valid id is sent comes back as the same text.
    #[test]
    fn ids_round_trip_byte_exact(id in prop_oneof![json_number(), json_string(), Just("null".to_string())]) {
        let line = format!(r#"{{"jsonrpc":"2.0","method":"daemon.ping","id":{id}}}"#);
        prop_assert_eq!(
            replies(line.as_bytes()),
            vec![format!(r#"{{"jsonrpc":"2.0","result":null,"id":{id}}}"#)]
        );
        // In a batch, and with a bad params member (an error reply), too.
        let bad = format!(r#"[{{"jsonrpc":"2.0","method":"daemon.ping","params":{{"x":{id}}},"id":{id}}}]"#);
        let reply = replies(bad.as_bytes()).pop().unwrap();
        prop_assert!(reply.ends_with(&format!(r#""id":{id}}}]"#)), "{}", reply);
    }

    /// Any stream of messages, split into any reads through any buffer
    /// size, frames the same; messages within the cap come out exactly
    /// (without their `\n` or `\r\n`), and the first one over it stops it.
    #[test]
    fn framing_does_not_depend_on_read_boundaries(
        messages in proptest::collection::vec((proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), any::<bool>()), 0..12),
        max in 1usize..48,
        capacity in 1usize..64,
        reads in proptest::collection::vec(1usize..80, 1..8),
    ) {
        let mut data = Vec::new();
        let mut expected = Vec::new();
        let mut stopped = false;
        for (m, crlf) in &messages {
            data.extend_from_slice(m);
            data.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            let mut body = m.clone();
            if !*crlf && body.last() == Some(&b'\r') {
                body.pop();
            }
            if !stopped {
                if body.len() > max {
                    expected.push(Frame::TooLong);
                    stopped = true;
                } else {
                    expected.push(Frame::Message(body));
                }
            }
        }
        prop_assert_eq!(frame(&data, max, capacity, &reads), expected);
        check_framing(&data, max, capacity, &reads);
    }

    /// Arbitrary bytes, and tmux-like lines, never make the parser panic,
    /// and their events do not depend on where the stream was cut.
    #[test]
    fn the_control_parser_takes_anything(
        lines in proptest::collection::vec(prop_oneof![
            Just(b"%begin 1 2 1".to_vec()),
            Just(b"%end 1 2 1".to_vec()),
            Just(b"%error 1 2 1".to_vec()),
            Just(b"%begin 1 3 0".to_vec()),
            Just(b"%output %1 a\\033b\\".to_vec()),
            Just(b"%extended-output %1 5 : x".to_vec()),
            Just(b"%session-changed $1 n".to_vec()),
            Just(b"%exit".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..30),
        ], 0..20),
        cuts in proptest::collection::vec(0usize..400, 0..10),
    ) {
        let data = lines.join(&b"\n"[..]);
        check_control(&data, &cuts);
    }

    /// `%output` as tmux writes it (bytes below 0x20 and `\` as `\ooo`)
    /// parses back to the very bytes.
    #[test]
    fn output_notifications_round_trip(pane in 0u32..100_000, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut line = format!("%output %{pane} ").into_bytes();
        for b in &bytes {
            if *b < b' ' || *b == b'\\' {
                line.extend_from_slice(format!("\\{b:03o}").as_bytes());
            } else {
                line.push(*b);
            }
        }
        line.push(b'\n');
        let events = Parser::new().feed(&line);
        prop_assert_eq!(
            events,
            vec![Event::Notification(Notification::Output { pane: format!("%{pane}"), data: bytes })]
        );
    }

    /// A reply block as tmux writes it parses to its lines, however cut.
    #[test]
    fn reply_blocks_round_trip(
        number in any::<u32>(),
        error in any::<bool>(),
        lines in proptest::collection::vec("[^%\r\n][^\r\n]{0,30}", 0..8),
        cuts in proptest::collection::vec(0usize..300, 0..6),
    ) {
        let end = if error { "%error" } else { "%end" };
        let text = format!("%begin 1700000000 {number} 1\n{}{end} 1700000000 {number} 1\n",
            lines.iter().map(|l| format!("{l}\n")).collect::<String>());
        let events = Parser::new().feed(text.as_bytes());
        let [Event::Reply(reply)] = &events[..] else { panic!("{events:?}") };
        prop_assert_eq!(reply.kind, if error { ReplyKind::Error } else { ReplyKind::Ok });
        prop_assert_eq!(reply.lines.lines().collect::<Vec<_>>(), lines.iter().map(String::as_str).collect::<Vec<_>>());
        check_control(text.as_bytes(), &cuts);
    }

    /// Valid values of a sample of keys: the file parses, and the config
    /// written back parses to the same config.
    #[test]
    fn valid_configs_round_trip(
        max_message_bytes in 1u64..(1 << 40),
        max_sessions in 1u32..1_000_000,
        history in 1u32..1_000_000,
        interval_s in 1u64..1_000_000,
        max_age in proptest::option::of(1u64..10_000),
        log_level in prop_oneof![Just("error"), Just("warn"), Just("info"), Just("debug"), Just("trace")],
        mode in 0u32..0o777,
        uids in proptest::collection::vec(any::<u32>(), 0..4),
        prefix in "[a-z-]{0,10}",
    ) {
        let max_age = max_age.map_or("off".to_string(), |d| format!("{d}d"));
        let text = format!(
            "[daemon]\nmax_message_bytes = {max_message_bytes}\nlog_level = \"{log_level}\"\nsocket_mode = \"{mode:04o}\"\nallowed_uids = {uids:?}\n\
             [limits]\nmax_sessions = {max_sessions}\n[tmux]\nhistory_limit = {history}\n\
             [cleanup]\ninterval = \"{interval_s}s\"\nmax_age = \"{max_age}\"\nkeep_label_prefix = \"{prefix}\"\n"
        );
        let parsed = ccmanagerd::config::Config::parse(&text, std::path::Path::new("/p.toml"));
        prop_assert!(parsed.is_ok(), "{}: {:?}", text, parsed.err().map(|e| e.to_string()));
        check_config(&text);
    }

    /// Arbitrary text: no panic, errors name a line of the text.
    #[test]
    fn any_config_text_is_handled(text in "(\\[[a-z.]{0,12}\\]\n|[a-z_]{1,12} = [^\n]{0,12}\n|[^\n]{0,16}\n){0,8}") {
        check_config(&text);
    }
}
