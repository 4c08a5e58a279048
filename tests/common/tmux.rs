//! Shared fixtures: a private tmux server on a temp socket, killed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ccmanagerd::tmux::server::{
    ensure_running, write_config, Launcher, ServerInfo, ServerPaths, TmuxServerSettings,
};

/// The tmux binary used by tests.
pub const TMUX: &str = "tmux";

/// A private tmux server; never the user's default one (always `-S`).
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub paths: ServerPaths,
    pub info: ServerInfo,
}

impl TestServer {
    /// Paths in a fresh temp dir (socket under a subdirectory we do not create).
    pub fn paths() -> (tempfile::TempDir, ServerPaths) {
        let dir = tempfile::Builder::new().prefix("ccm-tmux-").tempdir_in("/tmp").unwrap();
        let paths = ServerPaths {
            tmux_bin: TMUX.into(),
            socket: dir.path().join("run/tmux.sock"),
            config: dir.path().join("tmux.conf"),
            client_as: None,
        };
        write_config(&paths.config, &TmuxServerSettings::default()).unwrap();
        (dir, paths)
    }

    /// Starts a detached private server and waits until it answers.
    pub async fn start() -> TestServer {
        let (dir, paths) = Self::paths();
        let (info, launched) = ensure_running(&Launcher::Detached(None), &paths).await.unwrap();
        assert!(launched);
        TestServer { dir, paths, info }
    }

    pub fn socket(&self) -> &Path {
        &self.paths.socket
    }

    /// Runs a one-off `tmux -S SOCKET args...` and returns stdout.
    pub fn tmux(&self, args: &[&str]) -> String {
        tmux_at(&self.paths.socket, args)
    }

    pub fn kill(&self) {
        kill_server(&self.paths.socket, Some(self.info.pid));
    }
}

pub fn tmux_at(socket: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(TMUX)
        .arg("-N")
        .arg("-S")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn kill_server(socket: &Path, pid: Option<u32>) {
    let _ = std::process::Command::new(TMUX)
        .arg("-N")
        .arg("-S")
        .arg(socket)
        .arg("kill-server")
        .output();
    if let Some(pid) = pid {
        // Belt and braces: a wedged server must not outlive the test.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn socket_buf(s: &TestServer) -> PathBuf {
    s.paths.socket.clone()
}
