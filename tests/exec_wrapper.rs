//! The exec-wrapper (`ccmanagerd __exec`) as a real process, with the daemon's
//! end of its status pipe (`limits::spawn_status`) in this test process: what
//! reaches the program (rlimits, environment, cwd, passwd variables), what
//! never runs in the wrapper (a request's LD_PRELOAD), and what the daemon is
//! told when the program does not start.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ccmanagerd::limits::spawn_status::{create_fifo, SpawnFailure, Stage, Started, StatusPipe};
use nix::unistd::{getgid, getuid, Uid, User};

const EXE: &str = env!("CARGO_BIN_EXE_ccmanagerd");
/// Generous: a loaded 2-core machine; a pass takes milliseconds.
const WAIT: Duration = Duration::from_secs(20);
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The uid the unprivileged cases run as (when the test runs as root).
const NOBODY: u32 = 65534;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A temporary directory others may traverse (a wrapper run as nobody must
/// reach the FIFO in it).
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// One wrapper run, started the way the daemon will start it.
struct Wrapper<'a> {
    dir: &'a Path,
    flags: Vec<String>,
    env: Vec<(String, String)>,
    user: Option<(u32, u32)>,
}

struct Outcome {
    result: Result<Started, SpawnFailure>,
    status: ExitStatus,
    stderr: String,
}

impl<'a> Wrapper<'a> {
    fn new(dir: &'a Path) -> Self {
        Wrapper { dir, flags: vec![], env: vec![], user: None }
    }

    fn flag(mut self, name: &str, value: impl AsRef<Path>) -> Self {
        self.flags.push(name.to_string());
        self.flags.push(value.as_ref().to_str().unwrap().to_string());
        self
    }

    fn env(mut self, name: &str, value: impl AsRef<Path>) -> Self {
        self.env.push((name.to_string(), value.as_ref().to_str().unwrap().to_string()));
        self
    }

    fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    fn command(&self, fifo: &Path, argv: &[&str]) -> Command {
        let mut cmd = Command::new(EXE);
        cmd.arg("__exec").args(&self.flags).arg("--status").arg(fifo).arg("--").args(argv);
        cmd.env_clear().env("PATH", PATH).envs(self.env.iter().cloned());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Creates the FIFO and opens its read end, starts the wrapper, waits.
    fn run(self, argv: &[&str]) -> Outcome {
        let rt = runtime();
        let _in_runtime = rt.enter();
        let fifo = self.dir.join("status");
        let (uid, gid) = self.user.unwrap_or((getuid().as_raw(), getgid().as_raw()));
        create_fifo(&fifo, uid, gid).unwrap();
        let pipe = StatusPipe::open(&fifo).unwrap();
        let child = self.command(&fifo, argv).spawn().unwrap();
        let result = rt.block_on(pipe.wait(WAIT));
        assert!(!fifo.exists(), "the FIFO is unlinked once the wait is over");
        let out = child.wait_with_output().unwrap();
        Outcome { result, status: out.status, stderr: String::from_utf8_lossy(&out.stderr).into() }
    }
}

fn failure(o: &Outcome) -> &SpawnFailure {
    match &o.result {
        Ok(_) => panic!("the wrapper reported success; stderr: {}", o.stderr),
        Err(e) => e,
    }
}

fn is_root() -> bool {
    getuid().is_root()
}

#[test]
fn a_started_program_reports_success_and_runs() {
    let dir = sandbox();
    let out = dir.path().join("out");
    let o = Wrapper::new(dir.path()).run(&[
        "sh",
        "-c",
        r#"echo ran > "$0"; grep SigIgn /proc/self/status >> "$0""#,
        out.to_str().unwrap(),
    ]);
    assert!(o.result.is_ok(), "{:?} {}", o.result, o.stderr);
    assert!(o.status.success(), "{:?}", o.status);
    let text = fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("ran\n"), "{text}");
    // The wrapper (a Rust program) ignores SIGPIPE; its program must not inherit that.
    let ignored = text.lines().nth(1).unwrap().split_whitespace().nth(1).unwrap();
    let ignored = u64::from_str_radix(ignored, 16).unwrap();
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE ignored in the program: {text}");
}

#[test]
fn a_missing_program_fails_the_spawn_and_names_it() {
    let dir = sandbox();
    let o = Wrapper::new(dir.path()).run(&["ccm-no-such-program", "arg"]);
    let e = failure(&o);
    assert_eq!(e.what(), Some(Stage::Exec));
    assert_eq!(e.to_string(), "exec: ccm-no-such-program: No such file or directory");
    assert!(e.is_request_error());
    assert_eq!(o.status.code(), Some(127));
}

