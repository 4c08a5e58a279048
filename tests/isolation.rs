//! Isolation between users: every session runs as its owner, in its owner's
//! own tmux server (`ccmanagerd --tmux-dir DIR`: uid U's server listens on
//! `DIR/U/tmux.sock`). Two local users, A (`ccmtest-a`) and B (`ccmtest-b`),
//! act through the real CLI and through programs in their own sessions, so
//! what is tested is what the kernel enforces, not what the RPC layer checks.
//!
//! Needs root (each test prints SKIP otherwise). Against the daemon from
//! before per-uid servers (one server for everyone), 20 of these failed,
//! each for the reason it guards.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::caller::{as_root, as_user, sid, socket_of, Caller};
use common::daemon::{tmux_server_pid, TestDaemon};
use common::probe::{LineReader, Probe, PYTHON, REPORT_SELF};
use common::users::{users_or_skip, TestUser, Users};
use common::wait::{eventually, maybe, WAIT};

/// How long a thing that must not happen (a planted session being listed, a
/// `#()` job creating its file) is given to happen anyway.
const GRACE: Duration = Duration::from_secs(3);

/// A daemon that A and B may use, and the users.
struct World {
    d: TestDaemon,
    u: Users,
}

impl World {
    fn start(test: &str) -> Option<World> {
        Self::start_with(test, "")
    }

    fn start_with(test: &str, extra_config: &str) -> Option<World> {
        Self::start_with_users(test, |_| extra_config.to_string())
    }

    /// Like [`World::start_with`], with a config that names the users.
    fn start_with_users(test: &str, config: impl FnOnce(&Users) -> String) -> Option<World> {
        let u = users_or_skip(test)?;
        let d = TestDaemon::start_shared(&[u.a.uid, u.b.uid], &config(&u));
        Some(World { d, u })
    }

    fn a(&self) -> Caller<'_> {
        as_user(&self.d, &self.u.a)
    }

    fn b(&self) -> Caller<'_> {
        as_user(&self.d, &self.u.b)
    }

    fn root(&self) -> Caller<'_> {
        as_root(&self.d)
    }

    /// Runs the probe `body` as the program of a new session of `user`.
    fn probe(&self, user: &TestUser, body: &str, args: &[String]) -> Value {
        let dir = user.scratch_dir();
        Probe::new(dir.path(), body).run_in_session(&as_user(&self.d, user), args, json!({}))
    }
}

/// A session of `c` that shows `marker`, then echoes what it is typed
/// (`cat`); `marker` is also in its environment.
fn victim(c: &Caller, marker: &str) -> Value {
    let s = c.create(json!({"command": ["/bin/sh", "-c", format!("echo {marker}; exec /bin/cat")],
                           "env": {"SECRET": marker}}));
    c.wait_screen(sid(&s), marker);
    s
}

/// The pid of a session's program, once it has exec'd `program` (past any
/// exec-wrapper).
fn program_pid(session: &Value, program: &str) -> u64 {
    let pid = session["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {session}"));
    eventually(WAIT, &format!("pid {pid} to exec {program}"), || {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        cmdline.starts_with(program.as_bytes()).then_some(pid)
    })
}

/// The numbers of a `/proc/PID/status` line such as `Uid:` or `Groups:`.
fn proc_ids(pid: u64, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with(key)).expect(key);
    line[key.len()..].split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// Asserts the kernel runs `pid` as `user`, with the users' shared group.
fn assert_runs_as(pid: u64, user: &TestUser, shared_gid: u32) {
    assert_eq!(proc_ids(pid, "Uid:"), [user.uid; 4], "pid {pid} should run as {}", user.name);
    assert_eq!(proc_ids(pid, "Gid:"), [user.gid; 4], "pid {pid} should have {}'s gid", user.name);
    let groups = proc_ids(pid, "Groups:");
    assert!(groups.contains(&shared_gid), "pid {pid} lacks {}'s groups: {groups:?}", user.name);
}

/// Asserts a probe's `attempt(...)` failed with one of `errnos`.
fn assert_refused_by_kernel(what: &str, r: &Value, errnos: &[i32]) {
    let errno = r["errno"].as_i64().map(|e| e as i32);
    assert!(errno.is_some_and(|e| errnos.contains(&e)), "{what} should fail with {errnos:?}: {r}");
}

/// Asserts a probe's `run(...)` of a command failed.
fn assert_command_failed(what: &str, r: &Value) {
    assert!(r["rc"] != json!(0), "{what} should have failed: {r}");
}

/// A's victim shows nothing typed, and A lists only what A created.
fn assert_a_untouched(w: &World, victim: &Value, typed: &str) {
    let text = w.a().screen(sid(victim));
    assert!(!text.contains(typed), "text typed by B reached A's session:\n{text}");
    assert_eq!(w.a().listed_ids(), [sid(victim)], "A's session.list changed");
}

// ---- a program in B's session against A ----

