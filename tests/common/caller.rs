//! Calls to a test daemon through the real CLI (`ccmanagerctl --socket S
//! --json call METHOD PARAMS`), as root or as a test user, and the session
//! requests tests make most, each waiting (bounded) where it must.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::daemon::{bin, TestDaemon};
use super::users::TestUser;
use super::wait::{eventually, maybe, WAIT};

/// Who calls which daemon.
pub struct Caller<'a> {
    socket: &'a Path,
    user: Option<&'a TestUser>,
}

/// Calls `d` as `user` (`setpriv`: its uid, gid and groups).
pub fn as_user<'a>(d: &'a TestDaemon, user: &'a TestUser) -> Caller<'a> {
    Caller { socket: &d.socket, user: Some(user) }
}

/// Calls `d` as root (the test process's own uid).
pub fn as_root(d: &TestDaemon) -> Caller<'_> {
    Caller { socket: &d.socket, user: None }
}

/// The `id` of a Session object.
pub fn sid(session: &Value) -> &str {
    session["id"].as_str().expect("session id")
}

/// The socket named by `-S` in an attach argv.
pub fn socket_of(argv: &[String]) -> PathBuf {
    let at = argv.iter().position(|a| a == "-S").expect("attach argv names its socket with -S");
    PathBuf::from(&argv[at + 1])
}

impl Caller<'_> {
    /// Who calls, for messages.
    pub fn who(&self) -> &str {
        self.user.map_or("root", |u| u.name)
    }

    /// The uid that calls.
    pub fn uid(&self) -> u32 {
        self.user.map_or(0, |u| u.uid)
    }

    /// The result, or the JSON-RPC error object (`{code, message, data}`,
    /// which `ccmanagerctl --json` prints as `{"error": ...}` with exit code
    /// 1). A failure without one (exit 2: cannot connect) is
    /// `{"message": <stderr>, "exit_code": N}`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        let ctl = bin("ccmanagerctl");
        let mut cmd = match self.user {
            Some(u) => u.command(&ctl),
            None => Command::new(&ctl),
        };
        let out = cmd
            .arg("--socket")
            .arg(self.socket)
            .args(["--json", "call", method, &params.to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run ccmanagerctl");
        let stdout: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        match (out.status.code(), stdout) {
            (Some(0), Some(result)) => Ok(result),
            (Some(1), Some(reply)) if reply.get("error").is_some() => Err(reply["error"].clone()),
            (code, _) => Err(json!({
                "message": String::from_utf8_lossy(&out.stderr).trim(),
                "exit_code": code,
            })),
        }
    }

    /// The result; panics with the error.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params} as {} failed: {e}", self.who()))
    }

    /// The error object; panics if the call succeeded.
    pub fn err(&self, method: &str, params: Value) -> Value {
        match self.call(method, params.clone()) {
            Ok(r) => panic!("{method} {params} as {} should have failed; got {r}", self.who()),
            Err(e) => e,
        }
    }

    /// `session.create`; panics if it fails.
    pub fn create(&self, params: Value) -> Value {
        self.ok("session.create", params)
    }

    /// The visible screen of session `id`.
    pub fn screen(&self, id: &str) -> String {
        let text = &self.ok("session.capture", json!({"id": id}))["text"];
        text.as_str().unwrap_or_default().to_string()
    }

    /// Waits until the screen of `id` shows `needle`.
    pub fn wait_screen(&self, id: &str, needle: &str) {
        maybe(WAIT, || self.screen(id).contains(needle).then_some(())).unwrap_or_else(|| {
            panic!("{needle:?} never showed in {}'s session {id}:\n{}", self.who(), self.screen(id))
        })
    }

    /// Waits until session `id` is in `state`; returns it.
    pub fn wait_state(&self, id: &str, state: &str) -> Value {
        eventually(WAIT, &format!("{}'s session {id} to be {state}", self.who()), || {
            let s = self.ok("session.get", json!({"id": id}));
            (s["state"] == state).then_some(s)
        })
    }

    /// The ids `session.list` shows this caller.
    pub fn listed_ids(&self) -> Vec<String> {
        let list = self.ok("session.list", json!({}));
        list["sessions"].as_array().unwrap().iter().map(|s| sid(s).to_string()).collect()
    }

    /// The argv `session.attach` gives this caller for `id`.
    pub fn attach_argv(&self, id: &str) -> Vec<String> {
        let argv = &self.ok("session.attach", json!({"id": id}))["argv"];
        serde_json::from_value(argv.clone()).expect("attach argv")
    }
}
