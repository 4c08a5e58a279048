//! A uid's sessions spread over several tmux servers of at most
//! `tmux.sessions_per_server` sessions each (tmux's event loop walks every
//! pane of its server on every event: one big server makes every request
//! slower). Real daemon, real tmux.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use common::daemon::TestDaemon;

fn create(d: &TestDaemon) -> String {
    let s = d.ok("session.create", json!({"command": ["cat"]}));
    s["id"].as_str().unwrap().to_string()
}

/// Which socket each session's attach argv names.
fn sockets(d: &TestDaemon) -> BTreeMap<String, PathBuf> {
    let list = d.ok("session.list", json!({"fields": ["id", "state"]}));
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "running")
        .map(|s| {
            let id = s["id"].as_str().unwrap().to_string();
            let argv: Vec<String> =
                serde_json::from_value(d.ok("session.attach", json!({"id": id}))["argv"].clone())
                    .unwrap();
            let at = argv.iter().position(|a| a == "-S").unwrap();
            (id, PathBuf::from(&argv[at + 1]))
        })
        .collect()
}

fn per_socket(map: &BTreeMap<String, PathBuf>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for s in map.values() {
        *n.entry(s.file_name().unwrap().to_string_lossy().into_owned()).or_default() += 1;
    }
    n
}

fn works(d: &TestDaemon, id: &str) {
    d.ok("session.send", json!({"id": id, "text": format!("hello {id}"), "enter": true}));
    common::wait::eventually(common::wait::WAIT, "the echo", || {
        let t = d.ok("session.capture", json!({"id": id}));
        t["text"].as_str().unwrap().contains(&format!("hello {id}")).then_some(())
    });
}

#[test]
fn a_uid_s_sessions_fill_servers_of_sessions_per_server_and_survive_restarts() {
    let mut d = TestDaemon::start("[tmux]\nsessions_per_server = 2\n");
    let ids: Vec<String> = (0..5).map(|_| create(&d)).collect();
    let at = sockets(&d);
    let want: BTreeMap<String, usize> = [("tmux.1.sock", 2), ("tmux.2.sock", 1), ("tmux.sock", 2)]
        .map(|(k, v)| (k.into(), v))
        .into();
    assert_eq!(per_socket(&at), want, "{at:?}");
    for id in &ids {
        works(&d, id);
    }
    // Each server holds only its own sessions.
    for (id, socket) in &at {
        let out = std::process::Command::new("tmux")
            .arg("-S")
            .arg(socket)
            .args(["has-session", "-t", &format!("=ccmanager_sess_{id}")])
            .status()
            .unwrap();
        assert!(out.success(), "{id} not in {}", socket.display());
    }
    let status = d.ok("daemon.status", json!({}));
    let servers = status["tmux"]["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{status}");
    assert!(servers.iter().all(|s| s["alive"] == true && s["sessions"].as_u64() > Some(0)));
    let health = d.ok("health.check", json!({}));
    let pings = health["checks"].as_array().unwrap().iter().filter(|c| c["name"] == "tmux_server");
    assert_eq!(pings.filter(|c| c["status"] == "ok").count(), 3, "{health}");

    // A place freed in the first server is taken by the next create.
    d.ok("session.kill", json!({"id": ids[0]}));
    let next = create(&d);
    assert_eq!(sockets(&d)[&next].file_name().unwrap(), "tmux.sock");

    // SIGKILL, then without the state file: every server is adopted again.
    let before = sockets(&d);
    d.kill9();
    d.restart();
    assert_eq!(sockets(&d), before);
    d.stop();
    std::fs::remove_dir_all(d.dir.path().join("state")).unwrap();
    d.restart();
    let again = sockets(&d);
    assert_eq!(again, before, "re-adopted from every server's socket");
    let list = d.ok("session.list", json!({}));
    let adopted: Vec<&Value> = list["sessions"].as_array().unwrap().iter().collect();
    assert!(adopted.iter().all(|s| s["adopted"] == true && s["command"] == json!(["cat"])));
    for id in before.keys() {
        works(&d, id);
    }
    eprintln!("5 sessions with sessions_per_server = 2: {:?}", per_socket(&before));
}

#[test]
fn a_server_that_died_while_the_daemon_was_down_loses_only_its_own_sessions() {
    let mut d = TestDaemon::start("[tmux]\nsessions_per_server = 1\n");
    let ids: Vec<String> = (0..3).map(|_| create(&d)).collect();
    let at = sockets(&d);
    d.stop();
    // SIGKILL: the socket file stays behind, stale.
    let dead = &at[&ids[1]];
    let pid = common::daemon::tmux_server_pid(dead).expect("a pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    common::wait::eventually(common::wait::WAIT, "the server gone", || {
        common::daemon::tmux_server_pid(dead).is_none().then_some(())
    });
    assert!(dead.exists(), "a stale socket");
    let t = std::time::Instant::now();
    d.restart();
    eprintln!("READY with a stale socket in {:?}", t.elapsed());
    for (i, id) in ids.iter().enumerate() {
        let s = d.ok("session.get", json!({"id": id}));
        let want = if i == 1 { "lost" } else { "running" };
        assert_eq!(s["state"], want, "{s}");
    }
    // Its place is taken again by the next create.
    let next = create(&d);
    assert_eq!(sockets(&d)[&next], *dead);
    works(&d, &next);
}

/// How many lines of the daemon's log contain `what`.
fn log_count(d: &TestDaemon, what: &str) -> usize {
    d.log_text().lines().filter(|l| l.contains(what)).count()
}

#[test]
fn notifications_refresh_only_the_sessions_they_name() {
    // No periodic full refresh during the test: only notifications.
    let d = TestDaemon::start("[health]\ninterval = \"1h\"\n");
    let ids: Vec<String> = (0..20).map(|_| create(&d)).collect();
    for id in &ids[..10] {
        d.ok("session.kill", json!({"id": id}));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // The daemon's own creates and kills cost no full listing, and at most
    // a few one-window ones (the keeper's window when the server starts; a
    // create still in flight when a burst's notifications are handled: more
    // of those on a busy machine, hence a bound well under one per change).
    assert_eq!(log_count(&d, "full refresh"), 0, "{}", d.log_text());
    let own = log_count(&d, "targeted refresh");
    assert!(own <= 10, "{own} targeted refreshes for 30 creates and kills:\n{}", d.log_text());

    // A session killed behind the daemon's back: its window closed, its
    // session alone is looked at, and it is lost.
    let victim = &ids[15];
    let out = d.tmux(&["kill-session", "-t", &format!("=ccmanager_sess_{victim}")]);
    assert!(out.status.success());
    common::wait::eventually(common::wait::WAIT, "the session lost", || {
        (d.ok("session.get", json!({"id": victim}))["state"] == "lost").then_some(())
    });
    // A session planted in the server: its new window is looked at.
    let out = d.tmux(&["new-session", "-d", "-s", "ccmanager_sess_planted1", "sleep", "1000"]);
    assert!(out.status.success());
    common::wait::eventually(common::wait::WAIT, "the planted session adopted", || {
        d.call("session.get", json!({"id": "planted1"})).ok().filter(|s| s["adopted"] == true)
    });
    assert_eq!(log_count(&d, "full refresh"), 0, "{}", d.log_text());
    assert!(log_count(&d, "targeted refresh") >= own + 2, "{}", d.log_text());
    for id in &ids[10..] {
        if id != victim {
            assert_eq!(d.ok("session.get", json!({"id": id}))["state"], "running");
        }
    }
}