#[test]
fn program_in_b_session_cannot_use_a_tmux_socket() {
    let Some(w) = World::start("program_in_b_session_cannot_use_a_tmux_socket") else { return };
    let victim = victim(&w.a(), "SECRET-OF-A");
    let a_socket = socket_of(&w.a().attach_argv(sid(&victim)));
    // `=NAME:` is the exact session's active pane (`=NAME` alone is a window).
    let target = format!("={}:", victim["tmux_session"].as_str().unwrap());
    let body = r#"
sock, target = ARGS
tmux = lambda *a: run("/usr/bin/tmux", "-S", sock, *a)
report(capture=tmux("capture-pane", "-p", "-t", target),
       send=tmux("send-keys", "-t", target, "-l", "TYPED-BY-B"),
       list=tmux("list-sessions"),
       plant=tmux("new-session", "-d", "-s", "ccmanager_sess_zzz", "/bin/sleep 100000"),
       connect=attempt(lambda: socket.socket(socket.AF_UNIX).connect(sock)))
"#;
    let r = w.probe(&w.u.b, body, &[a_socket.display().to_string(), target]);
    let read = r.to_string().contains("SECRET-OF-A");
    assert!(!read, "B's program read A's screen through {}: {r}", a_socket.display());
    for attempt in ["capture", "send", "list", "plant"] {
        assert_command_failed(&format!("B's `tmux -S <A's socket> {attempt}`"), &r[attempt]);
    }
    assert_refused_by_kernel("B connecting to A's tmux socket", &r["connect"], &[libc::EACCES]);
    assert_a_untouched(&w, &victim, "TYPED-BY-B");
}

#[test]
fn program_in_b_session_cannot_reach_a_through_its_own_tmux_env() {
    let Some(w) = World::start("program_in_b_session_cannot_reach_a_through_its_own_tmux_env")
    else {
        return;
    };
    let victim = victim(&w.a(), "SECRET-OF-A");
    let a_socket = socket_of(&w.a().attach_argv(sid(&victim)));
    let name = victim["tmux_session"].as_str().unwrap().to_string();
    let body = r##"
target = "=" + ARGS[0] + ":"
tmux = lambda *a: run("/usr/bin/tmux", *a)
report(tmux_env=os.environ.get("TMUX", ""),
       capture=tmux("capture-pane", "-p", "-t", target),
       send=tmux("send-keys", "-t", target, "-l", "TYPED-BY-B"),
       sessions=tmux("list-sessions", "-F", "#{session_name}"),
       panes=tmux("list-panes", "-a", "-F", "#{session_name} #{pane_pid}"))
"##;
    let r = w.probe(&w.u.b, body, std::slice::from_ref(&name));
    let tmux_env = r["tmux_env"].as_str().unwrap_or_default();
    let a_env = tmux_env.starts_with(&a_socket.display().to_string());
    assert!(!a_env, "B's program got A's tmux socket in $TMUX: {tmux_env}");
    assert!(!r.to_string().contains("SECRET-OF-A"), "B's program read A's screen via $TMUX: {r}");
    for listing in ["sessions", "panes"] {
        let out = r[listing]["out"].as_str().unwrap_or_default();
        assert!(!out.contains(&name), "B's program listed A's session via $TMUX: {out}");
    }
    assert_command_failed("B's `tmux capture-pane -t <A's session>` via $TMUX", &r["capture"]);
    assert_command_failed("B's `tmux send-keys -t <A's session>` via $TMUX", &r["send"]);
    assert_a_untouched(&w, &victim, "TYPED-BY-B");
}

#[test]
fn program_in_b_session_cannot_read_or_type_into_a_program_through_proc() {
    let Some(w) =
        World::start("program_in_b_session_cannot_read_or_type_into_a_program_through_proc")
    else {
        return;
    };
    let victim = victim(&w.a(), "SECRET-OF-A");
    let pid = program_pid(&victim, "/bin/cat");
    let body = r#"
p = "/proc/" + ARGS[0]
report(environ=attempt(lambda: open(p + "/environ", "rb").read().decode(errors="replace")),
       root=attempt(lambda: os.readlink(p + "/root")),
       root_list=attempt(lambda: os.listdir(p + "/root/")),
       cwd=attempt(lambda: os.readlink(p + "/cwd")),
       mem=attempt(lambda: open(p + "/mem", "rb").read(1)),
       tty=attempt(lambda: open(p + "/fd/0", "w").write("TYPED-BY-B\n")))
"#;
    let r = w.probe(&w.u.b, body, &[pid.to_string()]);
    assert!(!r.to_string().contains("SECRET-OF-A"), "B's program read A's environment: {r}");
    for what in ["environ", "root", "root_list", "cwd", "mem", "tty"] {
        let attack = format!("B's program opening /proc/<A's pid>/{what}");
        assert_refused_by_kernel(&attack, &r[what], &[libc::EACCES, libc::EPERM]);
    }
    assert_a_untouched(&w, &victim, "TYPED-BY-B");
}

#[test]
fn program_in_b_session_cannot_signal_a_program_or_a_tmux_server() {
    let Some(w) = World::start("program_in_b_session_cannot_signal_a_program_or_a_tmux_server")
    else {
        return;
    };
    let victim = victim(&w.a(), "SECRET-OF-A");
    let pid = program_pid(&victim, "/bin/cat");
    let server = tmux_server_pid(&socket_of(&w.a().attach_argv(sid(&victim)))).expect("pid");
    let body = "report(program=attempt(lambda: os.kill(int(ARGS[0]), 0)),\n       \
                server=attempt(lambda: os.kill(int(ARGS[1]), 0)))\n";
    let r = w.probe(&w.u.b, body, &[pid.to_string(), server.to_string()]);
    assert_refused_by_kernel("B's `kill -0 <A's program>`", &r["program"], &[libc::EPERM]);
    assert_refused_by_kernel("B's `kill -0 <A's tmux server>`", &r["server"], &[libc::EPERM]);
}

