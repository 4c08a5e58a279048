//! What the daemon acknowledged survives it: SIGKILL under create/kill
//! load, a full or read-only state directory, a directory in place of the
//! state file (real daemon, real tmux; the state directory on a tmpfs
//! mounted by the test, which needs root).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ccmanagerd::client::{Client, ClientError};
use common::daemon::TestDaemon;
use common::wait::{eventually, WAIT};

const SLEEP: [&str; 2] = ["sleep", "100000"];

/// What the load threads were told, and what they were not sure of.
#[derive(Default)]
struct Acked {
    created: HashSet<String>,
    killed: HashSet<String>,
    /// Kills cut off by the SIGKILL: the session may be gone from tmux
    /// and still saved (it comes back `lost`), or not killed at all.
    in_doubt: HashSet<String>,
}

/// Creates and kills sessions on `threads` connections until the daemon
/// stops answering; returns what it acknowledged.
fn load(
    socket: &Path,
    threads: usize,
    stop: Arc<AtomicBool>,
    kills: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Acked>> {
    (0..threads)
        .map(|t| {
            let socket = socket.to_path_buf();
            let stop = stop.clone();
            let kills = kills.clone();
            std::thread::spawn(move || {
                let mut acked = Acked::default();
                let Ok(mut c) = Client::connect(&socket, Some(Duration::from_secs(30))) else {
                    return acked;
                };
                let mut mine: Vec<String> = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Mostly create then kill; every third session stays.
                    if mine.len() > 1 || (n % 3 == 0 && !mine.is_empty()) {
                        let id = mine.remove(0);
                        match c.call("session.kill", json!({"id": id})) {
                            Ok(_) => {
                                acked.killed.insert(id);
                                kills.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(ClientError::Rpc(e)) => panic!("kill {id} refused: {}", e.message),
                            Err(_) => {
                                acked.in_doubt.insert(id);
                                break;
                            }
                        }
                    } else {
                        let name = format!("t{t}-{n}");
                        match c.call("session.create", json!({"command": SLEEP, "name": name})) {
                            Ok(s) => {
                                let id = s["id"].as_str().unwrap().to_string();
                                acked.created.insert(id.clone());
                                mine.push(id);
                            }
                            Err(ClientError::Rpc(e)) => panic!("create refused: {}", e.message),
                            Err(_) => break,
                        }
                    }
                }
                acked
            })
        })
        .collect()
}

fn list(d: &TestDaemon) -> HashMap<String, Value> {
    let v = d.ok("session.list", json!({}));
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// The `ccmanager_sess_*` sessions tmux has.
fn in_tmux(d: &TestDaemon) -> HashSet<String> {
    let out = d.tmux(&["list-sessions", "-F", "#{session_name}"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ccmanager_sess_"))
        .map(str::to_string)
        .collect()
}

/// Acknowledged kills each round has before its SIGKILL.
const KILLS_PER_ROUND: usize = 5;

#[test]
fn sigkill_under_create_kill_load_never_undoes_an_acknowledgement() {
    let mut d = TestDaemon::start(
        "[limits]\nmax_sessions = 2000\nmax_sessions_per_owner = 2000\n[cleanup]\nmax_age = \"off\"\n",
    );
    let mut all = Acked::default();
    let mut unacked_present = HashSet::new();
    let mut rounds_with_load = 0usize;
    let started = Instant::now();
    for round in 0..20u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicUsize::new(0));
        let threads = load(&d.socket, 6, stop.clone(), kills.clone());
        // Kill at a different point of the load each time, once the load
        // has acknowledged some kills (a busy machine is slow to get there).
        std::thread::sleep(Duration::from_millis(250 + (round * 137) % 500));
        let deadline = Instant::now() + Duration::from_secs(20);
        while kills.load(Ordering::Relaxed) < KILLS_PER_ROUND && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5 + (round * 7) % 20));
        }
        d.kill9();
        stop.store(true, Ordering::Relaxed);
        let mut round_acked = Acked::default();
        for t in threads {
            let a = t.join().expect("load thread");
            round_acked.created.extend(a.created);
            round_acked.killed.extend(a.killed);
            all.in_doubt.extend(a.in_doubt);
        }
        if !round_acked.killed.is_empty() {
            rounds_with_load += 1;
        }
        all.created.extend(round_acked.created);
        all.killed.extend(round_acked.killed);
        d.restart();
        let now = list(&d);
        let resurrected: Vec<&String> =
            all.killed.iter().filter(|id| now.contains_key(*id)).collect();
        assert!(
            resurrected.is_empty(),
            "round {round}: acknowledged kills came back: {:?}",
            resurrected.iter().map(|id| &now[*id]).collect::<Vec<_>>()
        );
        let missing: Vec<&String> = all
            .created
            .iter()
            .filter(|id| !all.killed.contains(*id) && !all.in_doubt.contains(*id))
            .filter(|id| !now.contains_key(*id))
            .collect();
        assert!(missing.is_empty(), "round {round}: acknowledged creates are missing: {missing:?}");
        for (id, s) in &now {
            assert!(
                s["command"] == json!(SLEEP) && s["adopted"] == false && s["owner_uid"] == 0,
                "round {round}: session {id} lost its metadata: {s}"
            );
            // A create cut off before its program started ends `exited`
            // (the wrapper does not start without the daemon's go).
            if all.created.contains(id) && !all.in_doubt.contains(id) {
                assert_eq!(s["state"], "running", "round {round}: {s}");
            }
        }
        let tmux = in_tmux(&d);
        for id in &all.killed {
            assert!(!tmux.contains(id), "round {round}: killed session {id} still in tmux");
        }
        // Creates cut off by the SIGKILL: completed, never half there.
        let unacked: Vec<&String> = now.keys().filter(|id| !all.created.contains(*id)).collect();
        for id in unacked {
            unacked_present.insert(id.clone());
            assert!(tmux.contains(id), "round {round}: cut-off create {id} listed but not in tmux");
        }
        for id in &tmux {
            assert!(now.contains_key(id), "round {round}: tmux session {id} not listed");
        }
    }
    eprintln!(
        "20 SIGKILLs in {:.1} s: {} creates and {} kills acknowledged ({} rounds with kills), 0 resurrected, 0 missing; {} cut-off creates completed from their intent, {} kills cut off",
        started.elapsed().as_secs_f64(),
        all.created.len(),
        all.killed.len(),
        rounds_with_load,
        unacked_present.len(),
        all.in_doubt.len(),
    );
    assert!(
        all.killed.len() >= 20 * KILLS_PER_ROUND,
        "too little load to mean anything: {}",
        all.killed.len()
    );
}