#[test]
fn a_cwd_that_is_a_file_or_missing_fails_the_spawn_and_runs_nothing() {
    let dir = sandbox();
    let ran = dir.path().join("ran");
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let missing = dir.path().join("missing");
    for (cwd, reason) in [(&file, "Not a directory"), (&missing, "No such file or directory")] {
        let o = Wrapper::new(dir.path()).flag("--cwd", cwd).run(&[
            "sh",
            "-c",
            r#"touch "$0""#,
            ran.to_str().unwrap(),
        ]);
        let e = failure(&o);
        assert_eq!(e.what(), Some(Stage::Cwd));
        assert_eq!(e.to_string(), format!("cwd: {}: {reason}", cwd.display()));
        assert_eq!(o.status.code(), Some(126));
        let shown = format!("ccmanagerd: cannot change to directory {}: {reason}", cwd.display());
        assert!(o.stderr.contains(&shown), "stderr: {}", o.stderr);
        assert!(!ran.exists());
    }
}

#[test]
fn a_cwd_the_owner_cannot_enter_fails_although_root_could() {
    if !is_root() {
        println!("SKIP: needs root to run the wrapper as uid {NOBODY}");
        return;
    }
    let dir = sandbox();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    // As root (the daemon) the directory is fine: the check must be the owner's.
    let o = Wrapper::new(dir.path()).flag("--cwd", &locked).run(&["true"]);
    assert!(o.result.is_ok(), "{:?}", o.result);
    let o = Wrapper::new(dir.path()).user(NOBODY, NOBODY).flag("--cwd", &locked).run(&["true"]);
    let e = failure(&o);
    assert_eq!(e.to_string(), format!("cwd: {}: Permission denied", locked.display()));
    assert_eq!(o.status.code(), Some(126));
    // Without --cwd the owner goes to its passwd home; nobody's usually does not exist.
    let home = User::from_uid(Uid::from_raw(NOBODY)).unwrap().unwrap().dir;
    if !home.is_dir() {
        let o = Wrapper::new(dir.path()).user(NOBODY, NOBODY).run(&["true"]);
        let e = failure(&o);
        assert_eq!(e.to_string(), format!("cwd: {}: No such file or directory", home.display()));
    }
}

#[test]
fn rlimits_reach_the_program() {
    let dir = sandbox();
    let out = dir.path().join("limits");
    let o = Wrapper::new(dir.path())
        .flag("--rlimit", "nofile=123")
        .flag("--rlimit", "core=0")
        .flag("--rlimit", "cpu=unlimited")
        .run(&[
            "sh",
            "-c",
            r#"cat /proc/self/limits > "$0"; cat /proc/$PPID/limits > "$0.wrapper""#,
            out.to_str().unwrap(),
        ]);
    assert!(o.result.is_ok(), "{:?} {}", o.result, o.stderr);
    let limits = fs::read_to_string(&out).unwrap();
    let wrapper = fs::read_to_string(out.with_extension("wrapper")).unwrap();
    let row = |limits: &str, name: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..].split_whitespace().take(2).map(String::from).collect()
    };
    assert_eq!(row(&limits, "Max open files"), ["123", "123"]);
    assert_eq!(row(&limits, "Max core file size"), ["0", "0"]);
    assert_eq!(row(&limits, "Max cpu time"), ["unlimited", "unlimited"]);
    // The wrapper, which stays as the program's parent, keeps its own.
    assert_ne!(row(&wrapper, "Max open files"), ["123", "123"], "{wrapper}");
}

#[test]
fn an_rlimit_that_cannot_be_set_fails_the_spawn() {
    // RLIMIT_NOFILE cannot be infinite (fs.nr_open), not even for root.
    let dir = sandbox();
    let o = Wrapper::new(dir.path()).flag("--rlimit", "nofile=unlimited").run(&["true"]);
    let e = failure(&o);
    assert_eq!(e.to_string(), "rlimit: cannot set nofile to unlimited: Operation not permitted");
    assert_eq!(o.status.code(), Some(126));
}

/// A library whose constructor appends "pid nofile_soft_limit" to $CCM_PROBE_OUT.
const PROBE_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/resource.h>

__attribute__((constructor)) static void ccm_probe(void) {
    const char *out = getenv("CCM_PROBE_OUT");
    struct rlimit rl;
    FILE *f;
    if (!out || getrlimit(RLIMIT_NOFILE, &rl) != 0 || !(f = fopen(out, "a")))
        return;
    fprintf(f, "%d %llu\n", (int)getpid(), (unsigned long long)rl.rlim_cur);
    fclose(f);
}
"#;