#[test]
fn session_planted_by_b_program_never_shows_as_a_session() {
    let Some(w) = World::start("session_planted_by_b_program_never_shows_as_a_session") else {
        return;
    };
    let victim = victim(&w.a(), "SECRET-OF-A");
    let (a, b) = (&w.u.a, &w.u.b);
    let forged = json!({"session": {
        "id": "zzz", "name": "planted", "tmux_session": "ccmanager_sess_zzz",
        "command": ["/bin/sleep", "100000"], "state": "running",
        "created_at": "2026-01-01T00:00:00Z", "limits": {}, "keep": true,
        "owner_uid": a.uid, "uid": a.uid, "user": a.name, "adopted": false}});
    // One tmux command line: the metadata is there before anyone can list it.
    // Only through $TMUX (without it, tmux would start a server of its own).
    let body = r#"
name, meta = ARGS
sock = os.environ.get("TMUX", "").split(",")[0]
plant = ("new-session", "-d", "-s", name, "/bin/sleep 100000",
         ";", "set-option", "-t", name, "@ccm_meta", meta)
report(plant=run("/usr/bin/tmux", "-S", sock, *plant) if sock else {"rc": "no $TMUX"})
"#;
    let r = w.probe(b, body, &["ccmanager_sess_zzz".to_string(), forged.to_string()]);
    assert_eq!(r["plant"]["rc"], 0, "B's program could not plant in its own server via $TMUX: {r}");
    let seen = maybe(GRACE, || {
        let list = w.root().ok("session.list", json!({}));
        list["sessions"].as_array().unwrap().iter().find(|s| s["id"] == "zzz").cloned()
    });
    assert_eq!(w.a().listed_ids(), [sid(&victim)], "a planted session is listed as A's");
    let err = w.a().err("session.get", json!({"id": "zzz"}));
    assert_eq!(err["data"]["kind"], "session_not_found", "{err}");
    if let Some(s) = seen {
        let shown = (&s["uid"], &s["owner_uid"], &s["user"], &s["adopted"]);
        assert_eq!(shown, (&json!(b.uid), &json!(b.uid), &json!(b.name), &json!(true)), "{s}");
        assert!(w.b().listed_ids().contains(&"zzz".to_string()), "B does not see its own {s}");
    }
}

// ---- who programs and servers run as ----

#[test]
fn session_program_runs_as_its_owner_with_the_owners_groups() {
    let Some(w) = World::start("session_program_runs_as_its_owner_with_the_owners_groups") else {
        return;
    };
    let a = &w.u.a;
    let s = w.a().create(json!({"command": ["/bin/sleep", "100000"]}));
    assert_runs_as(program_pid(&s, "/bin/sleep"), a, w.u.shared_gid);
    let shown = (&s["uid"], &s["user"], &s["owner_uid"]);
    assert_eq!(shown, (&json!(a.uid), &json!(a.name), &json!(a.uid)), "{s}");
}

#[test]
fn session_cwd_defaults_to_the_owners_home() {
    let Some(w) = World::start("session_cwd_defaults_to_the_owners_home") else { return };
    let r = w.probe(&w.u.a, REPORT_SELF, &[]);
    assert_eq!(r["cwd"], json!(w.u.a.home), "A's session started elsewhere");
}

#[test]
fn only_root_may_create_sessions_as_another_user() {
    let Some(w) = World::start("only_root_may_create_sessions_as_another_user") else { return };
    let (a, b) = (&w.u.a, &w.u.b);
    let err = w.a().err("session.create", json!({"command": ["/bin/true"], "user": b.name}));
    assert_eq!(err["data"]["kind"], "permission_denied", "A asking for B: {err}");
    assert_eq!(w.root().listed_ids(), Vec::<String>::new(), "a refused create left a session");
    for user in [json!(a.name), json!(a.uid)] {
        let s = w.root().create(json!({"command": ["/bin/sleep", "100000"], "user": user}));
        assert_runs_as(program_pid(&s, "/bin/sleep"), a, w.u.shared_gid);
        let shown = (&s["uid"], &s["user"], &s["owner_uid"]);
        assert_eq!(shown, (&json!(a.uid), &json!(a.name), &json!(0)), "{s}");
    }
}

#[test]
fn root_sessions_without_user_run_as_the_session_user() {
    let config = |u: &Users| format!("[tmux]\nsession_user = \"{}\"\n", u.b.name);
    let Some(w) =
        World::start_with_users("root_sessions_without_user_run_as_the_session_user", config)
    else {
        return;
    };
    let s = w.root().create(json!({"command": ["/bin/sleep", "100000"]}));
    assert_runs_as(program_pid(&s, "/bin/sleep"), &w.u.b, w.u.shared_gid);
}