/// A small tmpfs mounted for the state directory; unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount a tmpfs at {} (the test needs root)", path.display());
        Tmpfs { path: path.to_path_buf() }
    }

    /// Remounts with `opt`; retried while a save holds a file open
    /// (`mount point is busy`).
    fn remount(&self, opt: &str) {
        eventually(WAIT, &format!("remount {opt}"), || {
            let out = Command::new("mount")
                .args(["-o", &format!("remount,{opt}")])
                .arg(&self.path)
                .output()
                .unwrap();
            out.status.success().then_some(())
        });
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {health}"))
}

fn create(d: &TestDaemon) -> Result<String, Value> {
    match d.call("session.create", json!({"command": SLEEP})) {
        Ok(s) => Ok(s["id"].as_str().unwrap().to_string()),
        Err(ClientError::Rpc(e)) => {
            Err(json!({"code": e.code, "message": e.message, "data": e.data}))
        }
        Err(e) => panic!("create: {e}"),
    }
}

fn failures_metric(d: &TestDaemon) -> f64 {
    let text = d.ok("daemon.metrics", json!({}))["text"].as_str().unwrap().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("ccmanagerd_state_save_failures_total "))
        .expect("the failure counter is exposed")
        .parse()
        .unwrap()
}

/// Creates until one is refused for the state (a full tmpfs may still
/// take a line or two in the last page of the journal); returns the ids
/// created meanwhile and the refusal.
fn create_until_refused(d: &TestDaemon) -> (Vec<String>, Value) {
    let mut ok = Vec::new();
    for _ in 0..50 {
        match create(d) {
            Ok(id) => ok.push(id),
            Err(e) => return (ok, e),
        }
    }
    panic!("50 creates succeeded with the state directory unwritable:\n{}", d.log_text());
}

