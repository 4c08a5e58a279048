//! Unit tests of the method table: every method round-trips a real example
//! through its own types, params errors name the field.

use super::*;
use crate::protocol::envelope::INVALID_PARAMS;
use serde_json::json;

/// The params member as the envelope hands it over: raw JSON text.
fn raw(v: Value) -> Option<Box<RawValue>> {
    Some(serde_json::value::to_raw_value(&v).unwrap())
}

/// Checks one method through its own types: the params example parses
/// to the request of that name and back; the result example (a real reply)
/// decodes into `M::Result` and encodes to the same JSON.
fn round_trip<M: Method>(seen: &mut Vec<&'static str>, params: Value, result: Value) {
    let name = M::NAME;
    let typed: M::Params = decode_params(Some(params.clone()))
        .unwrap_or_else(|e| panic!("{name} params: {}", e.message));
    let req = Request::parse(name, raw(params)).unwrap();
    assert_eq!(req.method(), name);
    assert_eq!(req.params(), serde_json::to_value(&typed).unwrap(), "{name}");
    let decoded: M::Result =
        serde_json::from_value(result.clone()).unwrap_or_else(|e| panic!("{name} result: {e}"));
    assert_eq!(serde_json::to_value(&decoded).unwrap(), result, "{name}");
    seen.push(name);
}