#[test]
fn root_sessions_as_root_need_allow_root_sessions() {
    let config = |u: &Users| {
        format!("[tmux]\nsession_user = \"{}\"\nallow_root_sessions = false\n", u.b.name)
    };
    let Some(w) = World::start_with_users("root_sessions_as_root_need_allow_root_sessions", config)
    else {
        return;
    };
    for user in [json!("root"), json!(0)] {
        let err = w.root().err("session.create", json!({"command": ["/bin/true"], "user": user}));
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{err}");
    }
    assert_eq!(w.root().listed_ids(), Vec::<String>::new(), "a refused create left a session");
}

#[test]
fn each_uid_gets_its_own_tmux_server_in_a_private_dir() {
    use std::os::unix::fs::MetadataExt;
    let Some(w) = World::start("each_uid_gets_its_own_tmux_server_in_a_private_dir") else {
        return;
    };
    for c in [w.a(), w.b()] {
        c.create(json!({"command": ["/bin/sleep", "100000"]}));
    }
    let top = std::fs::metadata(&w.d.tmux_dir).expect("the --tmux-dir directory");
    assert_eq!(top.uid(), 0, "{} must be root's", w.d.tmux_dir.display());
    assert_eq!(top.mode() & 0o022, 0, "{} must not be writable by others", w.d.tmux_dir.display());
    let status = w.root().ok("daemon.status", json!({}));
    let servers = status["tmux"]["servers"].as_array().cloned().unwrap_or_default();
    let mut pids = Vec::new();
    for u in [&w.u.a, &w.u.b] {
        let socket = w.d.tmux_socket_of(u.uid);
        let dir = std::fs::metadata(socket.parent().unwrap()).expect("the uid's socket dir");
        assert_eq!((dir.uid(), dir.mode() & 0o777), (u.uid, 0o700), "{}", socket.display());
        let pid = tmux_server_pid(&socket).expect("a server answers on the uid's socket");
        assert_runs_as(pid as u64, u, w.u.shared_gid);
        let entry = servers.iter().find(|s| s["uid"] == u.uid).unwrap_or_else(|| {
            panic!("daemon.status lists no tmux server for {}: {status}", u.name)
        });
        let shown = (&entry["user"], &entry["pid"], &entry["alive"], &entry["sessions"]);
        assert_eq!(shown, (&json!(u.name), &json!(pid), &json!(true), &json!(1)), "{entry}");
        assert_eq!(entry["socket"], json!(socket), "{entry}");
        pids.push(pid);
    }
    assert_ne!(pids[0], pids[1], "A and B share a tmux server");
}

#[test]
fn a_user_sees_no_other_uid_in_status_health_or_metrics_and_cannot_reload() {
    let Some(w) = World::start("a_user_sees_no_other_uid_in_status_health_or_metrics") else {
        return;
    };
    for c in [w.a(), w.b()] {
        c.create(json!({"command": ["/bin/sleep", "100000"]}));
    }
    let (a_uid, b_uid) = (w.u.a.uid, w.u.b.uid);
    let a = w.a();
    let json_views = [
        ("daemon.status", a.ok("daemon.status", json!({})).to_string()),
        ("health.check", a.ok("health.check", json!({})).to_string()),
    ];
    for (method, text) in &json_views {
        assert!(
            text.contains(&format!("\"uid\":{a_uid}")),
            "{method} must show A its own server: {text}"
        );
        for needle in [format!("\"uid\":{b_uid}"), format!("uid {b_uid}")] {
            assert!(!text.contains(&needle), "{method} shows A B's server ({needle}): {text}");
        }
    }
    let label = |uid: u32| format!("uid=\"{uid}\"");
    let metrics =
        |c: &Caller| c.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    let seen = metrics(&a);
    assert!(seen.contains(&label(a_uid)), "daemon.metrics must show A its own server: {seen}");
    assert!(!seen.contains(&label(b_uid)), "daemon.metrics shows A B's server: {seen}");
    // Root still sees both.
    let all = metrics(&w.root());
    assert!(all.contains(&label(b_uid)), "root must see every uid's server: {all}");
    let e = a.err("daemon.reload", json!({}));
    assert_eq!(e["data"]["kind"], "permission_denied", "{e}");
    assert!(e["message"].as_str().unwrap_or("").contains("admin_group"), "{e}");
    w.root().ok("daemon.reload", json!({}));
}