#[test]
fn a_full_or_read_only_state_dir_refuses_creates_says_so_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let fs = Tmpfs::mount(&state, "2m");
    let extra = format!("[daemon]\nstate_dir = \"{}\"\n", state.display());
    let mut d = TestDaemon::start(&extra);
    let mut kept: Vec<String> = (0..3).map(|_| create(&d).unwrap()).collect();
    let state_ok =
        |d: &TestDaemon| check(&d.ok("health.check", json!({})), "state_file")["status"] == "ok";
    assert!(state_ok(&d));
    let path = state.join("sessions.json").display().to_string();

    // Full: fill every page of the tmpfs.
    let filler = state.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
    }
    let (more, refused) = create_until_refused(&d);
    kept.extend(more);
    let msg = refused["message"].as_str().unwrap();
    assert_eq!(refused["data"]["kind"], "state_not_saved", "{refused}");
    assert!(msg.contains(&path) && msg.contains("No space left on device"), "{msg}");
    let health = d.ok("health.check", json!({}));
    let st = check(&health, "state_file");
    assert_eq!(st["status"], "degraded", "{health}");
    assert!(st["detail"].as_str().unwrap().contains(&path), "{st}");
    assert!(st["detail"].as_str().unwrap().contains("No space left on device"), "{st}");
    // (The disk check says `failing` too: the filesystem is full.)
    assert_ne!(health["status"], "ok", "{health}");
    assert!(failures_metric(&d) >= 1.0);
    assert_eq!(
        d.ok("session.list", json!({}))["sessions"].as_array().unwrap().len(),
        kept.len(),
        "the refused create left nothing"
    );

    // Space returns: the next change saves every session.
    std::fs::remove_file(&filler).unwrap();
    kept.push(create(&d).expect("a create once there is room"));
    eventually(WAIT, "the state_file check ok again", || state_ok(&d).then_some(()));

    // Read-only.
    fs.remount("ro");
    let (more, refused) = create_until_refused(&d);
    assert!(more.is_empty(), "nothing fits on a read-only filesystem: {more:?}");
    let msg = refused["message"].as_str().unwrap();
    assert!(msg.contains(&path) && msg.contains("Read-only file system"), "{msg}");
    let health = d.ok("health.check", json!({}));
    assert_ne!(health["status"], "ok", "{health}");
    assert_eq!(check(&health, "state_file")["status"], "degraded", "{health}");
    assert!(check(&health, "state_file")["detail"].as_str().unwrap().contains("Read-only"));
    // A kill still kills, and says its removal is not saved.
    let victim = kept.pop().unwrap();
    let e = d.call("session.kill", json!({"id": victim})).expect_err("kill acknowledged unsaved");
    assert!(e.to_string().contains("was killed, but its removal is not saved"), "{e}");
    fs.remount("rw");
    kept.push(create(&d).expect("a create once writable"));

    // Every acknowledged session survives a SIGKILL; the victim stays gone.
    d.kill9();
    d.restart();
    let now = list(&d);
    for id in &kept {
        assert!(now.contains_key(id), "{id} missing after restart: {now:?}");
        assert_eq!(now[id]["adopted"], false, "{}", now[id]);
    }
    assert!(!now.contains_key(&victim), "the killed session came back: {}", now[&victim]);
    assert_eq!(now.len(), kept.len(), "{now:?}");
    eprintln!(
        "full then read-only state dir: {} sessions kept, creates refused while unwritable, all back after SIGKILL",
        kept.len()
    );
}

#[test]
fn a_directory_in_place_of_the_state_file_is_moved_aside() {
    let mut d = TestDaemon::start("");
    let ids: Vec<String> = (0..2).map(|_| create(&d).unwrap()).collect();
    d.stop();
    let state = d.dir.path().join("state");
    let file = state.join("sessions.json");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("keep-me"), "x").unwrap();
    d.restart();
    let aside: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("sessions.json.corrupt."))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("keep-me").exists(), "moved, not deleted");
    assert!(d.log_text().contains("moved aside"));
    let now = list(&d);
    for id in &ids {
        assert!(now.contains_key(id), "{id} re-adopted from tmux");
    }
    eventually(WAIT, "a regular state file again", || file.is_file().then_some(()));
    assert_eq!(check(&d.ok("health.check", json!({})), "state_file")["status"], "ok");
    let id = create(&d).unwrap();
    d.kill9();
    d.restart();
    assert!(list(&d).contains_key(&id));
}

#[test]
fn sigterm_under_create_kill_load_ends_promptly_and_keeps_what_it_acknowledged() {
    // A long shutdown timeout: a request waiting forever for a save that the
    // persister (already gone) will never make would hold the exit this long.
    let mut d = TestDaemon::start(
        "[daemon]\nshutdown_timeout = \"60s\"\n[limits]\nmax_sessions = 2000\nmax_sessions_per_owner = 2000\n",
    );
    let mut all = Acked::default();
    for _ in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = load(&d.socket, 6, stop.clone(), Arc::new(AtomicUsize::new(0)));
        std::thread::sleep(Duration::from_millis(400));
        // The clients send nothing new (a draining daemon still serves what
        // its open connections send), but up to 6 requests are in flight.
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        d.signal(nix::sys::signal::Signal::SIGTERM);
        let status = d.wait_exit();
        let took = t.elapsed();
        for t in threads {
            let a = t.join().expect("load thread");
            all.created.extend(a.created);
            all.killed.extend(a.killed);
            all.in_doubt.extend(a.in_doubt);
        }
        assert!(status.success(), "{status}\n{}", d.log_text());
        assert!(
            took < Duration::from_secs(20),
            "SIGTERM took {took:?} under load\n{}",
            d.log_text()
        );
        eprintln!("SIGTERM under load: exited in {took:?}");
        d.restart();
        let now = list(&d);
        for id in &all.killed {
            assert!(!now.contains_key(id), "acknowledged kill {id} came back");
        }
        for id in
            all.created.iter().filter(|id| !all.killed.contains(*id) && !all.in_doubt.contains(*id))
        {
            assert!(now.contains_key(id), "acknowledged create {id} missing");
        }
    }
}