/// Adding a method to the table without an example here fails the last
/// assertion.
#[test]
fn every_method_round_trips_a_real_example() {
    let session = json!({
        "id": "a1b2c3", "name": "my-label", "tmux_session": "ccmanager_sess_a1b2c3",
        "command": ["claude"], "cwd": "/srv/work", "state": "running",
        "exit_status": null, "pid": 4242, "created_at": "2026-11-20T10:00:00Z",
        "last_activity_at": "2026-11-20T10:05:00Z", "ended_at": null, "owner_uid": 0,
        "uid": 1000, "user": "alice", "adopted": false,
        "limits": {"nofile": 4096, "nproc": 512, "memory_max": "2G", "tasks_max": 512,
                   "cpu_quota": "200%"},
        "keep": false, "cols": 120, "rows": 40, "env": {"TERM_PROGRAM": "x"},
        "restore": "on_boot", "resume_command": ["claude", "--continue"], "restart": "never",
        "restarts": 1, "restarted_at": "2026-11-20T10:04:00Z",
        "restored_at": "2026-11-20T10:04:00Z", "restart_reason": "reboot", "state_reason": null
    });
    let seen = &mut Vec::new();
    round_trip::<method::RpcDiscover>(
        seen,
        json!({}),
        json!({"openrpc": "1.2.6", "info": {"title": "ccmanagerd", "version": "0.1.0"},
               "methods": []}),
    );
    round_trip::<method::DaemonPing>(seen, json!({}), json!("pong"));
    round_trip::<method::DaemonStatus>(
        seen,
        json!(null),
        json!({"version": "0.1.0", "pid": 812, "uptime_s": 3600,
               "tmux": {"alive": true, "version": "3.3a", "servers": [
                   {"uid": 1000, "user": "alice", "pid": 813,
                    "socket": "/run/ccmanagerd-tmux/1000/tmux.sock", "alive": true,
                    "sessions": 3, "unit": "ccmanagerd-tmux-1000.service", "version": "3.3a"}]},
               "sessions": {"total": 3, "running": 2, "exited": 1, "lost": 0},
               "health": "ok", "socket": "/run/ccmanagerd/ccmanagerd.sock"}),
    );
    round_trip::<method::DaemonReload>(
        seen,
        json!({}),
        json!({"reloaded": true, "applied": ["cleanup.max_age"],
               "needs_restart": ["tmux.socket_dir"]}),
    );
    round_trip::<method::DaemonMetrics>(
        seen,
        json!({}),
        json!({"text": "# TYPE ccmanagerd_sessions gauge\nccmanagerd_sessions{state=\"running\"} 2\n"}),
    );
    round_trip::<method::HealthCheck>(
        seen,
        json!({}),
        json!({"status": "degraded", "checks": [
            {"name": "tmux_server", "ok": true, "detail": "answers", "status": "ok",
             "latency_ms": 0.4},
            {"name": "cgroups", "ok": false, "detail": "no systemd", "status": "degraded",
             "available": false}]}),
    );
    round_trip::<method::SessionCreate>(
        seen,
        json!({"command": ["claude"], "name": "my-label", "cwd": "/srv/work",
               "env": {"TERM_PROGRAM": "x"}, "cols": 120, "rows": 40,
               "limits": {"nofile": 4096, "memory_max": "2G"}, "keep": true, "user": "alice",
               "restore": "on_boot", "resume_command": ["claude", "--continue"],
               "restart": "on_failure"}),
        session.clone(),
    );
    round_trip::<method::SessionList>(
        seen,
        json!({"state": "running"}),
        json!({"sessions": [session.clone()]}),
    );
    round_trip::<method::SessionGet>(seen, json!({"id": "a1b2c3"}), session.clone());
    round_trip::<method::SessionKill>(
        seen,
        json!({"id": "a1b2c3"}),
        json!({"id": "a1b2c3", "killed": true}),
    );
    round_trip::<method::SessionSend>(
        seen,
        json!({"id": "a1b2c3", "text": "ls", "keys": ["C-c"], "enter": true}),
        json!({"id": "a1b2c3"}),
    );
    round_trip::<method::SessionCapture>(
        seen,
        json!({"id": "a1b2c3", "lines": 100, "escapes": false}),
        json!({"id": "a1b2c3", "text": "$ ls\nREADME.md\n$ \n"}),
    );
    round_trip::<method::SessionResize>(
        seen,
        json!({"id": "a1b2c3", "cols": 120, "rows": 40}),
        session.clone(),
    );
    round_trip::<method::SessionAttach>(
        seen,
        json!({"id": "a1b2c3"}),
        json!({"argv": ["/usr/bin/tmux", "-S", "/run/ccmanagerd-tmux/tmux.sock",
                        "attach-session", "-t", "=ccmanager_sess_a1b2c3"]}),
    );
    round_trip::<method::SessionWrite>(
        seen,
        json!({"id": "a1", "data": "G1tB"}),
        json!({"id": "a1"}),
    );
    round_trip::<method::SessionWrite>(
        seen,
        json!({"id": "a1", "text": "ls\r"}),
        json!({"id": "a1"}),
    );
    round_trip::<method::SessionRead>(
        seen,
        json!({"id": "a1", "offset": 0, "max_bytes": 65536}),
        json!({"data": "aGVsbG8K", "offset": 0, "next_offset": 6, "first_offset": 0, "end": true}),
    );
    round_trip::<method::SessionSubscribe>(
        seen,
        json!({"id": "a1", "from": "screen"}),
        json!({"subscription": 1, "offset": 4096, "screen": "G1tIG1sySg=="}),
    );
    round_trip::<method::SessionSubscribe>(
        seen,
        json!({"id": "a1", "from": 4096}),
        json!({"subscription": 2, "offset": 4096}),
    );
    round_trip::<method::SessionAck>(seen, json!({"subscription": 1, "offset": 8192}), json!({}));
    round_trip::<method::SessionUnsubscribe>(seen, json!({"subscription": 1}), json!({}));
    round_trip::<method::SessionRestart>(
        seen,
        json!({"id": "a1b2c3", "resume": true}),
        session.clone(),
    );
    round_trip::<method::CleanupRun>(
        seen,
        json!({"dry_run": true}),
        json!({"removed": [{"id": "a1b2c3", "reason": "max_age"}], "dry_run": true}),
    );
    #[cfg(feature = "test-hooks")]
    {
        round_trip::<method::DebugFail>(seen, json!({}), json!(null));
        round_trip::<method::DebugSleep>(seen, json!({"ms": 5}), json!("slept"));
    }
    let mut names = Request::names();
    names.sort_unstable();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(*seen, names, "Request::names() and the Method::NAMEs differ");
}