/// A stopped tmux server delays only its own uid's cleanup, and only by one
/// request timeout per pass: the reaper removes the other uids' sessions at
/// once and leaves the stopped server's for the next pass (it used to wait
/// the timeout for each of them, in turn, before anyone else's).
#[test]
fn a_stopped_server_delays_only_its_own_uids_cleanup() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    struct Resume(Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let config = "[cleanup]\nmax_age = \"1s\"\ninterval = \"1h\"\n";
    let Some(w) = World::start_with("a_stopped_server_delays_only_its_own_uids_cleanup", config)
    else {
        return;
    };
    let mut ids = Vec::new();
    for c in [w.a(), w.b()] {
        for _ in 0..3 {
            ids.push((
                c.uid(),
                sid(&c.create(json!({"command": ["/bin/sleep", "100000"]}))).to_string(),
            ));
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let a_server = tmux_server_pid(&w.d.tmux_socket_of(w.u.a.uid)).expect("A's server");
    let stopped = Resume(Pid::from_raw(a_server));
    kill(stopped.0, Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    let report = w.root().ok("cleanup.run", json!({}));
    let took = started.elapsed();
    let removed: Vec<&str> =
        report["removed"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    for (uid, id) in &ids {
        let expected = *uid == w.u.b.uid;
        assert_eq!(removed.contains(&id.as_str()), expected, "uid {uid} session {id}: {report}");
    }
    // One request timeout (10 s) for A's first removal, not three in turn.
    eprintln!("cleanup pass with A's server stopped took {took:?}");
    assert!(took < Duration::from_secs(25), "the pass waited on each of A's sessions: {took:?}");
    let a = w.a();
    for (_, id) in ids.iter().filter(|(uid, _)| *uid == w.u.a.uid) {
        assert_eq!(a.ok("session.get", json!({"id": id}))["state"], "running", "{id}");
    }
    drop(stopped);
    // The kill-session that timed out was already on the server's pipe and
    // runs when it resumes; the rest go on the next pass (periodic or asked).
    eventually(Duration::from_secs(60), "A's sessions to go once its server answers", || {
        let _ = w.root().call("cleanup.run", json!({}));
        a.listed_ids().is_empty().then_some(())
    });
}

// ---- strings that mean something to tmux ----

/// Strings tmux would read as flags, formats, separators, quoting, targets
/// or variables. `tag` names the file `#(touch ...)` would create.
fn hostile(tag: &str) -> Vec<String> {
    let pwn = format!("#(touch {})", pwn_file(tag).display());
    ["-t", "-N 999999999", "-X", &pwn, "#{pane_id}", ";", "\\", "=x", "$HOME", "'", "\""]
        .map(String::from)
        .to_vec()
}

fn pwn_file(tag: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/PWN-{tag}"))
}

/// `Ok` if `e` is a -32602 whose message names `field`; else a problem.
fn refused_naming(e: &Value, field: &str) -> Result<(), String> {
    let names = e["message"].as_str().is_some_and(|m| m.contains(field));
    if e["code"] == -32602 && names {
        Ok(())
    } else {
        Err(format!("not refused with -32602 naming {field:?}: {e}"))
    }
}

/// Creates a session of A running `probe` with `params` added: fine if
/// refused with -32602 naming `field`, else the program's report must pass
/// `check`.
fn literal_or_refused(
    a: &Caller,
    probe: &Probe,
    params: Value,
    field: &str,
    check: impl FnOnce(&Value) -> Result<(), String>,
) -> Result<(), String> {
    let (out, argv) = probe.command(&[]);
    let mut full = json!({"command": argv});
    full.as_object_mut().unwrap().extend(params.as_object().cloned().unwrap_or_default());
    match a.call("session.create", full) {
        Err(e) => refused_naming(&e, field),
        Ok(_) => check(&Probe::report(&out).ok_or("the program never ran")?),
    }
}

/// What a hostile string must not do: create its `#()` file, or change
/// another session's screen (A's victim, in the server A's requests reach).
struct Tripwire {
    pwn: PathBuf,
    victim: Value,
    before: String,
}

impl Tripwire {
    fn arm(w: &World, tag: &str) -> Tripwire {
        let pwn = pwn_file(tag);
        let _ = std::fs::remove_file(&pwn);
        let victim = victim(&w.a(), "VICTIM-SCREEN");
        let before = w.a().screen(sid(&victim));
        Tripwire { pwn, victim, before }
    }

    /// Adds what went off to `problems`, then asserts there are none.
    fn check(&self, w: &World, mut problems: Vec<String>) {
        if maybe(GRACE, || self.pwn.exists().then_some(())).is_some() {
            problems.push(format!("a #() job ran: {} exists", self.pwn.display()));
        }
        let after = w.a().screen(sid(&self.victim));
        if after != self.before {
            problems.push(format!("another session's screen changed:\n{after}"));
        }
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    }
}

#[test]
fn hostile_command_argv_reaches_the_program_literally() {
    let Some(w) = World::start("hostile_command_argv_reaches_the_program_literally") else {
        return;
    };
    let trip = Tripwire::arm(&w, "argv");
    let args = hostile("argv");
    let r = w.probe(&w.u.a, REPORT_SELF, &args);
    let mut problems = Vec::new();
    if r["argv"] != json!(args) {
        problems.push(format!("argv {args:?} arrived as {}", r["argv"]));
    }
    trip.check(&w, problems);
}

#[test]
fn hostile_cwd_reaches_the_program_literally_or_is_refused() {
    let Some(w) = World::start("hostile_cwd_reaches_the_program_literally_or_is_refused") else {
        return;
    };
    let trip = Tripwire::arm(&w, "cwd");
    let dir = w.u.a.scratch_dir();
    let probe = Probe::new(dir.path(), REPORT_SELF);
    let mut problems = Vec::new();
    for s in hostile("cwd") {
        // A `/` in `s` makes nested directories: the path still holds `s`.
        let cwd = dir.path().join("cwd").join(&s);
        std::fs::create_dir_all(&cwd).expect("create a hostile cwd");
        let outcome = literal_or_refused(&w.a(), &probe, json!({"cwd": cwd}), "cwd", |r| {
            (r["cwd"] == json!(cwd)).then_some(()).ok_or(format!("ran in {}", r["cwd"]))
        });
        if let Err(p) = outcome {
            problems.push(format!("cwd {}: {p}", cwd.display()));
        }
    }
    trip.check(&w, problems);
}

#[test]
fn hostile_env_reaches_the_program_literally_or_is_refused() {
    let Some(w) = World::start("hostile_env_reaches_the_program_literally_or_is_refused") else {
        return;
    };
    let trip = Tripwire::arm(&w, "env");
    let dir = w.u.a.scratch_dir();
    let probe = Probe::new(dir.path(), REPORT_SELF);
    let mut problems = Vec::new();
    let env: serde_json::Map<String, Value> =
        hostile("env").into_iter().enumerate().map(|(i, v)| (format!("V{i}"), json!(v))).collect();
    let r = probe.run_in_session(&w.a(), &[], json!({"env": env}));
    for (k, v) in &env {
        if &r["env"][k] != v {
            problems.push(format!("env value {v} arrived as {}", r["env"][k]));
        }
    }
    for key in hostile("env") {
        let outcome = literal_or_refused(&w.a(), &probe, json!({"env": {&key: "v"}}), "env", |r| {
            (r["env"][&key] == "v").then_some(()).ok_or(format!("arrived as {}", r["env"][&key]))
        });
        if let Err(p) = outcome {
            problems.push(format!("env name {key:?}: {p}"));
        }
    }
    trip.check(&w, problems);
}

#[test]
fn hostile_session_names_are_kept_literally_or_refused() {
    let Some(w) = World::start("hostile_session_names_are_kept_literally_or_refused") else {
        return;
    };
    let trip = Tripwire::arm(&w, "name");
    let mut problems = Vec::new();
    for name in hostile("name") {
        let outcome =
            match w.a().call("session.create", json!({"command": ["/bin/true"], "name": name})) {
                Err(e) => refused_naming(&e, "name"),
                Ok(s) => {
                    let got = w.a().ok("session.get", json!({"id": sid(&s)}));
                    let literal = got["name"] == json!(name)
                        && got["tmux_session"] == format!("ccmanager_sess_{}", sid(&s));
                    literal.then_some(()).ok_or(format!("kept as {got}"))
                }
            };
        if let Err(p) = outcome {
            problems.push(format!("name {name:?}: {p}"));
        }
    }
    trip.check(&w, problems);
}

#[test]
fn hostile_text_is_typed_literally() {
    let Some(w) = World::start("hostile_text_is_typed_literally") else { return };
    let trip = Tripwire::arm(&w, "text");
    let dir = w.u.a.scratch_dir();
    let mut reader = LineReader::start(w.a(), dir.path());
    let mut problems = Vec::new();
    for text in hostile("text") {
        let outcome = match reader.send(json!({"text": text, "enter": true})) {
            Err(e) => Err(format!("refused: {e}")),
            Ok(None) => Err(reader.no_line()),
            Ok(Some(line)) => (line == text).then_some(()).ok_or(format!("typed as {line:?}")),
        };
        if let Err(p) = outcome {
            problems.push(format!("text {text:?}: {p}"));
        }
    }
    trip.check(&w, problems);
}

#[test]
fn hostile_keys_are_refused_or_typed_literally() {
    let Some(w) = World::start("hostile_keys_are_refused_or_typed_literally") else { return };
    let trip = Tripwire::arm(&w, "keys");
    let dir = w.u.a.scratch_dir();
    let mut reader = LineReader::start(w.a(), dir.path());
    let mut problems = Vec::new();
    for key in hostile("keys") {
        let outcome = match reader.send(json!({"keys": [key], "enter": true})) {
            Err(e) => refused_naming(&e, "keys"),
            Ok(_) if key.starts_with('-') => Err("a key starting with '-' was accepted".into()),
            Ok(None) => Err(reader.no_line()),
            Ok(Some(line)) => (line == key).then_some(()).ok_or(format!("typed as {line:?}")),
        };
        if let Err(p) = outcome {
            problems.push(format!("key {key:?}: {p}"));
        }
    }
    trip.check(&w, problems);
}

// ---- the request's environment reaches only the program ----

/// A constructor that appends the soft RLIMIT_NOFILE of whatever loads it
/// to `$CCM_PRELOAD_OUT`.
const PRELOAD_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
__attribute__((constructor)) static void record_nofile(void) {
    const char *out = getenv("CCM_PRELOAD_OUT");
    struct rlimit r;
    if (!out || getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    FILE *f = fopen(out, "a");
    if (!f) return;
    fprintf(f, "%llu\n", (unsigned long long) r.rlim_cur);
    fclose(f);
}
"#;

#[test]
fn ld_preload_from_the_request_runs_only_in_the_program_with_its_limits() {
    let Some(w) =
        World::start("ld_preload_from_the_request_runs_only_in_the_program_with_its_limits")
    else {
        return;
    };
    let dir = w.u.a.scratch_dir();
    let [src, lib, out] = ["p.c", "p.so", "nofile"].map(|f| dir.path().join(f));
    std::fs::write(&src, PRELOAD_C).unwrap();
    let cc = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).output();
    let cc = cc.expect("run gcc");
    assert!(cc.status.success(), "gcc: {}", String::from_utf8_lossy(&cc.stderr));
    let s = w.a().create(json!({"command": ["/bin/true"], "limits": {"nofile": 123},
                                "env": {"LD_PRELOAD": lib, "CCM_PRELOAD_OUT": out}}));
    w.a().wait_state(sid(&s), "exited");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(text, "123\n", "one line per process that loaded the request's LD_PRELOAD");
}

// ---- failed spawns leave nothing behind ----

/// `session.create` as `c` fails naming `problem`, and nothing is left: not
/// in the daemon, not in the tmux server of `c`'s uid.
fn assert_create_fails_cleanly(w: &World, c: &Caller, params: Value, problem: &str) {
    let e = c.err("session.create", params);
    let kind_ok = e["data"]["kind"] == "spawn_failed" || e["code"] == -32602;
    assert!(kind_ok, "want spawn_failed or -32602: {e}");
    let message = e["message"].as_str().unwrap_or_default();
    assert!(message.contains(problem), "the message should name {problem:?}: {message}");
    assert_eq!(w.root().listed_ids(), Vec::<String>::new(), "the daemon kept a failed session");
    let socket = w.d.tmux_socket_of(c.uid());
    if socket.exists() {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["list-sessions", "-F", "#{session_name}"])
            .output()
            .expect("tmux");
        let names = String::from_utf8_lossy(&out.stdout);
        assert!(!names.contains("ccmanager_sess_"), "tmux kept a failed session: {names}");
    }
}

#[test]
fn missing_program_fails_create_and_leaves_nothing() {
    let Some(w) = World::start("missing_program_fails_create_and_leaves_nothing") else { return };
    let params = json!({"command": ["ccm-no-such-program", "x"]});
    assert_create_fails_cleanly(&w, &w.a(), params, "ccm-no-such-program");
}

#[test]
fn cwd_that_is_a_file_fails_create_and_leaves_nothing() {
    let Some(w) = World::start("cwd_that_is_a_file_fails_create_and_leaves_nothing") else {
        return;
    };
    let dir = w.u.a.scratch_dir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let params = json!({"command": ["/bin/true"], "cwd": file});
    assert_create_fails_cleanly(&w, &w.a(), params, &file.display().to_string());
}

#[test]
fn cwd_the_owner_cannot_enter_fails_create_and_leaves_nothing() {
    let Some(w) = World::start("cwd_the_owner_cannot_enter_fails_create_and_leaves_nothing") else {
        return;
    };
    let params = json!({"command": ["/bin/true"], "cwd": "/root"});
    assert_create_fails_cleanly(&w, &w.a(), params, "/root");
}

// ---- one user's trouble stays theirs ----

#[test]
fn killing_a_tmux_server_loses_only_a_sessions() {
    let Some(w) = World::start("killing_a_tmux_server_loses_only_a_sessions") else { return };
    let a_sessions = [victim(&w.a(), "A-ONE"), victim(&w.a(), "A-TWO")];
    let b_session = victim(&w.b(), "B-ONE");
    let a_socket = socket_of(&w.a().attach_argv(sid(&a_sessions[0])));
    let pid = tmux_server_pid(&a_socket).expect("A's tmux server pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9 A's tmux server");
    for s in &a_sessions {
        w.a().wait_state(sid(s), "lost");
    }
    let b = w.b().ok("session.get", json!({"id": sid(&b_session)}));
    assert_eq!(b["state"], "running", "B's session went with A's tmux server: {b}");
    w.b().ok("session.send", json!({"id": sid(&b_session), "text": "B-STILL-HERE", "enter": true}));
    w.b().wait_screen(sid(&b_session), "B-STILL-HERE");
}

/// Opens up to `want` connections, pings on each, keeps those that answered,
/// prints `{"held": N, "refused": <the refusing reply>}`, then holds them
/// until its stdin closes.
const PY_HOLDER: &str = r#"
import json, socket, sys
path, want = sys.argv[1], int(sys.argv[2])
held, refused = [], None
for _ in range(want):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    # A refused connection gets one error reply and is closed, possibly
    # before this write: read that reply anyway (as ccmanagerctl does).
    try:
        s.sendall(b'{"jsonrpc":"2.0","method":"daemon.ping","id":1}\n')
    except (BrokenPipeError, ConnectionResetError):
        pass
    line = s.makefile().readline()
    reply = json.loads(line) if line else None
    if reply and reply.get("result") == "pong":
        held.append(s)
    else:
        refused = reply
        break
print(json.dumps({"held": len(held), "refused": refused}), flush=True)
sys.stdin.read()
"#;

/// A process of a test user holding connections to the daemon (killed on
/// drop), and what it reported.
struct Holder {
    child: Child,
    report: Value,
}

impl Holder {
    fn start(d: &TestDaemon, user: &TestUser, want: usize) -> Holder {
        let mut child = user
            .command(PYTHON)
            .args(["-c", PY_HOLDER])
            .arg(&d.socket)
            .arg(want.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the connection holder");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("holder report");
        let report = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("holder as {} said {line:?}: {e}", user.name));
        Holder { child, report }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_uid_holding_its_connection_quota_cannot_keep_root_or_b_out() {
    let Some(w) = World::start_with(
        "one_uid_holding_its_connection_quota_cannot_keep_root_or_b_out",
        "[daemon]\nmax_connections = 16\nmax_connections_per_uid = 4\n\
         reserved_admin_connections = 2\n",
    ) else {
        return;
    };
    let holder = Holder::start(&w.d, &w.u.a, 5);
    assert_eq!(holder.report["held"], 4, "A's quota: {}", holder.report);
    let kind = &holder.report["refused"]["error"]["data"]["kind"];
    assert_eq!(kind, "too_many_connections", "A's fifth connection: {}", holder.report);
    assert_eq!(w.root().ok("daemon.ping", json!({})), "pong");
    assert_eq!(w.b().ok("daemon.ping", json!({})), "pong");
}

#[test]
fn reserved_admin_connections_let_root_in_when_users_fill_the_rest() {
    let Some(w) = World::start_with(
        "reserved_admin_connections_let_root_in_when_users_fill_the_rest",
        "[daemon]\nmax_connections = 10\nmax_connections_per_uid = 4\n\
         reserved_admin_connections = 2\n",
    ) else {
        return;
    };
    let holders = [Holder::start(&w.d, &w.u.a, 4), Holder::start(&w.d, &w.u.b, 4)];
    for h in &holders {
        assert_eq!(h.report["held"], 4, "{}", h.report);
    }
    assert_eq!(w.root().ok("daemon.ping", json!({})), "pong");
}

// ---- attaching a real terminal ----

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A command of a test user under a pty (`script`), killed on drop.
struct Terminal(Child);

impl Terminal {
    fn start(user: &TestUser, argv: &[String], typescript: &std::path::Path) -> Terminal {
        let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let child = user
            .command("script")
            .args(["-qfec", &line.join(" ")])
            .arg(typescript)
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("script");
        Terminal(child)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn attach_argv_attaches_the_owner_and_others_are_refused() {
    let Some(w) = World::start("attach_argv_attaches_the_owner_and_others_are_refused") else {
        return;
    };
    let s = victim(&w.a(), "A-SCREEN");
    let name = s["tmux_session"].as_str().unwrap().to_string();
    let argv = w.a().attach_argv(sid(&s));
    assert!(argv.contains(&"attach-session".to_string()), "{argv:?}");
    assert_eq!(argv.last(), Some(&format!("={name}")), "{argv:?}");
    let socket = socket_of(&argv);
    assert_eq!(socket, w.d.tmux_socket_of(w.u.a.uid), "not A's own server: {argv:?}");
    let dir = w.u.a.scratch_dir();
    let typescript = dir.path().join("typescript");
    let _terminal = Terminal::start(&w.u.a, &argv, &typescript);
    let attached = maybe(WAIT, || {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["list-clients", "-t", &format!("={name}"), "-F", "#{client_uid}"])
            .output()
            .ok()?;
        let uids = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!uids.is_empty()).then_some(uids)
    });
    let seen = std::fs::read_to_string(&typescript).unwrap_or_default();
    let uids = attached.unwrap_or_else(|| panic!("A's attach never attached; A saw:\n{seen}"));
    assert_eq!(uids, w.u.a.uid.to_string(), "the attached client is not A's");
    let err = w.b().err("session.attach", json!({"id": sid(&s)}));
    let kind = err["data"]["kind"].as_str().unwrap_or_default();
    assert!(["session_not_found", "permission_denied"].contains(&kind), "B attaching: {err}");
}

/// Root never runs a tmux client against a user's server: a hook that a
/// program in B's session sets on B's own server (`save-buffer` into a
/// directory only root may write) fires on the daemon's reconnect (B
/// detaches the daemon's control client) and must not write there.
#[test]
fn hooks_in_b_server_never_run_file_commands_as_root() {
    let Some(w) = World::start("hooks_in_b_server_never_run_file_commands_as_root") else {
        return;
    };
    let root_only = tempfile::Builder::new().prefix("ccm-rootonly-").tempdir_in("/tmp").unwrap();
    let target = root_only.path().join("pwned");
    let script = format!(
        "tmux set-buffer -b evil pwned; \
         tmux set-hook -g after-display-message 'save-buffer -b evil {t}'; \
         tmux set-hook -g client-attached 'save-buffer -b evil {t}'; \
         tmux detach-client -s ccmanager_control; exec sleep 1000",
        t = target.display()
    );
    let s = w.b().create(json!({"command": ["/bin/sh", "-c", script]}));
    eventually(WAIT, "the daemon to reconnect to B's server", || {
        w.d.log_text().contains("reconnecting to the same server").then_some(())
    });
    // A capture goes through the new control connection.
    eventually(WAIT, "B's session to answer again", || {
        w.b().call("session.capture", json!({"id": sid(&s)})).ok()
    });
    assert!(!target.exists(), "a hook in B's server wrote {} as root", target.display());
}

/// Root attaching to a user's session does it as that user (a root tmux
/// client would run what that user's server sends it, e.g. `detach-client -E`).
#[test]
fn root_attaches_as_the_sessions_user() {
    let Some(w) = World::start("root_attaches_as_the_sessions_user") else { return };
    let s = victim(&w.a(), "A-SCREEN");
    let argv: Vec<String> = serde_json::from_value(
        w.root().ok("session.attach", json!({"id": sid(&s)}))["argv"].clone(),
    )
    .unwrap();
    let name: &str = w.u.a.name;
    assert_eq!(argv[..4], ["runuser", "-u", name, "--"], "{argv:?}");
}
