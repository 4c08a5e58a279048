//! The host's pseudo-terminal ceiling (`kernel.pty.max`) in health and in
//! creates. The daemon reads a fake `/proc/sys/kernel/pty` (the test-hooks
//! build honours `CCMANAGERD_TEST_PTY_DIR`): the host's real limit is never
//! lowered, other tests run at the same time.

mod common;

use std::path::Path;

use serde_json::{json, Value};

use common::daemon::TestDaemon;

fn set(dir: &Path, nr: u64, max: u64) {
    std::fs::write(dir.join("nr"), format!("{nr}\n")).unwrap();
    std::fs::write(dir.join("max"), format!("{max}\n")).unwrap();
}

fn pty_check(d: &TestDaemon) -> (String, Value) {
    let h = d.ok("health.check", json!({}));
    let c = h["checks"].as_array().unwrap().iter().find(|c| c["name"] == "pty").cloned();
    (h["status"].as_str().unwrap().to_string(), c.expect("a pty check"))
}

#[test]
fn health_and_creates_follow_kernel_pty_max() {
    let fake = tempfile::tempdir().unwrap();
    set(fake.path(), 10, 100);
    let d = TestDaemon::start_with("", |cmd| {
        cmd.env("CCMANAGERD_TEST_PTY_DIR", fake.path());
    });
    // (The overall status may also carry the host's own troubles, such as
    // a nearly full disk: the pty check is what is asserted.)
    let (_, c) = pty_check(&d);
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!((c["nr"].as_u64(), c["max"].as_u64()), (Some(10), Some(100)));

    set(fake.path(), 91, 100);
    let (status, c) = pty_check(&d);
    assert_eq!(c["status"], "degraded", "{c}");
    assert_ne!(status, "ok");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("kernel.pty.max = 100") && detail.contains("91 of"), "{detail}");
    d.ok("session.create", json!({"command": ["sleep", "1000"]}));

    set(fake.path(), 100, 100);
    let (status, c) = pty_check(&d);
    assert_eq!((status.as_str(), &c["status"]), ("failing", &json!("failing")), "{c}");
    let e = d.call("session.create", json!({"command": ["sleep", "1000"]})).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("kernel.pty.max = 100") && msg.contains("100 of"), "{msg}");
    let ccmanagerd::client::ClientError::Rpc(rpc) = e else { panic!("{msg}") };
    assert_eq!(rpc.kind(), Some("limit_reached"));
    assert_eq!(d.ok("session.list", json!({}))["sessions"].as_array().unwrap().len(), 1);
    let metrics = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    assert!(
        metrics.contains("ccmanagerd_limit_rejections_total{limit=\"pty_max\"} 1"),
        "{metrics}"
    );

    set(fake.path(), 50, 100);
    d.ok("session.create", json!({"command": ["sleep", "1000"]}));
    assert_eq!(pty_check(&d).1["status"], "ok");
}