/// Results that are not the declared shape are refused, so a client
/// notices a daemon that answers something else.
#[test]
fn results_pin_their_shape() {
    use serde_json::from_value;
    assert!(from_value::<KillResult>(json!({"id": "a1"})).is_err());
    assert!(from_value::<AttachResult>(json!({"argv": "tmux attach"})).is_err());
    assert!(from_value::<MetricsResult>(json!("text")).is_err());
    assert!(from_value::<ListResult>(json!([])).is_err());
    assert!(from_value::<Pong>(json!({})).is_err());
}

#[test]
fn unknown_method_is_32601() {
    assert_eq!(Request::parse("nope", None).unwrap_err().code, METHOD_NOT_FOUND);
}

#[test]
fn bad_params_name_the_field() {
    let e = Request::parse("session.create", raw(json!({"command": "ls -l"}))).unwrap_err();
    assert_eq!(e.code, INVALID_PARAMS);
    assert!(e.message.contains("command"), "{}", e.message);
    let e = Request::parse("session.create", raw(json!({"command": ["a", 1]}))).unwrap_err();
    assert!(e.message.contains("command[1]"), "{}", e.message);
    let e = Request::parse("session.get", raw(json!({}))).unwrap_err();
    assert!(e.message.contains("missing field `id`"), "{}", e.message);
    let e = Request::parse("daemon.ping", raw(json!({"x": 1}))).unwrap_err();
    assert!(e.message.contains("unknown field `x`"), "{}", e.message);
    let e =
        Request::parse("session.create", raw(json!({"command": ["a"], "limits": {"nofile": "x"}})))
            .unwrap_err();
    assert!(e.message.contains("limits.nofile"), "{}", e.message);
}

#[test]
fn no_params_accepts_the_empty_forms() {
    for p in [None, raw(Value::Null), raw(json!({})), raw(json!([])), raw_text("[ ]")] {
        assert_eq!(Request::parse("daemon.ping", p).unwrap(), Request::DaemonPing(NoParams {}));
    }
    assert_eq!(Request::parse("daemon.ping", raw(json!([1]))).unwrap_err().code, INVALID_PARAMS);
}

fn raw_text(text: &str) -> Option<Box<RawValue>> {
    Some(RawValue::from_string(text.to_string()).unwrap())
}

/// Params decode straight from their text: a number beyond f64 is an error
/// naming the field that wanted a number, not a parse error of the message;
/// errors carry the field's path but not serde_json's line and column.
#[test]
fn raw_params_name_the_field_of_a_huge_number() {
    let e =
        Request::parse("session.capture", raw_text(r#"{"id": "a1", "lines": 1e400}"#)).unwrap_err();
    assert_eq!(e.code, INVALID_PARAMS);
    assert_eq!(e.message, "invalid params: lines: number out of range");
    let e = Request::parse("session.create", raw_text(r#"{"command": ["a", 1e400]}"#)).unwrap_err();
    assert!(e.message.starts_with("invalid params: command[1]: "), "{}", e.message);
    assert!(!e.message.contains("column"), "{}", e.message);
    let e = Request::parse("session.create", raw_text(r#"{"command": ["a"], "cols": 70000}"#))
        .unwrap_err();
    assert_eq!(e.message, "invalid params: cols: invalid value: integer `70000`, expected u16");
    let ok = Request::parse("session.capture", raw_text(r#"{"id": "a1", "lines": 1.0e2}"#));
    assert!(ok.is_err(), "a float is no line count: {ok:?}");
    let ok = Request::parse("session.capture", raw_text(r#"{"id": "a\u0031", "lines": 100}"#));
    assert!(
        matches!(&ok, Ok(Request::SessionCapture(c)) if c.id == "a1" && c.lines == 100),
        "{ok:?}"
    );
}