#[test]
fn a_requests_ld_preload_runs_only_in_the_program_after_the_limits() {
    let dir = sandbox();
    let src = dir.path().join("probe.c");
    let lib = dir.path().join("probe.so");
    fs::write(&src, PROBE_C).unwrap();
    let gcc = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status();
    match gcc {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("gcc failed: {s}"),
        Err(e) => {
            println!("SKIP: no gcc ({e})");
            return;
        }
    }
    // (pid, nofile soft limit) of each process the probe ran in; the
    // wrapper's pid; the program's, as the wrapper reported it.
    type Probed = (Vec<(u32, String)>, u32, Option<u32>);
    let lines = |preload_var: &str, name: &str| -> Probed {
        let out = dir.path().join(name);
        let rt = runtime();
        let _in_runtime = rt.enter();
        let w = Wrapper::new(dir.path())
            .flag("--rlimit", "nofile=123")
            .env(preload_var, &lib)
            .env("CCM_PROBE_OUT", &out);
        let fifo = dir.path().join("status");
        create_fifo(&fifo, getuid().as_raw(), getgid().as_raw()).unwrap();
        let pipe = StatusPipe::open(&fifo).unwrap();
        let mut child = w.command(&fifo, &["true"]).spawn().unwrap();
        let result = rt.block_on(pipe.wait(WAIT));
        assert!(child.wait().unwrap().success());
        let started = result.expect("the program started");
        let program = started.pid.expect("the wrapper reports the program's pid");
        assert_ne!(program, child.id(), "the wrapper stays as the program's parent");
        let text = fs::read_to_string(&out).unwrap_or_default();
        let got = text
            .lines()
            .map(|l| {
                let (pid, limit) = l.split_once(' ').unwrap();
                (pid.parse::<u32>().unwrap(), limit.to_string())
            })
            .collect();
        (got, child.id(), Some(program))
    };

    // Through the request's prefixed variable: one line, from the program, under the limit.
    let (got, _, program) = lines("CCMANAGERD_ENV_LD_PRELOAD", "prefixed");
    assert_eq!(got.len(), 1, "the library ran in the wrapper too: {got:?}");
    assert_eq!((Some(got[0].0), got[0].1.as_str()), (program, "123"));

    // Control, and what the old contract (the request's env plain in the
    // wrapper's environment) did: the probe runs first in the wrapper itself,
    // before any limit, then again in the program.
    let (got, wrapper, program) = lines("LD_PRELOAD", "plain");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, wrapper);
    assert_ne!(got[0].1, "123");
    assert_eq!((Some(got[1].0), got[1].1.as_str()), (program, "123"));
}

