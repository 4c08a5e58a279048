//! JSON-RPC edges through the daemon's real socket: ids echoed as the very
//! same JSON text (numbers beyond u64 and f64, `-0`, `1.50`, escapes), `1e400`
//! anywhere in a message, the size cap with CRLF, `"params": null`.

mod common;

use std::io::BufRead;

use serde_json::{json, Value};

use common::daemon::{Raw, TestDaemon};

/// Sends one line and returns the reply line exactly as it came (without
/// its `\n`).
fn exchange(raw: &mut Raw, line: &str) -> String {
    raw.send(format!("{line}\n").as_bytes());
    read_line(raw)
}

fn read_line(raw: &mut Raw) -> String {
    let mut reply = String::new();
    raw.reader.read_line(&mut reply).expect("a reply");
    assert!(reply.ends_with('\n'), "reply not terminated: {reply:?}");
    reply.pop();
    reply
}

/// The same number or string comes back, not a float or a re-escaped copy.
#[test]
fn ids_are_echoed_byte_exact() {
    let d = TestDaemon::start("");
    let mut raw = Raw::connect(&d.socket);
    let ids = [
        "18446744073709551616",
        "340282366920938463463374607431768211457",
        "-0",
        "1.50",
        "1e400",
        "-2.5E-400",
        r#""caf\u00e9 \"quoted\" \\ \/ \n""#,
        r#""é""#,
    ];
    for id in ids {
        let reply =
            exchange(&mut raw, &format!(r#"{{"jsonrpc":"2.0","method":"daemon.ping","id":{id}}}"#));
        assert_eq!(reply, format!(r#"{{"jsonrpc":"2.0","result":"pong","id":{id}}}"#));
        // Error replies too (here: -32601 and -32602).
        let reply =
            exchange(&mut raw, &format!(r#"{{"jsonrpc":"2.0","method":"no.such","id":{id}}}"#));
        assert!(reply.ends_with(&format!(r#","id":{id}}}"#)), "{reply}");
        let reply = exchange(
            &mut raw,
            &format!(r#"{{"jsonrpc":"2.0","method":"daemon.ping","params":{{"x":1}},"id":{id}}}"#),
        );
        assert!(
            reply.contains("-32602") && reply.ends_with(&format!(r#","id":{id}}}"#)),
            "{reply}"
        );
    }
    // In a batch, each reply carries its own id's text.
    let batch = format!(
        "[{}]",
        ids.iter()
            .map(|id| format!(r#"{{"jsonrpc":"2.0","method":"daemon.ping","id":{id}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let reply = exchange(&mut raw, &batch);
    for id in ids {
        assert!(reply.contains(&format!(r#""result":"pong","id":{id}}}"#)), "{id} in {reply}");
    }
}

/// `1e400` is valid JSON: as an id it is echoed; in params it fails only
/// where a number is wanted, as -32602 naming that field.
#[test]
fn huge_numbers_are_valid_json() {
    let d = TestDaemon::start("");
    let mut raw = Raw::connect(&d.socket);
    let reply: Value = serde_json::from_str(&exchange(
        &mut raw,
        r#"{"jsonrpc":"2.0","method":"session.capture","params":{"id":"nosuch","lines":1e400},"id":7}"#,
    ))
    .unwrap();
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert_eq!(reply["error"]["message"], "invalid params: lines: number out of range", "{reply}");
    // A huge number where nothing reads it, and in a member the envelope
    // does not know: no parse error.
    let reply = exchange(
        &mut raw,
        r#"{"jsonrpc":"2.0","method":"daemon.ping","extra":[1e400],"id":1e400}"#,
    );
    assert_eq!(reply, r#"{"jsonrpc":"2.0","result":"pong","id":1e400}"#);
    // A bare 1e400 is valid JSON but no request object.
    let reply: Value = serde_json::from_str(&exchange(&mut raw, "1e400")).unwrap();
    assert_eq!((&reply["error"]["code"], &reply["id"]), (&json!(-32600), &Value::Null));
}

/// Ids the spec does not allow, and `"params": null`, are invalid requests;
/// a reply whose id cannot be read carries `null`.
#[test]
fn invalid_ids_and_null_params_are_invalid_requests() {
    let d = TestDaemon::start("");
    let mut raw = Raw::connect(&d.socket);
    for line in [
        r#"{"jsonrpc":"2.0","method":"daemon.ping","id":{"a":1}}"#,
        r#"{"jsonrpc":"2.0","method":"daemon.ping","id":[1]}"#,
        r#"{"jsonrpc":"2.0","method":"daemon.ping","id":false}"#,
    ] {
        let reply: Value = serde_json::from_str(&exchange(&mut raw, line)).unwrap();
        assert_eq!(
            (&reply["error"]["code"], &reply["id"]),
            (&json!(-32600), &Value::Null),
            "{line}"
        );
    }
    let reply =
        exchange(&mut raw, r#"{"jsonrpc":"2.0","method":"daemon.ping","params":null,"id":"n"}"#);
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!((&reply["error"]["code"], &reply["id"]), (&json!(-32600), &json!("n")), "{reply}");
}

/// A message of exactly `daemon.max_message_bytes` is accepted with `\n`
/// and with `\r\n`; one byte more is refused either way.
#[test]
fn the_size_cap_ignores_a_trailing_cr() {
    const MAX: usize = 1024;
    let d = TestDaemon::start(&format!("[daemon]\nmax_message_bytes = {MAX}\n"));
    let message = |len: usize| {
        let head = r#"{"jsonrpc":"2.0","method":"daemon.ping","id":""#;
        let pad = len - head.len() - 2;
        format!(r#"{head}{}"}}"#, "x".repeat(pad))
    };
    let exact = message(MAX);
    assert_eq!(exact.len(), MAX);
    for ending in ["\n", "\r\n"] {
        let mut raw = Raw::connect(&d.socket);
        raw.send(format!("{exact}{ending}").as_bytes());
        let reply: Value = serde_json::from_str(&read_line(&mut raw)).unwrap();
        assert_eq!(reply["result"], "pong", "{ending:?}: {reply}");
        let mut raw = Raw::connect(&d.socket);
        raw.send(format!("{}{ending}", message(MAX + 1)).as_bytes());
        let reply: Value = serde_json::from_str(&read_line(&mut raw)).unwrap();
        assert_eq!(reply["error"]["code"], -32600, "{ending:?}: {reply}");
        assert!(raw.recv().is_none(), "closed after an oversized message");
    }
}
