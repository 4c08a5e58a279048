//! A real `ccmanagerd` binary on temp sockets, for integration tests: start,
//! wait until it answers, talk to it, and always stop it (and every tmux
//! server it started) on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use ccmanagerd::client::{Client, ClientError};
use ccmanagerd::protocol::method::DaemonPing;
use ccmanagerd::protocol::methods::NoParams;
use ccmanagerd::protocol::Method;
use ccmanagerd::sessions::server::sockets_in;

/// How long a daemon may take to start answering on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Path of a built binary of this crate.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "ccmanagerd" => PathBuf::from(env!("CARGO_BIN_EXE_ccmanagerd")),
        "ccmanagerctl" => PathBuf::from(env!("CARGO_BIN_EXE_ccmanagerctl")),
        other => panic!("unknown binary {other}"),
    }
}

/// A running daemon with its own temp directory, sockets and config.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The tmux server of the daemon's own uid (root's sessions run in it),
    /// so tests can look at its sessions from outside.
    pub tmux_socket: PathBuf,
    /// `--tmux-dir`: every uid's server lives in `tmux_dir/<uid>/`.
    pub tmux_dir: PathBuf,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl TestDaemon {
    /// Starts a daemon with `extra_config` (TOML) added to the test defaults.
    pub fn start(extra_config: &str) -> TestDaemon {
        Self::start_with(extra_config, |_| {})
    }

    /// Like [`TestDaemon::start`], letting the caller adjust the command.
    pub fn start_with(extra_config: &str, adjust: impl FnOnce(&mut Command)) -> TestDaemon {
        Self::launch(Self::temp_dir(), extra_config, adjust)
    }

    /// A daemon that other uids can use: its directory is 0755, its socket
    /// 0666, and `uids` may connect.
    pub fn start_shared(uids: &[u32], extra_config: &str) -> TestDaemon {
        use std::os::unix::fs::PermissionsExt;
        let dir = Self::temp_dir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test dir");
        let mut shared = toml::Table::new();
        let mut daemon = toml::Table::new();
        daemon.insert("socket_mode".into(), "0666".into());
        let uids: toml::value::Array = uids.iter().map(|u| i64::from(*u).into()).collect();
        daemon.insert("allowed_uids".into(), uids.into());
        shared.insert("daemon".into(), daemon.into());
        let extra: toml::Table = toml::from_str(extra_config).expect("extra config must be TOML");
        merge(&mut shared, extra);
        let config = toml::to_string(&shared).expect("serialize config");
        Self::launch(dir, &config, |_| {})
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("ccm").tempdir().expect("tempdir")
    }

    fn launch(
        dir: tempfile::TempDir,
        extra_config: &str,
        adjust: impl FnOnce(&mut Command),
    ) -> TestDaemon {
        let socket = dir.path().join("d.sock");
        let tmux_dir = dir.path().join("tmux");
        let tmux_socket = uid_socket(&tmux_dir, nix::unistd::geteuid().as_raw());
        let config = dir.path().join("config.toml");
        let log = dir.path().join("daemon.log");
        std::fs::write(&config, test_config(dir.path(), extra_config)).expect("write config");
        let mut d = TestDaemon { dir, socket, tmux_socket, tmux_dir, config, child: None, log };
        d.spawn(adjust);
        d.wait_ready();
        d
    }

    /// The socket of the tmux server that runs `uid`'s sessions.
    pub fn tmux_socket_of(&self, uid: u32) -> PathBuf {
        uid_socket(&self.tmux_dir, uid)
    }

    /// Every tmux server socket that exists now (a uid's first server's
    /// `tmux.sock`, and `tmux.N.sock` of its others).
    pub fn tmux_sockets(&self) -> Vec<PathBuf> {
        let per_uid = std::fs::read_dir(&self.tmux_dir).into_iter().flatten().flatten();
        per_uid.flat_map(|d| sockets_in(&d.path())).map(|(_, socket)| socket).collect()
    }

    /// Starts the process again on the same sockets (after a stop or kill).
    pub fn restart(&mut self) {
        self.spawn(|_| {});
        self.wait_ready();
    }

    fn spawn(&mut self, adjust: impl FnOnce(&mut Command)) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(bin("ccmanagerd"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--tmux-dir")
            .arg(&self.tmux_dir)
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("INVOCATION_ID")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        adjust(&mut cmd);
        self.child = Some(cmd.spawn().expect("spawn ccmanagerd"));
    }

    /// Waits until `daemon.ping` answers.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut c) = Client::connect(&self.socket, Some(Duration::from_secs(5))) {
                if c.request::<DaemonPing>(&NoParams {}).is_ok() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("ccmanagerd exited early with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "ccmanagerd did not answer in time:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket, Some(Duration::from_secs(30))).expect("connect")
    }

    /// One call on a fresh connection.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.client().call(method, params)
    }

    /// Like [`TestDaemon::call`] but panics on error.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}\n{}", self.log_text()))
    }

    /// One typed call (method `M`) on a fresh connection; panics on error.
    pub fn request<M: Method>(&self, params: &M::Params) -> M::Result {
        self.client()
            .request::<M>(params)
            .unwrap_or_else(|e| panic!("{} failed: {e}\n{}", M::NAME, self.log_text()))
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit()
    }

    /// SIGKILL and wait.
    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait_exit();
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ccmanagerd did not exit in time:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `ccmanagerctl --socket S ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("ccmanagerctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ccmanagerctl")
    }

    /// Runs `tmux -S <our tmux socket> ARGS...` (for checks from outside).
    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-S").arg(&self.tmux_socket).args(args).output().expect("run tmux")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
        // tmux servers outlive the daemon by design; tests must not leak them.
        for socket in self.tmux_sockets() {
            kill_tmux_server(&socket);
        }
        if std::env::var_os("CCM_TEST_SHOW_LOG").is_some() {
            eprintln!("--- daemon log ---\n{}", self.log_text());
        }
    }
}

/// File name of each uid's tmux socket under `--tmux-dir`.
pub const TMUX_SOCKET_NAME: &str = "tmux.sock";

/// `DIR/<uid>/tmux.sock`.
pub fn uid_socket(tmux_dir: &Path, uid: u32) -> PathBuf {
    tmux_dir.join(uid.to_string()).join(TMUX_SOCKET_NAME)
}

/// The pid of the tmux server on `socket`, if one answers within 5 s (asked
/// as root, whom every tmux server lets in; a stopped server never answers).
pub fn tmux_server_pid(socket: &Path) -> Option<i32> {
    let out = Command::new("timeout")
        .args(["5", "tmux", "-N", "-S"])
        .arg(socket)
        .args(["display-message", "-p", "#{pid}"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Every tmux process (server or client) whose command line names `socket`,
/// found through /proc without talking to any of them.
fn tmux_processes_of(socket: &Path) -> Vec<i32> {
    let needle = socket.as_os_str().as_encoded_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.trim() == "tmux" && cmdline.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

/// `kill-server` (bounded: a stopped server never answers), then SIGCONT and
/// SIGKILL to every tmux process of the socket: a wedged or stopped server
/// must not survive a test.
pub fn kill_tmux_server(socket: &Path) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pid = tmux_server_pid(socket);
    let _ = Command::new("timeout")
        .args(["5", "tmux", "-N", "-S"])
        .arg(socket)
        .arg("kill-server")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status();
    for pid in pid.into_iter().chain(tmux_processes_of(socket)) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The config every test daemon starts from: short intervals, a state dir in
/// the temp dir, the detached launcher.
fn test_config(dir: &Path, extra: &str) -> String {
    let mut base = toml::Table::new();
    let mut daemon = toml::Table::new();
    daemon.insert("state_dir".into(), dir.join("state").display().to_string().into());
    base.insert("daemon".into(), daemon.into());
    let mut tmux = toml::Table::new();
    tmux.insert("launcher".into(), "detached".into());
    // Root's sessions run as root, explicitly (tests that need other users
    // create them); without this a machine lacking the `ccmanager` user
    // falls back to root with a degraded health.
    if nix::unistd::geteuid().is_root() {
        tmux.insert("session_user".into(), "root".into());
        tmux.insert("allow_root_sessions".into(), true.into());
    }
    base.insert("tmux".into(), tmux.into());
    let mut health = toml::Table::new();
    health.insert("interval".into(), "1s".into());
    base.insert("health".into(), health.into());
    let extra: toml::Table = toml::from_str(extra).expect("extra config must be valid TOML");
    merge(&mut base, extra);
    toml::to_string(&base).expect("serialize config")
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A raw connection for protocol-level tests.
pub struct Raw {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Raw {
    pub fn connect(path: &Path) -> Raw {
        let s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw { reader: BufReader::new(s.try_clone().unwrap()), writer: s }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Reads one reply line as JSON; `None` on EOF.
    pub fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}")),
            ),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Sends a line and reads the reply.
    pub fn roundtrip(&mut self, line: &str) -> Value {
        self.send(format!("{line}\n").as_bytes());
        self.recv().expect("a reply")
    }
}