#[test]
fn the_request_env_and_passwd_reach_the_program_and_nothing_else_does() {
    let dir = sandbox();
    let out = dir.path().join("env");
    let me = User::from_uid(getuid()).unwrap().unwrap();
    let o = Wrapper::new(dir.path())
        .env("CCMANAGERD_ENV_GREETING", "hi there #{session_name} $(id)")
        .env("CCMANAGERD_ENV_LOGNAME", "chosen-by-the-request")
        .env("HOME", "/not/the/home")
        .env("SHELL", "/not/the/shell")
        .env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("INVOCATION_ID", "abc")
        .run(&["sh", "-c", r#"env > "$0""#, out.to_str().unwrap()]);
    assert!(o.result.is_ok(), "{:?} {}", o.result, o.stderr);
    let env = fs::read_to_string(&out).unwrap();
    let var = |name: &str| {
        env.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')).map(String::from)
    };
    assert_eq!(var("GREETING").as_deref(), Some("hi there #{session_name} $(id)"));
    assert_eq!(var("HOME").as_deref(), me.dir.to_str());
    assert_eq!(var("USER").as_deref(), Some(me.name.as_str()));
    assert_eq!(var("SHELL").as_deref(), me.shell.to_str());
    // The request may override what came from passwd.
    assert_eq!(var("LOGNAME").as_deref(), Some("chosen-by-the-request"));
    // Without --cwd: the passwd home.
    assert_eq!(var("PWD").as_deref(), me.dir.to_str());
    for gone in ["CCMANAGERD_ENV_", "NOTIFY_SOCKET", "INVOCATION_ID"] {
        assert!(!env.contains(gone), "{gone} reached the program:\n{env}");
    }
}

#[test]
fn a_bad_command_line_is_reported_through_the_pipe() {
    let dir = sandbox();
    let o = Wrapper::new(dir.path()).flag("--rlimit", "bogus=1").run(&["true"]);
    let e = failure(&o);
    assert_eq!(e.what(), Some(Stage::Setup));
    assert_eq!(e.to_string(), r#"setup: --rlimit "bogus=1": unknown rlimit "bogus""#);
    assert_eq!(o.status.code(), Some(126));
}

#[test]
fn a_wrapper_that_never_starts_times_out_naming_the_wait() {
    let dir = sandbox();
    let rt = runtime();
    let _in_runtime = rt.enter();
    let fifo = dir.path().join("status");
    create_fifo(&fifo, getuid().as_raw(), getgid().as_raw()).unwrap();
    let pipe = StatusPipe::open(&fifo).unwrap();
    let start = Instant::now();
    let e = rt.block_on(pipe.wait(Duration::from_millis(300))).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(matches!(e, SpawnFailure::TimedOut(_)), "{e:?}");
    assert_eq!(e.to_string(), "the exec-wrapper did not start the program within 300ms");
    assert!(!fifo.exists());
}

/// Whether `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| fs::read_link(fd.path()).ok().as_deref() == Some(path))
}

#[test]
fn a_wrapper_killed_before_exec_exited_before_it_started() {
    let dir = sandbox();
    let ran = dir.path().join("ran");
    let rt = runtime();
    let _in_runtime = rt.enter();
    let fifo = dir.path().join("status");
    create_fifo(&fifo, getuid().as_raw(), getgid().as_raw()).unwrap();
    let pipe = StatusPipe::open(&fifo).unwrap();
    // It waits for a scope nobody will place it in: it is in its setup, then killed.
    let w = Wrapper::new(dir.path()).flag("--wait-scope", "ccm-test-never.scope");
    let mut child =
        w.command(&fifo, &["sh", "-c", r#"touch "$0""#, ran.to_str().unwrap()]).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    while !has_open(child.id(), &fifo) {
        assert!(Instant::now() < deadline, "the wrapper never opened its status pipe");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let e = rt.block_on(pipe.wait(WAIT)).unwrap_err();
    assert!(matches!(e, SpawnFailure::ExitedEarly), "{e:?}");
    assert_eq!(e.to_string(), "the exec-wrapper exited before it started");
    assert!(!ran.exists());
}

#[test]
fn a_wrapper_whose_daemon_stopped_waiting_runs_nothing() {
    let dir = sandbox();
    let ran = dir.path().join("ran");
    let fifo: PathBuf = dir.path().join("status");
    // The FIFO without a reader (the daemon gave up, or died), then no FIFO at all.
    create_fifo(&fifo, getuid().as_raw(), getgid().as_raw()).unwrap();
    for reason in ["No such device or address", "No such file or directory"] {
        let out = Wrapper::new(dir.path())
            .command(&fifo, &["sh", "-c", r#"touch "$0""#, ran.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(126));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expect = format!("ccmanagerd: status pipe {}: {reason}", fifo.display());
        assert!(stderr.contains(&expect), "{stderr}");
        assert!(!ran.exists());
        fs::remove_file(&fifo).ok();
    }
}

/// Whether `pid` runs (a zombie does not).
fn runs(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

#[test]
fn the_wrapper_passes_signals_on_ends_leftovers_and_dies_as_its_program_did() {
    use std::os::unix::process::ExitStatusExt;
    let dir = sandbox();
    let rt = runtime();
    let _in_runtime = rt.enter();
    let fifo = dir.path().join("status");
    let pidfile = dir.path().join("leftover");
    create_fifo(&fifo, getuid().as_raw(), getgid().as_raw()).unwrap();
    let pipe = StatusPipe::open(&fifo).unwrap();
    // A leftover that left its session, and a program that waits in the foreground.
    let script = r#"setsid sleep 1000 & echo $! > "$0"; exec sleep 1001"#;
    let mut wrapper = Wrapper::new(dir.path())
        .command(&fifo, &["sh", "-c", script, pidfile.to_str().unwrap()])
        .spawn()
        .unwrap();
    let program = rt.block_on(pipe.wait(WAIT)).unwrap().pid.expect("the program's pid");
    let leftover: u32 = loop {
        if let Some(pid) = fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()) {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let term = nix::sys::signal::Signal::SIGTERM;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(wrapper.id() as i32), term).unwrap();
    let status = wrapper.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!status.core_dumped());
    assert!(!runs(program), "the program {program} outlived its wrapper");
    assert!(!runs(leftover), "the leftover {leftover} outlived the program");
}
